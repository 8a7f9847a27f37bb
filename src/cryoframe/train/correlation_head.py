"""Training of the posterior aligner's correlation head on pairs with known relative pose.

Pairs come from a store's separated signal and noise parts (:func:`make_wedge_pairs`), half in
the local range of App. F (angle ≤ 15°, shift ≤ 6 voxels) and half over all of SO(3) (shift ≤ 4
voxels), one SNR per pair drawn log-uniformly in ``snr_range``. Three cross-entropies, each
against a soft target around the truth, train the head end to end through the correlations:

* coarse: the posterior over the coarse grid (local: the learned angle prior included) against
  ``exp(−d(g, R)² / 2σ²)``, ``σ`` half the grid step;
* fine: the posterior over a 3 × 3 × 3 fine grid centred a random offset from the truth, the
  translation marginalised around the true shift plus Gaussian noise of 0.5 voxel;
* translation: ``p(t | R)`` at the true rotation over a 5³ lattice of half-voxel steps around
  the true shift plus Gaussian noise of 0.3 voxel, against a Gaussian of 0.35 voxel around the
  true shift.

Checkpoints (head, optimiser, step, history) are written atomically every ``checkpoint_every``
steps and a run resumes from its checkpoint exactly (batches are functions of ``(seed, step)``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cryoframe.geometry.rotations import geodesic_distance_rad
from cryoframe.models.correlation_head import CORRELATION_HEAD_FORMAT, SpectralCorrelationHead
from cryoframe.models.pretrained import save_weights
from cryoframe.tasks.posterior_align import FINAL_SHIFTS, PosteriorAligner, offset_grid
from cryoframe.train.align_pairs import make_wedge_pairs
from cryoframe.train.augment3d import random_rigid_transforms

__all__ = ["RANGES", "head_losses", "train_correlation_head"]

#: (max rotation °, max shift voxels, aligner shift range voxels) of the two training ranges.
RANGES = {"local": (15.0, 6.0, 8.0), "global": (180.0, 4.0, 6.0)}


def _soft_ce(logits: Tensor, target: Tensor) -> Tensor:
    return -(target * torch.log_softmax(logits, -1)).sum(-1).mean()


def head_losses(aligner: PosteriorAligner, x: Tensor, x1: Tensor, rot: Tensor, sh: Tensor,
                wedge: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
    """The three cross-entropies (module docstring) for one batch of pairs ``x1 ≈ T x``."""
    b = x.shape[0]
    t = aligner.pair_terms(x1, x, wedge, wedge)
    coarse, fine = aligner.level(aligner.coarse_size), aligner.level(aligner.fine_size)
    grid = aligner.grid
    sig_c = math.radians(aligner.coarse_step_deg) / 2
    d = geodesic_distance_rad(grid[None].expand(b, -1, 3, 3),
                              rot[:, None].expand(-1, len(grid), 3, 3))
    tgt = torch.softmax(-(d**2) / (2 * sig_c**2), -1)
    loss_c = _soft_ce(aligner.coarse_logits(t, grid[None], coarse)[0], tgt)
    # fine: a 3×3×3 grid centred within one fine step of the truth, translation from a noisy
    # estimate
    step = aligner.fine_steps_deg[0]
    jitter, _ = random_rigid_transforms(b, step, 0.0, gen)
    centre = rot @ jitter
    cand = centre[:, None] @ offset_grid(step)[None]                            # (B, 27, 3, 3)
    d = geodesic_distance_rad(cand, rot[:, None].expand(-1, 27, 3, 3))
    tgt = torch.softmax(-(d**2) / (2 * math.radians(step / 2) ** 2), -1)
    shift0 = sh + 0.5 * torch.randn(b, 3, generator=gen)
    loss_f = _soft_ce(aligner.fine_logits(t, cand, fine, shift0, centre[:, None]), tgt)
    # translation at the true rotation, around a noisy estimate
    centre = sh + 0.3 * torch.randn(b, 3, generator=gen)
    dt = (centre[:, None] + FINAL_SHIFTS[None] - sh[:, None]).pow(2).sum(-1)
    tgt = torch.softmax(-dt / (2 * 0.35**2), -1)
    loss_t = _soft_ce(aligner.translation_logits(t, rot, fine, centre), tgt)
    return {"coarse": loss_c, "fine": loss_f, "translation": loss_t}


def train_correlation_head(
    signal: Tensor,
    noise: Tensor,
    out: str | Path,
    *,
    steps: int = 300,
    batch_size: int = 8,
    snr_range: tuple[float, float] = (0.004, 0.2),
    lr: float = 5e-3,
    seed: int = 0,
    checkpoint_every: int = 25,
    progress=None,
    head: SpectralCorrelationHead | None = None,
    voxel_size_angstrom: float | None = None,
    reference_snr_range: tuple[float, float] | None = None,
) -> tuple[SpectralCorrelationHead, list[dict]]:
    """Train (or resume) a correlation head; writes ``out`` (a loadable head file).

    Parameters
    ----------
    signal, noise : Tensor
        `(N, n, n, n)` separated parts of the training boxes.
    out : path
        Head file, rewritten at every checkpoint (format :data:`CORRELATION_HEAD_FORMAT`).
    steps, batch_size, snr_range, lr, seed
        Optimisation (AdamW); steps alternate between the local and the global range.
    checkpoint_every : int
        Steps between checkpoints.
    progress : callable, optional
        Called with each step's record.
    head : SpectralCorrelationHead, optional
        Start from this head instead of a fresh one (ignored when resuming).
    voxel_size_angstrom : float, optional
        Sampling of the training boxes, recorded in the file (the aligner resamples users'
        data to it).
    reference_snr_range : tuple of float, optional
        When given, half the pairs draw the reference's SNR log-uniformly in this range (an
        average as the reference, as in averaging); otherwise both members share one SNR.
    """
    out = Path(out)
    n = signal.shape[-1]
    if head is None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            head = SpectralCorrelationHead(n)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    history: list[dict] = []
    start = 0
    if out.exists():
        blob = torch.load(out, map_location="cpu", weights_only=True)
        if blob.get("format") == CORRELATION_HEAD_FORMAT and "optimizer" in blob:
            head = SpectralCorrelationHead(**blob["config"])
            head.load_state_dict(blob["state_dict"])
            opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
            opt.load_state_dict(blob["optimizer"])
            start, history = int(blob["step"]), list(blob["history"])
    aligners = {name: PosteriorAligner(head, range_deg=r[0], max_shift_px=r[2])
                for name, r in RANGES.items()}
    lo, hi = math.log(snr_range[0]), math.log(snr_range[1])
    for step in range(start, steps):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        name = "local" if step % 2 == 0 else "global"
        max_rot, max_sh, _ = RANGES[name]
        idx = torch.randint(0, signal.shape[0], (batch_size,), generator=gen).numpy()
        snr = torch.exp(lo + (hi - lo) * torch.rand(batch_size, generator=gen))
        snr_ref = None
        if reference_snr_range is not None:
            lo_r, hi_r = (math.log(v) for v in reference_snr_range)
            draw = torch.exp(lo_r + (hi_r - lo_r) * torch.rand(batch_size, generator=gen))
            snr_ref = torch.where(torch.rand(batch_size, generator=gen) < 0.5, draw, snr)
        x, x1, rot, sh, w = make_wedge_pairs(signal, noise, np.asarray(idx), snr, max_rot,
                                             max_sh, gen, snr_reference=snr_ref)
        head.train()
        losses = head_losses(aligners[name], x, x1, rot, sh, w, gen)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec = {"step": step + 1, "range": name, **{k: float(v.detach()) for k, v in losses.items()}}
        history.append(rec)
        if progress is not None:
            progress(rec)
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            save_weights(out, {"format": CORRELATION_HEAD_FORMAT, "config": head.config(),
                               "state_dict": head.state_dict(), "optimizer": opt.state_dict(),
                               "step": step + 1, "history": history,
                               "meta": {"seed": seed, "batch_size": batch_size,
                                        "snr_range": list(snr_range), "lr": lr,
                                        "n_train_boxes": int(signal.shape[0]),
                                        "voxel_size_angstrom": voxel_size_angstrom,
                                        "reference_snr_range": reference_snr_range}})
    head.eval()
    return head, history


