"""The shipped CPU particle encoder and ranker: provenance, size, default use on real data."""

from __future__ import annotations

import numpy as np
import pytest

from cryoframe.cli.main import main
from cryoframe.data import PARTICLE_BENCHMARK_DENSITIES, PARTICLE_PRETRAIN_DENSITIES
from cryoframe.models.pretrained import (
    SHIPPED_PARTICLE,
    load_particle_encoder,
    read_particle_checkpoint,
    shipped_path,
)
from cryoframe.particles.rank import SCORE_COLUMN, load_ranker

pytestmark = pytest.mark.skipif(not shipped_path(SHIPPED_PARTICLE["encoder"]).exists()
                                or not shipped_path(SHIPPED_PARTICLE["ranker"]).exists(),
                                reason="shipped particle weights not present")


def test_provenance_excludes_benchmark_structures():
    for kind in ("encoder", "ranker"):
        ckpt = read_particle_checkpoint(None, kind)
        assert shipped_path(SHIPPED_PARTICLE[kind]).stat().st_size < 5e6
        dens = set(ckpt["meta"]["densities"])
        assert dens == set(PARTICLE_PRETRAIN_DENSITIES)
        assert not dens & set(PARTICLE_BENCHMARK_DENSITIES)
    assert load_particle_encoder().img_size == 64
    assert load_ranker().encoder.embed_dim == load_particle_encoder().embed_dim


def test_default_weights_rank_and_embed_real_particles(data_dir, tmp_path):
    from cryoframe.io.star import read_particles

    star = data_dir / "particles" / "empiar_10076_7" / "empiar_10076_7.star"
    out = tmp_path / "ranked.star"
    assert main(["rank", str(star), "--out", str(out)]) == 0
    s = read_particles(out).particles[SCORE_COLUMN].to_numpy()
    assert len(s) == 7 and np.all(np.isfinite(s)) and np.all(np.diff(s) <= 0)
    feats = tmp_path / "f.npy"
    assert main(["particles", "embed", str(star), "--out", str(feats)]) == 0
    f = np.load(feats)
    assert f.shape == (7, load_particle_encoder().embed_dim) and np.isfinite(f).all()
    assert np.linalg.matrix_rank(f) > 1  # not a constant embedding
