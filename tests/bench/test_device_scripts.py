"""The GPU-scale scripts of ``benchmarks/device/`` run end to end at toy size on the CPU."""

import os
import subprocess
from pathlib import Path

import pytest

from cryoframe.models.pretrained import load_encoder_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_encoder_pretrain_script_at_toy_size(tmp_path):
    env = {**os.environ, "TOY": "1", "DEVICE": "cpu", "OUT": str(tmp_path)}
    subprocess.run(["bash", str(ROOT / "benchmarks/device/encoder_pretrain.sh")], env=env,
                   check=True, timeout=900, cwd=ROOT)
    enc, meta = load_encoder_file(tmp_path / "encoder.pt")
    assert meta["steps"] == 3 and (tmp_path / "log.csv").exists()
