"""Benchmark ``equivariance``: APT-ViT against a plain ViT of equal size (BENCHMARKS.md).

Figures (all relative, dimensionless; the maximum over inputs and transforms):

- ``shift_equiv_err``: ``‖e(T_g x) − e(x)‖ / ‖e(x)‖`` for the pooled APT-ViT embedding ``e`` and
  integer circular shifts ``g`` (random, not multiples of the patch).
- ``rot90_select_err``: ``max_k |ℓ(Rx)[π_R(k)] − ℓ(x)[k]| / std_k ℓ(x)`` for the phase-selection
  logits ``ℓ``, each phase ``k`` compared with the phase ``π_R(k)`` it becomes under the 90°
  rotation ``R`` (about the centre voxel ``n // 2``, the project convention); normalised by the
  spread of the logits over phases, which is what decides the selection.
- ``vit_shift_err``: ``shift_equiv_err`` for the plain ViT (fixed patch grid, learned absolute
  position embedding, same width/depth/heads).
- ``vit_rot90_err``: the same comparison as ``rot90_select_err`` for the plain ViT, whose
  response to phase ``k`` is ``‖e_ViT(roll(x, −k))‖`` (the ViT run on the tokenisation of phase
  ``k``); evaluated on a random subset of phases mapped consistently.

Inputs: Gaussian white-noise volumes ("random") and fast-path CryoEngine subtomograms of bundled
10 Å maps at random poses with a ±60° missing wedge plus calibrated noise at SNR 0.1
("simulated"). Both models are randomly initialised with the suite seed (equivariance is a
property of the architecture); float32, evaluation mode. The requirement checked: APT shift
≤ 1e-4, rot90 select ≤ 1e-3, plain ViT ≥ 100× larger on both.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from cryoframe._atomic import atomic_savefig
from cryoframe.bench.results import SuiteResult
from cryoframe.data import map_path
from cryoframe.geometry.rotations import random_rotations
from cryoframe.io.mrc import read_mrc
from cryoframe.models import create_model
from cryoframe.models.polyphase import phase_offsets, phase_permutation, rot90_about_center
from cryoframe.simulate.fastpath import FastSubtomogramSimulator
from cryoframe.simulate.noise import add_noise

MAPS = ["3J9I", "4V4R_30S", "1U6G", "2CG9", "3D2F", "3H84"]
ROTATIONS = [(1, (-2, -1)), (1, (-3, -1)), (1, (-3, -2)), (2, (-3, -2)), (3, (-2, -1)),
             (2, (-3, -1))]


def simulated_inputs(n: int, seed: int, snr: float = 0.1, box: int = 32) -> torch.Tensor:
    """`(n, 1, box, box, box)` fast-path subtomograms of bundled maps with noise at ``snr``."""
    maps = [torch.from_numpy(read_mrc(map_path(m)).data.astype(np.float32)) for m in MAPS]
    sim = FastSubtomogramSimulator(maps, box_size_px=box)
    gen = torch.Generator().manual_seed(seed)
    cls = torch.arange(n) % len(maps)
    rots = random_rotations(n, generator=gen)
    clean = sim.simulate(cls.numpy(), rots)
    noisy = add_noise(clean, snr, seed=seed, indices=np.arange(n))
    return noisy[:, None]


def _pooled(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


@torch.no_grad()
def shift_error(model: torch.nn.Module, x: torch.Tensor, shifts: list[tuple[int, int, int]]) -> float:
    """Max relative change of the pooled embedding under the given circular shifts."""
    e = _pooled(model, x)
    worst = 0.0
    for g in shifts:
        es = _pooled(model, torch.roll(x, g, dims=(-3, -2, -1)))
        worst = max(worst, float(((es - e).norm(dim=-1) / e.norm(dim=-1)).max()))
    return worst


@torch.no_grad()
def rot90_select_error(model: torch.nn.Module, x: torch.Tensor, patch: int) -> float:
    """Max phase-mapped logit error of the APT selector under 90° rotations (std-normalised)."""
    shape = tuple(x.shape[-3:])
    logits = model.phase_logits(x)  # (B, P)
    scale = logits.std(dim=1, keepdim=True)
    worst = 0.0
    for k, dims in ROTATIONS:
        def rot(v, k=k, dims=dims):
            return rot90_about_center(v, k, dims)

        perm = phase_permutation(shape, (patch,) * 3, rot)
        lr = model.phase_logits(rot(x))
        worst = max(worst, float(((lr[:, perm] - logits).abs() / scale).max()))
    return worst


@torch.no_grad()
def vit_phase_scores(model: torch.nn.Module, x: torch.Tensor, phases: torch.Tensor,
                     patch: int) -> torch.Tensor:
    """`(B, len(phases))` ``‖e_ViT(roll(x, −k))‖`` for each requested phase ``k``."""
    offs = phase_offsets((patch,) * 3)[phases]
    out = []
    for o in offs.tolist():
        rolled = torch.roll(x, tuple(-v for v in o), dims=(-3, -2, -1))
        out.append(_pooled(model, rolled).norm(dim=-1))
    return torch.stack(out, dim=1)


@torch.no_grad()
def vit_rot90_error(model: torch.nn.Module, x: torch.Tensor, patch: int, n_phases: int,
                    rotations: list, gen: torch.Generator) -> float:
    """The ``rot90_select_err`` comparison for a plain ViT's per-phase response."""
    shape = tuple(x.shape[-3:])
    phases = torch.randperm(patch**3, generator=gen)[:n_phases]
    base = vit_phase_scores(model, x, phases, patch)
    scale = base.std(dim=1, keepdim=True)
    worst = 0.0
    for k, dims in rotations:
        def rot(v, k=k, dims=dims):
            return rot90_about_center(v, k, dims)

        perm = phase_permutation(shape, (patch,) * 3, rot)
        moved = vit_phase_scores(model, rot(x), perm[phases], patch)
        worst = max(worst, float(((moved - base).abs() / scale).max()))
    return worst


def _plot(out_dir: Path, per_input: dict[str, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["shift_equiv_err", "vit_shift_err", "rot90_select_err", "vit_rot90_err"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.38
    for i, (label, vals) in enumerate(per_input.items()):
        ys = [max(vals[n], 1e-12) for n in names]
        ax.bar(np.arange(4) + (i - 0.5) * width, ys, width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(4), names, rotation=15, fontsize=8)
    ax.axhline(1e-4, color="k", lw=0.6, ls="--")
    ax.axhline(1e-3, color="k", lw=0.6, ls=":")
    ax.set_ylabel("relative error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_savefig(fig, out_dir / "equivariance.png", dpi=120, format="png")
    plt.close(fig)


def run(quick: bool, out_dir: Path, seed: int) -> SuiteResult:
    """Measure the four equivariance figures (see module docstring)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    apt = create_model("apt_vit_cpu").eval()
    torch.manual_seed(seed + 1)
    vit = create_model("vit_cpu").eval()
    patch = 8
    n_vol = 2 if quick else 8
    n_shift = 3 if quick else 8
    n_vit_phases = 16 if quick else 64
    vit_rots = ROTATIONS[:2] if quick else ROTATIONS
    shifts = []
    while len(shifts) < n_shift:
        g = tuple(int(v) for v in torch.randint(-15, 16, (3,), generator=gen))
        if any(v % patch for v in g):
            shifts.append(g)
    inputs = {
        "random": torch.randn(n_vol, 1, 32, 32, 32, generator=gen),
        "simulated": simulated_inputs(n_vol, seed),
    }
    per_input: dict[str, dict[str, float]] = {}
    for label, x in inputs.items():
        per_input[label] = {
            "shift_equiv_err": shift_error(apt, x, shifts),
            "rot90_select_err": rot90_select_error(apt, x, patch),
            "vit_shift_err": shift_error(vit, x, shifts),
            "vit_rot90_err": vit_rot90_error(vit, x, patch, n_vit_phases, vit_rots, gen),
        }
    # float64 run of the APT figures on the simulated inputs (numerical floor)
    apt64 = apt.double()
    x64 = inputs["simulated"].double()
    f64 = {"shift_equiv_err": shift_error(apt64, x64, shifts),
           "rot90_select_err": rot90_select_error(apt64, x64, patch)}
    metrics = {name: max(v[name] for v in per_input.values())
               for name in ["shift_equiv_err", "rot90_select_err", "vit_shift_err",
                            "vit_rot90_err"]}
    ratio_shift = metrics["vit_shift_err"] / max(metrics["shift_equiv_err"], 1e-30)
    ratio_rot = metrics["vit_rot90_err"] / max(metrics["rot90_select_err"], 1e-30)
    _plot(out_dir, per_input)
    return SuiteResult(
        metrics=metrics,
        units={k: "relative" for k in metrics},
        references={"paper": "no equivariance figures are reported by the paper (App. B is "
                             "a proof); requirement: APT shift ≤ 1e-4, rot90 select ≤ 1e-3, "
                             "plain ViT ≥ 100× larger"},
        details={
            "per_input": per_input,
            "apt_float64": f64,
            "ratio_vit_over_apt_shift": ratio_shift,
            "ratio_vit_over_apt_rot90": ratio_rot,
            "passes": bool(metrics["shift_equiv_err"] <= 1e-4
                           and metrics["rot90_select_err"] <= 1e-3
                           and ratio_shift >= 100 and ratio_rot >= 100),
            "n_volumes_per_input": n_vol,
            "shifts_zyx_px": shifts,
            "rotations": [f"{k}x90° in axes {d}" for k, d in ROTATIONS],
            "vit_rotations": len(vit_rots),
            "vit_phases_sampled": n_vit_phases,
            "models": {"apt": "apt_vit_cpu (random init)", "vit": "vit_cpu (random init)"},
            "simulated_inputs": f"fast path, maps {MAPS}, ±60° wedge, SNR 0.1",
            "dtype": "float32 (apt_float64: float64)",
            "wall_s": time.perf_counter() - t0,
        },
    )
