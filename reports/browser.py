"""Open a report in a real headless browser (Debian's chromium): the DOM after load, the
console messages, and a screenshot. Used by the tests and by anyone checking a page on a
machine with no display. ``scripts/install-chromium.sh`` installs the browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
_CONSOLE = re.compile(r":CONSOLE[:(]")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@dataclass
class PageCheck:
    dom: str
    console: list[str]  # console messages the page produced (the report has none when healthy)
    images_total: int
    images_ok: int  # images that decoded to a non-empty bitmap
    screenshot: Path | None


def _run(chromium: str, args: list[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="roofsim-chromium-") as profile:
        return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=timeout, check=False)


def check_page(html: str | Path, screenshot: str | Path | None = None, *, window: str = "1400,3000",
               timeout: float = 90.0) -> PageCheck:
    """Load ``html`` in headless chromium; return its DOM after load, console lines and a screenshot."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed (run scripts/install-chromium.sh)")
    url = Path(html).resolve().as_uri()
    dump = _run(chromium, ["--enable-logging=stderr", "--v=0", "--dump-dom"], url, timeout)
    console = [ln for ln in dump.stderr.splitlines() if _CONSOLE.search(ln)]
    body = re.search(r"<body[^>]*>", dump.stdout)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0))) if body else {}
    shot = None
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        _run(chromium, [f"--screenshot={shot}", f"--window-size={window}"], url, timeout)
    return PageCheck(dump.stdout, console, int(attrs.get("data-images-total", -1)),
                     int(attrs.get("data-images-ok", -1)), shot if shot and shot.exists() else None)
