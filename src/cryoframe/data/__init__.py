"""Small bundled data: atomic models, 10 Å density templates and the AdK DIMS trajectory.

Provenance of every file is in ``README.md`` next to this module. Nothing is downloaded at run
time. Use :func:`structure_path` / :func:`map_path` / :func:`trajectory_paths` to locate files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cryoframe._errors import InputError

__all__ = [
    "STRUCTURES",
    "MAPS_10A",
    "data_root",
    "list_bundled",
    "structure_path",
    "map_path",
    "trajectory_paths",
    "PARTICLE_PRETRAIN_DENSITIES",
    "PARTICLE_BENCHMARK_DENSITIES",
]

#: Particle (2D) pretraining densities (BENCHMARKS.md): the 3J9I and 4V4R_30S maps and the other
#: polnet maps.
PARTICLE_PRETRAIN_DENSITIES = ("3J9I", "4V4R_30S", "1F4A", "2UV8", "3IPM", "4V7R", "4V94", "5MRC",
                               "6PXM", "6QZP", "6UTJ", "7N4Y", "8TUX")
#: Benchmark structures of particles-knn / particles-rank; never used for particle training.
PARTICLE_BENCHMARK_DENSITIES = ("1BXN", "1QVR", "1U6G", "2CG9", "3CF3", "3D2F", "3H84", "3QM1",
                                "7P6Z", "1WCM", "4CR2", "4V4R_50S")

#: Bundled atomic models, keyed by upper-case PDB ID (plus suffix where it is a fragment).
STRUCTURES: dict[str, str] = {
    "3J9I": "structures/3j9i.pdb.gz",
    "4V4R_30S": "structures/4v4r_30S.pdb.gz",
    "1BXN": "structures/1bxn.pdb.gz",
    "1QVR": "structures/1qvr.pdb.gz",
    "1U6G": "structures/1u6g.pdb.gz",
    "2CG9": "structures/2cg9.pdb.gz",
    "3CF3": "structures/3cf3.pdb.gz",
    "3D2F": "structures/3d2f.pdb.gz",
    "3H84": "structures/3h84.pdb.gz",
    "3QM1": "structures/3qm1.pdb.gz",
    "7P6Z": "structures/7p6z.cif.gz",
    "1WCM": "structures/1WCM.pdb.gz",
    "1AKE": "structures/1ake.pdb.gz",
    "4AKE_A": "structures/4akeA_alg_fixed.pdb.gz",
}

#: Density templates at 10 Å/voxel simulated by polnet, keyed by upper-case ID.
MAPS_10A: dict[str, str] = {
    name.upper(): f"maps_10A/{name}.mrc.gz"
    for name in [
        "1bxn", "1f4a", "1qvr", "1u6g", "2cg9", "2uv8", "3cf3", "3d2f", "3h84", "3ipm", "3j9i",
        "3qm1", "4cr2", "4v4r", "4v4r_30S", "4v4r_50S", "4v7r", "4v94", "5mrc", "6pxm", "6qzp",
        "6utj", "7n4y", "8tux",
    ]
}


def data_root() -> Path:
    """Directory holding the bundled data files."""
    return Path(str(resources.files("cryoframe.data")))


def list_bundled() -> list[str]:
    """Relative paths of all bundled data files."""
    root = data_root()
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc", ".md"}
    )


def structure_path(pdb_id: str) -> Path:
    """Path of a bundled atomic model by its ID (e.g. ``"3J9I"``, ``"4V4R_30S"``)."""
    key = pdb_id.upper()
    if key not in STRUCTURES:
        raise InputError(
            f"unknown bundled structure '{pdb_id}'",
            field="structure",
            expected=f"one of {sorted(STRUCTURES)} or a path to a PDB/mmCIF file",
        )
    return data_root() / STRUCTURES[key]


def map_path(map_id: str) -> Path:
    """Path of a bundled 10 Å/voxel density template (gzipped MRC) by its ID."""
    key = map_id.upper()
    if key not in MAPS_10A:
        raise InputError(
            f"unknown bundled map '{map_id}'",
            field="map",
            expected=f"one of {sorted(MAPS_10A)}",
        )
    return data_root() / MAPS_10A[key]


def trajectory_paths(name: str = "adk_dims") -> tuple[Path, Path]:
    """Topology and trajectory of the bundled AdK DIMS transition (``adk_dims`` or ``adk_dims2``)."""
    if name not in {"adk_dims", "adk_dims2"}:
        raise InputError(
            f"unknown bundled trajectory '{name}'", field="trajectory",
            expected="'adk_dims' (98 frames) or 'adk_dims2' (102 frames)",
        )
    root = data_root() / "trajectories"
    return root / "adk.psf.gz", root / f"{name}.dcd"
