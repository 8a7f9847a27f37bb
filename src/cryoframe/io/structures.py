"""Atomic models (PDB, mmCIF, plain or gzipped) through :mod:`gemmi`.

Coordinates are returned in zyx order (``coords_zyx_angstrom[:, 0]`` is the PDB z column), in Å,
as everywhere in cryoframe. Elements come from the element columns; where they are missing
(old PDB files), gemmi infers them from the atom names (e.g. ``" CA "`` is carbon, ``"CA  "``
calcium, following the PDB column alignment rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from cryoframe._errors import InputError

__all__ = ["Atoms", "read_structure"]


@dataclass(frozen=True)
class Atoms:
    """Atoms of one model.

    Attributes
    ----------
    coords_zyx_angstrom : numpy.ndarray
        `(n, 3)` float64 positions in Å, zyx order.
    elements : numpy.ndarray
        `(n,)` element symbols (``"C"``, ``"Fe"``, ...).
    b_factors : numpy.ndarray
        `(n,)` isotropic B-factors in Å².
    occupancies : numpy.ndarray
        `(n,)` occupancies in [0, 1].
    chain_ids, residue_names, atom_names : numpy.ndarray
        `(n,)` strings (author chain names).
    residue_numbers : numpy.ndarray
        `(n,)` int author residue numbers.
    source : str
        File the atoms were read from.
    """

    coords_zyx_angstrom: np.ndarray
    elements: np.ndarray
    b_factors: np.ndarray
    occupancies: np.ndarray
    chain_ids: np.ndarray
    residue_numbers: np.ndarray
    residue_names: np.ndarray
    atom_names: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.coords_zyx_angstrom.shape[0])

    @property
    def atomic_numbers(self) -> np.ndarray:
        """`(n,)` int atomic numbers (0 for unknown elements)."""
        return np.array([gemmi.Element(e).atomic_number for e in self.elements], dtype=np.int64)


def read_structure(
    path: str | Path,
    chains: Sequence[str] | str | None = None,
    model: int = 0,
    *,
    hydrogens: bool = True,
    waters: bool = True,
) -> Atoms:
    """Read atoms of one model of a PDB or mmCIF file (``.gz`` allowed).

    Parameters
    ----------
    path : str or Path
        ``.pdb``, ``.ent``, ``.cif``, ``.mmcif`` (optionally ``.gz``).
    chains : str or sequence of str, optional
        Author chain names to keep (default: all).
    model : int
        Zero-based model index (NMR ensembles, trajectories).
    hydrogens : bool
        Keep hydrogen (and deuterium) atoms.
    waters : bool
        Keep water molecules.

    Returns
    -------
    Atoms

    Raises
    ------
    InputError
        Missing or unparsable file, model index out of range, unknown chain, no atoms left.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path, field="path", expected="an existing file")
    try:
        st = gemmi.read_structure(str(path))
    except Exception as exc:  # noqa: BLE001 - gemmi raises RuntimeError/ValueError variants
        raise InputError(f"cannot parse atomic model ({exc})", file=path, field="format",
                         expected="a PDB or mmCIF file") from exc
    if len(st) == 0:
        raise InputError("no models in file", file=path, field="model",
                         expected="at least one MODEL with ATOM/HETATM records")
    if not 0 <= model < len(st):
        raise InputError(f"model index {model} out of range", file=path, field="model",
                         expected=f"0 ≤ model < {len(st)}")
    if not hydrogens:
        st.remove_hydrogens()
    if not waters:
        st.remove_waters()
    mdl = st[model]
    try:
        available = list(dict.fromkeys(ch.name for ch in mdl))
    except UnicodeDecodeError as exc:
        raise InputError(f"unreadable chain name ({exc})", file=path, field="chain ID",
                         expected="ASCII chain identifiers") from None
    if isinstance(chains, str):
        chains = [chains]
    if chains is not None:
        unknown = [c for c in chains if c not in available]
        if unknown:
            raise InputError(f"unknown chain(s) {unknown}", file=path, field="chains",
                             expected=f"some of {available}")
        keep = set(chains)
    else:
        keep = set(available)

    try:
        return _atoms_of(mdl, keep, path)
    except (UnicodeDecodeError, TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"unreadable atom record ({type(exc).__name__}: {exc})", file=path,
                         field="ATOM/HETATM", expected="valid atom names, elements, residue "
                         "numbers and coordinates") from None


def _atoms_of(mdl, keep: set, path: Path) -> Atoms:
    coords, elements, bfac, occ = [], [], [], []
    chain_ids, res_nums, res_names, atom_names = [], [], [], []
    for chain in mdl:
        if chain.name not in keep:
            continue
        for res in chain:
            for atom in res:
                p = atom.pos
                coords.append((p.z, p.y, p.x))
                elements.append(atom.element.name)
                bfac.append(atom.b_iso)
                occ.append(atom.occ)
                chain_ids.append(chain.name)
                res_nums.append(res.seqid.num)
                res_names.append(res.name)
                atom_names.append(atom.name)
    if not coords:
        raise InputError("no atoms selected", file=path, field="chains",
                         expected="a selection that contains atoms")
    xyz = np.asarray(coords, dtype=np.float64)
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz).all(axis=1)).sum())
        raise InputError(f"{bad} atoms with non-finite coordinates", file=path,
                         field="x/y/z", expected="finite coordinates in Å")
    return Atoms(
        coords_zyx_angstrom=np.asarray(coords, dtype=np.float64),
        elements=np.asarray(elements),
        b_factors=np.asarray(bfac, dtype=np.float64),
        occupancies=np.asarray(occ, dtype=np.float64),
        chain_ids=np.asarray(chain_ids),
        residue_numbers=np.asarray(res_nums, dtype=np.int64),
        residue_names=np.asarray(res_names),
        atom_names=np.asarray(atom_names),
        source=str(path),
    )
