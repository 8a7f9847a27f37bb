"""Every ``torch.load`` in the package refuses pickled code (``weights_only=True``)."""

from __future__ import annotations

import ast
from pathlib import Path

import cryoframe

SRC = Path(cryoframe.__file__).parent


def _torch_load_calls():
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"):
                yield path, node


def test_every_torch_load_is_weights_only():
    calls = list(_torch_load_calls())
    # the scan sees the package's loaders (few since issue 16: models.pretrained.read_weights and
    # train.checkpoint.load_state serve most readers)
    assert len(calls) >= 5
    assert any(p.name == "checkpoint.py" for p, _ in calls)
    bad = []
    for path, node in calls:
        kw = {k.arg: k.value for k in node.keywords}
        v = kw.get("weights_only")
        if not (isinstance(v, ast.Constant) and v.value is True):
            bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not bad, bad


def test_no_weights_only_false_in_source():
    hits = [p for p in SRC.rglob("*.py") if "weights_only=False" in p.read_text(encoding="utf-8")]
    assert not hits, hits
