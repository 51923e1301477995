"""One running deployment for the app home tests: both sandbox stores, `retention serve` and `worker`, both installed.

Shopify is installed the managed way, as the admin does it: the sandbox admin frames /app with a session token and
the app exchanges it for an offline token. WooCommerce through wc-auth, whose return page shows the signed link.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from sandboxes import stack as stacks
from sandboxes.demo import DEMO_SECRET, SHOP
from sandboxes.shopify.serve import session_token
from tests.support.browser import browser as open_browser
from tests.support.browser import offline

# Package scope, not session: Playwright's sync API runs an event loop on this thread while a browser is open, and
# the asyncio tests of other packages cannot start theirs meanwhile. Closed after this package's last test.
FAST = {"inbox_sweep_seconds": 2, "inbox_pending_delay_seconds": 2, "recompute_debounce_seconds": 2}


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    with open_browser() as launched:
        yield launched


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    offline(opened)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, chromium: Browser) -> Iterator[stacks.Stack]:
    data_dir: Path = tmp_path_factory.mktemp("app-home")
    running = stacks.start(data_dir, shopify_customers=300, woo_customers=60, woo_orders=400, fast=FAST)
    try:
        context = chromium.new_context()
        admin = context.new_page()
        offline(admin)
        admin.goto(running.shopify_admin)  # the framed app exchanges the session token: the managed install
        admin.frame_locator("iframe").locator("body[data-shop]").wait_for(timeout=60_000)
        context.close()
        stacks.install_woocommerce(running)
        stacks.wait_ready(running, [SHOP, stacks.woo_domain(running)], timeout=300)
        yield running
    finally:
        running.stop()


def shop_id(stack: stacks.Stack, domain: str) -> int:
    return int(str(stack.query("SELECT id FROM shop WHERE domain = ?", domain)[0][0]))


def document(stack: stacks.Stack, shop: int, name: str) -> dict[str, Any]:
    rows = stack.query("SELECT data FROM shop_insight WHERE shop_id = ? AND name = ?", shop, name)
    return dict(json.loads(str(rows[0][0]))) if rows else {}


def shopify_url(stack: stacks.Stack, path: str, **claims: Any) -> str:
    """A page as the Shopify admin opens it: with a fresh session token (id_token)."""
    token = session_token(DEMO_SECRET, stacks.CLIENT_ID, SHOP, **claims)
    sep = "&" if "?" in path else "?"
    return f"{stack.app_url}{path}{sep}embedded=1&shop={SHOP}&id_token={token}"


def woo_url(stack: stacks.Stack, path: str) -> str:
    """A page through the WooCommerce store's signed link."""
    token = stack.woo_link.split("t=", 1)[1]
    sep = "&" if "?" in path else "?"
    return f"{stack.app_url}{path}{sep}t={token}"
