"""Particle stacks (real EMPIAR-10076 and RELION 3.1 samples), preparation, and the rank /
embed / cluster / simulate commands end to end (with a small random checkpoint, so the test does
not depend on the shipped weights)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cryoframe.cli.main import main
from cryoframe.io.star import read_particles
from cryoframe.models.pretrained import (
    PARTICLE_ENCODER_FORMAT,
    PARTICLE_RANKER_FORMAT,
    save_particle_checkpoint,
)
from cryoframe.models.vit2d import ParticleRanker, create_vit2d
from cryoframe.particles.cluster import knn_split_accuracy
from cryoframe.particles.rank import SCORE_COLUMN
from cryoframe.particles.stack import (
    central_contrast,
    contrast_sign,
    iter_particle_batches,
    load_prepared_particles,
    prepare_images,
    read_particle_table,
)

EMPIAR = ("particles", "empiar_10076_7", "empiar_10076_7.star")
RELION31 = ("particles", "relion31", "relion31.star")
SMALL = dict(img_size=64, patch_size=8, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    enc = create_vit2d(**SMALL)
    rk = ParticleRanker(enc)
    e = save_particle_checkpoint(d / "enc.pt", enc, PARTICLE_ENCODER_FORMAT, SMALL)
    r = save_particle_checkpoint(d / "rank.pt", rk, PARTICLE_RANKER_FORMAT, SMALL)
    return e, r


def test_real_stacks_read_and_prepare(data_dir):
    imgs, table = load_prepared_particles(data_dir.joinpath(*EMPIAR))
    assert imgs.shape == (7, 64, 64) and torch.isfinite(imgs).all()
    batch = next(iter_particle_batches(table, 16))
    # 320 px at 5 µm / 38168 = 1.31 Å, cropped to 64 px
    assert np.allclose(batch.pixel_size_angstrom, 5e4 / 38168 * 320 / 64)
    # EMPIAR-10076 ribosomes are dark on a light background: detected and inverted
    assert contrast_sign(table) == -1.0
    assert central_contrast(imgs) > 0
    imgs31, t31 = load_prepared_particles(data_dir.joinpath(*RELION31))
    assert imgs31.shape == (5, 64, 64) and t31.version == "3.1+"
    assert np.allclose(next(iter_particle_batches(t31, 8)).pixel_size_angstrom, 2.806 * 4)


def test_background_ring_normalisation_and_crop():
    g = torch.Generator().manual_seed(0)
    x = 5.0 + 3.0 * torch.randn(4, 128, 128, generator=g)
    out, pix = prepare_images(x, 1.5, 64)
    c = torch.arange(64) - 32
    ring = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2).float() > 0.75 * 32
    assert torch.allclose(out[:, ring].mean(-1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out[:, ring].std(-1), torch.ones(4), atol=1e-4)
    assert np.allclose(pix, 3.0)


def test_phase_flip_gives_abs_ctf():
    """White-protein image = −CTF ⊗ x; flipping by sign(−CTF) leaves |CTF| ⊗ x.

    Astigmatism axes at 0° / 90° keep the CTF Hermitian on the rfft Nyquist column, so the
    identity is exact.
    """
    from cryoframe.fourier.ctf import ctf_2d

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 64, 64, generator=g)
    du = torch.tensor([15000.0, 20000.0, 25000.0])
    ctf = ctf_2d((64, 64), 2.0, du, du - 300, torch.tensor([0.0, 90.0, 0.0]), rfft=True)
    img = torch.fft.irfft2(torch.fft.rfft2(x) * (-ctf), s=(64, 64))
    expected = torch.fft.irfft2(torch.fft.rfft2(x) * ctf.abs(), s=(64, 64))
    params = {"defocus_u_angstrom": du.numpy(), "defocus_v_angstrom": (du - 300).numpy(),
              "defocus_angle_deg": np.array([0.0, 90.0, 0.0]), "voltage_kv": np.full(3, 300.0),
              "cs_mm": np.full(3, 2.7), "amplitude_contrast": np.full(3, 0.1),
              "phase_shift_deg": np.zeros(3)}
    flipped, _ = prepare_images(img, 2.0, 64, True, params)
    plain, _ = prepare_images(img, 2.0, 64)
    target, _ = prepare_images(expected, 2.0, 64)
    assert torch.allclose(flipped, target, atol=1e-3)
    assert (plain - target).abs().max() > 0.5


def test_rank_cli_on_real_data(data_dir, tmp_path, checkpoints):
    _, rk = checkpoints
    for parts in (EMPIAR, RELION31):
        src = data_dir.joinpath(*parts)
        out = tmp_path / f"{src.stem}_ranked.star"
        assert main(["rank", str(src), "--out", str(out), "--weights", str(rk)]) == 0
        table = read_particles(out)
        orig = read_particles(src)
        assert len(table) == len(orig)
        s = table.particles[SCORE_COLUMN].to_numpy()
        assert np.all((s >= 0) & (s <= 1)) and np.all(np.diff(s) <= 0)  # sorted, best first
        assert sorted(table.particles["rlnImageName"]) == sorted(orig.particles["rlnImageName"])
        if orig.optics is not None:  # optics group survives
            assert table.optics is not None and len(table.optics) == len(orig.optics)
        png = out.with_name(f"{out.stem}_scores.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embed_cli_and_order(data_dir, tmp_path, checkpoints):
    enc, _ = checkpoints
    src = data_dir.joinpath(*RELION31)
    out = tmp_path / "f.npy"
    assert main(["particles", "embed", str(src), "--out", str(out), "--weights", str(enc)]) == 0
    feats = np.load(out)
    assert feats.shape == (5, 32) and np.isfinite(feats).all()
    # a STAR listing the same particles in reverse order gives the features in reverse order
    table = read_particles(src)
    table.particles = table.particles.iloc[::-1].reset_index(drop=True)
    from cryoframe.io.star import write_particles

    shutil.copy(src.with_suffix(".mrcs"), tmp_path / "relion31.mrcs")
    write_particles(tmp_path / "rev.star", table)
    assert main(["particles", "embed", str(tmp_path / "rev.star"), "--out",
                 str(tmp_path / "r.npy"), "--weights", str(enc), "--contrast", "white"]) == 0
    assert main(["particles", "embed", str(src), "--out", str(tmp_path / "w.npy"),
                 "--weights", str(enc), "--contrast", "white"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), np.load(tmp_path / "w.npy")[::-1],
                               atol=1e-5)


def test_cluster_and_simulate_cli(data_dir, tmp_path, checkpoints):
    enc, _ = checkpoints
    out = tmp_path / "sim.star"
    assert main(["particles", "simulate", "3QM1", "--out", str(out), "--n", "12",
                 "--snr", "1.0", "--seed", "1"]) == 0
    table = read_particle_table(out)
    assert len(table) == 12 and (tmp_path / "sim.mrcs").exists()
    cl = tmp_path / "cl.star"
    assert main(["particles", "cluster", str(out), "-k", "3", "--out", str(cl),
                 "--weights", str(enc)]) == 0
    labels = read_particles(cl).particles["rlnClassNumber"].to_numpy()
    assert set(labels) <= {1, 2, 3} and len(labels) == 12


def test_bad_inputs_give_one_line_errors(data_dir, tmp_path, checkpoints):
    enc, rk = checkpoints
    src = data_dir.joinpath(*RELION31)
    assert main(["rank", str(src), "--weights", str(enc), "--out", str(tmp_path / "x.star")]) == 2
    assert main(["rank", str(tmp_path / "missing.star")]) != 0
    assert main(["particles", "cluster", str(src), "-k", "9", "--weights", str(enc)]) == 2


def test_knn_accuracy_separable_and_random():
    g = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    centres = g.normal(size=(4, 16)) * 5
    x = centres[y] + g.normal(size=(200, 16))
    assert knn_split_accuracy(x, y) == 100.0
    assert knn_split_accuracy(g.normal(size=(200, 16)), y) < 45.0


def test_int8_ranker_close_to_fp32(checkpoints, data_dir, tmp_path):
    from cryoframe.particles.rank import load_ranker, score_images

    _, rk = checkpoints
    imgs, _ = load_prepared_particles(data_dir.joinpath(*EMPIAR))
    a = score_images(load_ranker(rk), imgs)
    b = score_images(load_ranker(rk, int8=True), imgs)
    assert np.abs(a - b).max() < 0.05
    out = tmp_path / "r.star"
    assert main(["rank", str(data_dir.joinpath(*EMPIAR)), "--out", str(out), "--weights", str(rk),
                 "--int8"]) == 0
