"""Posterior aligner: known answers, agreement with the FFT correlation, learning, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoframe import InputError
from cryoframe.baselines.fft_align import FFTAligner
from cryoframe.geometry.rotations import axis_angle_to_matrix, geodesic_distance_deg
from cryoframe.models.correlation_head import SpectralCorrelationHead
from cryoframe.tasks.posterior_align import PosteriorAligner, chordal_mean, offset_grid
from cryoframe.train.align_pairs import make_wedge_pairs
from cryoframe.train.correlation_head import head_losses, train_correlation_head


def _sharp_head() -> SpectralCorrelationHead:
    """Untrained head with flat shell weights and high concentrations (a plain search)."""
    head = SpectralCorrelationHead(32)
    with torch.no_grad():
        head.net[-1].bias[2 * head.n_shells:] = torch.log(torch.tensor([2000.0, 2000.0, 2000.0]))
    return head


def _blobs(seed: int) -> torch.Tensor:
    """A compact asymmetric particle: six Gaussian blobs (σ 2 voxels) within 9 voxels."""
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(6, 3, generator=g) - 0.5) * 14.0
    ax = torch.arange(32, dtype=torch.float32) - 16
    zz, yy, xx = torch.meshgrid(ax, ax, ax, indexing="ij")
    pos = torch.stack([zz, yy, xx], -1)
    d2 = ((pos[None] - centres[:, None, None, None]) ** 2).sum(-1)
    return torch.exp(-d2 / 8.0).sum(0)


def _parts(k: int = 6):
    """``k`` compact particles (signal) and unit noise boxes."""
    signal = torch.stack([_blobs(i) for i in range(k)])
    noise = torch.randn(k, 32, 32, 32, generator=torch.Generator().manual_seed(3))
    return signal, noise


def test_chordal_mean_of_a_point_mass_and_of_a_symmetric_pair():
    r = axis_angle_to_matrix(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0.3]))
    mean, res = chordal_mean(torch.ones(1, 1), r[None])
    assert torch.allclose(mean, r, atol=1e-5) and float(res) == pytest.approx(1.0, abs=1e-5)
    off = offset_grid(4.0)
    assert off.shape == (27, 3, 3)
    # ±4° about one axis average to the identity, with a resultant below 1
    pair = torch.stack([off[13 + 9], off[13 - 9]])[None]
    mean, res = chordal_mean(torch.full((1, 2), 0.5), pair)
    assert float(geodesic_distance_deg(mean, torch.eye(3)[None])) < 1e-3
    assert 0.99 < float(res) < 1.0


def test_noise_free_pairs_give_the_known_pose():
    signal, noise = _parts(4)
    gen = torch.Generator().manual_seed(0)
    x, x1, rot, sh, w = make_wedge_pairs(signal, noise, np.arange(4), 1e4, 15.0, 3.0, gen)
    res = PosteriorAligner(_sharp_head(), range_deg=15.0, max_shift_px=6.0).align_to_reference(
        x1, x, particle_mask=w, reference_mask=w)
    err = geodesic_distance_deg(res.rotations, rot)
    assert float(err.max()) < 3.0, err  # the last fine grid's step is 3.6°
    assert float((res.shifts_zyx_px - sh).norm(dim=1).max()) < 0.6
    assert float(res.scores.min()) > 0.9  # confident


def test_local_fourier_refinement_is_finer_than_the_last_grid():
    signal, noise = _parts(4)
    gen = torch.Generator().manual_seed(0)
    x, x1, rot, sh, w = make_wedge_pairs(signal, noise, np.arange(4), 1e4, 15.0, 3.0, gen)
    kw = dict(range_deg=15.0, max_shift_px=6.0)
    plain = PosteriorAligner(_sharp_head(), **kw).align_to_reference(x1, x, w, w)
    refined = PosteriorAligner(_sharp_head(), refine_start_deg=3.0, **kw).align_to_reference(
        x1, x, w, w)
    err_plain = geodesic_distance_deg(plain.rotations, rot)
    err = geodesic_distance_deg(refined.rotations, rot)
    assert float(err.max()) < 1.0 and float(err.mean()) < float(err_plain.mean()), (err, err_plain)
    assert float((refined.shifts_zyx_px - sh).norm(dim=1).max()) < 0.3
    assert torch.equal(refined.scores, plain.scores)  # the confidence is the posterior's
    with pytest.raises(InputError, match="refine_start_deg"):
        PosteriorAligner(_sharp_head(), refine_start_deg=0.0)


def test_flat_weights_reproduce_the_fft_correlation():
    signal, noise = _parts(2)
    gen = torch.Generator().manual_seed(1)
    x, x1, rot, sh, w = make_wedge_pairs(signal, noise, np.arange(2), 0.5, 15.0, 3.0, gen)
    al = PosteriorAligner(SpectralCorrelationHead(32), range_deg=15.0, max_shift_px=8.0)
    t = al.pair_terms(x1, x, w, w)
    t.weights = torch.ones_like(t.weights)
    # the FFT aligner with the same band (shells ≤ 7.5 of 32) at the true rotation
    fft = FFTAligner(step_deg=5.0, refine_steps=0, max_shift_px=8.0,
                     lowpass_cycles_per_px=7.5 / 32)
    ref = fft.align_to_reference(x1, x, particle_mask=w, reference_mask=w, init_rotations=rot)
    peak = torch.round(ref.shifts_zyx_px)
    cc = al.local_cc(t, rot[:, None], al.level(16), peak, torch.zeros(1, 3), 0)[:, 0, 0]
    # same normalised constrained correlation (Fourier- vs real-space interpolation)
    assert torch.allclose(cc, ref.scores, atol=0.03), (cc, ref.scores)
    # the coarse level's marginal translation lands near the true shift
    _, t_given_r = al.coarse_logits(t, rot[:1, None], al.level(12))
    assert float((t_given_r[:, 0] - sh).norm(dim=1).max().detach()) < 1.5


def test_head_learns_on_one_batch():
    torch.manual_seed(0)
    signal, noise = _parts(4)
    gen = torch.Generator().manual_seed(2)
    x, x1, rot, sh, w = make_wedge_pairs(signal, noise, np.arange(4), 0.3, 15.0, 4.0, gen)
    head = SpectralCorrelationHead(32)
    al = PosteriorAligner(head, range_deg=15.0, max_shift_px=8.0, coarse_step_deg=7.5)
    opt = torch.optim.Adam(head.parameters(), lr=3e-2)
    first = None
    for _ in range(30):
        losses = head_losses(al, x, x1, rot, sh, w, torch.Generator().manual_seed(5))
        loss = sum(losses.values())
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.8 * first


def test_training_resumes_exactly(tmp_path):
    signal, noise = _parts(4)
    a, _ = train_correlation_head(signal, noise, tmp_path / "a.pt", steps=2, batch_size=2,
                                  checkpoint_every=1)
    train_correlation_head(signal, noise, tmp_path / "b.pt", steps=1, batch_size=2,
                           checkpoint_every=1)
    b, hist = train_correlation_head(signal, noise, tmp_path / "b.pt", steps=2, batch_size=2,
                                     checkpoint_every=1)
    assert len(hist) == 2
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_wrong_box_is_a_clear_error():
    al = PosteriorAligner(SpectralCorrelationHead(32))
    with pytest.raises(InputError, match="particles"):
        al.align_to_reference(torch.zeros(2, 24, 24, 24), torch.zeros(24, 24, 24))
