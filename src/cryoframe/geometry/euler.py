"""Euler-angle conventions of RELION (ZYZ) and Dynamo (ZXZ) ↔ cryoframe pose matrices.

Both conventions are converted to the cryoframe pose ``R``: the active zyx-acting rotation
that takes the reference onto the particle (``particle(x) = reference(Rᵀ(x − c) + c)``).

RELION ``(rot, tilt, psi)``
    RELION's ``Euler_angles2matrix`` builds ``A = Rz'(psi) · Ry'(tilt) · Rz'(rot)`` from
    *passive* elementary matrices ``Rz'(a) = [[c, s, 0], [−s, c, 0], [0, 0, 1]]``,
    ``Ry'(b) = [[c, 0, −s], [0, 1, 0], [s, 0, c]]`` acting on xyz. RELION's projector samples
    the reference at ``Aᵀ p`` for an image/particle coordinate ``p``, i.e. ``A`` maps reference
    coordinates to particle coordinates: it *is* the pose in xyz. cryoframe's pose is
    ``R = P A P`` (``P`` the anti-diagonal permutation, xyz ↔ zyx).

Dynamo ``(tdrot, tilt, narot)``
    Dynamo's ``dynamo_euler2matrix`` is the active xyz matrix
    ``D = Rz(narot) · Rx(tilt) · Rz(tdrot)`` (extrinsic z, x, z; its element ``(1, 3)`` is
    ``sin(narot)·sin(tilt)``). The pose is its transpose, ``R = P Dᵀ P``; equivalently
    ``D`` equals RELION's ``Aᵀ`` for equivalent angles. This was decided by the equivalent pair
    Dynamo ``(−47.2730, 1.1777, −132.3000)`` ≡ RELION ``(137.7000, 1.1777, 42.7270)`` (same
    reconstruction; from the tests of teamtomo's ``eulerangles`` package,
    alisterburt/eulerangles ``test/test_convert_eulers.py``), which ``P Dᵀ P`` reproduces and
    ``P D P`` does not. In closed form: RELION ``rot = narot − 90°``, ``tilt = tilt``,
    ``psi = tdrot + 90°``.

Matrix → Euler returns angles in degrees with ``tilt ∈ [0, 180]`` and the other two in
``(−180, 180]``; at gimbal lock (``sin(tilt) < 1e-9``) the first angle is set to 0 and the
third carries the whole in-plane rotation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.geometry._tensor import as_float_tensor
from cryoframe.geometry.rotations import xyz_to_zyx_matrix

__all__ = [
    "relion_euler_to_matrix",
    "matrix_to_relion_euler",
    "dynamo_euler_to_matrix",
    "matrix_to_dynamo_euler",
]

_GIMBAL_SIN = 1e-9


def _active_xyz(axis: str, angle_rad: Tensor) -> Tensor:
    """Active right-handed elementary rotation acting on xyz vectors."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    if axis == "z":
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    elif axis == "y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def _angles(*angles_deg: object) -> tuple[list[Tensor], torch.dtype]:
    ts = [as_float_tensor(a) for a in angles_deg]
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    ts = torch.broadcast_tensors(*[torch.deg2rad(t.to(torch.float64)) for t in ts])
    return list(ts), dtype


def relion_euler_to_matrix(rot_deg: object, tilt_deg: object, psi_deg: object) -> Tensor:
    """Pose matrix from RELION ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi``.

    Parameters
    ----------
    rot_deg, tilt_deg, psi_deg : array-like
        `(...)` angles in degrees (broadcast).

    Returns
    -------
    Tensor
        `(..., 3, 3)` zyx-acting pose ``P A P`` (dtype of the input, float64 for Python/int).
    """
    (rot, tilt, psi), dtype = _angles(rot_deg, tilt_deg, psi_deg)
    a = _active_xyz("z", -psi) @ _active_xyz("y", -tilt) @ _active_xyz("z", -rot)
    return xyz_to_zyx_matrix(a).to(dtype)


def _check(r: object) -> Tensor:
    t = as_float_tensor(r)
    if t.dim() < 2 or tuple(t.shape[-2:]) != (3, 3):
        raise InputError(f"rotation must have shape (..., 3, 3), got {tuple(t.shape)}",
                         field="R", expected="(..., 3, 3) rotation matrices")
    return t


def _tilt_of_zxz(m: Tensor) -> tuple[Tensor, Tensor]:
    """Tilt (rad) of ``m = Rz(a) Rx(tilt) Rz(b)`` from its third row, and where it is not a
    gimbal lock (``sin(tilt)`` above :data:`_GIMBAL_SIN`).
    """
    sin_tilt = torch.hypot(m[..., 2, 0], m[..., 2, 1])
    return torch.atan2(sin_tilt, m[..., 2, 2]), sin_tilt > _GIMBAL_SIN


def _wrap_deg(a: Tensor) -> Tensor:
    a = torch.rad2deg(a)
    return torch.where(a <= -180.0, a + 360.0, a)


def matrix_to_relion_euler(r: object) -> tuple[Tensor, Tensor, Tensor]:
    """RELION ``(rot, tilt, psi)`` in degrees of pose matrices.

    Parameters
    ----------
    r : array-like
        `(..., 3, 3)` zyx-acting pose matrices.

    Returns
    -------
    rot_deg, tilt_deg, psi_deg : Tensor
        `(...)` each; ``tilt ∈ [0, 180]``, ``rot, psi ∈ (−180, 180]``.
    """
    t = _check(r)
    dtype = t.dtype
    a = xyz_to_zyx_matrix(t.to(torch.float64))  # RELION's A
    tilt, regular = _tilt_of_zxz(a)
    rot = torch.where(regular, torch.atan2(a[..., 2, 1], a[..., 2, 0]), torch.zeros_like(tilt))
    psi_reg = torch.atan2(a[..., 1, 2], -a[..., 0, 2])
    # tilt ≈ 0: A = Rz'(rot + psi); tilt ≈ 180: A(0,0) = −cos(psi − rot), A(0,1) = sin(psi − rot)
    sign = torch.where(a[..., 2, 2] > 0, 1.0, -1.0).to(a.dtype)
    psi_gimbal = torch.atan2(a[..., 0, 1], sign * a[..., 0, 0])
    psi = torch.where(regular, psi_reg, psi_gimbal)
    return _wrap_deg(rot).to(dtype), torch.rad2deg(tilt).to(dtype), _wrap_deg(psi).to(dtype)


def dynamo_euler_to_matrix(tdrot_deg: object, tilt_deg: object, narot_deg: object) -> Tensor:
    """Pose matrix from Dynamo table columns 7–9 ``(tdrot, tilt, narot)``.

    Parameters
    ----------
    tdrot_deg, tilt_deg, narot_deg : array-like
        `(...)` angles in degrees (broadcast).

    Returns
    -------
    Tensor
        `(..., 3, 3)` zyx-acting pose ``P Dᵀ P`` with ``D = Rz(narot) Rx(tilt) Rz(tdrot)``.
    """
    (tdrot, tilt, narot), dtype = _angles(tdrot_deg, tilt_deg, narot_deg)
    d = _active_xyz("z", narot) @ _active_xyz("x", tilt) @ _active_xyz("z", tdrot)
    return xyz_to_zyx_matrix(d.transpose(-1, -2)).to(dtype)


def matrix_to_dynamo_euler(r: object) -> tuple[Tensor, Tensor, Tensor]:
    """Dynamo ``(tdrot, tilt, narot)`` in degrees of `(..., 3, 3)` zyx-acting pose matrices.

    The inverse of :func:`dynamo_euler_to_matrix`: `(...)` each, ``tilt ∈ [0, 180]``,
    ``tdrot, narot ∈ (−180, 180]`` (the same ranges as :func:`matrix_to_relion_euler`).
    """
    t = _check(r)
    dtype = t.dtype
    d = xyz_to_zyx_matrix(t.to(torch.float64)).transpose(-1, -2)  # Dynamo's D (xyz)
    # D = Rz(a) Rx(t) Rz(b), a = narot, b = tdrot:
    # D[2] = (st·sb, st·cb, ct); D[:, 2] = (sa·st, −ca·st, ct)
    tilt, regular = _tilt_of_zxz(d)
    tdrot = torch.where(regular, torch.atan2(d[..., 2, 0], d[..., 2, 1]), torch.zeros_like(tilt))
    narot_reg = torch.atan2(d[..., 0, 2], -d[..., 1, 2])
    # tilt ≈ 0: D = Rz(a + b); tilt ≈ 180: D(0,0) = cos(a − b), D(1,0) = sin(a − b)
    narot_gimbal = torch.atan2(d[..., 1, 0], d[..., 0, 0])
    narot = torch.where(regular, narot_reg, narot_gimbal)
    return _wrap_deg(tdrot).to(dtype), torch.rad2deg(tilt).to(dtype), _wrap_deg(narot).to(dtype)
