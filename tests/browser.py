"""Headless Chromium for the report tests: open a page, dump its DOM, read ``#report-status``."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
# root in containers has no user namespace for the sandbox; the page is a local file we wrote
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files")


def find_chromium() -> str | None:
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def dump_dom(binary: str, page: Path, budget_ms: int = 20000, timeout: float = 300) -> str:
    """The page's DOM after its scripts ran (virtual time lets image loads finish first)."""
    command = [binary, *FLAGS, f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exit {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def screenshot(binary: str, page: Path, out: Path, size: tuple[int, int] = (1100, 1300)) -> Path:
    command = [
        binary,
        *FLAGS,
        "--virtual-time-budget=20000",
        f"--window-size={size[0]},{size[1]}",
        f"--screenshot={out.resolve()}",
        page.resolve().as_uri(),
    ]
    subprocess.run(command, capture_output=True, text=True, timeout=300, check=True, cwd=out.parent)
    return out


def report_status(dom: str) -> dict[str, str]:
    """The ``data-*`` attributes and text of ``<p id="report-status">`` in a dumped DOM."""
    match = re.search(r'<p id="report-status"([^>]*)>([^<]*)</p>', dom)
    if match is None:
        raise AssertionError("no #report-status element in the page")
    attributes = {k: html.unescape(v) for k, v in re.findall(r'data-([\w-]+)="([^"]*)"', match.group(1))}
    return attributes | {"text": html.unescape(match.group(2))}
