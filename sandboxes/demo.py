"""`make demo`: seeded Shopify and WooCommerce sandbox stores install the app, backfill, get segmented, scored and
written back while new orders keep arriving; then the report and the app home URLs (`--keep-running` stays up)."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from adapters.shopify import documents
from adapters.shopify.connect import http_client, open_client
from connector import database, insights, shops, write_state
from connector.config import Settings, load_settings
from connector.database import json_column
from connector.db import CustomerRow, InboxRow, OrderRow, ProductRow, ShopRow
from connector.model import InstallState
from jobs.analytics.kpis import reconciliation_line
from sandboxes import demo_act, demo_proof

ROOT = Path(__file__).resolve().parents[1]
SHOP = "demo-store.myshopify.com"
# Demo-only secret shared by the sandbox (which signs webhooks and OAuth with it) and the app.
DEMO_SECRET = "demo-app-secret"
FAST = {"inbox_sweep_seconds": 2, "inbox_pending_delay_seconds": 2, "recompute_debounce_seconds": 3}


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free, else any free loopback port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def demo_config(data_dir: Path, app_port: int) -> Path:
    """app.toml with the demo's data directory, port and second-scale schedules."""
    text = (ROOT / "app.toml").read_text(encoding="utf-8")
    url = f"http://127.0.0.1:{app_port}"
    replacements = {
        r'^application_url = ".*"': f'application_url = "{url}"',
        r"^redirect_urls = \[.*\]": f'redirect_urls = ["{url}/shopify/callback"]',
        r'^data_dir = "[^"]*"': f'data_dir = "{data_dir}"',
        r"^port = \d+": f"port = {app_port}",
        r'^mode = "[a-z]+"': 'mode = "development"',
        **{rf"^{key} = \d+": f"{key} = {value}" for key, value in FAST.items()},
    }
    for pattern, value in replacements.items():
        text, count = re.subn(pattern, value, text, count=1, flags=re.M)
        if count != 1:
            raise RuntimeError(f"app.toml: cannot set {pattern!r}")
    path = data_dir / "app.toml"
    path.write_text(text + demo_proof.PROGRAM, encoding="utf-8")
    return path


class Processes:
    """The sandbox store, `retention serve` and `retention worker`, stopped with SIGTERM like an operator would."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir, self.env = data_dir, env
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.data_dir / f"{name}.log").open("ab")
        # Own session: a Ctrl-C at the terminal reaches the demo only, which stops these with SIGTERM, in order.
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = proc
        return proc

    def check(self) -> None:
        for name, proc in self.running.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.data_dir / (name + '.log')}")

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name, proc in reversed(list(self.running.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                codes[name] = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        self.running.clear()
        return codes


def wait_http(url: str, procs: Processes, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check()
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


async def until(what: str, check: Callable[[], Awaitable[Any]], procs: Processes, timeout: float = 300) -> Any:
    """Poll `check` until it returns something truthy; the processes must stay up meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check()
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


STARTED = time.monotonic()


def section(title: str) -> None:
    """A heading, with the seconds since the demo started (where the run's time goes)."""
    print(f"\n== {title}  [{time.monotonic() - STARTED:.0f} s]", flush=True)


def install(app_url: str) -> None:
    """The merchant's click: install URL → the store's consent screen (approved) → our OAuth callback."""
    with httpx.Client(timeout=30) as http:
        start = http.get(f"{app_url}/shopify/install", params={"shop": SHOP})
        if start.status_code != 302:
            raise RuntimeError(f"install answered {start.status_code}: {start.text[:200]}")
        approved = http.get(start.headers["location"])
        callback = approved.headers.get("location", "")
        if approved.status_code != 302 or "/shopify/callback" not in callback:
            raise RuntimeError(f"authorize answered {approved.status_code}: {approved.text[:200]}")
        parts = urlsplit(callback)
        done = http.get(f"{app_url}{parts.path}?{parts.query}")
        if done.status_code not in (200, 302):
            raise RuntimeError(f"callback answered {done.status_code}: {done.text[:200]}")


async def shop_row() -> ShopRow | None:
    return await ShopRow.get_or_none(domain=SHOP)


async def insight(shop_id: int, name: str) -> dict[str, Any]:
    row = await insights.shop(shop_id, name)
    if row is None:
        return {}
    return dict(json_column(row.data))


async def quiet(shop_id: int, settle: float = 6.0) -> bool:
    """Nothing pending in the inbox, no change left unplanned, the write state unchanged for `settle` seconds, and a
    recompute since the writes."""
    if await InboxRow.filter(shop_id=shop_id, status="pending").exists():
        return False
    cursors = (await ShopRow.get(id=shop_id)).cursors
    if str(cursors.get("dirty_at") or "") > str(cursors.get("planned_through") or ""):
        return False  # events applied since the last run began: its recompute is queued or under way
    before = await write_state.count(shop_id)
    stamp = await insights.shop(shop_id, "kpis")
    await asyncio.sleep(settle)
    after = await write_state.count(shop_id)
    again = await insights.shop(shop_id, "kpis")
    pending = await InboxRow.filter(shop_id=shop_id, status="pending").exists()
    return bool(before and before == after and not pending and stamp and again
                and stamp.computed_at == again.computed_at)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


async def report(settings: Settings, shop_id: int, seeded: str, seconds: dict[str, float]) -> None:
    """What the merchant now has: the numbers and, read back from the store itself, the tags and metafields."""
    section(f"Backfill done in {seconds['backfill']:.1f} s (bulk operations, JSONL streamed)")
    print(f"store: {seeded}")
    print(f"ours:  {await CustomerRow.filter(shop_id=shop_id, is_guest=False).count()} customers, "
          f"{await OrderRow.filter(shop_id=shop_id).count()} orders, {await ProductRow.filter(shop_id=shop_id).count()} "
          f"products in {settings.database_url.split('://')[0]}")

    model, kpis = await insight(shop_id, "model"), await insight(shop_id, "kpis")
    section(f"Analytics (as of {model.get('as_of')}; model: {model.get('model')})")
    if model.get("bgnbd"):
        b, g = model["bgnbd"], model.get("gamma_gamma") or {}
        print("BG/NBD  " + "  ".join(f"{k}={fmt(b[k])}" for k in ("r", "alpha", "a", "b")))
        print("Gamma-Gamma  " + "  ".join(f"{k}={fmt(g.get(k))}" for k in ("p", "q", "gamma")))
    if kpis.get("reconciliation"):
        print("counted: " + reconciliation_line(kpis["reconciliation"], kpis.get("kpis") or {}))
    for name, value in (kpis.get("kpis") or {}).items():
        if not isinstance(value, (dict, list)):
            print(f"  {name:<34} {fmt(value)}")
    print("segments:")
    for name, count in sorted((kpis.get("segments") or {}).items(), key=lambda kv: -kv[1]):
        print(f"  {name:<34} {count:>6}")

    section("Recommendations (three customers, with the reason for each pick)")
    picks: list[tuple[int, str, list[dict[str, Any]]]] = []
    for row in await insights.customers(shop_id):
        data = json_column(row.data)
        recs = data.get("recommendations") or []
        if recs:
            # Prefer customers whose picks have several kinds of reason (bought together, upgrade, reorder, trending).
            picks.append((-len({r["reason"] for r in recs[:4]}), row.customer_id, recs))
    for _, customer_id, recs in sorted(picks, key=lambda p: (p[0], p[1]))[:3]:
        shown = ", ".join(f"{r['product_id']} ({r['reason']}" + (f" {r['because_of']})" if r.get("because_of")
                                                                 else ")") for r in recs[:4])
        print(f"  customer {customer_id}: {shown}")

    section(f"Write-back to the store ({seconds['writeback']:.1f} s after the backfill)")
    written = await write_state.count(shop_id, "customer")
    products = await write_state.count(shop_id, "product")
    print(f"{written} customers and {products} products carry our tags/metafields (what the store accepted)")
    row = await ShopRow.get(id=shop_id)
    conn = await shops.connection(settings, row)
    async with http_client() as http:
        client = open_client(conn, http)
        data = await client.execute(documents.load("demo_customers"),
                                    {"first": 60, "namespace": settings.writeback.metafield_namespace})
        print("read back from the store over GraphQL:")
        count = 0
        for node in data["customers"]["nodes"]:
            ours = [t for t in node["tags"] if t.startswith(settings.writeback.tag_prefix)]
            if not ours or count >= 4:
                continue
            count += 1
            value = lambda key: (node.get(key) or {}).get("value")  # noqa: E731
            refs = json.loads(value("crossSell") or "[]")
            print(f"  {node['displayName']:<22} tags={ours} rfm_group={value('rfmGroup')} clv={value('predictedClv')} "
                  f"p_alive={value('pAlive')} next_order={value('nextOrder')} cross_sell={len(refs)} products")
        print(f"client usage: {client.usage.calls} call(s), {client.usage.cost:.0f} cost points")
    await demo_act.echoes(shop_id)


async def main_async(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a fresh store and database every run
    data_dir.mkdir(parents=True)
    app_port, store_port = free_port(args.port), free_port()
    config = demo_config(data_dir, app_port)
    store_url, app_url = f"http://127.0.0.1:{store_port}", f"http://127.0.0.1:{app_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RETENTION_MODE")}
    env.update(RETENTION_CONFIG=str(config), RETENTION_DATA_DIR=str(data_dir), SHOPIFY_API_SECRET=DEMO_SECRET,
               RETENTION_SHOPIFY_ADMIN_URL=store_url, PYTHONUNBUFFERED="1")
    os.environ.update({k: env[k] for k in ("RETENTION_CONFIG", "RETENTION_DATA_DIR", "SHOPIFY_API_SECRET",
                                           "RETENTION_SHOPIFY_ADMIN_URL")})
    for key in ("DATABASE_URL", "REDIS_URL", "RETENTION_MODE"):
        os.environ.pop(key, None)
    settings = load_settings(config)
    procs = Processes(data_dir, env)
    started = time.monotonic()
    # SIGTERM (a `kill`, a supervisor) stops the demo as Ctrl-C does: the main task is cancelled and `finally` below
    # stops the processes it started, instead of the default of dying at once and leaving them running.
    main_task = asyncio.current_task()
    if main_task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        section(f"Starting a Shopify sandbox store ({args.customers} customers, a year of orders) and the app")
        subprocess.run([sys.executable, "-m", "jobs.cli", "migrate", "--config", str(config)], cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        procs.start("sandbox", ["sandboxes.shopify.app", "--port", str(store_port), "--shop", SHOP,
                                "--seed-customers", str(args.customers), "--seed-products", str(args.products),
                                "--seed", "7", "--client-id", settings.client_id,
                                "--maximum-available", "20000", "--restore-rate", "1000", "--app-url", app_url])
        woo_url = f"http://127.0.0.1:{free_port()}"
        # A third of the Shopify store's size: its REST backfill reads orders 100 at a time plus refunds per order.
        woo = max(args.customers // 3, 20)
        procs.start("woocommerce", ["sandboxes.woocommerce.app", "--port", woo_url.rsplit(":", 1)[1], "--customers",
                                    str(woo), "--guests", str(woo // 4), "--orders", str(woo * 4)])
        procs.start("serve", ["jobs.cli", "serve", "--config", str(config)])
        procs.start("worker", ["jobs.cli", "worker", "--config", str(config)])
        wait_http(f"{app_url}/health", procs)
        wait_http(f"{store_url}/", procs)
        seeded = next((line.split(": ", 1)[1].split(" on http")[0]
                       for line in (data_dir / "sandbox.log").read_text().splitlines() if line.startswith("sandbox ")),
                      "?")
        print(f"store {SHOP} at {store_url}: {seeded}")
        print(f"app at {app_url} (SQLite in {data_dir}, embedded Redis); health: "
              f"{httpx.get(app_url + '/health').json()}")

        from sandboxes import stack
        wait_http(f"{woo_url}/wp-json/wc/v3/system_status", procs)
        section("Install from the store admin: /shopify/install → consent → /shopify/callback")
        install(app_url)
        section(f"Install into the WooCommerce store {woo_url}: /woocommerce/install → wc-auth consent → key callback")
        woo_link = stack.woo_install(app_url, woo_url)
        # This process reads while serve and the worker write: wait for their write locks rather than SQLite's
        # default 5 s, which a loaded 2-core machine can exceed.
        await database.connect(dataclasses.replace(settings, secrets=dataclasses.replace(
            settings.secrets, database_url=settings.database_url + "?busy_timeout=60000")))
        row = await until("the shop to be stored", shop_row, procs)
        print(f"shop {row.domain} stored (token encrypted at rest: {not row.credentials.startswith('{')}); "
              "the worker registers webhooks and metafield definitions, then backfills")
        t0 = time.monotonic()
        await until("the install job", lambda: ShopRow.filter(id=row.id, state=InstallState.ACTIVE.value).exists(),
                    procs)
        await until("the backfill", lambda: _synced(row.id), procs)
        # A cursor moves page by page: the backfill is done when every order of the store is ours.
        store_orders = int(m.group(1)) if (m := re.search(r"(\d+) orders", seeded)) else 0
        await until("every order", lambda: _orders_at_least(row.id, store_orders), procs)
        backfill = time.monotonic() - t0
        await abandon_checkouts(store_url, row.id, procs)
        await until("the first recompute and write-back", lambda: write_state.count(row.id), procs)
        writeback = time.monotonic() - t0 - backfill
        await until("the echo of our writes to settle", lambda: quiet(row.id), procs)
        await report(settings, row.id, seeded, {"backfill": backfill, "writeback": writeback})
        section("Native segments in the store's admin")
        await demo_act.segments(settings, row.id)
        stack.start_live_orders(store_url, woo_url, every=args.order_every)
        section("WooCommerce: backfilled, segmented and written back as well (new orders arriving in both stores)")
        await until("the WooCommerce store's first write-back", lambda: stack.woo_ready(woo_url), procs)
        await stack.woo_report()
        section("Proof: how right the predictions were, and what the program changed")
        await demo_proof.report(row.id, store_url)
        section("Flow triggers: the customers those orders moved between segments")
        await demo_act.flow_triggers(row.id)
        section("The app home")
        stack.app_home_section(app_url, store_url, woo_link, config, env)
        if args.keep_running:
            # keep_running catches SIGTERM itself; left to the loop too, the same signal would also cancel this task
            # at its next await (the one closing the database below) and skip stopping the processes.
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            stack.keep_running(procs, config, env)
    except Exception as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        for name in procs.running:
            tail = (data_dir / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            print(f"--- {name}.log (last lines)\n" + "\n".join(tail), file=sys.stderr)
        return 1
    finally:
        try:
            await database.close()
        finally:  # even when a second signal cancels the close
            codes = procs.stop()
    section(f"Stopped cleanly (exit codes {codes}) after {time.monotonic() - started:.1f} s")
    print(f"logs and the SQLite database are in {data_dir}; production: README.md, `retention serve` / `retention worker`")
    # The two sandbox stores stand in for the platforms: only our own processes must stop cleanly.
    return 0 if all(code == 0 for name, code in codes.items() if name not in ("sandbox", "woocommerce")) else 1


async def abandon_checkouts(store_url: str, shop_id: int, procs: Processes, customers: int = 40,
                            guests: int = 20) -> None:
    """Shoppers leave checkouts unfinished (some as guests): checkouts arrive by webhook only, so after the install."""
    made = httpx.post(f"{store_url}/sandbox/checkouts", json={"customers": customers, "guests": guests, "seed": 7},
                      timeout=30).json()["checkouts"]
    print(f"{made} shoppers ({guests} of them guests) left a checkout unfinished (checkouts/create webhooks)")
    await until("the abandoned checkouts", lambda: _applied(shop_id, "checkouts/create", made), procs)


async def _orders_at_least(shop_id: int, count: int) -> bool:
    return await OrderRow.filter(shop_id=shop_id).count() >= count


async def _applied(shop_id: int, topic: str, count: int) -> bool:
    return await InboxRow.filter(shop_id=shop_id, topic=topic, status="applied").count() >= count


async def _synced(shop_id: int) -> bool:
    row = await ShopRow.get(id=shop_id)
    return all(row.cursors.get(f"sync:{kind}") for kind in ("customers", "orders", "products"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--products", type=int, default=60)
    parser.add_argument("--port", type=int, default=8000, help="the app's port (another free one if taken)")
    parser.add_argument("--data-dir", default=str(ROOT / ".retention" / "demo"))
    parser.add_argument("--keep-running", action="store_true", help="leave the stores and the app up (Ctrl-C stops)")
    parser.add_argument("--order-every", type=float, default=3.0, help="seconds between live orders in each store")
    try:
        return asyncio.run(main_async(parser.parse_args(argv)))
    except (KeyboardInterrupt, asyncio.CancelledError):  # stopped before the end; the processes were stopped
        return 130


if __name__ == "__main__":
    sys.exit(main())
