"""MoCo v3 wrapper and 2D augmentations."""

from __future__ import annotations

import math

import torch

from cryoframe.models.vit2d import create_vit2d
from cryoframe.train.augment2d import ParticleAugment, two_views
from cryoframe.train.moco import MoCoV3, build_mlp


def test_mlp_structure():
    proj = build_mlp(3, 128, 64, 32)
    kinds = [type(m).__name__ for m in proj]
    assert kinds.count("Linear") == 3 and kinds.count("BatchNorm1d") == 3
    assert not proj[-1].affine  # last BN without affine parameters


def test_moco_step_updates_online_and_momentum():
    torch.manual_seed(0)
    model = MoCoV3(create_vit2d(depth=1), 128, proj_dim=32, mlp_dim=64, temperature=0.5)
    x = torch.randn(8, 1, 64, 64)
    v1, v2 = two_views(x, torch.Generator().manual_seed(0))
    before = [p.clone() for p in model.momentum_backbone.parameters()]
    out = model(v1, v2)
    assert torch.isfinite(out["loss"]) and 0 < float(out["loss"].detach()) < 2 * 2 * 0.5 * math.log(8) * 3
    out["loss"].backward()
    assert all(p.grad is None for p in model.momentum_backbone.parameters())
    assert model.predictor[0].weight.grad is not None
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    opt.step()
    model.update_momentum(0.9)
    moved = [float((a - b).abs().max()) for a, b in
             zip(before, model.momentum_backbone.parameters())]
    assert max(moved) > 0


def test_rotation_only_augment_is_a_rotation():
    aug = ParticleAugment(crop_scale=(1.0, 1.0), jitter_p=0.0, blur_p=0.0, rotate=True)
    yy, xx = torch.meshgrid(torch.arange(64.0) - 32, torch.arange(64.0) - 32, indexing="ij")
    disc = ((yy ** 2 + xx ** 2) < 15 ** 2).float()[None, None].repeat(4, 1, 1, 1)
    out = aug(disc, torch.Generator().manual_seed(0))
    assert out.shape == disc.shape
    # a centred disc is rotation invariant
    assert (out - disc).abs().mean() < 0.02


def test_augment_properties():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 1, 64, 64, generator=g)
    a1 = ParticleAugment()(x, torch.Generator().manual_seed(1))
    a2 = ParticleAugment()(x, torch.Generator().manual_seed(1))
    assert torch.equal(a1, a2) and a1.shape == x.shape and torch.isfinite(a1).all()
    blur = ParticleAugment(crop_scale=(1, 1), rotate=False, jitter_p=0, blur_p=1,
                           blur_sigma_px=(2.0, 2.0))(x)
    assert blur.std() < 0.5 * x.std()  # white noise loses most of its power
    sol = ParticleAugment(crop_scale=(1, 1), rotate=False, jitter_p=0, blur_p=0, solarize_p=1)(x)
    m = x.mean(dim=(-2, -1), keepdim=True)
    assert (sol <= m + 1e-6).all()  # values above the mean are reflected below it


def test_pretrain_from_an_earlier_encoder(tmp_path):
    import pytest

    from cryoframe import InputError
    from cryoframe.models.pretrained import PARTICLE_ENCODER_FORMAT, save_particle_checkpoint
    from cryoframe.train.particle_loop import ParticlePretrainConfig, pretrain_moco

    torch.manual_seed(1)
    start = create_vit2d()
    with torch.no_grad():
        start.cls_token.fill_(0.25)  # a mark no fresh initialisation produces
    init = save_particle_checkpoint(tmp_path / "enc.pt", start, PARTICLE_ENCODER_FORMAT, {})
    cfg = ParticlePretrainConfig(steps=1, batch_size=8, mlp_dim=64, proj_dim=32, lr=0.0)
    images = torch.randn(16, 64, 64)
    enc, hist = pretrain_moco(images, cfg, tmp_path / "ckpt.pt", init_encoder=init)
    assert hist["steps_done"] == 1
    for (name, a), b in zip(start.state_dict().items(), enc.state_dict().values()):
        assert torch.equal(a, b), name  # lr 0: still the initial encoder
    with pytest.raises(InputError, match="'init_encoder': weights file not found"):
        pretrain_moco(images, cfg, tmp_path / "other.pt", init_encoder=tmp_path / "none.pt")
