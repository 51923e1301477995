"""Benchmark the app home: server render time and page weight of every page for one large shop (SQLite).

The shop's rows are bulk-inserted as a recompute leaves them (customers, their insights, the write state, the shop
documents with charts), so the figures are the pages alone. Each page is requested through the real app (routing,
authentication by signed token, queries, templates, SVG) in process; the median of REPEAT requests is reported.
Size: BENCH_HOME_CUSTOMERS (default 1,000,000). One JSON line per figure: {"name", "value", "unit"}.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.registry import REGISTRY  # noqa: E402
from connector import database  # noqa: E402
from connector.app import create_app  # noqa: E402
from connector.config import load_settings  # noqa: E402
from connector.database import sql  # noqa: E402
from connector.db import ShopRow  # noqa: E402
from connector.home.auth import mint  # noqa: E402
from connector.runtime import open_redis  # noqa: E402
from connector.services import Services  # noqa: E402
from report import emit  # noqa: E402  (bench/ is the script's directory)
from tortoise.connection import get_connection  # noqa: E402

N = int(os.environ.get("BENCH_HOME_CUSTOMERS", "1000000"))
REPEAT = 5
CHUNK = 50_000
SEGMENTS = ["first_time", "repeat", "big_spender", "vip", "at_risk", "lapsed", "rfm_champions", "rfm_lost"]
GROUPS = ["Champions", "Loyal", "At risk", "Lost", "Hibernating"]


def documents(n: int) -> dict[str, Any]:
    """The shop documents a recompute of an n-customer shop stores (sizes as real ones: 24 cohorts, 20 bins)."""
    months = [f"{2025 + (m // 12)}-{m % 12 + 1:02d}" for m in range(24)]
    cohorts = {c: [1.0] + [round(0.3 / (1 + a), 4) for a in range(1, 24 - i)] + [None] * i
               for i, c in enumerate(months)}
    charts = {"repeat_rate": [{"month": m, "buyers": n, "repeaters": n // 3, "rate": 0.33} for m in months],
              "clv": {"edges": list(np.linspace(0, 900, 21)), "counts": [n // 20] * 20, "customers": n},
              "rfm": {"cells": [{"r": r, "f": f, "group": GROUPS[(r + f) % 5], "count": n // 25}
                                for r in range(5, 0, -1) for f in range(1, 6)], "groups": {g: n // 5 for g in GROUPS}}}
    kpis = {"customers": n, "orders": 2 * n, "revenue": 150.0 * n, "repeat_purchase_rate": 0.33,
            "retention_rate": 0.2, "churn_rate": 0.8, "average_order_value": 75.0,
            "repeat_customer_revenue_share": 0.6, "average_clv": 120.0, "median_clv": 80.0, "period_days": 90}
    return {
        "kpis": {"as_of": "2026-11-23", "customers": n, "orders": 2 * n, "model": "bgnbd+gamma_gamma", "kpis": kpis,
                 "segments": {s: n // (i + 2) for i, s in enumerate(SEGMENTS)}, "cohorts": cohorts, "charts": charts,
                 "recommended": [{"product_id": str(p), "customers": n // (p + 2)} for p in range(20)]},
        "model": {"as_of": "2026-11-23", "model": "bgnbd+gamma_gamma"},
        "last_run": {"status": "ok", "customers": n, "run": "scoped", "planned": 10, "accepted": 10, "failed": 0, "refused": []},
    }


async def build(n: int) -> int:
    """One installed shop with n customers, their insights and write state, 2,000 products and the documents."""
    conn = get_connection("default")
    at = datetime(2026, 11, 23, 12, tzinfo=timezone.utc).isoformat(sep=" ")
    shop = await ShopRow.create(platform="shopify", domain="bench-home.myshopify.com", state="active",
                                cursors={f"sync:{k}": "done" for k in ("products", "customers", "orders")})
    rng = np.random.default_rng(7)
    ids = [f"{i:09d}" for i in range(n)]
    for start in range(0, n, CHUNK):
        part = ids[start:start + CHUNK]
        await conn.execute_many(sql(conn, "INSERT INTO customer (shop_id, platform_id, email, is_guest, first_name, "
                                          "last_name, tags, created_at, updated_at) VALUES (?, ?, ?, 0, 'A', 'B', "
                                          "'[]', ?, ?)"), [[shop.id, c, f"c{c}@example.com", at, at] for c in part])
        rows = []
        for c in part:
            segs = [s for s in SEGMENTS if rng.random() < 0.3]
            recs = [{"product_id": str(int(p)), "reason": "bought_together", "because_of": None}
                    for p in rng.integers(0, 2000, 10)]
            data = {"number_of_orders": int(rng.integers(1, 6)), "amount_spent": 100.0, "predicted_clv": 120.0,
                    "p_alive": 0.7, "rfm_score": 345, "rfm_group": "Loyal", "recommendations": recs}
            rows.append([shop.id, c, json.dumps(data), json.dumps(segs), at])
        await conn.execute_many(sql(conn, "INSERT INTO customer_insight (shop_id, customer_id, data, segments, "
                                          "computed_at) VALUES (?, ?, ?, ?, ?)"), rows)
        await conn.execute_many(sql(conn, "INSERT INTO write_state (shop_id, owner_kind, owner_id, tags, metafields, "
                                          "written_at) VALUES (?, 'customer', ?, ?, '{}', ?)"),
                                [[shop.id, c, json.dumps(["rt:" + s for s in SEGMENTS[:3]]), at] for c in part])
    await conn.execute_many(sql(conn, "INSERT INTO product (shop_id, platform_id, title, tags, status, is_gift_card, "
                                      "price, in_stock, variants) VALUES (?, ?, ?, '[]', 'active', 0, 10, 1, '[]')"),
                            [[shop.id, str(p), f"Product {p}"] for p in range(2000)])
    await conn.execute_many(sql(conn, "INSERT INTO shop_insight (shop_id, name, data, computed_at) VALUES (?, ?, ?, ?)"),
                            [[shop.id, name, json.dumps(doc), at] for name, doc in documents(n).items()])
    return int(shop.id)


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-home-") as tmp:
        os.environ.update(RETENTION_DATA_DIR=tmp, RETENTION_MODE="development")
        settings = load_settings(ROOT / "app.toml")
        await database.migrate(settings)
        await database.connect(settings)
        started = time.perf_counter()
        shop_id = await build(N)
        emit("home_build_rows", time.perf_counter() - started, "s", customers=N)
        app = create_app(settings, REGISTRY)
        handle = open_redis(settings)
        app.state.services = Services(settings=settings, redis=handle, adapters=REGISTRY)
        row = await ShopRow.get(id=shop_id)
        token = mint(settings, row, "session", 3600)
        pages = {"overview": "/app", "charts": "/app/charts", "segments": "/app/segments",
                 "segment_members": "/app/segments/repeat", "segment_members_page_2": "/app/segments/repeat?after=000000500",
                 "customer_lookup": f"/app/customers?q={N // 2:09d}", "recommendations": "/app/recommendations",
                 "settings": "/app/settings", "progress_json": "/app/progress"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path in pages.items():
                times, size = [], 0
                for _ in range(REPEAT + 1):  # the first warms caches (templates, SQLite pages)
                    t0 = time.perf_counter()
                    answer = await client.get(f"{path}{'&' if '?' in path else '?'}t={token}")
                    times.append(time.perf_counter() - t0)
                    assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
                    assert name != "customer_lookup" or "id=\"customer\"" in answer.text, "the customer was not shown"
                    size = len(answer.content)
                emit(f"home_render_{name}", statistics.median(times[1:]) * 1000, "ms", customers=N)
                emit(f"home_weight_{name}", size / 1024, "KiB", customers=N)
        handle.close()
        await database.close()


if __name__ == "__main__":
    asyncio.run(main())
