"""``cryoframe average``: reference-free subtomogram averaging with gold-standard half maps."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cryoframe._atomic import atomic_savefig
from cryoframe._errors import InputError
from cryoframe._record import write_timestamped_record
from cryoframe.cli import _options as opt
from cryoframe.fourier.resample import plan_resample
from cryoframe.io.mrc import write_mrc
from cryoframe.io.star import ParticleTable, particles_with_poses, write_particles
from cryoframe.subtomograms.reading import (
    contrast_signs,
    correlation_head_and_sampling,
    encoder_from,
    load_subtomograms,
    open_subtomograms,
    pair_encoder_and_sampling,
    read_reference,
    to_encoder_sampling,
    wedge,
)
from cryoframe.tasks.align import LearnedAligner
from cryoframe.tasks.average import VolumeSource, average_subtomograms
from cryoframe.tasks.fft_align import FFTAligner
from cryoframe.tasks.posterior_align import AVERAGING_REFINE_START_DEG, PosteriorAligner
from cryoframe.train.subtomo_data import StoreSource


def _fsc_png(path: Path, res, px: float, gt_sign: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    f = res.fsc_freq.numpy() / px
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    ax.plot(f, res.fsc_half.numpy(), label="half maps (masked)")
    if res.fsc_gt is not None:
        ax.plot(f, res.fsc_gt.numpy(),
                label="map vs ground truth" + (" × −1" if gt_sign < 0 else " (sign +1)"))
        ax.axhline(0.5, color="k", lw=0.6, ls="--")
    ax.axhline(0.143, color="k", lw=0.6, ls=":")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.02)
    ax.set_title(f"FSC-0.143: {res.resolution_halfmap_angstrom:.1f} Å")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, format="png")
    plt.close(fig)


class _SignedStore:
    """A store source whose volumes are negated (``--invert-data``)."""

    def __init__(self, src, sign: float) -> None:
        self.src, self.sign = src, sign

    def __len__(self) -> int:
        return len(self.src)

    def get(self, indices):
        b = dict(self.src.get(indices))
        b["clean"] = b["clean"] * self.sign
        return b


def _store_input(path: Path, pixel_size, class_number, invert_data: bool):
    """A CryoEngine store as a lazily read source plus a particle table for the output STAR."""
    import numpy as np
    import pandas as pd


    if class_number is not None:
        raise InputError("--class needs a STAR input", field="--class",
                         expected="a STAR file (cryoframe classify output)")
    src = StoreSource(path)
    px = pixel_size or src.store.attrs.get("voxel_size_angstrom")
    if not px:
        raise InputError("store has no voxel size", file=path, field="voxel_size_angstrom",
                         expected="a store written by cryoframe simulate, or --pixel-size")
    df = pd.DataFrame({"rlnImageName": [f"{i}@{path.name}" for i in src.rows],
                       "cryoframeStoreRow": src.rows.astype(np.int64)})
    vols = VolumeSource(_SignedStore(src, -1.0) if invert_data else src)
    return ParticleTable(particles=df), vols, float(px)


def _mean_volume(vols, chunk: int = 256):
    """Mean of `(N, n, n, n)` particles or of a :class:`VolumeSource`, read in chunks."""
    import numpy as np
    import torch

    if not hasattr(vols, "chunks"):
        return vols.mean(0)
    acc = torch.zeros(vols.box, vols.box, vols.box, dtype=torch.float64)
    for _, p in vols.chunks(np.arange(len(vols)), chunk):
        acc += p.double().sum(0)
    return (acc / len(vols)).float()


def average(
    star: Path = typer.Argument(
        ..., help="RELION STAR naming one MRC per subtomogram, or a CryoEngine store "
        "folder (both streamed in chunks: memory does not grow with the number of "
        "subtomograms)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    aligner: str = typer.Option(
        "fft", "--aligner", help="fft (exhaustive search), posterior (learned correlation head "
        "over a coarse-to-fine SO(3) grid, then local Fourier refinement) or learned (pair "
        "network)."),
    weights: Path = opt.weights(),
    step_deg: float = typer.Option(30.0, "--step-deg", help="FFT search: SO(3) grid step."),
    max_iterations: int = typer.Option(10, "--max-iterations", help="Alignment-averaging iterations at most."),
    max_shift_px: float = typer.Option(
        None, "--max-shift-px", help="Largest shift, in the input's voxels (default box/4)."),
    init: str = typer.Option("average", "--init", help="Initial reference: average|particle."),
    tilt_min_deg: float = opt.tilt_min(),
    tilt_max_deg: float = opt.tilt_max(),
    no_wedge: bool = typer.Option(False, "--no-wedge", help="Data has no missing wedge."),
    ground_truth: Path = typer.Option(None, "--ground-truth", help="Known map (FSC 0.5)."),
    pixel_size_angstrom: float = opt.pixel_size(),
    seed: int = opt.seed(help="Seed of the half-set split."),
    class_number: int = opt.class_number(),
    class_column: str = opt.class_column(),
    invert_reference: bool = typer.Option(
        False, "--invert-reference", help="Negate the --ground-truth map (no detection)."),
    invert_data: bool = typer.Option(
        False, "--invert-data", help="Negate the subtomograms (the map follows)."),
    auto_contrast: bool = typer.Option(
        True, "--auto-contrast/--no-auto-contrast",
        help="Invert --ground-truth when its contrast is opposite to the data's."),
    resume: bool = typer.Option(True, "--resume/--restart",
                                help="Continue from OUT/average_checkpoint.pt if present."),
) -> None:
    """Align every subtomogram to its half set's evolving reference and average.

    Writes half1.mrc, half2.mrc (registered onto half 1), map.mrc, fsc.png, particles.star
    (poses as RELION angles/origins, rlnRandomSubset = half), average_checkpoint.pt (a
    killed run started again continues from it) and average_run_<time>.json.
    """
    import dataclasses

    import numpy as np

    from cryoframe._errors import InputError

    console = Console()
    log = console.print
    if star.is_dir():
        table, vols, px = _store_input(star, pixel_size_angstrom, class_number, invert_data)
    elif aligner in ("learned", "posterior"):  # resampled to the model's sampling in memory
        table, vols, px = load_subtomograms(star, pixel_size_angstrom, class_number,
                                            class_column)
        if invert_data:
            vols = -vols
    else:  # streamed from the MRC files in chunks
        from cryoframe.tasks.average import VolumeSource

        table, lazy, px = open_subtomograms(star, pixel_size_angstrom, class_number,
                                            class_column)
        vols = VolumeSource(_SignedStore(lazy, -1.0) if invert_data else lazy)
    if invert_data:
        log("contrast: data inverted as requested (--invert-data); the map follows")
    n = vols.box if hasattr(vols, "box") else vols.shape[-1]
    if aligner == "fft":
        al = FFTAligner(step_deg=step_deg, refine_steps=4, max_shift_px=max_shift_px)
    elif aligner in ("learned", "posterior"):
        if aligner == "learned":
            encoder_from(weights)  # the clear error when no weights are installed
            model, model_px = pair_encoder_and_sampling(weights)
            box = model.volume_size
        else:
            model, model_px = correlation_head_and_sampling(weights)
            box = model.box_px
        px_in = px
        if hasattr(vols, "box"):  # a streamed store must already be at the model's sampling
            if not plan_resample(n, px, model_px, box, file=star).identity:
                raise InputError(
                    f"store at {px:g} Å/voxel, {n}³", file=star, field="voxel size",
                    expected=f"{model_px:g} Å/voxel, {box}³ for --aligner {aligner} "
                    "(or --aligner fft)")
        else:
            vols, plan = to_encoder_sampling(vols, px, box, model_px, file=star, log=log)
            px, n = plan.pixel_out_angstrom, vols.shape[-1]
            if not plan.identity:
                log(f"sampling: the map is made at {px:g} Å/voxel, {n}³ (the model's)")
        shift_px = None if max_shift_px is None else max_shift_px * px_in / px
        if aligner == "learned":
            al = LearnedAligner(model, refine=True, max_shift_px=shift_px)
        else:
            al = PosteriorAligner(model, range_deg=180.0, max_shift_px=shift_px,
                                  refine_start_deg=AVERAGING_REFINE_START_DEG)
    else:
        raise InputError(f"unknown aligner '{aligner}'", field="--aligner",
                         expected="fft, posterior or learned")
    gt, gt_sign, contrast_msg = None, 1, None
    if ground_truth is not None:
        gt = read_reference(ground_truth, n, px, log)
        _, gt_sign, contrast_msg, _ = contrast_signs(
            _mean_volume(vols), gt, invert_reference, False, auto_contrast, log,
            reference_name="ground truth")
        gt = gt * gt_sign
    sign_note = f", truth sign {gt_sign:+d}"
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / "average_checkpoint.pt").exists():
        log(f"continuing from {out / 'average_checkpoint.pt'} if it was made from these "
            "particles and settings (--restart starts over)")
    res = average_subtomograms(
        vols, al, particle_mask=wedge(n, tilt_min_deg, tilt_max_deg, no_wedge),
        pixel_size_angstrom=px, ground_truth=gt, max_iterations=max_iterations, init=init,
        seed=seed, checkpoint=out / "average_checkpoint.pt", resume=resume,
        progress=lambda e: console.print(
            f"iteration {e['iteration']}: half-map FSC-0.143 {e['res_halfmap_angstrom']:.1f} Å"
            + (f", vs truth (0.5{sign_note}) {e['res_vs_gt_angstrom']:.1f} Å"
               if "res_vs_gt_angstrom" in e else "")
            + f", mean pose change {e['mean_pose_change_deg']:.1f}°, {e['seconds']:.0f} s"))
    out.mkdir(parents=True, exist_ok=True)
    for name, vol in (("half1", res.half1), ("half2", res.half2), ("map", res.map)):
        write_mrc(out / f"{name}.mrc", vol.numpy().astype(np.float32), px)
    _fsc_png(out / "fsc.png", res, px, gt_sign)
    df = particles_with_poses(table, res.rotations.double(),
                              res.shifts_zyx_px.double() * px)
    df["rlnRandomSubset"] = res.half_index + 1
    write_particles(out / "particles.star", dataclasses.replace(table, particles=df))
    write_timestamped_record(out, "average", {"star": star, "aligner": aligner, "step_deg": step_deg,
                                "max_iterations": max_iterations, "init": init, "seed": seed,
                                "pixel_size_angstrom": px, "history": res.history,
                                "res_random_pose_control_angstrom":
                                    res.resolution_random_pose_angstrom,
                                "class": class_number, "contrast": contrast_msg,
                                "ground_truth_sign": gt_sign,
                                "data_sign": -1 if invert_data else 1,
                                "res_vs_gt_angstrom": res.resolution_vs_gt_angstrom})
    if res.resolution_vs_gt_angstrom is not None:
        console.print(f"FSC-0.5 against the ground truth (truth sign {gt_sign:+d}): "
                      f"{res.resolution_vs_gt_angstrom:.1f} Å")
    console.print(f"{len(res.rotations)} subtomograms, {len(res.history)} iterations, "
                  f"{res.wall_s:.0f} s: FSC-0.143 {res.resolution_halfmap_angstrom:.1f} Å "
                  f"(random-pose control {res.resolution_random_pose_angstrom:.1f} Å); "
                  f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add the ``average`` command."""
    app.command("average", epilog=opt.example(
        "cryoframe average subtomos.star --out average/ --pixel-size 10"))(average)
