"""The demo pipeline end to end (slow: a few minutes on 2 cores)."""

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_quick_demo_writes_consistent_outputs(tmp_path):
    from cryoframe.demo import run_demo
    from cryoframe.fourier.fsc import fsc
    from cryoframe.geometry.euler import relion_euler_to_matrix
    from cryoframe.io.mrc import read_mrc
    from cryoframe.io.star import read_star

    report = run_demo(tmp_path, seed=0, quick=True)
    text = report.read_text()
    for title in ["1. Densities", "2. Full CryoEngine path", "Embedding", "5. Alignment",
                  "6. Reference-free"]:
        assert title in text
    # exported subtomograms: STAR angles are the extraction poses, files are 32³ maps
    blocks = read_star(tmp_path / "subtomograms" / "subtomograms.star")
    df = next(iter(blocks.values()))
    assert len(df) >= 5
    R = relion_euler_to_matrix(torch.as_tensor(df["rlnAngleRot"].to_numpy()),
                               torch.as_tensor(df["rlnAngleTilt"].to_numpy()),
                               torch.as_tensor(df["rlnAnglePsi"].to_numpy()))
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=R.dtype).expand_as(R),
                          atol=1e-6)
    v = read_mrc(tmp_path / "subtomograms" / df["rlnImageName"].iloc[0])
    assert v.data.shape == (32, 32, 32) and np.isfinite(v.data).all()
    # half maps correlate at low resolution (the same particle class was averaged)
    h1 = torch.as_tensor(read_mrc(tmp_path / "average" / "half1.mrc").data)
    h2 = torch.as_tensor(read_mrc(tmp_path / "average" / "half2.mrc").data)
    _, curve = fsc(h1, h2)
    assert float(curve[1:4].mean()) > 0.5
