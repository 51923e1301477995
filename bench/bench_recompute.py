"""Benchmark a full recompute (load + compute + save + plan) of one large shop straight from the database.

Rows are generated with numpy (bench_analytics' BG/NBD + Gamma-Gamma process, fixed seed: ~2.3 orders per
customer over two years) plus ~1.5 lines per order over 2,000 products, and bulk-inserted with executemany,
bypassing the apply path, so the figure is the recompute alone. The shop is PENDING: the plan is computed but
not sent to a platform. A second run, after recording the whole plan as accepted, times the steady state
(nothing changed: an empty plan). Size: BENCH_RECOMPUTE_CUSTOMERS (default 1,000,000). PostgreSQL: set
BENCH_DATABASE_URL=postgres://… (an empty database), else a throwaway local cluster is started (bench/pg.py);
the PostgreSQL run is skipped, with a note, when neither exists. Each database runs in its own process.
One JSON line per figure: {"name", "value", "unit"}.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector import database, shops  # noqa: E402
from connector.config import Secrets, Settings  # noqa: E402
from connector.model import InstallState  # noqa: E402
from connector.database import sql  # noqa: E402
from jobs.tasks.frames import db  # noqa: E402
from connector import planner  # noqa: E402
from jobs.tasks.frames import load_shop  # noqa: E402
from adapters.registry import REGISTRY  # noqa: E402
from connector.write_state import load as load_written, save as save_written  # noqa: E402
from jobs.compute import compute, desired  # noqa: E402
from jobs.tasks.recompute import recompute  # noqa: E402
from bench_analytics import generate as btyd_generate  # noqa: E402  (bench/ is the script's directory)
from pg import postgres  # noqa: E402

N_CUSTOMERS = int(os.environ.get("BENCH_RECOMPUTE_CUSTOMERS", "1000000"))
N_PRODUCTS = 2000
SEED = 20261123
AS_OF = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
CHUNK = 50_000


def emit(name: str, value: float, unit: str) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit}), flush=True)


def generate(n: int) -> dict[str, Any]:
    """Orders from bench_analytics' BG/NBD + Gamma-Gamma process (known parameters), then 1-3 lines per order."""
    rng = np.random.default_rng(SEED)
    btyd = btyd_generate(n, SEED)
    order = np.argsort(btyd["customer"], kind="stable")
    owner, ns, total = btyd["customer"][order], btyd["ns"][order], btyd["amount"][order]
    lines_per = 1 + rng.binomial(2, 0.25, len(owner))
    line_order = np.repeat(np.arange(len(owner)), lines_per)
    product = (rng.zipf(1.3, len(line_order)) - 1) % N_PRODUCTS
    price = 5.0 + (np.arange(N_PRODUCTS) % 40) * 2.5
    stamp = ns.astype("datetime64[ns]").astype("datetime64[s]")
    texts = np.char.add(np.char.replace(np.datetime_as_string(stamp, unit="s"), "T", " "), "+00:00")
    return {"owner": owner, "at": texts, "total": total, "line_order": line_order, "product": product, "price": price}


async def insert(shop_id: int, data: dict[str, Any], n: int) -> None:
    """Bulk rows through the open connection (executemany in chunks)."""
    conn = db()
    pg = conn.capabilities.dialect == "postgres"
    now = AS_OF if pg else AS_OF.isoformat(sep=" ")
    money = (lambda v: Decimal(f"{v:.2f}")) if pg else (lambda v: f"{v:.2f}")  # asyncpg wants Decimal for numeric
    at = data["at"] if conn.capabilities.dialect != "postgres" else [datetime.fromisoformat(t) for t in data["at"]]
    product_sql = sql(conn, "INSERT INTO product (shop_id, platform_id, title, tags, status, is_gift_card, price, "
                            "in_stock, variants) VALUES (?, ?, ?, '[]', 'active', ?, ?, ?, '[]')")
    await conn.execute_many(product_sql, [
        (shop_id, str(10_000 + p), f"P{p}", False, money(data["price"][p]), p % 97 != 0) for p in range(N_PRODUCTS)])
    customer_sql = sql(conn, "INSERT INTO customer (shop_id, platform_id, is_guest, tags) VALUES (?, ?, ?, '[]')")
    for s in range(0, n, CHUNK):
        await conn.execute_many(customer_sql, [(shop_id, str(1_000_000 + i), False) for i in range(s, min(n, s + CHUNK))])
    order_sql = sql(conn, "INSERT INTO orders (id, shop_id, platform_id, customer_id, currency, subtotal, total, "
                          "discounts, refunded, cancelled, test, awaiting_payment, discount_codes, processed_at, "
                          "updated_at) VALUES (?, ?, ?, ?, 'USD', ?, ?, 0, 0, ?, ?, ?, '[]', ?, ?)")
    owner, total = data["owner"], data["total"]
    for s in range(0, len(owner), CHUNK):
        rows = [(i + 1, shop_id, str(i + 1), str(1_000_000 + int(owner[i])), money(total[i]), money(total[i]),
                 i % 200 == 0, False, False, at[i], now) for i in range(s, min(len(owner), s + CHUNK))]
        await conn.execute_many(order_sql, rows)
    line_sql = sql(conn, "INSERT INTO line_item (shop_id, order_id, platform_id, product_id, quantity, unit_price, "
                         "discount, is_gift_card) VALUES (?, ?, ?, ?, 1, ?, 0, ?)")
    lo, prod = data["line_order"], data["product"]
    for s in range(0, len(lo), CHUNK):
        rows = [(shop_id, int(lo[i]) + 1, str(i), str(10_000 + int(prod[i])), money(data["price"][prod[i]]), False)
                for i in range(s, min(len(lo), s + CHUNK))]
        await conn.execute_many(line_sql, rows)


async def run(settings: Settings, label: str) -> None:
    await database.migrate(settings)
    await database.connect(settings)
    try:
        started = time.perf_counter()
        data = generate(N_CUSTOMERS)
        row = await shops.save_install(settings, "shopify", f"bench-{label}.myshopify.com", {"access_token": "x"},
                                       state=InstallState.PENDING)
        await insert(row.id, data, N_CUSTOMERS)
        emit(f"{label}.generate_and_insert", time.perf_counter() - started, "s")
        emit(f"{label}.customers", N_CUSTOMERS, "customers")
        emit(f"{label}.orders", len(data["owner"]), "orders")
        emit(f"{label}.line_items", len(data["line_order"]), "lines")
        del data
        started = time.perf_counter()
        summary = await recompute(settings, REGISTRY, row.id, AS_OF)
        total = time.perf_counter() - started
        emit(f"{label}.recompute_load", summary["seconds"]["load"], "s")
        emit(f"{label}.recompute_compute", summary["seconds"]["compute"], "s")
        emit(f"{label}.recompute_save_insights", summary["seconds"]["save"], "s")
        emit(f"{label}.recompute_plan", summary["seconds"]["plan"], "s")
        emit(f"{label}.recompute_total", total, "s")
        emit(f"{label}.planned_owners", summary["planned"], "owners")
        print(f"# {label}: model={summary['model']}", file=sys.stderr)
        # Steady state: the platform accepted the whole plan; an unchanged shop then recomputes to an empty plan.
        computed = compute(await load_shop(row.id), settings, AS_OF)
        written = await load_written(row.id)
        full = planner.plan(desired(settings, "shopify", computed), written, managed_prefix=settings.writeback.tag_prefix)
        await save_written(row.id, written, planner.record(written, full.changes), AS_OF)
        del computed, written, full
        started = time.perf_counter()
        again = await recompute(settings, REGISTRY, row.id, AS_OF)
        emit(f"{label}.rerun_unchanged_total", time.perf_counter() - started, "s")
        emit(f"{label}.rerun_unchanged_plan", again["seconds"]["plan"], "s")
        emit(f"{label}.rerun_unchanged_planned_owners", again["planned"], "owners")
        emit(f"{label}.peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MB")
    finally:
        await database.close()


def side(label: str) -> None:
    """One database in this process (Tortoise caches SQL per dialect, so each database gets its own process)."""
    base = Settings()
    pg = os.environ.get("BENCH_DATABASE_URL", "")
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(base, runtime=dataclasses.replace(base.runtime, data_dir=tmp),
                                       secrets=Secrets(database_url=pg if label == "postgres" else ""))
        asyncio.run(run(settings, label))


def main() -> int:
    if len(sys.argv) > 1:
        side(sys.argv[1])
        return 0
    rc = subprocess.call([sys.executable, __file__, "sqlite"])
    with postgres() as url:  # BENCH_DATABASE_URL, else a throwaway local cluster, else None
        if url is None:
            print("# postgres: skipped (no PostgreSQL: install postgresql or set BENCH_DATABASE_URL)", file=sys.stderr)
            return rc
        env = {**os.environ, "BENCH_DATABASE_URL": url}
        return max(rc, subprocess.call([sys.executable, __file__, "postgres"], env=env))


if __name__ == "__main__":
    sys.exit(main())
