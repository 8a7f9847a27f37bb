"""File formats: MRC maps/stacks, RELION STAR, Dynamo tables, atomic models, subtomogram tables.

All unit, axis-order and Euler-convention conversions happen here, at the boundary: arrays and
coordinates leave this package in zyx order, lengths in Å, poses as rotation matrices.

Modules
-------
mrc
    :func:`read_mrc`, :func:`write_mrc` (atomic; float16 mode 12; mmap; ``.gz`` reading).
star
    :func:`read_star`, :func:`read_particles` / :func:`write_particles` (RELION 3.0 and 3.1–5,
    optics merged per particle), :func:`poses_from_particles`, :func:`read_tomograms`.
dynamo
    :func:`read_tbl`, :func:`write_tbl` (35 named columns; MATLAB complex tokens tolerated).
subtomo_table
    Canonical subtomogram table ↔ RELION / Dynamo.
structures
    :func:`read_structure` (PDB/mmCIF via gemmi) → :class:`Atoms`.
"""

from cryoframe.io.dynamo import read_tbl, write_tbl
from cryoframe.io.mrc import (
    MrcVolume,
    read_image_stack,
    read_mrc,
    read_mrc_header,
    read_volume,
    write_mrc,
)
from cryoframe.io.star import (
    ParticleTable,
    particles_with_poses,
    poses_from_particles,
    read_particles,
    read_star,
    read_tomograms,
    write_particles,
    write_star,
)
from cryoframe.io.structures import Atoms, read_structure

__all__ = [
    "Atoms",
    "MrcVolume",
    "ParticleTable",
    "particles_with_poses",
    "poses_from_particles",
    "read_image_stack",
    "read_mrc",
    "read_mrc_header",
    "read_particles",
    "read_star",
    "read_structure",
    "read_tbl",
    "read_tomograms",
    "read_volume",
    "write_mrc",
    "write_particles",
    "write_star",
    "write_tbl",
]
