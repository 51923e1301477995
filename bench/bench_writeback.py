"""Benchmark Shopify write-back of 10,000 changed customers against the sandbox's cost-based leaky bucket.

The plan comes from the real planner (connector.planner, one synthetic set of analytics facts per customer: segments,
RFM, CLV, P(alive), next order, three cross-sells and an up-sell: one tagsAdd and one metafieldsSet of nine values
per customer) and goes through the real adapter (adapters.shopify.writeback) over HTTP to the sandbox, which
validates every document against the Admin schema, prices it and throttles it like Shopify.

Two paths, each on a fresh sandbox:
  batched  aliased mutations, 20 fields a request, paced by the bucket (what plans up to writeback.bulk_threshold use)
  bulk     staged JSONL upload + bulkOperationRunMutation per mutation kind (what larger plans use)
With app.toml's bulk_threshold (5,000) a 10,000-customer plan takes the bulk path; the batched figure shows what
the bucket would allow without it. The batched path is bound by the bucket: ceiling time = (total cost - the
initial bucket) / restore rate, and ratio = ceiling / actual (1.0 = every point of the bucket used, target >= 0.8).

Rate: BENCH_WRITEBACK_RESTORE_RATE points/s (default 1000, Shopify Plus) with a BENCH_WRITEBACK_BUCKET-point bucket
(default 2000, the sandbox's); Standard's 100 points/s would make the batched run ten times longer, so the Standard
ceiling is printed as a derived figure. Size: BENCH_WRITEBACK_CUSTOMERS (default 10,000).
One JSON line per figure: {"name", "value", "unit"}, plus baseline / baseline_value / ratio where a bound is measured.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.shopify import client as client_module  # noqa: E402
from adapters.shopify.adapter import ADAPTER  # noqa: E402
from sandboxes.shopify.app import Sandbox  # noqa: E402
from connector import planner  # noqa: E402
from connector.adapter import Connection  # noqa: E402
from connector.config import DEFAULT_CONFIG, Settings, load_settings  # noqa: E402
from connector.model import InstallState, Platform, Shop  # noqa: E402
from connector.planner import CustomerFacts  # noqa: E402

N_CUSTOMERS = int(os.environ.get("BENCH_WRITEBACK_CUSTOMERS", "10000"))
RESTORE_RATE = float(os.environ.get("BENCH_WRITEBACK_RESTORE_RATE", "1000"))
BUCKET = float(os.environ.get("BENCH_WRITEBACK_BUCKET", "2000"))
STANDARD_RATE = 100.0  # points/s on a Standard plan (platforms/shopify.md §3c)
SECRET = "bench-writeback-secret"
SHOP = "bench-writeback.myshopify.com"
SEED = 20261123
SEGMENTS = ("vip", "at_risk", "lapsed", "repeat", "rfm_champions", "rfm_loyal", "rfm_at_risk", "big_spender",
            "high_aov", "due_to_reorder", "one_time_buyer", "rfm_hibernating")
GROUPS = ("Champions", "Loyal", "Potential loyalist", "At risk", "Hibernating", "Lost")


def emit(name: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}), flush=True)


def load_threshold() -> int:
    """writeback.bulk_threshold as app.toml sets it: plans larger than this take the bulk path."""
    return settings(None).writeback.bulk_threshold


def settings(bulk_threshold: int | None) -> Settings:
    env = {"SHOPIFY_API_SECRET": SECRET, "RETENTION_ENCRYPTION_KEY": "bench", "RETENTION_MODE": "development",
           "RETENTION_DATA_DIR": str(Path(os.environ.get("TMPDIR", "/tmp")) / "bench-writeback")}
    base = load_settings(DEFAULT_CONFIG, env=env)
    if bulk_threshold is None:
        return base
    return dataclasses.replace(base, writeback=dataclasses.replace(base.writeback, bulk_threshold=bulk_threshold))


def facts(customers: list[int], products: list[int]) -> dict[str, CustomerFacts]:
    """What a recompute would say about every customer (fixed seed): the whole shop changed since the last write."""
    rng = random.Random(SEED)
    today = date(2026, 11, 23)
    out: dict[str, CustomerFacts] = {}
    for cid in customers:
        picks = rng.sample(products, 4)
        recs = [{"product_id": str(p), "reason": "bought_together", "because_of": str(picks[3])} for p in picks[:3]]
        recs.append({"product_id": str(picks[3]), "reason": "upgrade", "because_of": str(picks[0])})
        out[str(cid)] = CustomerFacts(
            segments=rng.sample(SEGMENTS, rng.randint(1, 4)), rfm=f"{rng.randint(1, 5)}{rng.randint(1, 5)}{rng.randint(1, 5)}",
            rfm_group=rng.choice(GROUPS), predicted_clv=rng.uniform(0, 900), p_alive=rng.random(),
            next_order_date=(today + timedelta(days=rng.randint(1, 120))).isoformat(), recommendations=recs)
    return out


@contextlib.contextmanager
def served(sandbox: Sandbox) -> Any:
    """The sandbox under uvicorn on a loopback port (its own thread and event loop); yields its URL."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(sandbox.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def run(path: str) -> None:
    configured = load_threshold()
    threshold = 10**9 if path == "batched" else 0  # each run forced onto its path
    config = settings(threshold)
    sandbox = Sandbox(secret=SECRET, client_id=config.client_id, shop=SHOP, maximum_available=BUCKET,
                      restore_rate=RESTORE_RATE).seed(N_CUSTOMERS, 60, days=30, seed=SEED)
    sandbox.store.orders.clear()  # orders play no part in a write
    customers, products = sorted(sandbox.store.customers), sorted(sandbox.store.products)
    wb = config.writeback
    desired = planner.desired_state("shopify", facts(customers, products), {}, prefix=wb.tag_prefix,
                                    max_tags=wb.max_tags, recommendations=wb.recommendations_per_customer,
                                    related_per_product=wb.related_per_product)
    plan = planner.plan(desired, {}, managed_prefix=wb.tag_prefix)
    token = sandbox._issue(",".join(config.scopes), False)["access_token"]
    conn = Connection(Shop(Platform.SHOPIFY, SHOP, id=None, state=InstallState.ACTIVE), {"access_token": token}, config)
    client_module.BUCKETS.clear()
    with served(sandbox) as url:
        conn = dataclasses.replace(conn, settings=dataclasses.replace(config, shopify=dataclasses.replace(config.shopify, admin_url=url)))
        await ADAPTER.on_installed(conn)  # metafield definitions: values are checked against them, as in production
        time.sleep(max(0.0, (BUCKET - sandbox.bucket.status()["currentlyAvailable"]) / RESTORE_RATE))  # full bucket
        requests, throttled, initial = sandbox.calls, sandbox.throttled, sandbox.bucket.status()["currentlyAvailable"]
        spent_before = {k: dict(v) for k, v in sandbox.usage.items()}
        started = time.perf_counter()
        result = await ADAPTER.write(conn, plan)
        wall = time.perf_counter() - started
    n = len(plan)
    tagged = sum(any(t.startswith(wb.tag_prefix) for t in c["tags"]) for c in sandbox.store.customers.values())
    if result.failed or len(result.accepted) != n or tagged != N_CUSTOMERS:
        raise SystemExit(f"{path}: {len(result.failed)} failed, {len(result.accepted)}/{n} accepted, {tagged} tagged: "
                         f"{result.failed[:3]}")
    used_bulk = "bulkOperationRunMutation" in sandbox.usage and "tagsAdd" not in sandbox.usage
    prefix = f"writeback.{path}"
    emit(f"{prefix}.changed_customers", n, "customers")
    emit(f"{prefix}.bulk_path_used", int(used_bulk), "bool", app_toml_bulk_threshold=configured,
         app_toml_path_for_this_plan="bulk" if n > configured else "batched")
    emit(f"{prefix}.api_calls", result.calls, "calls")
    emit(f"{prefix}.api_calls_per_customer", result.calls / n, "calls/customer")
    emit(f"{prefix}.requests_incl_throttled", sandbox.calls - requests, "requests")
    emit(f"{prefix}.throttled_answers", sandbox.throttled - throttled, "answers")
    emit(f"{prefix}.cost_points", result.cost, "points")
    emit(f"{prefix}.cost_points_per_customer", result.cost / n, "points/customer")
    if used_bulk:
        runs = {k: v["calls"] - spent_before.get(k, {}).get("calls", 0) for k, v in sandbox.usage.items() if k.startswith("bulk:")}
        emit(f"{prefix}.mutations_run_by_shopify", sum(runs.values()), "mutations")  # outside the app's bucket
    emit(f"{prefix}.wall_time", wall, "s")
    emit(f"{prefix}.customers_per_second", n / wall, "customers/s")
    if not used_bulk:
        ceiling = max(result.cost - initial, 0.0) / RESTORE_RATE
        emit(f"{prefix}.bucket", BUCKET, "points", restore_rate=RESTORE_RATE)
        emit(f"{prefix}.time_vs_bucket_ceiling", wall, "s", baseline="bucket ceiling: (cost - initial bucket) / restore rate",
             baseline_value=round(ceiling, 3), ratio=round(ceiling / wall, 3) if wall else None)
        emit(f"{prefix}.ceiling_at_standard_rate", max(result.cost - initial, 0.0) / STANDARD_RATE, "s",
             restore_rate=STANDARD_RATE)


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    if len(sys.argv) > 1:
        asyncio.run(run(sys.argv[1]))
        return 0
    import subprocess

    # Each path in its own process: the client's bucket estimates and the sandbox's caches start cold for both.
    return max(subprocess.call([sys.executable, __file__, path]) for path in ("bulk", "batched"))


if __name__ == "__main__":
    sys.exit(main())
