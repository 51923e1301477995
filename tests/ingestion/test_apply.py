"""Apply: shuffled, duplicated deliveries converge to the in-order state; bad payloads are kept and reported."""
from __future__ import annotations

import json
from datetime import timedelta
import subprocess
import sys
from typing import Any

import pytest

from connector import inbox, shops
from connector.config import Settings
from connector.db import CustomerRow, InboxRow, LineItemRow, OrderRow, ShopRow
from connector.model import InstallState, Platform
from jobs import tasks
from tests.conftest import ROOT
from tests.ingestion.conftest import SECRET, drain, install, intake
from tests.support.events import Event, fixture, history, order_payload, shuffled_with_duplicates

pytestmark = pytest.mark.postgres


async def deliver(settings: Settings, shop: str, events: list[Event]) -> None:
    async with intake(settings) as (client, _):
        for event in events:
            response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(shop, SECRET))
            assert response.status_code == 200, response.text


async def state(shop_id: int) -> dict[str, Any]:
    """Everything a shop's analytics would read, in a comparable form."""
    orders = await OrderRow.filter(shop_id=shop_id).order_by("platform_id").values_list(
        "platform_id", "customer_id", "total", "cancelled", "updated_at", "email")
    lines = await LineItemRow.filter(shop_id=shop_id).order_by("platform_id").values_list(
        "platform_id", "quantity", "unit_price")
    customers = await CustomerRow.filter(shop_id=shop_id).order_by("platform_id").values_list(
        "platform_id", "email", "first_name", "updated_at")
    return {"orders": orders, "lines": lines, "customers": customers}


async def test_shuffled_duplicated_deliveries_end_in_the_in_order_state(ingest: Settings) -> None:
    events = history(n_orders=180, versions=5)  # 180*5 orders + 60*5 customers = 1,200 events
    assert len(events) >= 1000
    mixed = shuffled_with_duplicates(events, share=0.3)
    in_order = await install(ingest, "in-order.myshopify.com")
    shuffled = await install(ingest, "shuffled.myshopify.com")
    await deliver(ingest, "in-order.myshopify.com", events)
    await deliver(ingest, "shuffled.myshopify.com", mixed)
    await drain(ingest)
    assert await InboxRow.filter(status="pending").count() == 0
    assert await InboxRow.filter(shop_id=shuffled).count() == len(events)  # each duplicate stored once
    expected, got = await state(in_order), await state(shuffled)
    assert len(expected["orders"]) == 180 and len(expected["lines"]) == 180
    assert got == expected
    cancelled = await OrderRow.filter(shop_id=shuffled, cancelled=True).count()
    assert cancelled == len([i for i in range(180) if i % 7 == 0])


async def test_a_payload_that_fails_to_normalize_is_kept_reported_and_replayable(ingest: Settings) -> None:
    shop_id = await install(ingest, "demo.myshopify.com")
    missing_id = fixture("orders/updated")
    del missing_id["id"], missing_id["admin_graphql_api_id"]
    bad = [Event("orders/updated", "bad-json", b'{"id": 1, "line_items": [ oops'),
           Event("orders/updated", "no-id", json.dumps(missing_id).encode())]
    good = Event("orders/updated", "good", order_payload(42, 7, 1, "10.00"))
    await deliver(ingest, "demo.myshopify.com", [*bad, good])
    await drain(ingest)
    failed = {row.dedup_key: row for row in await InboxRow.filter(status="failed")}
    assert set(failed) == {"bad-json", "no-id"}
    assert all(row.error and bytes(row.body) for row in failed.values())
    assert await OrderRow.filter(shop_id=shop_id).count() == 1

    env = {"RETENTION_DATA_DIR": str(ingest.data_dir), "DATABASE_URL": ingest.database_url,
           "REDIS_URL": ingest.secrets.redis_url, "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([sys.executable, "-m", "jobs.cli", "inbox", "--failed"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "2 failed" in listed.stdout and "orders/updated" in listed.stdout
    replay = subprocess.run([sys.executable, "-m", "jobs.cli", "inbox", "--replay"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert "2 failed event(s) back to pending, 2 queued" in replay.stdout
    await drain(ingest)
    rows = await InboxRow.filter(dedup_key__in=["bad-json", "no-id"])
    assert [(r.status, r.attempts) for r in rows] == [("failed", 2), ("failed", 2)]  # still bad, tried again


async def test_a_burst_of_events_schedules_one_recompute(ingest: Settings) -> None:
    shop_id = await install(ingest, "demo.myshopify.com")
    slow = ingest.__class__(**{**ingest.__dict__, "schedules": ingest.schedules.__class__(
        **{**ingest.schedules.__dict__, "recompute_debounce_seconds": 600})})
    await deliver(slow, "demo.myshopify.com", history(n_orders=20, versions=1))
    async with intake(slow) as (_, services):
        ctx = {"services": services}
        for inbox_id, _attempts in await inbox.stale_pending(0):
            assert await tasks.apply_event(ctx, inbox_id) == "applied"
        queued = [job for job in await services.pool.queued_jobs() if job.function == "recompute_shop"]
    assert [job.args for job in queued] == [(shop_id,)]


async def test_the_sweep_queues_an_install_whose_job_was_lost_a_few_times_then_stops(ingest: Settings) -> None:
    row = await shops.save_install(ingest, Platform.SHOPIFY, "stuck.myshopify.com", {"access_token": "shpat_x"},
                                   state=InstallState.PENDING)
    await ShopRow.filter(id=row.id).update(installed_at=shops.utcnow() - timedelta(minutes=5))
    active = await install(ingest, "fine.myshopify.com")
    async with intake(ingest) as (_, services):
        ctx = {"services": services}
        for _ in range(tasks.INSTALL_SWEEP_TRIES):
            await tasks.sweep_inbox(ctx)
            await tasks.sweep_inbox(ctx)  # still queued: not queued twice
            queued = [job.args for job in await services.pool.queued_jobs() if job.function == "install_shop"]
            assert queued == [(row.id,)] and active != row.id  # never the active shop
            await services.pool.delete(f"arq:job:install:{row.id}:sweep")  # as if the job ran and failed
            await services.pool.zrem("arq:queue", f"install:{row.id}:sweep")
        assert (await ShopRow.get(id=row.id)).cursors["install_sweeps"] == str(tasks.INSTALL_SWEEP_TRIES)
        await tasks.sweep_inbox(ctx)
        assert not [job for job in await services.pool.queued_jobs() if job.function == "install_shop"]
