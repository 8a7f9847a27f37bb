"""Forward model, CTF sign, RMSD, regularisers, graph and decoders of cryoframe.hetero."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoframe.geometry.rotations import random_rotations
from cryoframe.hetero.decoders import GCNDecoder, LatentTable, MLPDecoder, count_weights
from cryoframe.hetero.forward import ResidueForwardModel, gaussian_projection
from cryoframe.hetero.graph import build_backbone_graph
from cryoframe.hetero.images import ImagingConfig, ctf_stack
from cryoframe.hetero.losses import r0_centring, r1_bonds, r2_log_distance, warmup_factor
from cryoframe.hetero.poses import esl_weights
from cryoframe.hetero.rmsd import kabsch_rmsd


def _place(a, b, c, bond, angle_deg, torsion_deg):
    """NeRF: atom d with |cd| = bond, angle bcd, torsion abcd."""
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.stack([bc, np.cross(n, bc), n], axis=1)
    ang, tor = math.radians(angle_deg), math.radians(torsion_deg)
    d2 = np.array([-bond * math.cos(ang), bond * math.sin(ang) * math.cos(tor),
                   bond * math.sin(ang) * math.sin(tor)])
    return c + m @ d2


def ideal_helix(n_res: int, phi=-57.0, psi=-47.0, omega=180.0) -> np.ndarray:
    """`(n, 4, 3)` N, CA, C, O of an ideal α-helix from standard internal coordinates."""
    n_at = np.array([0.0, 0.0, 0.0])
    ca = np.array([1.458, 0.0, 0.0])
    c = ca + 1.525 * np.array([-math.cos(math.radians(111.2)), math.sin(math.radians(111.2)), 0])
    atoms = [[n_at, ca, c]]
    for _ in range(n_res - 1):
        n_prev, ca_prev, c_prev = atoms[-1]
        n1 = _place(n_prev, ca_prev, c_prev, 1.329, 116.2, psi)
        ca1 = _place(ca_prev, c_prev, n1, 1.458, 121.7, omega)
        c1 = _place(c_prev, n1, ca1, 1.525, 111.2, phi)
        atoms.append([n1, ca1, c1])
    out = []
    for i, (n_i, ca_i, c_i) in enumerate(atoms):
        o = _place(n_i, ca_i, c_i, 1.231, 120.5, psi + 180.0)
        out.append([n_i, ca_i, c_i, o])
    return np.asarray(out)


def test_helix_graph_has_i_to_i_plus_4_hbonds():
    bb = ideal_helix(16)
    ca = bb[:, 1]
    rise = np.linalg.norm(ca[4:] - ca[:-4], axis=1).mean()
    assert 5.5 < rise < 6.8  # α-helix: CA(i)–CA(i+4) ≈ 6.2 Å
    g = build_backbone_graph(bb)
    assert set(g.secondary_structure[1:-1]) <= {"H", "-"}
    assert g.secondary_structure.count("H") >= 10
    pairs = {tuple(p) for p in g.hbond_pairs.tolist()}
    for i in range(1, 11):  # C=O of i accepts from N-H of i+4
        assert (i, i + 4) in pairs
    assert all(j - i in (3, 4, 5) for i, j in pairs)
    edges = {tuple(e) for e in g.edge_index.T.tolist()}
    assert (2, 6) in edges and (6, 2) in edges and (0, 1) in edges
    # a fully extended strand alone has no backbone H-bonds: only peptide edges remain
    g2 = build_backbone_graph(ideal_helix(10, phi=-180.0, psi=180.0))
    assert len(g2.hbond_pairs) == 0 and g2.edge_index.shape[1] == 2 * 9


def test_gaussian_projection_matches_brute_force():
    gen = torch.Generator().manual_seed(1)
    coords = torch.randn(1, 5, 3, generator=gen, dtype=torch.float64) * 6
    rot = random_rotations(1, generator=gen, dtype=torch.float64)
    amp = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0], dtype=torch.float64)
    sig = torch.tensor([1.5, 2.0, 2.5, 3.0, 1.8], dtype=torch.float64)
    n, px = 20, 1.7
    img = gaussian_projection(coords, rot, amp, sig, n, px)[0].numpy()
    ref = np.zeros((n, n))
    c = coords[0].numpy() @ rot[0].numpy().T
    for iy in range(n):
        for ix in range(n):
            qy, qx = (iy - n // 2) * px, (ix - n // 2) * px
            for i in range(5):
                r2 = (qy - c[i, 1]) ** 2 + (qx - c[i, 2]) ** 2
                s2 = float(sig[i]) ** 2
                ref[iy, ix] += float(amp[i]) / (2 * math.pi * s2) * math.exp(-r2 / (2 * s2))
    np.testing.assert_allclose(img, ref, rtol=1e-10, atol=1e-12)
    # integral of the image = sum of amplitudes when the Gaussians are inside the box
    assert abs(img.sum() * px**2 - float(amp.sum())) < 0.02 * float(amp.sum())


def test_ctf_phase_flip_sign():
    """Underfocus: low-frequency contrast is negative, reversed between the 1st and 2nd zeros."""
    from cryoframe.fourier.ctf import first_zero_cycles_per_angstrom

    cfg = ImagingConfig(box_px=64, pixel_size_angstrom=2.0, amplitude_contrast=0.06)
    model = ResidueForwardModel([1.0], [2.0], cfg.box_px, cfg.pixel_size_angstrom)
    ctf = ctf_stack(cfg, torch.tensor([20000.0]))
    coords, rot = torch.zeros(1, 1, 3), torch.eye(3)[None]
    phase = model.phase(coords, rot)
    img = model(coords, rot, ctf)
    assert img[0, 32, 32] < 0 < phase[0, 32, 32]  # protein appears dark at this defocus
    # radial spectrum ratio image / phase follows 2·CTF, whose sign flips after the first zero
    ratio = torch.fft.rfft2(img[0]).real / torch.fft.rfft2(phase[0]).real
    k0 = first_zero_cycles_per_angstrom(20000.0, amplitude_contrast=0.06)
    ks = torch.fft.rfftfreq(64, d=2.0)
    low = int((ks < 0.6 * k0).nonzero().max())
    mid = int(((ks > 1.1 * k0) & (ks < 1.3 * k0)).nonzero().min())
    assert ratio[0, low] < 0 and ratio[0, mid] > 0


def test_rmsd_invariant_to_global_rotation_and_translation():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 50, 3, generator=gen, dtype=torch.float64) * 10
    y = x + torch.randn(4, 50, 3, generator=gen, dtype=torch.float64)
    base = kabsch_rmsd(x, y)
    r = random_rotations(4, generator=gen, dtype=torch.float64)
    moved = y @ r.transpose(-1, -2) + torch.tensor([3.0, -7.0, 11.0], dtype=torch.float64)
    torch.testing.assert_close(kabsch_rmsd(x, moved), base, rtol=1e-9, atol=1e-9)
    assert float(kabsch_rmsd(x, x @ r.transpose(-1, -2)).max()) < 1e-6
    # never below the true minimum: a pure reflection is not a rotation
    assert float(kabsch_rmsd(x[:1], x[:1] * torch.tensor([1.0, 1.0, -1.0]))) > 1.0
    # equals the plain RMSD when already superposed and centred
    xc = x[0] - x[0].mean(0)
    plain = ((xc - (xc + 0.5)) ** 2).sum(-1).mean().sqrt()
    assert abs(float(kabsch_rmsd(xc, xc + 0.5)) - 0.0) < 1e-9 and float(plain) > 0


def test_regularisers_zero_at_template_and_positive_off_it():
    gen = torch.Generator().manual_seed(3)
    x0 = torch.cumsum(torch.randn(30, 3, generator=gen), 0) * 2
    x = x0[None].clone()
    assert float(r1_bonds(x, x0)) == 0.0 and float(r2_log_distance(x, x0)) == 0.0
    rot = random_rotations(1, generator=gen)[0]
    assert float(r1_bonds(x @ rot.T, x0)) < 1e-8 and float(r2_log_distance(x @ rot.T, x0)) < 1e-8
    bent = x.clone()
    bent[0, 15:] += torch.tensor([0.0, 0.0, 3.0])
    assert float(r1_bonds(bent, x0)) > 0 and float(r2_log_distance(bent, x0)) > 0
    # R2 against a loop reference for a small case
    xs, x0s = bent[0, :6], x0[:6]
    ref = sum(math.exp(-0.25 * (j - i)) * math.log(float((xs[i] - xs[j]).norm())
                                                   / float((x0s[i] - x0s[j]).norm())) ** 2
              for i in range(6) for j in range(i + 1, 6))
    assert abs(float(r2_log_distance(xs[None], x0s)) - ref) < 1e-5
    full = sum(math.exp(-0.25 * (j - i)) * math.log(float((bent[0, i] - bent[0, j]).norm())
                                                    / float((x0[i] - x0[j]).norm())) ** 2
               for i in range(30) for j in range(i + 1, 30))
    assert abs(float(r2_log_distance(bent, x0, weight_cutoff=0.0)) - full) < 1e-4 * full
    assert float(r0_centring((x0 - x0.mean(0))[None])) < 1e-10
    assert warmup_factor(1) == pytest.approx(0.05) and warmup_factor(40) == 1.0


def test_decoders_paper_sizes_start_at_template_and_train():
    n = 214
    x0 = torch.randn(n, 3) * 10
    edges = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    edges = torch.cat([edges, edges.flip(0)], 1)
    gnn, mlp = GCNDecoder(x0, edges), MLPDecoder(x0)
    assert 33_000 < count_weights(gnn) < 37_000  # paper: 35k
    assert 27_000 < count_weights(mlp) < 31_000  # paper: 30k
    z = LatentTable(5)(torch.arange(5)).detach()
    with torch.no_grad():  # fast sparse propagation == GCNConv's own message passing
        for p in gnn.parameters():
            p.normal_(std=0.3)
        torch.testing.assert_close(gnn.displacements(z), gnn.displacements(z, pyg_propagate=True),
                                   rtol=1e-4, atol=1e-5)
        assert gnn.displacements(z).abs().max() > 0.1
    gnn = GCNDecoder(x0, edges)
    for dec in (gnn, mlp):
        out = dec(z)
        assert out.shape == (5, n, 3) and torch.equal(out, x0.expand(5, -1, -1))
        loss = (dec(z) - x0 - 1.0).pow(2).mean()
        loss.backward()
        first_trained = gnn.embed.weight if dec is gnn else mlp.out.weight
        assert first_trained.grad.abs().sum() > 0


def test_esl_weights_regularised_simplex():
    d = torch.tensor([[10.0, 11.0, 12.0, 13.0], [5.0, 5.0, 5.0, 5.0]])
    w = esl_weights(d, 2.0 / 3.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2))
    assert (w > 0).all() and w[0, 0] > w[0, 1] > w[0, 2] > w[0, 3]
    torch.testing.assert_close(w[1], torch.full((4,), 0.25))
    # ratio of best to worst is fixed by η: (1/η) / (1/η − 1) = 3 for η = 2/3
    assert float(w[0, 0] / w[0, 3]) == pytest.approx(3.0)


def test_gcn_decoder_conditioned_at_init():
    """Start at the template, gradients at once, bounded features through the 16 layers."""
    n = 214
    x0 = torch.randn(n, 3) * 10
    pairs = [(i, i + 1) for i in range(n - 1)] + [(i, i + 4) for i in range(10, 60)]
    edges = torch.tensor(pairs).T
    edges = torch.cat([edges, edges.flip(0)], 1)
    torch.manual_seed(0)
    gnn, mlp = GCNDecoder(x0, edges), MLPDecoder(x0)
    z = LatentTable(32)(torch.arange(32)).detach()
    for dec in (gnn, mlp):
        with torch.no_grad():
            assert float(dec.displacements(z).abs().max()) == 0.0
        loss = (dec(z) - x0 - 1.0).pow(2).mean()
        loss.backward()
        assert dec.out.bias.grad.abs().sum() > 0
    assert gnn.embed.weight.grad.abs().min() > 0  # every residue's embedding moves at step 1
    with torch.no_grad():  # features once the embedding is non-zero: bounded with the gains
        gnn.embed.reset_parameters()  # as initialised (0), growing ≈100x with plain residuals
        norms = torch.stack([h.norm(dim=-1).mean() for h in gnn.node_features(z)])
        assert float(norms.max() / norms.min()) < 10.0
        gnn.gain.fill_(1.0)  # the plain residual X + ReLU(GCN(X)): features pile up
        norms = torch.stack([h.norm(dim=-1).mean() for h in gnn.node_features(z)])
        assert float(norms.max() / norms.min()) > 10.0
    gnn = GCNDecoder(x0, edges)
    opt = torch.optim.Adam(gnn.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss = (gnn(z) - x0 - 1.0).pow(2).mean()
        loss.backward()
        opt.step()
    assert gnn.gain.grad.abs().min() > 0 and loss.item() < 1.0


def test_checkpoint_of_another_layout_is_a_clear_input_error(tmp_path):
    from cryoframe import InputError
    from cryoframe.hetero.decoders import load_decoder_state, make_decoder

    template = torch.randn(12, 3) * 10
    edges = torch.tensor([[i, i + 1] for i in range(11)] + [[i + 1, i] for i in range(11)]).T
    gnn = make_decoder("gnn", template, edges)
    state = {"decoder": {k: v for k, v in gnn.state_dict().items() if "gain" not in k}}
    with pytest.raises(InputError, match="decoder weights do not match"):
        load_decoder_state(gnn, state, tmp_path / "checkpoint.pt")
    load_decoder_state(gnn, {"decoder": gnn.state_dict()}, tmp_path / "checkpoint.pt")
