"""``cryoframe fsc HALF1 HALF2``: FSC curve, resolution at a threshold, optional cFAR.

Prints the resolution in Å (or JSON with ``--json``) and writes the curve as a PNG with
``--out``. A curve that never drops below the threshold is reported as Nyquist-limited
("≤ 2 × pixel size"), never as a measured resolution.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cryoframe._atomic import atomic_savefig
from cryoframe.cli import _options as opt
from cryoframe.recon.halfmaps import half_map_fsc


def _plot(path: Path, freq_per_angstrom, curve, threshold: float, res: float,
          crossed: bool, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(freq_per_angstrom, curve, lw=1.5, color="tab:blue", label="FSC")
    ax.axhline(threshold, color="tab:red", lw=1, ls="--", label=f"threshold {threshold:g}")
    if crossed:
        ax.axvline(1 / res, color="grey", lw=1, ls=":", label=f"{res:.2f} Å")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title(title if crossed else f"{title} (Nyquist-limited: ≤ {res:.2f} Å)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, format="png")
    plt.close(fig)


def fsc_command(
    half1: Path = typer.Argument(..., help="First half map (MRC)."),
    half2: Path = typer.Argument(..., help="Second half map (MRC)."),
    threshold: float = typer.Option(0.143, "--threshold", help="FSC threshold."),
    mask: Path = typer.Option(
        None, "--mask", help="Mask (MRC, values in [0, 1]) applied to both maps; the FSC is "
        "corrected for it by phase randomisation."),
    pixel_size_angstrom: float = opt.pixel_size(help="Override the voxel size of the maps (Å)."),
    angpix: float = opt.pixel_size_alias("--angpix"),
    cfar_flag: bool = typer.Option(False, "--cfar", help="Also report cFAR."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    out: Path = typer.Option(None, "--out", help="Write the FSC curve as a PNG."),
    invert_reference: bool = typer.Option(
        False, "--invert-reference", help="Negate the second map (no detection)."),
    auto_contrast: bool = typer.Option(
        True, "--auto-contrast/--no-auto-contrast",
        help="Negate the second map when the maps have opposite contrast."),
) -> None:
    """FSC between two half maps and the resolution at a threshold, in Å."""
    import numpy as np

    result = half_map_fsc(half1, half2, threshold, mask,
                          opt.merge(pixel_size_angstrom, angpix), cfar_flag, invert_reference,
                          auto_contrast)
    if out is not None:
        _plot(out, result["freq_per_angstrom"], result["fsc"], threshold,
              result["resolution_angstrom"], not result["nyquist_limited"],
              f"{half1.name} vs {half2.name}")
        result["plot"] = str(out)
    if as_json:
        typer.echo(json.dumps(result))
        return
    res = result["resolution_angstrom"]
    if not np.isfinite(res):
        line = f"FSC is below {threshold:g} from the lowest frequency on: no resolution"
    elif result["nyquist_limited"]:
        line = (f"FSC stays above {threshold:g} up to Nyquist: resolution ≤ {res:.2f} Å "
                f"(Nyquist-limited, pixel {result['pixel_size_angstrom']:.3f} Å)")
    else:
        line = f"resolution at FSC = {threshold:g}: {res:.2f} Å"
    if "fsc_masked_uncorrected" in result:
        line += "; masked FSC corrected for the mask by phase randomisation"
    if "cfar" in result:
        line += f"; cFAR = {result['cfar']:.3f}"
    line += f" (second map sign {result['sign_of_half2']:+d})"
    typer.echo(result["contrast"])
    typer.echo(line)
    if out is not None:
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add the ``fsc`` command."""
    app.command("fsc", epilog=opt.example(
        "cryoframe fsc half1.mrc half2.mrc --pixel-size 1.06 --out fsc.png"))(fsc_command)
