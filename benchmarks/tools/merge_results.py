"""Merge the results.json files of one suite run split over processes (e.g. one per SNR set).

Every part must come from the same suite, commit, seed and mode; metrics and units are joined
(a metric measured in two parts is an error), ``details`` are joined key by key (dicts merged),
``wall_time_s`` is the largest part's (the parts ran at the same time) and the parts' wall times
are kept in ``details["parts"]``. Usage::

    python benchmarks/tools/merge_results.py OUT.json PART1/results.json PART2/results.json ...
"""

import json
import sys
from pathlib import Path

out, parts = Path(sys.argv[1]), [json.loads(Path(p).read_text()) for p in sys.argv[2:]]
first = parts[0]
for key in ("suite", "git_commit", "seed", "quick"):
    values = {json.dumps(p[key]) for p in parts}
    if len(values) != 1:
        sys.exit(f"parts differ in {key}: {sorted(values)}")
merged = dict(first)
merged["metrics"], merged["units"], merged["details"] = {}, {}, {"parts": []}
for src, p in zip(sys.argv[2:], parts):
    for name, value in p["metrics"].items():
        if name in merged["metrics"]:
            sys.exit(f"metric {name} measured in two parts")
        merged["metrics"][name] = value
    merged["units"].update(p.get("units", {}))
    for key, value in p.get("details", {}).items():
        if isinstance(value, dict) and isinstance(merged["details"].get(key), dict):
            merged["details"][key] = {**merged["details"][key], **value}
        elif key not in merged["details"]:
            merged["details"][key] = value
        elif merged["details"][key] != value and not isinstance(value, dict):
            merged["details"][key] = [merged["details"][key], value] if not isinstance(
                merged["details"][key], list) else merged["details"][key] + [value]
    merged["details"]["parts"].append({"file": src, "wall_time_s": p.get("wall_time_s"),
                                       "date": p.get("date")})
merged["wall_time_s"] = max(p.get("wall_time_s", 0.0) for p in parts)
out.write_text(json.dumps(merged, indent=2) + "\n")
print(f"merged {len(parts)} parts into {out}: {len(merged['metrics'])} metrics")
