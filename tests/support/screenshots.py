"""Headless Chromium for browser tests: Playwright driving Debian's chromium (no browser download)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def ensure_chromium() -> str:
    """The chromium executable; installs Debian's package when it is missing (the machine runs as root)."""
    for path in CANDIDATES:
        if Path(path).exists():
            return path
    found = shutil.which("chromium")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, capture_output=True)
    return CANDIDATES[0]


def screenshot(html: str, path: Path) -> None:
    """Render `html` in headless chromium and save a full-page PNG at `path`."""
    from playwright.sync_api import sync_playwright

    path.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=ensure_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.set_content(html, wait_until="load")
            page.screenshot(path=str(path), full_page=True)
        finally:
            browser.close()
