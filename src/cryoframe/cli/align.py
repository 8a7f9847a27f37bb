"""``cryoframe align``: align subtomograms to a reference; poses as RELION angles and origins."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._errors import InputError
from cryoframe._record import write_timestamped_record
from cryoframe.cli import _options as opt
from cryoframe.io.star import particles_with_poses, write_particles
from cryoframe.subtomograms.reading import (
    contrast_signs,
    correlation_head_and_sampling,
    load_subtomograms,
    pair_encoder_and_sampling,
    read_reference,
    to_encoder_sampling,
    wedge,
)
from cryoframe.tasks.align import LearnedAligner
from cryoframe.tasks.fft_align import FFTAligner
from cryoframe.tasks.posterior_align import PosteriorAligner


def align(
    star: Path = typer.Argument(..., help="RELION STAR naming one MRC per subtomogram."),
    reference: Path = typer.Option(..., "--reference", help="Reference map (MRC), same box."),
    out: Path = typer.Option(..., "--out", help="Output STAR with the poses."),
    aligner: str = typer.Option(
        "fft", "--aligner", help="fft (exhaustive search), posterior (learned correlation head "
        "over a coarse-to-fine grid, posterior-mean pose) or learned (APT-ViT pair encoder)."),
    weights: Path = opt.weights(),
    refine: bool = typer.Option(True, "--refine/--no-refine",
                                help="Learned: refine by Fourier cross-correlation."),
    step_deg: float = typer.Option(30.0, "--step-deg", help="FFT search: SO(3) grid step."),
    local_range_deg: float = typer.Option(
        None, "--local-range-deg", help="FFT search only within this angle of the identity."),
    max_shift_px: float = typer.Option(None, "--max-shift-px", help="Default box/4."),
    tilt_min_deg: float = opt.tilt_min(),
    tilt_max_deg: float = opt.tilt_max(),
    no_wedge: bool = typer.Option(False, "--no-wedge", help="Data has no missing wedge."),
    pixel_size_angstrom: float = opt.pixel_size(help="Data voxel size (Å); default: STAR/MRC."),
    reference_pixel_size: float = typer.Option(
        None, "--reference-pixel-size", help="Reference voxel size (Å); default: header."),
    batch_size: int = opt.batch_size(64),
    class_number: int = opt.class_number(),
    class_column: str = opt.class_column(),
    invert_reference: bool = typer.Option(False, "--invert-reference",
                                          help="Negate the reference (no detection)."),
    invert_data: bool = typer.Option(False, "--invert-data",
                                     help="Negate the subtomograms (no detection)."),
    auto_contrast: bool = typer.Option(
        True, "--auto-contrast/--no-auto-contrast",
        help="Invert the reference when its contrast is opposite to the data's."),
) -> None:
    """Find each subtomogram's pose relative to the reference.

    The pose R, t means subtomogram ≈ reference rotated by R about the box centre and shifted
    by t; it is written as rlnAngleRot/Tilt/Psi (RELION ZYZ) and rlnOriginX/Y/ZAngst = −t,
    plus rlnMaxValueProbDistribution = normalised cross-correlation at the optimum.
    """
    import dataclasses
    import time

    import numpy as np
    import torch


    console = Console()
    log = console.print
    table, vols, px = load_subtomograms(star, pixel_size_angstrom, class_number,
                                        class_column)
    n = vols.shape[-1]
    ref = read_reference(reference, n, px, log, reference_pixel_size)
    d_sign, r_sign, contrast_msg, rel = contrast_signs(vols, ref, invert_reference,
                                                       invert_data, auto_contrast, log)
    vols, ref = vols * d_sign, ref * r_sign
    px_align = px
    if aligner == "learned":

        enc, enc_px = pair_encoder_and_sampling(weights)
        vols, plan = to_encoder_sampling(vols, px, enc.volume_size, enc_px, file=star,
                                         log=log)
        ref, _ = to_encoder_sampling(ref, px, enc.volume_size, enc_px, file=reference)
        px_align = plan.pixel_out_angstrom
    elif aligner == "posterior":
        head, head_px = correlation_head_and_sampling(weights)
        vols, plan = to_encoder_sampling(vols, px, head.box_px, head_px, file=star, log=log)
        ref, _ = to_encoder_sampling(ref, px, head.box_px, head_px, file=reference)
        px_align = plan.pixel_out_angstrom
    n = vols.shape[-1]
    mask = wedge(n, tilt_min_deg, tilt_max_deg, no_wedge)
    if aligner == "fft":
        al = FFTAligner(step_deg=step_deg, refine_steps=4, max_shift_px=max_shift_px,
                        local_range_deg=local_range_deg)
    elif aligner == "learned":

        al = LearnedAligner(enc, refine=refine, max_shift_px=max_shift_px)
    elif aligner == "posterior":
        al = PosteriorAligner(head, range_deg=local_range_deg or 180.0,
                              max_shift_px=None if max_shift_px is None
                              else max_shift_px * px / px_align)
    else:
        raise InputError(f"unknown aligner '{aligner}'", field="--aligner",
                         expected="fft, posterior or learned")
    t0 = time.perf_counter()
    rots, shifts, scores = [], [], []
    for s0 in range(0, len(vols), batch_size):
        res = al.align_to_reference(vols[s0:s0 + batch_size], ref, particle_mask=mask)
        rots.append(res.rotations)
        shifts.append(res.shifts_zyx_px)
        scores.append(res.scores)
    wall = time.perf_counter() - t0
    rot, sh = torch.cat(rots), torch.cat(shifts)
    df = particles_with_poses(table, rot.double(), sh.double() * px_align)
    sc = torch.cat(scores).numpy()
    if np.all(np.isfinite(sc)):
        df["rlnMaxValueProbDistribution"] = sc
    write_particles(out, dataclasses.replace(table, particles=df))
    write_timestamped_record(out.parent, "align", {"star": star, "reference": reference,
                                     "aligner": aligner, "step_deg": step_deg,
                                     "pixel_size_angstrom": px, "seconds": wall,
                                     "class": class_number, "contrast": contrast_msg,
                                     "contrast_correlation": rel.correlation,
                                     "data_sign": d_sign, "reference_sign": r_sign})
    console.print(f"aligned {len(vols)} subtomograms in {wall:.1f} s "
                  f"({len(vols) / wall:.2f} /s); wrote {out}")


def register(app: typer.Typer) -> None:
    """Add the ``align`` command."""
    app.command("align", epilog=opt.example(
        "cryoframe align subtomos.star --reference ref.mrc --out aligned.star --step-deg 15"))(align)
