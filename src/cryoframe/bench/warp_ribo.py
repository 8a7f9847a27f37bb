"""warp-ribo: real WarpTools tilt-series particles against RELION's reconstruction of them.

Data (real, in the repository at ``tests/data/particles/warptools/``; provenance in
``tests/data/README.md``): 40 *M. pneumoniae* 70S ribosomes from 4 tilt series, exported by
WarpTools as RELION-5 2D tilt stacks (37 tilts, 32² px at 12 Å, CTF-premultiplied, float16)
with their particles / tomograms STARs, and the RELION reconstruction of the same particles
(``reconstruct_box32_12A.mrc``).

Measured: ``cryoframe reconstruct``'s path (:func:`cryoframe.recon.tomo.read_tilt_series_particles`
+ :func:`cryoframe.recon.reconstruct.reconstruct_particles`, pad 1 and pad 2) from the STAR
poses; FSC between its full map and RELION's, unmasked and inside a soft sphere of radius 12 px
(144 Å; 4 px edge) after subtracting each map's background level.
``fsc_min_to_48A`` = the minimum of the masked curve over shells 1 … 8 (8 = 32 · 12 / 48 Å).
Also reported: the same without the empirical reference mirror of
:mod:`cryoframe.recon.tomo` (to show what it changes) and the half-map FSC. Seconds on one core.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import cryoframe
from cryoframe._atomic import atomic_savefig
from cryoframe._errors import InputError
from cryoframe.bench.results import SuiteResult, progress
from cryoframe.fourier.fsc import fsc
from cryoframe.recon.halves import soft_sphere
from cryoframe.recon.reconstruct import reconstruct_particles
from cryoframe.recon.tomo import read_tilt_series_particles

STEM = "warptools_test_4-tomos_10-ptcls_box-32_angpix-12"


def data_dir() -> Path:
    """The WarpTools fixture folder of the source checkout."""
    d = Path(cryoframe.__file__).resolve().parents[2] / "tests" / "data" / "particles" / "warptools"
    if not (d / f"{STEM}.star").exists():
        raise InputError("WarpTools test data not found", file=d, field="warp-ribo data",
                         expected="a source checkout with tests/data/particles/warptools")
    return d


def _fsc_pair(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, ...]:

    out = mask < 1e-3
    a0, b0 = a - a[out].mean(), b - b[out].mean()
    return fsc(a, b)[1].numpy(), fsc(a0, b0, mask)[1].numpy()


def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Reconstruct the 40 ribosomes and compare with RELION's map (same in quick and full)."""
    import mrcfile


    torch.set_num_threads(1)
    d = data_dir()
    ref = torch.tensor(mrcfile.open(d / "reconstruct_box32_12A.mrc", permissive=True).data.copy())
    mask = soft_sphere(32, 12.0, 4.0)
    curves, times = {}, {}
    runs = {}
    for pad in (1, 2):
        t0 = time.perf_counter()
        ps = read_tilt_series_particles(d / f"{STEM}.star", seed=seed)
        run_ = reconstruct_particles(ps, pad, mask_radius_px=12.0)
        times[f"pad{pad}_s"] = time.perf_counter() - t0
        runs[pad] = run_
        cu, cm = _fsc_pair(run_.result.full, ref, mask)
        curves[f"pad{pad}_unmasked"] = cu.tolist()
        curves[f"pad{pad}_masked"] = cm.tolist()
        # without the reference mirror: un-mirror the map (z flip about the centre)
        unm = torch.roll(run_.result.full.flip(0), 1, 0)
        curves[f"pad{pad}_masked_without_mirror"] = _fsc_pair(unm, ref, mask)[1].tolist()
        progress(f"warp-ribo pad {pad}: {len(ps)} tilt images, masked FSC vs RELION "
                 f"{np.round(cm[1:9], 2).tolist()}")
    best = runs[1]
    cm1 = np.asarray(curves["pad1_masked"])
    metrics = {
        "fsc_min_to_48A": float(cm1[1:9].min()),
        "fsc_min_to_48A_unmasked": float(np.asarray(curves["pad1_unmasked"])[1:9].min()),
        "fsc_min_to_48A_pad2": float(np.asarray(curves["pad2_masked"])[1:9].min()),
        "half_map_resolution_angstrom": best.result.resolution_angstrom,
        "n_tilt_images": float(best.n_particles),
    }
    details = {"fsc_vs_relion": curves, "seconds": times,
               "freq_per_angstrom": (best.result.freq_cycles_per_px / 12.0).tolist(),
               "half_map_fsc_masked": best.result.fsc_masked.tolist(),
               "cfar": best.result.cfar, "mask": "soft sphere r = 12 px, 4 px edge",
               "shell_of_48A": 8}
    _plot(best.result.freq_cycles_per_px / 12.0, curves, Path(out_dir) / "warp_ribo_fsc.png")
    return SuiteResult(metrics=metrics, units={"half_map_resolution_angstrom": "Å"},
                       details=details)


def _plot(freq: np.ndarray, curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for k, ls in (("pad1_masked", "-"), ("pad1_unmasked", "--"), ("pad2_masked", ":"),
                  ("pad1_masked_without_mirror", "-.")):
        ax.plot(freq, curves[k], ls, label=k.replace("_", " "))
    ax.axhline(0.9, color="grey", lw=0.8)
    ax.axvline(1 / 48, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC cryoframe vs RELION")
    ax.set_title("warp-ribo: 40 WarpTools ribosomes, 32 px at 12 Å", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
