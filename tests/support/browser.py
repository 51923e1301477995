"""A real headless browser for the app home tests: Debian's chromium (installed here if missing), driven by Playwright.

No browser is downloaded from anywhere but Debian's archive: Playwright launches /usr/bin/chromium.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "tests-artifacts" / "app-home"  # ignored by git


def ensure_chromium() -> Path:
    """The chromium binary, installed with apt-get on first use (these machines run the tests as root)."""
    if CHROMIUM.exists():
        return CHROMIUM
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError("chromium is missing and apt-get is not available: install Debian's chromium package")
    subprocess.run([apt, "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run([apt, "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True)
    if not CHROMIUM.exists():
        raise RuntimeError("apt-get install chromium did not provide /usr/bin/chromium")
    return CHROMIUM


@contextmanager
def browser() -> Iterator[Browser]:
    """A headless chromium for the duration of the block."""
    path = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(path), headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield launched
        finally:
            launched.close()


def offline(page: Page) -> None:
    """Tests run offline: Shopify's CDN scripts (App Bridge, Polaris) fail fast, as when they cannot load."""
    page.route("https://cdn.shopify.com/**", lambda route: route.abort())


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot kept as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
