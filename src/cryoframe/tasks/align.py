"""Learned subtomogram alignment with the pair encoder's transformation head (000 §3.3, App. F).

* :func:`finetune_transform_head` — the paper's fine-tuning on the local range: each epoch, every
  sample gets 5 random rigid transforms ``T`` (rotation angle ≤ 15° about a uniform axis,
  translation ≤ 20 % of the box in a ball), the pairs ``(T X, X)`` go through the encoder in
  batches of 4 samples (20 pairs), and the head (by default only the head; the backbone stays
  frozen) minimises ``‖R̂ − R‖_F² + λ ‖t̂ − t‖²``. With a wedge mask, ``T X`` is re-filtered by
  the microscope-frame wedge so that both members of a pair miss the same Fourier region, as in
  real data.
* :class:`LearnedAligner` — prediction for pairs (:meth:`LearnedAligner.predict`) and against a
  reference (:meth:`LearnedAligner.align_to_reference`, the interface of
  :func:`cryoframe.tasks.average.average_subtomograms`), with an optional local refinement by
  wedge-constrained Fourier cross-correlation started at the predicted rotation (the
  translation is then searched exhaustively by FFT within ``max_shift_px``).

Convention (as in training, :mod:`cryoframe.train.augment3d`): for ``X_1 = T X`` with
``T = (R, t)``, ``X_1 = shift(rotate(X, R), t)``, and ``encoder.transform(X_1, X)`` predicts
``(R, t)``; so ``particle ≈ shift(rotate(reference, R), t)`` exactly as for the FFT aligner.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from cryoframe._errors import InputError
from cryoframe.models.heads import rotation_loss
from cryoframe.tasks.fft_align import AlignResult, FFTAligner
from cryoframe.train.augment3d import apply_rigid, random_rigid_transforms, standardize

__all__ = ["finetune_transform_head", "LearnedAligner", "standardize"]


def _wedge_filter(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return x
    n = x.shape[-1]
    return torch.fft.irfftn(torch.fft.rfftn(x, dim=(-3, -2, -1)) * mask[..., : n // 2 + 1],
                            s=(n, n, n), dim=(-3, -2, -1))


def finetune_transform_head(
    encoder,
    volumes,
    *,
    epochs: int = 10,
    augmentations: int = 5,
    batch_size: int = 4,
    max_rotation_deg: float = 15.0,
    max_shift_fraction: float = 0.2,
    lr: float = 1e-4,
    lambda_shift: float = 0.1,
    train_backbone: bool = False,
    particle_mask: Tensor | None = None,
    seed: int = 0,
    progress=None,
) -> list[float]:
    """Fine-tune the transformation head on the local range (module docstring).

    Parameters
    ----------
    encoder : APTPairEncoder
        Updated in place.
    volumes : array or Tensor
        `(N, n, n, n)` subtomograms (noisy data is fine; the target is the known augmentation).
    epochs, augmentations, batch_size
        10 epochs, 5 augmentations per sample, batches of 4 samples (App. F / §3.3).
    max_rotation_deg, max_shift_fraction
        Local range: ≤ 15° and ≤ 20 % of the box.
    lr, lambda_shift
        AdamW learning rate; weight of the squared shift error (voxels²).
    train_backbone : bool
        Also update the encoder (default: head only).
    particle_mask : Tensor, optional
        `(n, n, n)` full-spectrum wedge mask re-applied to transformed views.
    seed : int
        Seed of all augmentations.
    progress : callable, optional
        Called with ``(epoch, mean_loss)``.

    Returns
    -------
    list of float
        Mean loss per epoch.
    """
    x = torch.as_tensor(np.asarray(volumes), dtype=torch.float32)
    if x.ndim != 4:
        raise InputError(f"volumes of shape {tuple(x.shape)}", field="volumes",
                         expected="(N, n, n, n)")
    n = x.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    params = list(encoder.parameters()) if train_backbone else list(
        encoder.transform_head.parameters())
    for p in encoder.parameters():
        p.requires_grad_(train_backbone)
    for p in encoder.transform_head.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    history = []
    for epoch in range(epochs):
        encoder.train(train_backbone)
        encoder.transform_head.train()
        perm = torch.randperm(len(x), generator=gen)
        losses = []
        for s0 in range(0, len(x), batch_size):
            base = x[perm[s0:s0 + batch_size]].repeat(augmentations, 1, 1, 1)
            rot, sh = random_rigid_transforms(len(base), max_rotation_deg,
                                              max_shift_fraction * n, gen)
            moved = _wedge_filter(apply_rigid(base, rot, sh), particle_mask)
            ctx = torch.enable_grad() if train_backbone else torch.no_grad()
            with ctx:
                feats = encoder.embed(standardize(moved)[:, None], standardize(base)[:, None])
            pred = encoder.transform_head(feats)
            loss = rotation_loss(pred["rotation"], rot) + lambda_shift * (
                pred["shift_zyx_px"] - sh).pow(2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
        if progress is not None:
            progress(epoch + 1, history[-1])
    for p in encoder.parameters():
        p.requires_grad_(False)
    return history


class LearnedAligner:
    """Pair-encoder alignment with optional Fourier cross-correlation refinement.

    Parameters
    ----------
    encoder : APTPairEncoder
        With a (fine-tuned) transformation head.
    refine : bool
        Refine each prediction locally by wedge-constrained correlation.
    refine_steps : int
        Pattern-search steps of the refinement (each 7 rotations of the reference).
    refine_start_deg : float
        First step of the refinement, degrees.
    max_shift_px : float, optional
        Translation range of the refinement (default ``n / 4``).
    batch_size : int
        Pairs per encoder forward pass.
    """

    def __init__(self, encoder, refine: bool = True, refine_steps: int = 4,
                 refine_start_deg: float = 4.0, max_shift_px: float | None = None,
                 batch_size: int = 64) -> None:
        self.encoder = encoder.eval()
        self.refine = refine
        self.batch_size = int(batch_size)
        self.refiner = FFTAligner(step_deg=refine_start_deg * 3, refine_steps=refine_steps,
                                  refine_start_deg=refine_start_deg, max_shift_px=max_shift_px)

    @torch.no_grad()
    def predict(self, particles, references) -> AlignResult:
        """Network prediction ``(R, t)`` for pairs: ``particle ≈ shift(rotate(reference, R), t)``.

        Parameters
        ----------
        particles : array or Tensor
            `(B, n, n, n)`.
        references : array or Tensor
            `(B, n, n, n)`, or `(n, n, n)` shared by all.
        """
        t0 = time.perf_counter()
        p = torch.as_tensor(np.asarray(particles), dtype=torch.float32)
        r = torch.as_tensor(np.asarray(references), dtype=torch.float32)
        if p.ndim == 3:
            p = p[None]
        if r.ndim == 3:
            r = r.expand(p.shape[0], *r.shape)
        if p.shape != r.shape or p.shape[-1] != self.encoder.volume_size:
            raise InputError(f"particles {tuple(p.shape)} and references {tuple(r.shape)}",
                             field="particles",
                             expected=f"(B, {self.encoder.volume_size}, …) cubes of equal shape")
        rots, shifts = [], []
        for s0 in range(0, p.shape[0], self.batch_size):
            out = self.encoder.transform(standardize(p[s0:s0 + self.batch_size])[:, None],
                                         standardize(r[s0:s0 + self.batch_size])[:, None])
            rots.append(out["rotation"].float())
            shifts.append(out["shift_zyx_px"].float())
        rot = torch.cat(rots)
        return AlignResult(rot, torch.cat(shifts), torch.full((p.shape[0],), float("nan")),
                           time.perf_counter() - t0)

    def align_to_reference(self, particles, reference, particle_mask=None,
                           reference_mask=None) -> AlignResult:
        """Predict, then (optionally) refine locally: ``particle ≈ shift(rotate(ref, R), t)``."""
        t0 = time.perf_counter()
        pred = self.predict(particles, reference)
        if not self.refine:
            return pred
        res = self.refiner.align_to_reference(particles, reference, particle_mask=particle_mask,
                                              reference_mask=reference_mask,
                                              init_rotations=pred.rotations)
        res.seconds = time.perf_counter() - t0
        return res
