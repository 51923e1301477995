"""Benchmark webhook intake over loopback HTTP against a bare Starlette endpoint, and the apply rate of one worker.

Intake: `retention serve` (the real app, a fresh migrated SQLite database with one installed shop, a real
redis-server at REDIS_URL) and a bare Starlette app (one POST route that reads the body and answers 200, same
uvicorn settings as `retention serve`) each run in their own process. This process is the load generator (raw
asyncio HTTP/1.1 over keep-alive connections, so the client costs little CPU): every delivery is a distinct
Shopify orders/create webhook, signed (HMAC-SHA256 of the raw body, base64) with a unique X-Shopify-Event-Id.
  (a) closed loop: BENCH_INTAKE_CONNECTIONS connections (default 32) send back-to-back: throughput, p50/p99
      latency. Both servers stay up and take turns: after a 2 s warm-up each, BENCH_INTAKE_ROUNDS rounds (default 5)
      of BENCH_INTAKE_SECONDS (default 4) each, bare then intake, so a slow spell of this shared machine falls on
      both; the ratio reported is the median of the rounds' ratios, with every round's figures beside it.
  (b) open loop: BENCH_INTAKE_RATE deliveries/s (default 200) for BENCH_INTAKE_OPEN_SECONDS (default 10) after a
      1 s warm-up; latency counts from the scheduled send time, so queueing behind a slow reply is included.
Every answer that is not 200 is counted and reported; the inbox is checked to hold one row per 200 at the end.
Apply: BENCH_APPLY_EVENTS (default 5,000) deliveries accepted exactly as intake accepts them (inbox.record +
enqueue), then one arq worker (build_worker, the shipped job settings, no cron) runs until no inbox row is pending;
on SQLite and on PostgreSQL (bench/pg.py: BENCH_DATABASE_URL or a throwaway local cluster; skipped if neither).
Write-back is off and the per-shop recompute is debounced past the end of the run (a copied app.toml), so the
figure is the apply path alone. One JSON line per figure.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pg import postgres  # noqa: E402  (bench/ is the script's directory)

SECRET = "bench-app-secret"
ENCRYPTION_KEY = "bench-encryption-passphrase"
SHOP = "bench-intake.myshopify.com"
PATH = "/webhooks/shopify"
CONNECTIONS = int(os.environ.get("BENCH_INTAKE_CONNECTIONS", "32"))
CLOSED_SECONDS = float(os.environ.get("BENCH_INTAKE_SECONDS", "4"))
ROUNDS = int(os.environ.get("BENCH_INTAKE_ROUNDS", "5"))
RATE = float(os.environ.get("BENCH_INTAKE_RATE", "200"))
OPEN_SECONDS = float(os.environ.get("BENCH_INTAKE_OPEN_SECONDS", "10"))
APPLY_EVENTS = int(os.environ.get("BENCH_APPLY_EVENTS", "5000"))
T0 = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


def emit(name: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------------------------
# Deliveries: a Shopify orders/create body with the usual fields (about 5 KB), made from a %-template so that a
# fresh, distinct, signed delivery costs the load generator a few microseconds.

def _money_set(amount: str) -> dict[str, Any]:
    return {"shop_money": {"amount": amount, "currency_code": "USD"},
            "presentment_money": {"amount": amount, "currency_code": "USD"}}


def _address(kind: str) -> dict[str, Any]:
    return {"first_name": "@@FIRST@@", "last_name": "Doe", "address1": f"{kind} 123 Main Street", "address2": "",
            "city": "Ottawa", "province": "Ontario", "country": "Canada", "zip": "K2P 1L4", "phone": "555-555-5555",
            "company": None, "latitude": 45.41634, "longitude": -75.6868, "name": "@@FIRST@@ Doe",
            "country_code": "CA", "province_code": "ON"}


def _line(n: int) -> dict[str, Any]:
    return {"id": f"@@LINE{n}@@", "admin_graphql_api_id": f"gid://shopify/LineItem/@@LINE{n}@@",
            "product_id": f"@@PRODUCT{n}@@", "variant_id": f"@@VARIANT{n}@@", "sku": f"SKU-@@PRODUCT{n}@@",
            "title": "Bench product", "name": "Bench product - Default", "variant_title": "Default", "vendor": "Bench",
            "quantity": f"@@QTY{n}@@", "price": "@@PRICE@@", "price_set": _money_set("@@PRICE@@"),
            "total_discount": "0.00", "total_discount_set": _money_set("0.00"), "discount_allocations": [],
            "duties": [], "fulfillable_quantity": 1, "fulfillment_service": "manual", "fulfillment_status": None,
            "gift_card": False, "grams": 500, "product_exists": True, "properties": [], "requires_shipping": True,
            "taxable": True, "tax_lines": [{"price": "1.30", "rate": 0.13, "title": "HST",
                                            "price_set": _money_set("1.30"), "channel_liable": False}]}


def _order_template(lines: int) -> str:
    """The JSON of one order with @@PLACEHOLDERS@@, turned into a %-format string."""
    payload = {
        "id": "@@ORDER@@", "admin_graphql_api_id": "gid://shopify/Order/@@ORDER@@", "app_id": 580111,
        "browser_ip": "203.0.113.7", "buyer_accepts_marketing": True, "cancel_reason": None, "cancelled_at": None,
        "cart_token": "@@TOKEN@@", "checkout_id": "@@ORDER@@", "checkout_token": "@@TOKEN@@",
        "client_details": {"accept_language": "en-CA", "browser_height": None, "browser_ip": "203.0.113.7",
                           "browser_width": None, "session_hash": None, "user_agent": "Mozilla/5.0"},
        "closed_at": None, "confirmation_number": "@@TOKEN@@", "confirmed": True, "contact_email": "@@EMAIL@@",
        "created_at": "@@AT@@", "currency": "USD", "current_subtotal_price": "@@TOTAL@@",
        "current_subtotal_price_set": _money_set("@@TOTAL@@"), "current_total_discounts": "0.00",
        "current_total_discounts_set": _money_set("0.00"), "current_total_price": "@@TOTAL@@",
        "current_total_price_set": _money_set("@@TOTAL@@"), "current_total_tax": "0.00",
        "current_total_tax_set": _money_set("0.00"), "customer_locale": "en-CA", "discount_codes": [],
        "email": "@@EMAIL@@", "estimated_taxes": False, "financial_status": "paid", "fulfillment_status": None,
        "landing_site": "/", "name": "#@@ORDER@@", "note": None, "note_attributes": [], "number": 1,
        "order_number": 1001, "order_status_url": "https://bench-intake.myshopify.com/orders/@@TOKEN@@/authenticate",
        "payment_gateway_names": ["shopify_payments"], "phone": None, "presentment_currency": "USD",
        "processed_at": "@@AT@@", "reference": None, "referring_site": "", "source_name": "web",
        "subtotal_price": "@@TOTAL@@", "subtotal_price_set": _money_set("@@TOTAL@@"), "tags": "",
        "tax_lines": [], "taxes_included": False, "test": False, "token": "@@TOKEN@@",
        "total_discounts": "0.00", "total_discounts_set": _money_set("0.00"), "total_line_items_price": "@@TOTAL@@",
        "total_line_items_price_set": _money_set("@@TOTAL@@"), "total_outstanding": "0.00",
        "total_price": "@@TOTAL@@", "total_price_set": _money_set("@@TOTAL@@"),
        "total_shipping_price_set": _money_set("0.00"), "total_tax": "0.00", "total_tax_set": _money_set("0.00"),
        "total_weight": 500, "updated_at": "@@AT@@", "user_id": None,
        "billing_address": _address("Billing"), "shipping_address": _address("Shipping"),
        "customer": {"id": "@@CUSTOMER@@", "admin_graphql_api_id": "gid://shopify/Customer/@@CUSTOMER@@",
                     "email": "@@EMAIL@@", "created_at": "@@AT@@", "updated_at": "@@AT@@", "first_name": "@@FIRST@@",
                     "last_name": "Doe", "state": "enabled", "note": None, "verified_email": True,
                     "multipass_identifier": None, "tax_exempt": False, "phone": None, "currency": "USD",
                     "tax_exemptions": [], "email_marketing_consent": {"state": "subscribed", "opt_in_level":
                                                                       "single_opt_in", "consent_updated_at": None},
                     "default_address": _address("Default")},
        "discount_applications": [], "fulfillments": [], "refunds": [],
        "line_items": [_line(n) for n in range(lines)],
        "shipping_lines": [{"id": "@@ORDER@@", "code": "Standard", "price": "0.00", "price_set": _money_set("0.00"),
                            "source": "shopify", "title": "Standard", "tax_lines": [], "discount_allocations": []}],
    }
    text = json.dumps(payload, separators=(",", ":")).replace("%", "%%")
    numeric = ("ORDER", "CUSTOMER", "QTY", "LINE", "PRODUCT", "VARIANT")

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(2).lower()
        quoted = match.group(1) == '"' and match.group(3) == '"'
        if quoted and match.group(2).startswith(numeric):
            return f"%({name})d"  # ids and quantities are JSON numbers, as Shopify sends them
        return f"{match.group(1)}%({name})s{match.group(3)}"

    return re.sub(r'(["/#\-]?)@@([A-Z0-9]+)@@(["/]?)', placeholder, text)


class Deliveries:
    """Distinct signed orders/create deliveries: new order and event id each time, customers seen again."""

    def __init__(self, seed: int, secret: str = SECRET, customers: int = 2000) -> None:
        self.rng = random.Random(seed)
        self.secret = secret.encode()
        self.customers = customers
        self.templates = [_order_template(n) for n in (1, 1, 2, 3)]
        self.seq = 0
        self.run = uuid.uuid4().hex[:8]
        self.base = 5_000_000_000_000 + seed * 10_000_000

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))  # cheaper than uuid4() (no urandom)

    def next(self) -> tuple[str, bytes]:
        """(event id, body) of the next delivery."""
        self.seq += 1
        rnd = self.rng.random
        order = self.base + self.seq
        cust = 7_000_000_000_000 + int(rnd() * self.customers)
        values: dict[str, Any] = {
            "order": order, "customer": cust, "email": f"c{cust}@example.com", "first": f"Name{cust % 997}",
            "at": (T0 + timedelta(seconds=self.seq)).isoformat(), "token": "%032x" % self.rng.getrandbits(128),
            "total": f"{10 + rnd() * 390:.2f}", "price": "19.99",
        }
        for n in range(3):
            product = 9_000_000_000 + int(rnd() * 500)
            values.update({f"line{n}": order * 10 + n, f"product{n}": product, f"variant{n}": product + 1,
                           f"qty{n}": 1 + int(rnd() * 3)})
        body = (self.templates[int(rnd() * len(self.templates))] % values).encode()
        return f"{self.run}-{self.seq}-{self._uuid()}", body

    def request(self, host: str) -> bytes:
        """The raw HTTP/1.1 request of the next delivery, headers as Shopify sends them."""
        event_id, body = self.next()
        digest = base64.b64encode(hmac.digest(self.secret, body, "sha256")).decode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Shopify-Captain-Hook\r\nAccept: */*\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Shopify-Topic: orders/create\r\nX-Shopify-Hmac-Sha256: {digest}\r\n"
            f"X-Shopify-Shop-Domain: {SHOP}\r\nX-Shopify-API-Version: 2026-07\r\n"
            f"X-Shopify-Webhook-Id: {self._uuid()}\r\nX-Shopify-Event-Id: {event_id}\r\n"
            f"X-Shopify-Triggered-At: {datetime.now(timezone.utc).isoformat()}\r\n\r\n"
        )
        return head.encode() + body


# ---------------------------------------------------------------------------------------------------------------
# The load generator: raw HTTP/1.1 over keep-alive connections.

class Conn:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Conn":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send one request, read the whole response; returns the status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclasses.dataclass
class Result:
    """Latencies (seconds) of the measured 200 answers, and every status seen (warm-up included)."""

    latencies: list[float]
    seconds: float
    statuses: Counter[int]

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        if not data:
            return float("nan")
        return data[max(0, math.ceil(q * len(data)) - 1)] * 1000  # nearest rank

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def _send(port: int, conn: Conn | None, request: bytes) -> tuple[Conn | None, int]:
    """One request; a broken connection counts as status 0 and is reopened next time."""
    try:
        if conn is None:
            conn = await Conn.open(port)
        return conn, await conn.send(request)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        if conn is not None:
            conn.close()
        return None, 0


async def closed_loop(port: int, deliveries: Deliveries, connections: int, warmup: float, seconds: float) -> Result:
    """`connections` clients, each sending the next delivery as soon as the last is answered."""
    host = f"127.0.0.1:{port}"
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def client() -> None:
        conn: Conn | None = await Conn.open(port)
        while True:
            request = deliveries.request(host)
            sent = time.perf_counter()
            if sent >= stop_at:
                break
            conn, status = await _send(port, conn, request)
            done = time.perf_counter()
            statuses[status] += 1
            if status == 200 and sent >= measure_from and done <= stop_at:  # only accepted deliveries count
                latencies.append(done - sent)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return Result(latencies, seconds, statuses)


async def open_loop(port: int, deliveries: Deliveries, rate: float, warmup: float, seconds: float,
                    pool_size: int = 32) -> Result:
    """Deliveries at a fixed rate on a pool of keep-alive connections; latency from the scheduled send time."""
    host = f"127.0.0.1:{port}"
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    idle: asyncio.Queue[Conn | None] = asyncio.Queue()
    for _ in range(pool_size):
        idle.put_nowait(await Conn.open(port))
    total = int((warmup + seconds) * rate)
    measured_from = int(warmup * rate)
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int, due: float, conn: Conn | None, request: bytes) -> None:
        conn, status = await _send(port, conn, request)
        done = time.perf_counter()
        idle.put_nowait(conn)
        statuses[status] += 1
        if status == 200 and i >= measured_from:
            latencies.append(done - due)

    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        request = deliveries.request(host)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await idle.get()  # all busy: wait (and the wait counts in the latency)
        tasks.append(asyncio.create_task(one(i, due, conn, request)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - (start + measured_from / rate)  # the achieved rate, if the server fell behind
    while not idle.empty():
        conn = idle.get_nowait()
        if conn is not None:
            conn.close()
    return Result(latencies, max(seconds, elapsed), statuses)


# ---------------------------------------------------------------------------------------------------------------
# Processes: redis-server, `retention serve`, the bare endpoint.

@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A real redis-server on a loopback port (no persistence)."""
    import redis

    from connector.runtime import redis_server_binary

    port = free_port()
    proc = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, path: str = "/health") -> None:
    """Poll until the server answers (200 on GET `path` or any answer on the bare app)."""
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code in (200, 405):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server on {port} not ready:\n{log.read_text()[-3000:]}")


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path, port: int, path: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, log, path)
        yield proc
    finally:
        stop(proc)


def bare(port: int, log_level: str) -> None:
    """The baseline: one POST route that reads the body and answers 200, under the same uvicorn settings."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def ok(request: Request) -> Response:
        await request.body()
        return JSONResponse({"ok": True, "duplicate": False})

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = Starlette(routes=[Route(PATH, ok, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level=log_level, timeout_graceful_shutdown=10)


def bench_config(workdir: Path) -> Path:
    """app.toml with write-back off and the recompute debounced past the run (the figure is intake/apply)."""
    text = (ROOT / "app.toml").read_text()
    text, debounced = re.subn(r"^recompute_debounce_seconds = \d+", "recompute_debounce_seconds = 86400", text,
                              flags=re.M)
    text, disabled = re.subn(r"^(\[writeback\]\n(?:[^\[].*\n)*?)enabled = true", r"\1enabled = false", text, flags=re.M)
    if not (debounced and disabled):
        raise RuntimeError("app.toml changed shape: cannot set recompute_debounce_seconds / writeback.enabled")
    path = workdir / "app.toml"
    path.write_text(text)
    return path


def env_for(data_dir: Path, config: Path, redis_url: str, database_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(RETENTION_DATA_DIR=str(data_dir), RETENTION_CONFIG=str(config), SHOPIFY_API_SECRET=SECRET,
               RETENTION_ENCRYPTION_KEY=ENCRYPTION_KEY, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def settings_from(env: dict[str, str]) -> Any:
    from connector.config import load_settings

    return load_settings(env["RETENTION_CONFIG"], env=env)


async def install_shop(settings: Any) -> int:
    """Migrate and install the bench shop; returns its id."""
    from connector import database, shops

    await database.migrate(settings)
    await database.connect(settings)
    try:
        row = await shops.save_install(settings, "shopify", SHOP, {"access_token": "shpat_bench"})
        return int(row.id)
    finally:
        await database.close()


async def inbox_rows(settings: Any) -> int:
    from connector import database
    from connector.db import InboxRow

    await database.connect(settings)
    try:
        return await InboxRow.all().count()
    finally:
        await database.close()


# ---------------------------------------------------------------------------------------------------------------
# Runs.

def report_pair(name: str, unit: str, value: float, baseline: float, target: str | None = None,
                met: bool | None = None, **extra: Any) -> None:
    fields: dict[str, Any] = {"baseline": "bare starlette", "baseline_value": round(baseline, 3),
                              "ratio": round(value / baseline, 3) if baseline else None}
    if target is not None:
        fields.update(target=target, met=met)
    emit(name, value, unit, **fields, **extra)


def intake(workdir: Path, redis_url: str) -> int:
    """Closed- and open-loop load on the bare endpoint and on `retention serve`; returns the number of non-200s."""
    config = bench_config(workdir)
    data_dir = workdir / "intake"
    env = env_for(data_dir, config, redis_url)
    settings = settings_from(env)
    asyncio.run(install_shop(settings))
    log_level = settings.runtime.log_level.lower()
    intake_port, bare_port = free_port(), free_port()
    with server([str(Path(__file__).resolve()), "bare", str(bare_port), log_level], env, workdir / "bare.log",
                bare_port, PATH), \
            server(["-m", "jobs.cli", "serve", "--port", str(intake_port)], env, workdir / "serve.log",
                   intake_port, "/health"):
        results = asyncio.run(run_load({"bare": bare_port, "intake": intake_port}))
    stored = asyncio.run(inbox_rows(settings))

    i, b = results["intake"], results["bare"]
    ratios = [x.rate / y.rate for x, y in zip(i["rounds"], b["rounds"])]
    ratio = statistics.median(ratios)
    emit("intake_throughput", i["closed"].rate, "deliveries/s", baseline="bare starlette",
         baseline_value=round(b["closed"].rate, 3), ratio=round(ratio, 3), target="median round ratio >= 0.5",
         met=ratio >= 0.5, connections=CONNECTIONS, rounds=[
             {"bare": round(y.rate, 1), "intake": round(x.rate, 1), "ratio": round(r, 3)}
             for x, y, r in zip(i["rounds"], b["rounds"], ratios)])
    report_pair("intake_closed_p50_ms", "ms", i["closed"].pct(0.50), b["closed"].pct(0.50), connections=CONNECTIONS)
    report_pair("intake_closed_p99_ms", "ms", i["closed"].pct(0.99), b["closed"].pct(0.99), connections=CONNECTIONS)
    report_pair("intake_p50_ms", "ms", i["open"].pct(0.50), b["open"].pct(0.50), rate=RATE)
    p99 = i["open"].pct(0.99)
    report_pair("intake_p99_ms", "ms", p99, b["open"].pct(0.99), target="< 50 ms", met=p99 < 50, rate=RATE,
                achieved_rate=round(i["open"].rate, 1))
    bad = 0
    for side in ("intake", "bare"):
        statuses = sum((results[side][part].statuses for part in ("warmup", "closed", "open")), Counter())
        non_200 = sum(n for s, n in statuses.items() if s != 200)
        bad += non_200
        emit(f"{side}_non_200", non_200, "responses", of=sum(statuses.values()),
             statuses={str(s): n for s, n in sorted(statuses.items()) if s != 200})
    accepted = i["warmup"].ok + i["closed"].ok + i["open"].ok
    emit("intake_inbox_rows", stored, "rows", answered_200=accepted, match=stored == accepted)
    return bad + (stored != accepted)


def merged(results: list[Result]) -> Result:
    """Several rounds' results as one: every latency and status, and the measured seconds added up."""
    statuses: Counter[int] = Counter()
    for result in results:
        statuses += result.statuses
    return Result([t for result in results for t in result.latencies], sum(r.seconds for r in results), statuses)


async def run_load(ports: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Warm each server up, then closed-loop rounds taking turns, then the open loop on each in turn."""
    deliveries = {name: Deliveries(seed) for seed, name in enumerate(ports, start=1)}
    warmups = {name: await closed_loop(port, deliveries[name], CONNECTIONS, warmup=2.0, seconds=0.0)
               for name, port in ports.items()}
    rounds: dict[str, list[Result]] = {name: [] for name in ports}
    for _ in range(ROUNDS):
        for name, port in ports.items():
            rounds[name].append(await closed_loop(port, deliveries[name], CONNECTIONS, warmup=0.5,
                                                  seconds=CLOSED_SECONDS))
    out: dict[str, dict[str, Any]] = {}
    for name, port in ports.items():
        await asyncio.sleep(1.0)
        opened = await open_loop(port, deliveries[name], RATE, warmup=1.0, seconds=OPEN_SECONDS)
        out[name] = {"rounds": rounds[name], "closed": merged(rounds[name]), "open": opened,
                     "warmup": warmups[name]}
    return out


async def apply_side(label: str) -> None:
    """(In its own process.) Accept APPLY_EVENTS deliveries as intake does, then time one worker applying them."""
    import redis.asyncio as aioredis

    from connector import database, inbox
    from connector.db import InboxRow
    from connector.runtime import open_redis
    from connector.services import Services
    from jobs.worker import build_worker

    env = dict(os.environ)
    settings = settings_from(env)
    shop_id = await install_shop(settings)
    client = aioredis.from_url(settings.secrets.redis_url)
    await client.flushdb()
    await client.aclose()
    await database.connect(settings)
    handle = open_redis(settings)
    services = Services(settings=settings, redis=handle)
    deliveries = Deliveries(seed=3)
    try:
        started = time.perf_counter()
        for _ in range(APPLY_EVENTS):
            event_id, body = deliveries.next()
            inbox_id, new = await inbox.record(shop_id, "shopify", "orders/create", event_id, body)
            assert new
            await services.enqueue("apply_event", inbox_id, job_id=f"apply:{inbox_id}:0")
        accept = time.perf_counter() - started
        emit(f"accept_rate_{label}", APPLY_EVENTS / accept, "events/s", note="inbox.record + enqueue in-process")
        # The shipped worker settings (max_jobs, timeouts); no cron: the sweep and reconciliation are not the figure.
        worker = build_worker(settings, handle, own_database=False, handle_signals=False, cron_jobs=[])
        started = time.perf_counter()
        task = asyncio.create_task(worker.async_run())
        while True:
            await asyncio.sleep(0.05)
            if task.done():
                task.result()
                raise RuntimeError("worker stopped early")
            if not await InboxRow.filter(status=inbox.PENDING).exists():
                break
        seconds = time.perf_counter() - started
        task.cancel()  # stop polling, then let jobs in flight (the last recompute enqueues) finish before closing
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await worker.close()
        counts = await inbox.counts()
        emit(f"apply_rate_{label}", APPLY_EVENTS / seconds, "events/s", events=APPLY_EVENTS,
             seconds=round(seconds, 3), inbox=counts)
        if counts.get(inbox.APPLIED) != APPLY_EVENTS:
            raise RuntimeError(f"not every event applied: {counts}")
    finally:
        await services.close()
        handle.close()
        await database.close()


@contextmanager
def fresh_pg_database(url: str) -> Iterator[str]:
    """A new empty database on that server (BENCH_DATABASE_URL may hold other benches' tables), dropped after."""
    import asyncpg

    name = "bench_intake_" + uuid.uuid4().hex[:8]

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def apply(workdir: Path, redis_url: str) -> int:
    """apply_rate_sqlite and apply_rate_postgres, each in its own process (Tortoise caches SQL per dialect)."""
    config = bench_config(workdir)
    me = str(Path(__file__).resolve())
    rc = subprocess.call([sys.executable, me, "apply", "sqlite"], cwd=ROOT,
                         env=env_for(workdir / "apply-sqlite", config, redis_url))
    with postgres() as url:
        if url is None:
            print("# apply_rate_postgres: PostgreSQL skipped (no initdb; set BENCH_DATABASE_URL)", file=sys.stderr)
            return rc
        with fresh_pg_database(url) as db_url:
            rc = max(rc, subprocess.call([sys.executable, me, "apply", "postgres"], cwd=ROOT,
                                         env=env_for(workdir / "apply-pg", config, redis_url, db_url)))
    return rc


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        bare(int(sys.argv[2]), sys.argv[3])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "apply":
        asyncio.run(apply_side(sys.argv[2]))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    try:
        with redis_server(workdir) as redis_url:
            bad = intake(workdir, redis_url)
            rc = apply(workdir, redis_url)
        if bad:
            print(f"# intake: {bad} problem(s), logs were in {workdir}", file=sys.stderr)
        return 1 if (bad or rc) else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
