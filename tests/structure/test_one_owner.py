"""The house rules of issue #16, checked on the source tree (no imports of the package needed).

- One owner per concept: no two modules define a public top-level function or class of the same
  name, except the protocol names listed in :data:`SAME_NAME_ALLOWED` (same role, one per module).
- The import graph is visible: at most 20 % of cryoframe's internal imports sit inside functions.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "cryoframe"

#: Names that every module of a kind defines on purpose (one role, one per module).
SAME_NAME_ALLOWED = {
    "run": "the entry point of every benchmark suite (cryoframe.bench.<suite>.run)",
    "register": "every CLI module adds its commands to the app (cryoframe.cli.<command>.register)",
    "write_report": "report.html renders any report; recon.wizard writes the wizard's own page",
}

MAX_IMPORTS_IN_FUNCTIONS = 0.20


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        yield ".".join(parts), ast.parse(path.read_text(encoding="utf-8"))


def _is_internal(node: ast.AST) -> int:
    if isinstance(node, ast.ImportFrom):
        return int(node.level > 0 or (node.module or "").startswith("cryoframe"))
    if isinstance(node, ast.Import):
        return sum(a.name.startswith("cryoframe") for a in node.names)
    return 0


def internal_import_counts() -> tuple[int, int]:
    """``(all internal imports, those inside a function)`` over the package."""
    total = inside = 0
    for _, tree in _modules():
        stack = [(tree, False)]
        while stack:
            node, in_fn = stack.pop()
            n = _is_internal(node)
            total += n
            inside += n if in_fn else 0
            for child in ast.iter_child_nodes(node):
                stack.append((child, in_fn or isinstance(node, (ast.FunctionDef,
                                                                ast.AsyncFunctionDef))))
    return total, inside


def public_definitions() -> dict[str, list[str]]:
    """Public top-level function/class name → modules defining it."""
    defs: dict[str, list[str]] = collections.defaultdict(list)
    for mod, tree in _modules():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                    not node.name.startswith("_"):
                defs[node.name].append(mod)
    return defs


def test_no_public_name_is_defined_twice():
    twice = {name: mods for name, mods in public_definitions().items()
             if len(mods) > 1 and name not in SAME_NAME_ALLOWED}
    assert not twice, f"same name, several owners: {twice}"


def test_allowlist_is_not_stale():
    defs = public_definitions()
    assert all(len(defs.get(name, [])) > 1 for name in SAME_NAME_ALLOWED)


def test_most_internal_imports_are_at_module_top():
    total, inside = internal_import_counts()
    assert total > 100
    assert inside / total <= MAX_IMPORTS_IN_FUNCTIONS, f"{inside}/{total} inside functions"


def test_ruff_clean():
    """The package passes the ruff rules of pyproject.toml (docstrings included)."""
    import importlib.util
    import subprocess
    import sys

    import pytest

    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e .[test])")
    res = subprocess.run([sys.executable, "-m", "ruff", "check", str(SRC)], capture_output=True,
                         text=True, cwd=SRC.parents[1])
    assert res.returncode == 0, res.stdout[-2000:]
