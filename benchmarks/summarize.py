"""Print the committed benchmark results as a Markdown table (pasted into the README).

Usage: ``python benchmarks/summarize.py``. Reads ``benchmarks/results/*.json``; every value is
what the suite measured (``missing`` where a figure was not measured).
"""

from __future__ import annotations

import json
from pathlib import Path


def _fmt(v) -> str:
    if v is None:
        return "missing"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def main() -> None:
    root = Path(__file__).parent / "results"
    for path in sorted(root.glob("*.json")):
        d = json.loads(path.read_text())
        units = d.get("units", {})
        print(f"**{d['suite']}** — commit `{d['git_commit'][:12]}`, seed {d['seed']}, "
              f"{'quick' if d['quick'] else 'full'}, {d.get('wall_time_s', 0):.0f} s\n")
        print("| metric | value | unit |\n| --- | --- | --- |")
        for k, v in d["metrics"].items():
            print(f"| `{k}` | {_fmt(v)} | {units.get(k, '')} |")
        refs = d.get("references") or {}
        if refs:
            print(f"\nPaper, on its own data (context only): "
                  + "; ".join(f"{k} = {_fmt(v)}" for k, v in refs.items()))
        print()


if __name__ == "__main__":
    main()
