"""Print the committed benchmark results as Markdown (pasted into the README).

Usage: ``python benchmarks/summarize.py``. Reads ``benchmarks/results/*.json``; every value is
what the suite measured (``missing`` where a figure was not measured). Metrics named
``<name>_snr<s>`` are shown as one row per name and one column per SNR; plots committed next
to a result (``<suite>*.png``, dashes written as underscores) are linked below its table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_SNR = re.compile(r"^(?P<name>.+)_snr(?P<snr>[0-9.]+)$")


def _fmt(v) -> str:
    if v is None:
        return "missing"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _tables(metrics: dict, units: dict) -> list[str]:
    plain, by_snr, snrs = [], {}, []
    for k, v in metrics.items():
        m = _SNR.match(k)
        if m is None:
            plain.append(f"| `{k}` | {_fmt(v)} | {units.get(k, '')} |")
            continue
        by_snr.setdefault(m["name"], {})[m["snr"]] = (v, units.get(k, ""))
        if m["snr"] not in snrs:
            snrs.append(m["snr"])
    out = []
    if by_snr:
        snrs.sort(key=float, reverse=True)
        out.append("| metric | unit | " + " | ".join(f"SNR {s}" for s in snrs) + " |")
        out.append("| --- | --- | " + " | ".join("---" for _ in snrs) + " |")
        for name, row in by_snr.items():
            unit = next(iter(row.values()))[1]
            cells = [_fmt(row[s][0]) if s in row else "—" for s in snrs]
            out.append(f"| `{name}` | {unit} | " + " | ".join(cells) + " |")
    if plain:
        if out:
            out.append("")
        out += ["| metric | value | unit |", "| --- | --- | --- |", *plain]
    return out


def main() -> None:
    root = Path(__file__).parent / "results"
    for path in sorted(root.glob("*.json")):
        d = json.loads(path.read_text())
        print(f"**{d['suite']}** — commit `{d['git_commit'][:12]}`, seed {d['seed']}, "
              f"{'quick' if d['quick'] else 'full'}, {d.get('wall_time_s', 0):.0f} s\n")
        print("\n".join(_tables(d["metrics"], d.get("units", {}))))
        refs = d.get("references") or {}
        if refs:
            print(f"\nPaper, on its own data (context only): "
                  + "; ".join(f"{k} = {_fmt(v)}" for k, v in refs.items()))
        stem = d["suite"].replace("-", "_")
        plots = sorted({p.name for p in root.glob("*.png")
                        if p.stem.replace("-", "_").startswith(stem)})
        if plots:
            print("\nPlots: " + ", ".join(f"[{p}](benchmarks/results/{p})" for p in plots))
        print()


if __name__ == "__main__":
    main()
