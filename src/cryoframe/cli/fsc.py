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
from cryoframe._errors import InputError
from cryoframe.fourier.contrast import map_contrast_relation, resolve_contrast
from cryoframe.fourier.fsc import cfar, fsc, fsc_crossing
from cryoframe.io.mrc import read_mrc


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


def run_fsc(
    half1: Path, half2: Path, threshold: float = 0.143, mask: Path | None = None,
    pixel_size_angstrom: float | None = None, with_cfar: bool = False,
    invert_reference: bool = False, auto_contrast: bool = True,
) -> dict:
    """Compute the FSC summary of two half maps (the library call behind the command).

    Parameters
    ----------
    half1, half2 : Path
        MRC half maps (cubic, same shape and voxel size).
    threshold : float
        FSC threshold.
    mask : Path, optional
        MRC mask applied to both maps.
    pixel_size_angstrom : float, optional
        Override the header voxel size.
    with_cfar : bool
        Also compute cFAR (conical FSC area ratio).
    invert_reference : bool
        Negate the second map (e.g. a positive-density reference against a map of the
        physical contrast) without detection.
    auto_contrast : bool
        Negate the second map when the low-frequency FSC is negative (opposite contrast).

    Returns
    -------
    dict
        ``resolution_angstrom``, ``nyquist_limited``, ``pixel_size_angstrom``, ``threshold``,
        ``freq_per_angstrom``, ``fsc`` (lists) and ``cfar`` when requested.
    """
    import numpy as np


    if not 0 < threshold < 1:
        raise InputError(f"invalid threshold {threshold}", field="--threshold",
                         expected="0 < threshold < 1 (0.143 for half maps)")
    kw = {} if pixel_size_angstrom is None else {"voxel_size_angstrom": pixel_size_angstrom}
    m1, m2 = read_mrc(half1, **kw), read_mrc(half2, **kw)
    if m1.data.shape != m2.data.shape:
        raise InputError(f"shape {m2.data.shape} differs from {half1} {m1.data.shape}",
                         file=half2, field="data", expected=f"shape {m1.data.shape}")
    if m1.data.ndim != 3 or len(set(m1.data.shape)) != 1:
        raise InputError(f"not a cubic volume: {m1.data.shape}", file=half1, field="data",
                         expected="(n, n, n) half map")
    pix = m1.voxel_size_angstrom
    if abs(m2.voxel_size_angstrom - pix) > 1e-3 * pix:
        raise InputError(f"voxel size {m2.voxel_size_angstrom} Å differs from {pix} Å",
                         file=half2, field="voxel size", expected=f"{pix} Å")
    mask_data = None
    if mask is not None:
        mask_data = read_mrc(mask, **kw).data
        if mask_data.shape != m1.data.shape:
            raise InputError(f"mask shape {mask_data.shape} differs from maps {m1.data.shape}",
                             file=mask, field="data", expected=f"shape {m1.data.shape}")

    rel = map_contrast_relation(m1.data, m2.data)
    _, sign, contrast_msg = resolve_contrast(rel, invert_reference=invert_reference,
                                             auto=auto_contrast, reference_name=str(half2))
    data2 = m2.data if sign == 1 else -np.asarray(m2.data, dtype=np.float32)
    freq, curve = fsc(m1.data, data2, mask_data)
    f_cross, crossed = fsc_crossing(freq, curve, threshold)
    out = {
        "half1": str(half1),
        "half2": str(half2),
        "threshold": threshold,
        "pixel_size_angstrom": pix,
        # a curve below the threshold from the first shell on has no resolution (inf)
        "resolution_angstrom": pix / f_cross if f_cross > 0 else float("inf"),
        "nyquist_limited": not crossed,
        "freq_per_angstrom": (freq / pix).tolist(),
        "fsc": curve.tolist(),
        "contrast": contrast_msg,
        "contrast_correlation": rel.correlation,
        "sign_of_half2": sign,
    }
    if with_cfar:
        res = cfar(m1.data, data2, threshold=threshold, mask=mask_data)
        out["cfar"] = res.cfar
    return out


def fsc_command(
    half1: Path = typer.Argument(..., help="First half map (MRC)."),
    half2: Path = typer.Argument(..., help="Second half map (MRC)."),
    threshold: float = typer.Option(0.143, "--threshold", help="FSC threshold."),
    mask: Path = typer.Option(None, "--mask", help="Mask (MRC) applied to both maps."),
    angpix: float = typer.Option(None, "--angpix", help="Override the voxel size (Å)."),
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

    result = run_fsc(half1, half2, threshold, mask, angpix, cfar_flag, invert_reference,
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
    if "cfar" in result:
        line += f"; cFAR = {result['cfar']:.3f}"
    line += f" (second map sign {result['sign_of_half2']:+d})"
    typer.echo(result["contrast"])
    typer.echo(line)
    if out is not None:
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add the ``fsc`` command."""
    app.command("fsc")(fsc_command)
