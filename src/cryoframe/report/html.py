"""A self-contained HTML report: sections of text, tables and PNG figures (embedded as base64).

The report is one file that can be mailed or opened offline; figures are embedded so moving the
file does not break it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from cryoframe import __version__
from cryoframe._atomic import atomic_write_text

_TEMPLATE = jinja2.Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #345}h2{margin-top:2em;color:#345}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:0.5em;vertical-align:top}figcaption{font-size:0.9em;color:#555;max-width:480px}
img{max-width:480px;border:1px solid #ddd}.note{color:#666;font-size:0.9em}
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ date }} by cryoframe {{ version }}.</p>
{% for s in sections %}
<h2>{{ s.title }}</h2>
{% for p in s.paragraphs %}<p>{{ p }}</p>{% endfor %}
{% for t in s.tables %}
<table>{% if t.caption %}<caption>{{ t.caption }}</caption>{% endif %}
<tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endfor %}
{% for f in s.figures %}
<figure><img src="data:image/png;base64,{{ f.b64 }}" alt="{{ f.caption }}"><figcaption>{{ f.caption }}</figcaption></figure>
{% endfor %}
{% endfor %}
</body></html>
""",
    autoescape=True,
)


@dataclass
class Table:
    """A table: header and rows of already-formatted cells."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    """One report section."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[Path, str]] = field(default_factory=list)


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number for a table; ``None`` (not measured) is shown as 'missing'."""
    if value is None:
        return "missing"
    return f"{value:.{digits}g}"


def write_report(path: str | Path, title: str, sections: list[Section]) -> Path:
    """Render ``sections`` into one self-contained HTML file at ``path`` (atomic write)."""
    rendered = []
    for s in sections:
        figs = []
        for fig_path, caption in s.figures:
            data = Path(fig_path).read_bytes()
            figs.append({"b64": base64.b64encode(data).decode("ascii"), "caption": caption})
        rendered.append(
            {
                "title": s.title,
                "paragraphs": s.paragraphs,
                "tables": [
                    {"header": t.header, "rows": t.rows, "caption": t.caption} for t in s.tables
                ],
                "figures": figs,
            }
        )
    text = _TEMPLATE.render(
        title=html.unescape(title),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        version=__version__,
        sections=rendered,
    )
    path = Path(path)
    atomic_write_text(path, text)
    return path
