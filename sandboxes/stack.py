"""Both sandbox stores, the app and its worker as real processes, and the two real install flows (demo and tests)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from sandboxes.demo import DEMO_SECRET, ROOT, SHOP, Processes, demo_config, free_port, install, wait_http

CLIENT_ID = "retention-dev"  # app.toml's client_id: the sandbox admin's app page is /admin/apps/<it>


@dataclass
class Stack:
    """Where everything listens, and the processes behind it."""

    data_dir: Path
    app_url: str
    shopify_url: str
    woo_url: str
    env: dict[str, str]
    config: Path
    procs: Processes
    woo_link: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        return self.data_dir / "retention.sqlite3"

    @property
    def shopify_admin(self) -> str:
        """The sandbox admin's page of our app: it frames /app with a fresh session token, as Shopify's does."""
        return f"{self.shopify_url}/admin/apps/{CLIENT_ID}"

    def query(self, text: str, *params: object) -> list[tuple[object, ...]]:
        """Read the app's SQLite database (read-only, beside the running processes)."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30) as conn:
            return list(conn.execute(text, params).fetchall())

    def retention(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one `retention …` command against this stack."""
        return subprocess.run([sys.executable, "-m", "jobs.cli", *args, "--config", str(self.config)], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self) -> dict[str, int | None]:
        return self.procs.stop()


def start(data_dir: Path, *, shopify_customers: int, woo_customers: int, woo_orders: int, products: int = 60,
          new_order_every: float = 0.0, app_port: int = 0, fast: dict[str, int] | None = None) -> Stack:
    """Migrate, then start both sandbox stores (seeded), `retention serve` and `retention worker`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    app_port = free_port(app_port)
    shopify_port, woo_port = free_port(), free_port()
    config = demo_config(data_dir, app_port)
    if fast:
        text = config.read_text()
        for key, value in fast.items():
            text = "\n".join(f"{key} = {value}" if line.startswith(f"{key} = ") else line
                             for line in text.splitlines())
        config.write_text(text + "\n")
    app_url = f"http://127.0.0.1:{app_port}"
    shopify_url, woo_url = f"http://127.0.0.1:{shopify_port}", f"http://127.0.0.1:{woo_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RETENTION_MODE")}
    env.update(RETENTION_CONFIG=str(config), RETENTION_DATA_DIR=str(data_dir), SHOPIFY_API_SECRET=DEMO_SECRET,
               RETENTION_SHOPIFY_ADMIN_URL=shopify_url, PYTHONUNBUFFERED="1")
    procs = Processes(data_dir, env)
    stack = Stack(data_dir, app_url, shopify_url, woo_url, env, config, procs)
    subprocess.run([sys.executable, "-m", "jobs.cli", "migrate", "--config", str(config)], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    live = ["--new-order-every", str(new_order_every)] if new_order_every else []
    procs.start("sandbox", ["sandboxes.shopify.app", "--port", str(shopify_port), "--shop", SHOP,
                            "--seed-customers", str(shopify_customers), "--seed-products", str(products),
                            "--seed", "7", "--client-id", CLIENT_ID, "--app-url", app_url,
                            "--maximum-available", "20000", "--restore-rate", "1000", *live])
    procs.start("woocommerce", ["sandboxes.woocommerce.app", "--port", str(woo_port), "--customers", str(woo_customers),
                                "--guests", str(max(woo_customers // 4, 1)), "--orders", str(woo_orders), *live])
    procs.start("serve", ["jobs.cli", "serve", "--config", str(config)])
    procs.start("worker", ["jobs.cli", "worker", "--config", str(config)])
    wait_http(f"{app_url}/health", procs)
    wait_http(f"{shopify_url}/admin/apps/{CLIENT_ID}", procs)
    wait_http(f"{woo_url}/wp-json/wc/v3/system_status", procs)
    return stack


def install_shopify(stack: Stack) -> None:
    """The merchant's click in the admin: OAuth install → consent → callback."""
    install(stack.app_url)


def install_woocommerce(stack: Stack) -> str:
    """Install into the WooCommerce sandbox; returns (and keeps) the app home link the return page shows."""
    stack.woo_link = woo_install(stack.app_url, stack.woo_url)
    return stack.woo_link


def woo_install(app_url: str, store_url: str) -> str:
    """/woocommerce/install → the store's wc-auth consent (approved) → keys POSTed to us → the return page's link."""
    with httpx.Client(timeout=30, follow_redirects=True) as http:
        page = http.get(f"{app_url}/woocommerce/install", params={"store_url": store_url})
    if page.status_code != 200 or "/app?t=" not in page.text:
        raise RuntimeError(f"WooCommerce install ended with {page.status_code}: {page.text[:300]}")
    start_at = page.text.index("href='") + len("href='")
    return page.text[start_at:page.text.index("'", start_at)].replace("&amp;", "&")


def start_live_orders(*store_urls: str, every: float = 3.0) -> None:
    """Customers of each sandbox store start ordering, one order every `every` seconds per store."""
    for url in store_urls:
        httpx.post(f"{url}/sandbox/live-orders", params={"every": every}, timeout=10).raise_for_status()


def ready(stack: Stack, domain: str) -> bool:
    """Installed, backfilled, recomputed and written back (the shop's first full pass is done)."""
    rows = stack.query("SELECT id, state, cursors FROM shop WHERE domain = ?", domain)
    if not rows or rows[0][1] != "active":
        return False
    shop_id = rows[0][0]
    written = stack.query("SELECT COUNT(*) FROM write_state WHERE shop_id = ?", shop_id)[0][0]
    run = stack.query("SELECT COUNT(*) FROM shop_insight WHERE shop_id = ? AND name = 'last_run'", shop_id)[0][0]
    return bool(written) and bool(run)


def wait_ready(stack: Stack, domains: list[str], timeout: float = 300) -> None:
    """Until every shop is ready; the processes must stay up meanwhile."""
    deadline = time.monotonic() + timeout
    waiting = list(domains)
    while waiting:
        stack.procs.check()
        waiting = [d for d in waiting if not ready(stack, d)]
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {timeout:.0f} s: {', '.join(waiting)}")
        time.sleep(0.5)


def woo_domain(stack: Stack) -> str:
    """The WooCommerce shop's domain as stored (its normalized store URL)."""
    host = urlsplit(stack.woo_url).netloc
    rows = stack.query("SELECT domain FROM shop WHERE platform = 'woocommerce' AND domain LIKE ?", f"%{host}%")
    return str(rows[0][0]) if rows else stack.woo_url


async def woo_ready(store_url: str) -> bool:
    """(In the demo's process, connected to the app's database.) The WooCommerce shop's first pass is written."""
    from connector import insights, write_state
    from connector.db import ShopRow

    row = await ShopRow.filter(platform="woocommerce", state="active").first()
    return bool(row and await write_state.count(row.id) and await insights.shop(row.id, "last_run"))


async def woo_report() -> None:
    """The WooCommerce store's share of the report: what came in, the segments, what the store accepted."""
    from connector import insights, write_state
    from connector.database import json_column
    from connector.db import CustomerRow, OrderRow, ShopRow

    row = await ShopRow.get(platform="woocommerce")
    kpis = dict(json_column((await insights.shop(row.id, "kpis")).data)) if await insights.shop(row.id, "kpis") else {}
    print(f"store {row.domain}: {await CustomerRow.filter(shop_id=row.id, is_guest=False).count()} customers, "
          f"{await CustomerRow.filter(shop_id=row.id, is_guest=True).count()} guests, "
          f"{await OrderRow.filter(shop_id=row.id).count()} orders backfilled over its REST API")
    figures = kpis.get("kpis") or {}
    print(f"  repeat purchase rate {figures.get('repeat_purchase_rate', 0):.1%}, retention "
          f"{figures.get('retention_rate', 0):.1%}, AOV {figures.get('average_order_value', 0):,.2f}")
    top = sorted((kpis.get("segments") or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:6]
    print("  largest segments: " + ", ".join(f"{name} {count}" for name, count in top))
    print(f"  {await write_state.count(row.id, 'customer')} customers carry our meta (what the store accepted)")


def app_home_section(app_url: str, shopify_url: str, woo_link: str, config: Path, env: dict[str, str]) -> None:
    """Where the merchant's app home is, and the CLI view of the same progress."""
    print(f"Shopify (embedded, as the admin frames it): {shopify_url}/admin/apps/{CLIENT_ID}")
    print(f"WooCommerce (signed link, 24 h, this store only): {woo_link}")
    print(f"another link any time: retention app-link <store> --config {config}")
    status = subprocess.run([sys.executable, "-m", "jobs.cli", "status", "--config", str(config)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    print("retention status:\n" + status.stdout.rstrip())


def keep_running(procs: Processes, config: Path, env: dict[str, str], every: float = 15.0) -> None:
    """--keep-running: everything stays up (orders keep arriving) until Ctrl-C or SIGTERM; a status line now and then.

    Both are caught here (asyncio.run would otherwise cancel the demo mid-way, and SIGTERM would end it at once):
    the demo then stops its processes in order.
    """
    stop: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: stop.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    print("\nEverything keeps running (new orders keep arriving); open the URLs above. Ctrl-C stops.", flush=True)
    try:
        next_status = time.monotonic() + every
        while True:
            time.sleep(0.2)
            if stop:
                break
            procs.check()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + every
                status = subprocess.run([sys.executable, "-m", "jobs.cli", "status", "--config", str(config)],
                                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
                print(status.stdout.rstrip(), flush=True)
        print(f"\n{signal.Signals(stop[0]).name}: stopping…", flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
