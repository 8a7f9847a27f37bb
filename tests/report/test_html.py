"""The HTML report embeds figures and escapes text."""

import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cryoframe.report.html import Section, Table, fmt, write_report


def test_report_embeds_png_and_escapes(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "a.png"
    fig.savefig(png)
    plt.close(fig)
    out = write_report(
        tmp_path / "r.html",
        "Demo",
        [Section("S1", ["a <b> c"], [Table(["k", "v"], [["x", fmt(0.12345)], ["y", fmt(None)]])],
                 [(png, "curve")])],
    )
    text = out.read_text()
    assert "a &lt;b&gt; c" in text
    assert base64.b64encode(png.read_bytes()).decode()[:200] in text
    assert "missing" in text and "0.123" in text
