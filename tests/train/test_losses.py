"""NRCL losses against loop-based references and analytic values."""

import math

import numpy as np
import pytest
import torch

from cryoframe.train.losses_infonce import noise_infonce_loss
from cryoframe.train.losses_sinkhorn import sinkhorn_plan, sinkhorn_wasserstein_loss
from cryoframe.train.losses_sym import sym_loss


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def _sym_reference(q, k, tau, c):
    q, k = _unit(q).tolist(), _unit(k).tolist()
    total = 0.0
    for i in range(len(q)):
        s = [sum(a * b for a, b in zip(q[i], k[j], strict=True)) / tau for j in range(len(k))]
        pos = s[i]
        negs = sum(math.exp(c * s[j]) for j in range(len(k)) if j != i)
        total += -math.exp(c * pos) / c + math.log(math.exp(c * pos) + negs) / c
    return total / len(q)


@pytest.mark.parametrize("tau,c", [(0.1, 0.1), (0.2, 0.5), (1.0, 1.0)])
def test_sym_loss_matches_loop_reference(tau, c):
    q, k = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    assert sym_loss(q, k, tau, c).item() == pytest.approx(_sym_reference(q, k, tau, c), rel=1e-10)


def test_sym_loss_collapsed_embeddings_analytic():
    b, tau, c = 16, 0.1, 0.1
    z = torch.ones(b, 8, dtype=torch.float64)
    expected = -math.exp(c / tau) / c + 1 / tau + math.log(b) / c
    assert sym_loss(z, z, tau, c).item() == pytest.approx(expected, rel=1e-12)


def test_sym_loss_prefers_matched_pairs():
    z = torch.randn(32, 16)
    assert sym_loss(z, z) < sym_loss(z, z[torch.randperm(32)])


def test_infonce_matches_loop_reference_and_log2():
    q, p, n = (torch.randn(6, 4, dtype=torch.float64) for _ in range(3))
    ref = 0.0
    for i in range(6):
        sp = float(_unit(q[i]) @ _unit(p[i])) / 0.1
        sn = float(_unit(q[i]) @ _unit(n[i])) / 0.1
        ref += -math.log(math.exp(sp) / (math.exp(sp) + math.exp(sn)))
    assert noise_infonce_loss(q, p, n, 0.1).item() == pytest.approx(ref / 6, rel=1e-10)
    assert noise_infonce_loss(q, p, p, 0.1).item() == pytest.approx(math.log(2), rel=1e-12)
    assert noise_infonce_loss(q, q, -q, 0.1).item() < 1e-8


def _sinkhorn_reference(cost, eps, n_iter):
    """Classic (scaling) Sinkhorn with explicit loops, float64 numpy; fine at moderate ε."""
    n, m = cost.shape
    kmat = np.exp(-cost / eps)
    u, v = np.ones(n), np.ones(m)
    for _ in range(n_iter):
        for i in range(n):
            u[i] = (1.0 / n) / sum(kmat[i, j] * v[j] for j in range(m))
        for j in range(m):
            v[j] = (1.0 / m) / sum(kmat[i, j] * u[i] for i in range(n))
    return u[:, None] * kmat * v[None, :]


def test_sinkhorn_plan_matches_scaling_reference():
    cost = torch.rand(6, 6, dtype=torch.float64) * 2
    plan = sinkhorn_plan(cost, epsilon=0.3, n_iter=200)
    ref = _sinkhorn_reference(cost.numpy(), 0.3, 200)
    assert np.allclose(plan.numpy(), ref, atol=1e-12)
    assert torch.allclose(plan.sum(0), torch.full((6,), 1 / 6, dtype=torch.float64))


def test_sinkhorn_analytic_translation_and_permutation():
    z = torch.randn(16, 3, dtype=torch.float64) * 3
    shift = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    loss = sinkhorn_wasserstein_loss(z, z + shift, epsilon=0.01, n_iter=500, normalize=False)
    assert loss.item() == pytest.approx(float(shift.pow(2).sum()), rel=1e-3)
    perm = torch.randperm(16)
    loss = sinkhorn_wasserstein_loss(z, z[perm], epsilon=0.01, n_iter=500, normalize=False)
    assert loss.item() < 1e-6


@pytest.mark.parametrize("eps", [0.05, 0.01])
def test_sinkhorn_gradient_finite_at_configured_eps(eps):
    z = torch.randn(64, 32, requires_grad=True)
    zp = torch.randn(64, 32, requires_grad=True)
    z_same = z.detach().clone().requires_grad_(True)
    loss = sinkhorn_wasserstein_loss(z, zp, epsilon=eps) + sinkhorn_wasserstein_loss(
        z_same, z_same.detach().clone(), epsilon=eps)
    loss.backward()
    for t in (z, zp, z_same):
        assert torch.isfinite(t.grad).all()
    assert z.grad.abs().sum() > 0


def test_rince_matches_loop_reference_and_collapsed_value():
    from cryoframe.train.losses_sym import rince_loss

    q, k = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    qa, ka = _unit(q).tolist(), _unit(k).tolist()
    ref = 0.0
    for i in range(5):
        s = [sum(a * b for a, b in zip(qa[i], ka[j], strict=True)) / 0.2 for j in range(5)]
        ref += -math.exp(0.5 * s[i]) / 0.5 + (0.01 * sum(math.exp(v) for v in s)) ** 0.5 / 0.5
    assert rince_loss(q, k, 0.2, 0.5, 0.01).item() == pytest.approx(ref / 5, rel=1e-10)
    z = torch.ones(8, 4, dtype=torch.float64)
    collapsed = -math.exp(0.5 / 0.1) / 0.5 + (0.01 * 8 * math.exp(1 / 0.1)) ** 0.5 / 0.5
    assert rince_loss(z, z, 0.1, 0.5, 0.01).item() == pytest.approx(collapsed, rel=1e-12)
    # unlike eq. 9 at small c, spreading the negatives lowers the loss below collapse
    spread = torch.eye(8, dtype=torch.float64)
    assert rince_loss(spread, spread, 0.1, 0.5, 0.01) < rince_loss(z, z, 0.1, 0.5, 0.01)
