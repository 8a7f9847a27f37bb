import json

from cryoframe.cli.main import main
from cryoframe.io.store import SubtomoStore


def test_simulate_subtomograms_cli_resumes_and_exports(tmp_path):
    from cryoframe.data import map_path

    maps = [str(map_path("1BXN")), str(map_path("3QM1"))]  # bundled 10 Å maps enter directly
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"structures: ['{maps[0]}', '{maps[1]}']\nn_per_class: 12\npath: fast\n"
                   "unit_size: 8\nfast:\n  tilt_min_deg: -50\n  tilt_max_deg: 50\n")
    out = tmp_path / "s.zarr"
    args = ["simulate", "subtomograms", "--out", str(out), "--config", str(cfg), "--seed", "5"]
    assert main(args + ["--shard", "1/2"]) == 0
    assert SubtomoStore(out).done_units() == [1]
    assert main(args + ["--export", str(tmp_path / "exp"), "--export-snr", "0.1"]) == 0
    store = SubtomoStore(out)
    t = store.read_table()
    assert t["index"].tolist() == list(range(24))
    assert t["class_name"].tolist() == [maps[0]] * 12 + [maps[1]] * 12
    rec = json.loads((tmp_path / "s.zarr.config.json").read_text())
    assert rec["config"]["fast"]["tilt_max_deg"] == 50 and rec["config"]["seed"] == 5
    star = (tmp_path / "exp" / "particles.star").read_text()
    assert star.count("subtomograms/subtomo_") == 24
    from cryoframe.io.mrc import read_mrc

    noisy = read_mrc(tmp_path / "exp" / "subtomograms" / "subtomo_0000003.mrc").data
    clean = store.group["volumes"][3]
    snr = clean.var() / (noisy - clean).var()
    assert abs(snr / 0.1 - 1) < 0.01


def test_bad_config_is_one_line_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("n_per_class: -3\n")
    assert main(["simulate", "subtomograms", "--out", str(tmp_path / "x.zarr"), "--config",
                 str(cfg)]) == 2
    assert "n_per_class" in capsys.readouterr().err
