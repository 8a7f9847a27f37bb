"""Full-page PNG screenshot of a local HTML file (e.g. the demo report) with headless Chromium.

Usage::

    python benchmarks/tools/screenshot_report.py REPORT.html OUT.png [--width 1400]
        [--browser PATH] [--wait-ms 500] [--max-height 30000] [--timeout 120]

How the browser was installed (Debian 12 "bookworm", root; only package registries reachable)::

    apt-get update
    apt-get install -y --no-install-recommends chromium-headless-shell fonts-dejavu-core fonts-liberation

That gives Chromium's headless shell (version 156 at the time of writing) from Debian's own
packages, so nothing is downloaded from a browser CDN. It lives at
``/usr/lib/chromium/chromium-headless-shell``; ``/usr/bin/chromium-headless-shell`` is a wrapper
script that starts it. Debian's full ``chromium`` package works too. Browser lookup order:
``--browser``, then ``$CRYOFRAME_CHROMIUM``, then ``chromium-headless-shell``, ``chromium``,
``chromium-browser``, ``google-chrome`` and ``headless_shell`` on ``$PATH``.

This tool needs nothing from pip or npm. It talks to the browser over the DevTools protocol
through ``--remote-debugging-pipe``: the browser reads commands from fd 3 and writes replies to
fd 4, each message ending in a NUL byte. It does the following:

1. open the page in a viewport ``--width`` pixels wide;
2. wait for the load event, for every ``<img>`` to finish loading and for web fonts;
3. resize the viewport to the full document height (capped at ``--max-height``);
4. capture a PNG.

The script runs as root here, so it passes ``--no-sandbox``. For a quick viewport-only
screenshot without this script::

    chromium-headless-shell --no-sandbox --hide-scrollbars --window-size=1400,3000 \\
        --screenshot=out.png file:///abs/path/report.html
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome",
              "headless_shell")


def find_browser(explicit: str | None = None) -> str:
    for cand in (explicit, os.environ.get("CRYOFRAME_CHROMIUM")):
        if cand:
            if Path(cand).is_file() and os.access(cand, os.X_OK):
                return cand
            found = shutil.which(cand)
            if found:
                return found
            raise SystemExit(f"browser not found or not executable: {cand}")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium found; install it with: apt-get install -y chromium-headless-shell "
                     "(or pass --browser PATH / set CRYOFRAME_CHROMIUM)")


class CDPPipe:
    """Minimal DevTools-protocol client over Chromium's --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, browser: str, extra_args: list[str], timeout: float):
        self.timeout = timeout
        self._next_id = 0
        self._buf = b""
        self._events: list[dict] = []
        self._profile = tempfile.TemporaryDirectory(prefix="cryoframe-chromium-")
        self._log = tempfile.TemporaryFile()
        to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, from_chrome_w = os.pipe()

        def _child_fds() -> None:  # runs in the child before exec
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)  # os.dup2 makes the new fd inheritable
            os.dup2(b, 4)

        args = [browser, "--headless", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--no-first-run", "--no-default-browser-check", "--mute-audio",
                "--allow-file-access-from-files", f"--user-data-dir={self._profile.name}",
                *extra_args, "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, preexec_fn=_child_fds, pass_fds=(3, 4))
        os.close(to_chrome_r)
        os.close(from_chrome_w)

    def browser_log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-4000:]

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for the browser")
            ready, _, _ = select.select([self._from_chrome_r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_chrome_r, 1 << 20)
            if not chunk:
                raise RuntimeError("browser closed the pipe (crashed?)\n" + self.browser_log())
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_chrome_w, data):]
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev["method"] == method and (session is None or ev.get("sessionId") == session):
                    return self._events.pop(i)
            reply = self._read_message(deadline)
            if "method" in reply:
                self._events.append(reply)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome_w, self._from_chrome_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()
        self._log.close()


_WAIT_JS = """
(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); })));
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  const broken = imgs.filter(img => !img.naturalWidth).length;
  return JSON.stringify({images: imgs.length, broken: broken});
})()
"""

_HEIGHT_JS = """
Math.ceil(Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0,
                   document.documentElement.getBoundingClientRect().height))
"""


def screenshot(html: str | Path, out: str | Path, width: int = 1400, browser: str | None = None,
               wait_ms: int = 500, max_height: int = 30000, timeout: float = 120.0,
               scale: float = 1.0) -> dict:
    """Render ``html`` (a local file or a URL) to a full-page PNG at ``out``; returns page info."""
    src = str(html)
    url = src if "://" in src else Path(src).resolve().as_uri()
    if url.startswith("file://") and not Path(src).resolve().is_file():
        raise SystemExit(f"no such file: {src}")
    exe = find_browser(browser)
    cdp = CDPPipe(exe, [f"--window-size={width},900"], timeout)
    try:
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        cdp.send("Page.enable", session=sid)
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": scale, "mobile": False},
                 session=sid)
        nav = cdp.send("Page.navigate", {"url": url}, session=sid)
        if nav.get("errorText"):
            raise RuntimeError(f"navigation failed: {nav['errorText']}")
        cdp.wait_event("Page.loadEventFired", session=sid)
        info = json.loads(cdp.send("Runtime.evaluate", {"expression": _WAIT_JS, "awaitPromise": True,
                                                        "returnByValue": True},
                                   session=sid)["result"]["value"])
        if wait_ms > 0:
            time.sleep(wait_ms / 1000)
        height = int(cdp.send("Runtime.evaluate", {"expression": _HEIGHT_JS, "returnByValue": True},
                              session=sid)["result"]["value"])
        height = max(1, min(height, max_height))
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
                 session=sid)
        shot = cdp.send("Page.captureScreenshot",
                        {"format": "png", "captureBeyondViewport": True,
                         "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
                        session=sid)
        data = base64.b64decode(shot["data"])
    finally:
        cdp.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    info.update({"width": width, "height": height, "bytes": len(data), "browser": exe})
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("html", help="local HTML file (or a file:// / http:// URL)")
    p.add_argument("out", help="output PNG path")
    p.add_argument("--width", type=int, default=1400, help="viewport width in CSS px (default 1400)")
    p.add_argument("--browser", help="Chromium executable (default: search $PATH)")
    p.add_argument("--wait-ms", type=int, default=500, help="extra settle time after load (ms)")
    p.add_argument("--max-height", type=int, default=30000, help="cap on the page height (px)")
    p.add_argument("--scale", type=float, default=1.0, help="device scale factor (2 = retina)")
    p.add_argument("--timeout", type=float, default=120.0, help="per-step timeout (s)")
    a = p.parse_args(argv)
    info = screenshot(a.html, a.out, width=a.width, browser=a.browser, wait_ms=a.wait_ms,
                      max_height=a.max_height, timeout=a.timeout, scale=a.scale)
    print(f"wrote {a.out}: {info['width']}x{info['height']} css px, {info['bytes']} bytes, "
          f"{info['images']} images ({info['broken']} broken), browser {info['browser']}")
    return 1 if info["broken"] else 0


if __name__ == "__main__":
    sys.exit(main())
