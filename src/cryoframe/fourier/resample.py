"""Bring cubic volumes to a required voxel size and box (Fourier crop/pad + centred crop/pad).

An encoder trained on 32³ boxes at 10 Å/voxel must see the data at that sampling: a 32³ volume at
5 Å/voxel is a different object to it. :func:`resample_volumes` changes the sampling by Fourier
cropping (coarser) or zero-padding the spectrum (finer), which is exact band-limited resampling
when the new box ``m`` satisfies ``m = n_c · (pixel_in / pixel_out)`` for the real-space extent
``n_c`` kept. Because ``m`` must be an integer, the input is first cropped (centred) to the
largest ``n_c ≤ n`` for which the sampling error ``|n_c · pixel_in / m − pixel_out| / pixel_out``
is within ``tolerance`` (default 1 %); if no such ``n_c`` exists (or the result would cover less
than a quarter of the required box) the volume is refused with an :class:`InputError` rather than
resampled approximately. The result is then cropped or padded (with each volume's mean) about
the box centre to ``box_out``.

Centre convention: the particle centre is voxel ``n // 2`` before and ``box_out // 2`` after (the
spectrum is resized about a grid whose origin is moved to that voxel, so no half-voxel drift
between odd and even boxes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.fourier.filters import fourier_crop, fourier_pad

__all__ = ["ResamplePlan", "plan_resample", "resample_volumes", "center_crop_or_pad"]


@dataclass(frozen=True)
class ResamplePlan:
    """How a box of ``box_in`` voxels at ``pixel_in`` Å becomes ``box_out`` at ``pixel_out``."""

    box_in: int
    pixel_in_angstrom: float
    crop_in: int              #: real-space extent kept from the input (voxels, ≤ box_in)
    resized: int              #: box after the Fourier crop/pad (voxels)
    box_out: int
    pixel_out_angstrom: float  #: achieved voxel size: crop_in · pixel_in / resized
    target_pixel_angstrom: float

    @property
    def identity(self) -> bool:
        """True when nothing needs to change."""
        return self.crop_in == self.resized == self.box_in == self.box_out

    @property
    def sampling_error(self) -> float:
        """Relative difference between the achieved and the target voxel size."""
        target = self.target_pixel_angstrom
        return abs(self.pixel_out_angstrom - target) / target

    def describe(self) -> str:
        """One line saying what is done to the data."""
        if self.identity:
            return (f"{self.box_in}³ at {self.pixel_in_angstrom:g} Å/voxel used as is")
        steps = []
        if self.crop_in != self.box_in:
            steps.append(f"cropped to {self.crop_in}³")
        if self.resized != self.crop_in:
            kind = "Fourier-cropped" if self.resized < self.crop_in else "Fourier-padded"
            steps.append(f"{kind} to {self.resized}³ ({self.pixel_out_angstrom:.4g} Å/voxel)")
        if self.box_out != self.resized:
            kind = "padded" if self.box_out > self.resized else "cropped"
            steps.append(f"{kind} to {self.box_out}³")
        return (f"{self.box_in}³ at {self.pixel_in_angstrom:g} Å/voxel resampled to "
                f"{self.box_out}³ at {self.target_pixel_angstrom:g} Å/voxel: "
                + ", ".join(steps))


def plan_resample(box_in: int, pixel_in_angstrom: float, pixel_out_angstrom: float,
                  box_out: int, tolerance: float = 0.01, file=None) -> ResamplePlan:
    """Choose the crop and Fourier size that reach ``pixel_out`` within ``tolerance``.

    Raises
    ------
    InputError
        Non-positive sizes, or no exact-enough resampling exists.
    """
    if not (pixel_in_angstrom > 0 and pixel_out_angstrom > 0):
        raise InputError(f"voxel sizes {pixel_in_angstrom} → {pixel_out_angstrom} Å", file=file,
                         field="voxel size", expected="positive voxel sizes in Å")
    if box_in < 1 or box_out < 1:
        raise InputError(f"box sizes {box_in} → {box_out}", file=file, field="box",
                         expected="positive box sizes")
    ratio = pixel_in_angstrom / pixel_out_angstrom
    best = None
    for n_c in range(box_in, max(0, box_in - max(8, box_in // 4)), -1):
        m = max(1, round(n_c * ratio))
        achieved = n_c * pixel_in_angstrom / m
        err = abs(achieved - pixel_out_angstrom) / pixel_out_angstrom
        if err <= tolerance:
            best = (n_c, m, achieved)
            break
    if best is None:
        raise InputError(
            f"a {box_in}³ box at {pixel_in_angstrom:g} Å/voxel cannot be resampled to "
            f"{pixel_out_angstrom:g} Å/voxel within {100 * tolerance:g} %", file=file,
            field="voxel size", expected=f"{pixel_out_angstrom:g} Å/voxel data, or a box whose "
            "extent is a whole number of target voxels")
    n_c, m, achieved = best
    if m < max(2, box_out // 4):
        raise InputError(
            f"a {box_in}³ box at {pixel_in_angstrom:g} Å/voxel spans only {m} voxels at "
            f"{pixel_out_angstrom:g} Å/voxel", file=file, field="voxel size",
            expected=f"at least {max(2, box_out // 4)} of the {box_out} voxels the model needs "
            "(a larger box or a coarser voxel size)")
    return ResamplePlan(box_in, float(pixel_in_angstrom), n_c, m, box_out, float(achieved),
                        float(pixel_out_angstrom))


def center_crop_or_pad(x: Tensor, size: int, fill: Tensor | None = None) -> Tensor:
    """`(..., n, n, n)` → `(..., size, size, size)` about voxel ``n // 2`` → ``size // 2``.

    Padding uses ``fill`` (`(...)` per-volume values; default each volume's mean).
    """
    n = x.shape[-1]
    if n == size:
        return x
    if size < n:
        s = n // 2 - size // 2
        return x[..., s:s + size, s:s + size, s:s + size]
    if fill is None:
        fill = x.mean(dim=(-3, -2, -1))
    out = fill[..., None, None, None].expand(*x.shape[:-3], size, size, size).clone()
    s = size // 2 - n // 2
    out[..., s:s + n, s:s + n, s:s + n] = x
    return out


def _fourier_resize_centred(x: Tensor, m: int) -> Tensor:
    """Band-limited resize `(..., n, n, n)` → `(..., m, m, m)` keeping voxel n//2 → m//2."""
    n = x.shape[-1]
    if m == n:
        return x
    dims = (-3, -2, -1)
    x0 = torch.roll(x, shifts=(-(n // 2),) * 3, dims=dims)  # centre at the origin
    y0 = fourier_crop(x0, m, ndim=3) if m < n else fourier_pad(x0, m, ndim=3)
    return torch.roll(y0, shifts=(m // 2,) * 3, dims=dims)


def resample_volumes(volumes, plan: ResamplePlan) -> Tensor:
    """Apply a :class:`ResamplePlan` to `(..., n, n, n)` volumes; returns float32 volumes."""
    x = torch.as_tensor(volumes, dtype=torch.float32)
    if x.shape[-1] != plan.box_in:
        raise InputError(f"volume box {x.shape[-1]}", field="data",
                         expected=f"{plan.box_in}³ as planned")
    if plan.identity:
        return x
    fill = x.mean(dim=(-3, -2, -1))
    x = center_crop_or_pad(x, plan.crop_in)
    x = _fourier_resize_centred(x, plan.resized)
    return center_crop_or_pad(x, plan.box_out, fill=fill).to(torch.float32)
