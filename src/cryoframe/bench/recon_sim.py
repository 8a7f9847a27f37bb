"""recon-sim: reconstruction from simulated particles with known poses, against cryoDRGN.

Data: the 20S proteasome (bundled PDB 3J9I) as a density computed from the atoms at 3 Å/voxel
(:func:`cryoframe.simulate.density.load_density`), centred; particles at box 96, 3 Å/px,
uniform random poses, CTF (300 kV, Cs 2.7 mm, Q 0.1, defocus 1–3 µm, astigmatism up to 500 Å
at a random angle), Gaussian shifts σ = 6 Å, SNR 0.1, written as MRCS + RELION 3.1 STAR by
:func:`cryoframe.simulate.particles2d.simulate_particle_stack` (with ``rlnPhaseShift``).

Measured, in the same run, on the same STAR:

* cryoframe: ``cryoframe reconstruct STAR --out DIR`` as a subprocess (pad 1, one torch
  thread), end-to-end wall time (start-up, reading, insertion of both halves, Wiener maps,
  FSCs, cFAR, writing);
* cryoDRGN 4.3.1 (GPL-3, never a dependency; installed in a venv of its own, e.g.
  ``python -m venv cdrgn && cdrgn/bin/pip install torch==2.13.0 cryodrgn==4.3.1``; the
  executable is ``$CRYODRGN`` if set, else ``cryodrgn`` on the ``PATH``), exactly::

      cryodrgn parse_pose_star STAR -o pose.pkl -D 96 --Apix 3
      cryodrgn parse_ctf_star STAR -o ctf.pkl
      cryodrgn backproject_voxel STAR --poses pose.pkl --ctf ctf.pkl -o DIR

  with ``OMP_NUM_THREADS=MKL_NUM_THREADS=1``; ``images/s`` is the particle count divided by the
  wall time of ``backproject_voxel`` (which includes its half maps and FSC, like ours).
  Without a cryoDRGN executable the reference metrics are ``null``.

Metrics: FSC of each full map against the truth (unmasked); ``res_shell_vs_truth`` /
``ref_res_shell_vs_truth`` = the last Fourier shell before the curve first drops below 0.143
(shells of the 96 box, 48 = Nyquist); ``res_vs_truth_angstrom`` = interpolated 0.143 crossing.
cryoDRGN's map sign is taken as is (its default contrast handling reproduces the truth's sign).

Size: full 10,000 particles (simulation ≈ 1 min, cryoframe ≈ 1–2 min, cryoDRGN ≈ 4–5 min on
one core), quick 600.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig
from cryoframe.bench.results import SuiteResult, progress
from cryoframe.fourier.fsc import fsc, resolution_at
from cryoframe.simulate.density import load_density
from cryoframe.simulate.particle_projection import _fit_box
from cryoframe.simulate.particles2d import centre_density, simulate_particle_stack

BOX = 96
PIXEL_A = 3.0
SNR = 0.1
_CLI = "import sys; from cryoframe.cli.main import main; sys.exit(main())"
CRYODRGN_ENV = "CRYODRGN"  #: environment variable naming the cryoDRGN executable


def last_shell_above(curve: np.ndarray, threshold: float = 0.143) -> int:
    """Index of the last shell ``s ≥ 1`` before the curve first drops below ``threshold``."""
    below = np.nonzero(np.asarray(curve)[1:] < threshold)[0]
    return int(len(curve) - 1 if len(below) == 0 else below[0])


def _env1() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _run_cryodrgn(star: Path, out: Path, n: int) -> tuple[Path | None, float | None, str]:
    found = os.environ.get(CRYODRGN_ENV) or shutil.which("cryodrgn")
    exe = Path(found) if found else None
    if exe is None or not exe.exists():
        return None, None, (f"cryoDRGN not found (set ${CRYODRGN_ENV} to its executable or put "
                            "cryodrgn on the PATH)")
    env = _env1()
    cmds = [[str(exe), "parse_pose_star", str(star), "-o", str(out / "pose.pkl"), "-D", str(BOX),
             "--Apix", str(PIXEL_A)],
            [str(exe), "parse_ctf_star", str(star), "-o", str(out / "ctf.pkl")]]
    for c in cmds:
        subprocess.run(c, check=True, capture_output=True, env=env, cwd=out)
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), "backproject_voxel", str(star), "--poses",
                        str(out / "pose.pkl"), "--ctf", str(out / "ctf.pkl"), "-o",
                        str(out / "cryodrgn")], capture_output=True, text=True, env=env, cwd=out)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        return None, None, r.stderr[-500:]
    return out / "cryodrgn" / "backproject.mrc", dt, "ok"


def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Simulate, reconstruct with cryoframe and cryoDRGN, compare with the truth."""
    import mrcfile


    torch.set_num_threads(1)
    n = 600 if quick else 10_000
    work = Path(out_dir) / "data"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    progress(f"recon-sim: simulating {n} particles (3J9I, box {BOX}, {PIXEL_A} Å/px, SNR {SNR})")
    dens = load_density("3J9I", voxel_size_angstrom=PIXEL_A)
    vol = np.asarray(dens.data, np.float32)
    truth = _fit_box(torch.tensor(centre_density(vol)), BOX)
    star = work / "particles.star"
    simulate_particle_stack(vol, n, star, seed=seed, voxel_size_angstrom=PIXEL_A,
                            box_size_px=BOX, pixel_size_angstrom=PIXEL_A, snr=SNR,
                            shift_sigma_angstrom=6.0, astigmatism_max_angstrom=500.0)
    progress("recon-sim: cryoframe reconstruct")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _CLI, "reconstruct", str(star), "--out",
                    str(work / "cryoframe"), "--threads", "1"], check=True, env=_env1(),
                   capture_output=True)
    dt_cf = time.perf_counter() - t0
    progress(f"recon-sim: cryoframe {n / dt_cf:.0f} images/s; cryoDRGN backproject_voxel")
    ref_map, dt_ref, ref_status = _run_cryodrgn(star, work, n)
    ours = mrcfile.open(work / "cryoframe" / "map.mrc").data.copy()
    freq, c_ours = fsc(ours, truth)
    f = freq.numpy()
    c_ours = c_ours.numpy()
    metrics: dict[str, float | None] = {
        "res_shell_vs_truth": float(last_shell_above(c_ours)),
        "ref_res_shell_vs_truth": None,
        "res_vs_truth_angstrom": resolution_at(f, c_ours, 0.143, PIXEL_A),
        "ref_res_vs_truth_angstrom": None,
        "images_per_s": n / dt_cf,
        "ref_images_per_s": None,
    }
    details = {"n_particles": n, "box": BOX, "pixel_size_angstrom": PIXEL_A, "snr": SNR,
               "fsc_vs_truth_cryoframe": c_ours.tolist(),
               "freq_per_angstrom": (f / PIXEL_A).tolist(), "cryodrgn_status": ref_status,
               "cryoframe_wall_s": dt_cf, "threads": 1}
    import json

    details["cryoframe_half_map_summary"] = {
        k: v for k, v in json.loads((work / "cryoframe" / "fsc.json").read_text()).items()
        if k in ("resolution_angstrom", "resolution_unmasked_angstrom", "cfar")}
    c_ref = None
    if ref_map is not None:
        ref = mrcfile.open(ref_map).data.copy()
        _, c_ref = fsc(ref, truth)
        c_ref = c_ref.numpy()
        metrics["ref_res_shell_vs_truth"] = float(last_shell_above(c_ref))
        metrics["ref_res_vs_truth_angstrom"] = resolution_at(f, c_ref, 0.143, PIXEL_A)
        metrics["ref_images_per_s"] = n / dt_ref
        details["fsc_vs_truth_cryodrgn"] = c_ref.tolist()
        details["cryodrgn_wall_s"] = dt_ref
        details["speedup"] = metrics["images_per_s"] / metrics["ref_images_per_s"]
    _plot(f / PIXEL_A, c_ours, c_ref, Path(out_dir) / "recon_sim_fsc.png", metrics)
    shutil.rmtree(work / "cryodrgn", ignore_errors=True)
    for p in work.glob("particles.mrcs"):
        p.unlink()
    units = {"res_vs_truth_angstrom": "Å", "ref_res_vs_truth_angstrom": "Å",
             "images_per_s": "1/s", "ref_images_per_s": "1/s", "res_shell_vs_truth": "shell",
             "ref_res_shell_vs_truth": "shell"}
    return SuiteResult(metrics=metrics, units=units, details=details,
                       references={"cryodrgn_note": "cryoDRGN 4.3.1 backproject_voxel measured "
                                   "in this run on the same STAR (not a paper number)"})


def _plot(freq: np.ndarray, ours: np.ndarray, ref: np.ndarray | None, path: Path,
          metrics: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(freq, ours, label=f"cryoframe ({metrics['images_per_s']:.0f} img/s)")
    if ref is not None:
        ax.plot(freq, ref, label=f"cryoDRGN 4.3.1 ({metrics['ref_images_per_s']:.0f} img/s)",
                ls="--")
    ax.axhline(0.143, color="grey", lw=0.8)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC against the truth")
    ax.set_title("recon-sim: known poses, SNR 0.1, box 96, 3 Å/px", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
