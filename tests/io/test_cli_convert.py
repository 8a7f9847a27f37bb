"""``cryoframe convert``: STAR → tbl → STAR keeps poses; bad input exits non-zero in one line."""

from __future__ import annotations

import numpy as np
import torch

from cryoframe.cli.main import main
from cryoframe.io.dynamo import read_tbl
from cryoframe.io.star import poses_from_particles, read_particles

WARP = "particles/warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12.star"


def test_convert_roundtrip(data_dir, tmp_path, capsys):
    src = data_dir / WARP
    assert main(["convert", str(src), str(tmp_path / "p.tbl")]) == 0
    assert "wrote 40 particles" in capsys.readouterr().out
    tbl = read_tbl(tmp_path / "p.tbl")
    assert len(tbl) == 40 and np.allclose(tbl["apix"], 1.667)
    assert (tmp_path / "p.doc").read_text().splitlines()[0] == "1 Unt_083.tomostar"
    assert main(["convert", str(tmp_path / "p.tbl"), str(tmp_path / "back.star")]) == 0
    a, b = read_particles(src), read_particles(tmp_path / "back.star")
    ra, sa = poses_from_particles(a)
    rb, sb = poses_from_particles(b)
    assert torch.allclose(ra, rb, atol=1e-9) and torch.allclose(sa, sb, atol=1e-9)
    for col in ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"):
        assert np.allclose(a.particles[col], b.particles[col], atol=1e-6)
    assert b.particles["rlnTomoName"].tolist() == a.particles["rlnTomoName"].tolist()


def test_convert_pixel_size_option(data_dir, tmp_path):
    out = tmp_path / "d.star"
    assert main(["convert", str(data_dir / "dynamo/t_double.tbl"), str(out),
                 "--pixel-size", "3.5"]) == 0
    p = read_particles(out)
    assert np.allclose(p.particles["rlnTomoTiltSeriesPixelSize"], 3.5)
    assert np.allclose(p.particles["rlnOriginXAngst"], -3.5 * read_tbl(
        data_dir / "dynamo/t_double.tbl")["dx"])


def test_convert_bad_input_one_line(data_dir, tmp_path, capsys):
    code = main(["convert", str(data_dir / "dynamo/t_double.tbl"), str(tmp_path / "o.star")])
    err = capsys.readouterr().err
    assert code != 0 and "apix" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.star").exists()
    code = main(["convert", str(data_dir / "particles/relion31/relion31.star"),
                 str(tmp_path / "o.tbl")])
    assert code != 0 and "rlnCoordinateZ" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "a.txt"), str(tmp_path / "o.tbl")]) != 0
