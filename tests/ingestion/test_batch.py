"""Batched apply: one transaction per batch of a shop's rows, newest wins, a bad row fails alone, a crash loses none."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.registry import REGISTRY
from connector import inbox, inbox_batch
from connector.config import Settings
from connector.db import InboxRow, LineItemRow, OrderRow
from tests.ingestion.conftest import install
from tests.ingestion.test_apply import state
from tests.ingestion.test_crash import Workers, assert_counted_once, pending_ids, until_none_pending
from tests.support.events import Event, history, order_payload, shuffled_with_duplicates

pytestmark = pytest.mark.postgres


async def store(shop_id: int, events: list[Event]) -> list[int]:
    """Store deliveries in the inbox as intake does (no job queued); their ids, in delivery order."""
    ids = []
    for event in events:
        inbox_id, new = await inbox.record(shop_id, "shopify", event.topic, event.event_id, event.body)
        if new:
            ids.append(inbox_id)
    return ids


async def apply_in_batches(ids: list[int], size: int) -> list[inbox_batch.Batch]:
    """Apply as the jobs do, in id order: each job whose row is still pending applies a batch."""
    batches = []
    for inbox_id in ids:
        batch = await inbox_batch.apply_batch(inbox_id, REGISTRY, size)
        if batch.statuses:
            batches.append(batch)
    return batches


async def test_a_batch_holding_several_versions_of_an_order_keeps_the_newest(ingest: Settings) -> None:
    shop_id = await install(ingest, "versions.myshopify.com")
    versions = {v: Event("orders/updated", f"o-v{v}", order_payload(42, 7, v, f"{10 + v}.00")) for v in range(5)}
    await apply_in_batches(await store(shop_id, [versions[1]]), 10)
    # Newer first, then older ones (one older than what is stored), then the same version again: one batch.
    ids = await store(shop_id, [versions[3], versions[0], versions[2], versions[4], versions[2]])
    (batch,) = await apply_in_batches(ids, 10)
    assert sorted(batch.statuses) == ids and set(batch.statuses.values()) == {"applied"}
    order = await OrderRow.get(shop_id=shop_id, platform_id="42")
    assert order.total == 14 and order.updated_at == updated_at(versions[4])
    lines = await LineItemRow.filter(order_id=order.id).values_list("quantity", flat=True)
    assert lines == [1 + 4 % 3]  # version 4's line, once

    older = [Event(e.topic, e.event_id + "-again", e.body) for e in (versions[0], versions[3])]
    ids = await store(shop_id, older)  # only older versions (delivered again under new ids): nothing changes
    (batch,) = await apply_in_batches(ids, 10)
    assert batch.applied is not None and batch.applied.changed == 0
    assert (await OrderRow.get(shop_id=shop_id, platform_id="42")).total == 14


def updated_at(event: Event) -> datetime:
    return datetime.fromisoformat(json.loads(event.body)["updated_at"])


async def test_batches_end_in_the_state_rows_applied_one_by_one_reach(ingest: Settings) -> None:
    events = shuffled_with_duplicates(history(n_orders=40, versions=4), share=0.3)
    one_by_one = await install(ingest, "one-by-one.myshopify.com")
    batched = await install(ingest, "batched.myshopify.com")
    for inbox_id in await store(one_by_one, events):
        assert (await inbox.apply_event(inbox_id, REGISTRY)).status == "applied"
    ids = await store(batched, events)
    batches = await apply_in_batches(ids, 25)
    assert len(batches) == -(-len(ids) // 25)  # every batch full but the last: no row applied twice
    assert Counter(i for b in batches for i in b.statuses) == Counter(ids)
    assert await state(batched) == await state(one_by_one)
    assert await InboxRow.filter(shop_id=batched, status="applied", attempts=1).count() == len(ids)


async def test_a_row_that_fails_in_a_batch_fails_alone_and_the_others_are_applied(ingest: Settings) -> None:
    shop_id = await install(ingest, "mixed.myshopify.com")
    refused = json.loads(order_payload(3, 7, 1, "12.00"))
    refused["line_items"][0]["sku"] = "S" * 300  # 255 characters in the column: refused when written, not when read
    events = [Event("orders/updated", "good-1", order_payload(1, 7, 1, "11.00")),
              Event("orders/updated", "bad-json", b'{"id": 2, "line_items": [ oops'),
              Event("orders/updated", "refused", json.dumps(refused).encode()),
              Event("orders/updated", "good-2", order_payload(4, 7, 1, "14.00")),
              Event("orders/updated", "good-1-newer", order_payload(1, 7, 2, "21.00"))]
    ids = await store(shop_id, events)
    (batch,) = await apply_in_batches(ids, 10)
    status = dict(await InboxRow.filter(shop_id=shop_id).values_list("dedup_key", "status"))
    assert status == {"good-1": "applied", "bad-json": "failed", "refused": "failed", "good-2": "applied",
                      "good-1-newer": "applied"}
    assert batch.statuses == {i: status[e.event_id] for i, e in zip(ids, events)}
    errors = dict(await InboxRow.filter(shop_id=shop_id, status="failed").values_list("dedup_key", "error"))
    assert all(errors.values()), errors
    totals = dict(await OrderRow.filter(shop_id=shop_id).values_list("platform_id", "total"))
    assert totals == {"1": 21, "4": 14}
    assert await LineItemRow.filter(shop_id=shop_id).count() == 2


async def test_a_crash_before_the_batch_commits_leaves_every_row_of_it_pending(
    ingest: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop_id = await install(ingest, "crash.myshopify.com")
    events = history(n_orders=12, versions=2)
    ids = await store(shop_id, events)
    real_mark = inbox_batch._mark

    async def crash_after_marking(*args: Any) -> None:
        await real_mark(*args)  # every change and mark written, the commit not yet done: the worker dies here
        raise asyncio.CancelledError("worker killed")

    monkeypatch.setattr(inbox_batch, "_mark", crash_after_marking)
    with pytest.raises(asyncio.CancelledError):
        await inbox_batch.apply_batch(ids[0], REGISTRY, 100)
    assert await pending_ids(shop_id) == set(ids)
    assert await OrderRow.filter(shop_id=shop_id).count() == 0
    assert await InboxRow.filter(shop_id=shop_id, attempts__gt=0).count() == 0

    monkeypatch.setattr(inbox_batch, "_mark", real_mark)
    (batch,) = await apply_in_batches(ids, 100)  # the retry (or the sweep's job) applies them all, once
    assert len(batch.statuses) == len(ids) and not await pending_ids(shop_id)
    await assert_counted_once(shop_id, events)


async def test_concurrent_batches_of_one_shop_never_apply_a_row_twice(ingest: Settings) -> None:
    shop_id = await install(ingest, "busy.myshopify.com")
    events = history(n_orders=30, versions=3)
    ids = await store(shop_id, events)
    # Every row's job at once, as many workers would run them (separate connections on PostgreSQL).
    batches = await asyncio.gather(*(inbox_batch.apply_batch(i, REGISTRY, 16) for i in ids))
    applied = Counter(i for b in batches for i in b.statuses)
    assert applied == Counter(ids), [i for i, n in applied.items() if n > 1]
    assert await InboxRow.filter(shop_id=shop_id, status="applied", attempts=1).count() == len(ids)
    await assert_counted_once(shop_id, events)


async def test_two_worker_processes_on_one_shop_apply_each_row_once(ingest: Settings, tmp_path: Path) -> None:
    from tests.ingestion.test_apply import deliver

    shop_id = await install(ingest, "two-workers.myshopify.com")
    events = history(n_orders=60, versions=3)
    workers = Workers(ingest, tmp_path, apply_batch_size=500)
    try:
        workers.start()
        workers.start()
        await deliver(ingest, "two-workers.myshopify.com", events)
        await until_none_pending(shop_id, 90, workers.tail)
    finally:
        workers.kill_all()
    rows = await InboxRow.filter(shop_id=shop_id).values_list("status", "attempts")
    assert Counter(s for s, _ in rows) == {"applied": len(events)}
    attempts = Counter(a for _, a in rows)
    # Marked applied once each; a transient failure retried (SQLite's "database is locked" between the two
    # processes) may add one.
    assert min(attempts) >= 1 and max(attempts) <= 2, attempts
    await assert_counted_once(shop_id, events)
