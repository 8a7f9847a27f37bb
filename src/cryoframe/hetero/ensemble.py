"""Conformational ensembles (MD trajectories, multi-model files) and the C-alpha template.

An :class:`Ensemble` holds every atom of every conformation (for image simulation) and the
C-alpha trace of each (the ground truth of the reconstruction). A :class:`Template` holds the
C-alpha trace of an independent structure (never a trajectory frame) plus the per-residue
scattering amplitude and width that the coarse forward model needs.

Frames of the ensemble are expressed in the template's frame: each frame is centred on its
C-alpha centroid and rotated onto the template by an optimal (Kabsch) C-alpha superposition.
Poses of simulated images are therefore relative to the template, as a consensus refinement
would give them. Coordinates are (z, y, x) in Å throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoframe._errors import InputError
from cryoframe.hetero._physics import interaction_scale_rad_per_angstrom
from cryoframe.io.structures import read_structure

__all__ = [
    "AMINO_ACIDS",
    "Ensemble",
    "Template",
    "load_ensemble",
    "load_template",
    "kabsch_rotation",
    "electron_scattering_f0_angstrom",
]

#: Standard amino-acid residue names (plus common protonation variants in MD topologies).
AMINO_ACIDS = frozenset(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL "
    "HSD HSE HSP HID HIE HIP CYX ASH GLH LYN MSE".split()
)

#: Hydrogens of each residue inside a chain at pH 7 (free amino acid minus H2O; ARG, LYS
#: protonated, ASP, GLU deprotonated, HIS neutral), used when a template has no hydrogens.
RESIDUE_HYDROGENS = {
    "ALA": 5, "ARG": 13, "ASN": 6, "ASP": 4, "CYS": 5, "GLN": 8, "GLU": 6, "GLY": 3, "HIS": 7,
    "ILE": 11, "LEU": 11, "LYS": 13, "MET": 9, "PHE": 9, "PRO": 7, "SER": 5, "THR": 7, "TRP": 10,
    "TYR": 9, "VAL": 9,
}

_MASS_TO_ELEMENT = {1.008: "H", 12.011: "C", 14.007: "N", 15.999: "O", 30.974: "P", 32.06: "S"}


def electron_scattering_f0_angstrom(elements: np.ndarray | list[str]) -> np.ndarray:
    """Electron scattering factor at zero angle, ``f_e(0)`` in Å (International Tables C 4.3.2.2).

    Parameters
    ----------
    elements : array of str
        `(n,)` element symbols.

    Returns
    -------
    np.ndarray
        `(n,)` ``f_e(0)`` in Å (sum of the five Gaussian amplitudes tabulated by gemmi).
    """
    import gemmi

    cache: dict[str, float] = {}
    out = np.empty(len(elements), dtype=np.float64)
    for i, el in enumerate(elements):
        key = str(el).strip().capitalize() or "C"
        if key not in cache:
            cache[key] = float(sum(gemmi.Element(key).c4322.a))
        out[i] = cache[key]
    return out


def kabsch_rotation(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation ``R`` minimising ``|R @ mobile_i - target_i|`` for centred point sets.

    Parameters
    ----------
    mobile, target : np.ndarray
        `(n, 3)` centred coordinates (any fixed axis order).

    Returns
    -------
    np.ndarray
        `(3, 3)` proper rotation (det +1) acting on column vectors.
    """
    h = mobile.T @ target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    corr = np.diag([1.0, 1.0, d])
    return vt.T @ corr @ u.T


@dataclass
class Template:
    """C-alpha template of the reconstruction.

    Attributes
    ----------
    ca_zyx_angstrom : np.ndarray
        `(n_res, 3)` C-alpha coordinates, centred on their mean.
    residue_numbers : np.ndarray
        `(n_res,)` residue numbers (used to match the ensemble).
    residue_names : list of str
        `(n_res,)` three-letter names.
    amplitude_rad_angstrom2 : np.ndarray
        `(n_res,)` integrated phase of each residue, ``λ·γ·Σ f_e(0)`` over its atoms (rad·Å²);
        standard hydrogen counts are added when the file has no hydrogens.
    sigma_angstrom : np.ndarray
        `(n_res,)` Gaussian width of each residue: RMS per-axis spread of its atoms about CA.
    backbone_zyx_angstrom : np.ndarray
        `(n_res, 4, 3)` N, CA, C, O coordinates in the same frame (for DSSP).
    """

    ca_zyx_angstrom: np.ndarray
    residue_numbers: np.ndarray
    residue_names: list[str]
    amplitude_rad_angstrom2: np.ndarray
    sigma_angstrom: np.ndarray
    backbone_zyx_angstrom: np.ndarray

    @property
    def n_residues(self) -> int:
        """Number of residues (graph nodes)."""
        return int(self.ca_zyx_angstrom.shape[0])


@dataclass
class Ensemble:
    """All-atom conformations in the template frame.

    Attributes
    ----------
    atoms_zyx_angstrom : np.ndarray
        `(n_conf, n_atoms, 3)` coordinates of every atom, each frame centred on its CA mean.
    elements : np.ndarray
        `(n_atoms,)` element symbols.
    ca_zyx_angstrom : np.ndarray
        `(n_conf, n_res, 3)` C-alpha coordinates matched to the template's residues.
    residue_numbers : np.ndarray
        `(n_res,)` residue numbers shared with the template.
    source : str
        Where the frames came from.
    """

    atoms_zyx_angstrom: np.ndarray
    elements: np.ndarray
    ca_zyx_angstrom: np.ndarray
    residue_numbers: np.ndarray
    source: str

    @property
    def n_conformations(self) -> int:
        """Number of conformations (frames)."""
        return int(self.atoms_zyx_angstrom.shape[0])


def _elements_of(atoms) -> np.ndarray:
    """Element symbols of an MDAnalysis AtomGroup (from the topology, else from masses)."""
    if hasattr(atoms, "elements"):
        els = np.asarray(atoms.elements).astype(str)
        if all(e.strip() for e in els):
            return np.array([e.strip().capitalize() for e in els])
    masses = np.asarray(atoms.masses, dtype=float)
    keys = np.array(list(_MASS_TO_ELEMENT))
    idx = np.abs(masses[:, None] - keys[None, :]).argmin(axis=1)
    bad = np.abs(masses - keys[idx]) > 0.6
    if bad.any():
        raise InputError(
            f"cannot assign elements to {int(bad.sum())} atoms from their masses",
            field="elements", expected="a topology with elements or standard atomic masses",
        )
    return np.array([_MASS_TO_ELEMENT[float(k)] for k in keys[idx]])


def load_template(path: str | Path, chain: str | None = "A", voltage_kv: float = 300.0) -> Template:
    """Read the C-alpha template and its per-residue forward-model parameters.

    Parameters
    ----------
    path : str or Path
        PDB / mmCIF file (``.gz`` accepted), e.g. ``cryoframe.data.structure_path("1AKE")``.
    chain : str or None
        Chain to keep (``None``: the first protein chain).
    voltage_kv : float
        Acceleration voltage that sets the residue amplitudes (λγ·f_e(0)).

    Returns
    -------
    Template
    """
    atoms = read_structure(path, chains=None if chain is None else [chain])
    names = np.asarray(atoms.residue_names).astype(str)
    keep = np.isin(np.char.strip(names), list(AMINO_ACIDS))
    if chain is None and keep.any():
        first = np.asarray(atoms.chain_ids)[keep][0]
        keep &= np.asarray(atoms.chain_ids) == first
    if not keep.any():
        raise InputError("no protein residues found", file=path, field="chain",
                         expected="a chain with standard amino acids")
    coords = np.asarray(atoms.coords_zyx_angstrom, dtype=np.float64)[keep]
    resnum = np.asarray(atoms.residue_numbers)[keep]
    resname = np.char.strip(names[keep])
    anames = np.char.strip(np.asarray(atoms.atom_names).astype(str)[keep])
    elements = np.asarray(atoms.elements).astype(str)[keep]
    f0 = electron_scattering_f0_angstrom(elements)
    scale = interaction_scale_rad_per_angstrom(voltage_kv)
    implicit_h = not (elements == "H").any()
    f0_h = float(electron_scattering_f0_angstrom(["H"])[0])

    uniq = []
    for r in resnum:
        if not uniq or uniq[-1] != r:
            uniq.append(r)
    ca, bb, amp, sig, rn, rnames = [], [], [], [], [], []
    for r in uniq:
        sel = resnum == r
        an = list(anames[sel])
        if "CA" not in an:
            continue
        xyz = coords[sel]
        c_alpha = xyz[an.index("CA")]
        ca.append(c_alpha)
        bb.append([xyz[an.index(a)] if a in an else c_alpha for a in ("N", "CA", "C", "O")])
        n_h = RESIDUE_HYDROGENS.get(str(resname[sel][0]), 7) if implicit_h else 0
        amp.append(scale * (f0[sel].sum() + n_h * f0_h))
        heavy = elements[sel] != "H"
        spread = ((xyz[heavy] - c_alpha) ** 2).sum(axis=1).mean() / 3.0
        sig.append(np.sqrt(spread + 1.0))  # + 1 Å² per axis: width of one atom's potential
        rn.append(int(r))
        rnames.append(str(resname[sel][0]))
    ca_arr = np.asarray(ca)
    centre = ca_arr.mean(axis=0)
    return Template(
        ca_zyx_angstrom=ca_arr - centre,
        residue_numbers=np.asarray(rn),
        residue_names=rnames,
        amplitude_rad_angstrom2=np.asarray(amp),
        sigma_angstrom=np.asarray(sig),
        backbone_zyx_angstrom=np.asarray(bb) - centre,
    )


def load_ensemble(
    topology: str | Path,
    trajectory: str | Path | None,
    template: Template,
    selection: str = "protein",
    stride: int = 1,
) -> Ensemble:
    """Read every frame of an MD trajectory (or multi-model file) in the template frame.

    Parameters
    ----------
    topology : str or Path
        Topology (PSF, PDB, ...) readable by MDAnalysis.
    trajectory : str or Path or None
        Trajectory (DCD, XTC, ...); ``None`` for a multi-model topology file.
    template : Template
        Residues are matched by residue number; every template residue must be present.
    selection : str
        MDAnalysis selection of the atoms to image.
    stride : int
        Keep every ``stride``-th frame.

    Returns
    -------
    Ensemble
    """
    import warnings

    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            u = mda.Universe(str(topology)) if trajectory is None else mda.Universe(
                str(topology), str(trajectory))
        except Exception as exc:  # MDAnalysis raises many types for unreadable files
            raise InputError(f"cannot read ensemble ({exc})", file=trajectory or topology,
                             expected="a topology + trajectory readable by MDAnalysis") from exc
        atoms = u.select_atoms(selection)
        if atoms.n_atoms == 0:
            raise InputError("selection matched no atoms", field="selection",
                             expected="an MDAnalysis selection such as 'protein'")
        ca_atoms = atoms.select_atoms("name CA")
        by_resid = {int(r): i for i, r in enumerate(ca_atoms.resids)}
        missing = [int(r) for r in template.residue_numbers if int(r) not in by_resid]
        if missing:
            raise InputError(
                f"{len(missing)} template residues are missing from the ensemble "
                f"(first: {missing[:5]})", file=topology, field="resid",
                expected="the same residue numbering in template and trajectory",
            )
        ca_idx = np.array([by_resid[int(r)] for r in template.residue_numbers])
        elements = _elements_of(atoms)
        frames, cas = [], []
        for _ts in u.trajectory[::stride]:
            xyz = atoms.positions.astype(np.float64)[:, ::-1]  # xyz -> zyx
            ca = ca_atoms.positions.astype(np.float64)[ca_idx][:, ::-1]
            centre = ca.mean(axis=0)
            rot = kabsch_rotation(ca - centre, template.ca_zyx_angstrom)
            frames.append((xyz - centre) @ rot.T)
            cas.append((ca - centre) @ rot.T)
    return Ensemble(
        atoms_zyx_angstrom=np.asarray(frames, dtype=np.float32),
        elements=elements,
        ca_zyx_angstrom=np.asarray(cas, dtype=np.float32),
        residue_numbers=np.asarray(template.residue_numbers),
        source=f"{Path(str(topology)).name} + {Path(str(trajectory)).name if trajectory else '-'}",
    )
