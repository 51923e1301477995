"""The flow_state and flow_outbox tables' one owner: each customer's last Flow state, and the trigger calls to send.

A recompute's state changes and the calls they fire are stored in one transaction, so a crash cannot leave a
change recorded without its call (the call would never go out) or a call without its change (the next run would
fire it again). Calls are unique per (shop, key): recording the same change twice stores one call.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from connector.automation import TriggerCall
from connector.database import sql, timestamp
from connector.db import FlowOutboxRow, FlowStateRow

BATCH = 20_000


async def load_states(shop_id: int, customers: Iterable[str] | None = None) -> dict[str, dict[str, Any]] | None:
    """Every customer's (or these customers') last state, or None before the shop's first run (that run is a
    baseline)."""
    query = FlowStateRow.filter(shop_id=shop_id)
    rows = await (query if customers is None else query.filter(customer_id__in=list(customers))).values_list(
        "customer_id", "state")
    if not rows and (customers is None or not await FlowStateRow.filter(shop_id=shop_id).exists()):
        return None
    return {str(cid): dict(state) for cid, state in rows}


async def record(shop_id: int, changed: Mapping[str, Mapping[str, Any]], gone: Sequence[str],
                 calls: Sequence[TriggerCall], at: datetime) -> int:
    """Store changed states, forget gone customers and queue the calls, atomically; returns calls newly queued."""
    conn = get_connection("default")
    stamp = timestamp(conn, at)
    upsert = sql(conn, "INSERT INTO flow_state (shop_id, customer_id, state) VALUES (?, ?, ?) "
                       "ON CONFLICT (shop_id, customer_id) DO UPDATE SET state = excluded.state")
    queue = sql(conn, "INSERT INTO flow_outbox (shop_id, key, handle, payload, status, created_at) "
                      "VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (shop_id, key) DO NOTHING")
    rows: list[Any] = [(shop_id, cid, json.dumps(state, separators=(",", ":"))) for cid, state in changed.items()]
    before = await FlowOutboxRow.filter(shop_id=shop_id).count()
    async with in_transaction() as tx:
        for start in range(0, len(rows), BATCH):
            await tx.execute_many(upsert, rows[start:start + BATCH])
        if gone:
            await FlowStateRow.filter(shop_id=shop_id, customer_id__in=list(gone)).using_db(tx).delete()
        if calls:
            await tx.execute_many(queue, [[shop_id, c.key, c.handle, json.dumps(dict(c.payload)), stamp] for c in calls])
    return await FlowOutboxRow.filter(shop_id=shop_id).count() - before


async def pending(shop_id: int, limit: int = 1000) -> list[TriggerCall]:
    """Calls not sent yet, oldest first."""
    rows = await FlowOutboxRow.filter(shop_id=shop_id, status="pending").order_by("id").limit(limit)
    return [TriggerCall(row.handle, dict(row.payload), row.key) for row in rows]


async def mark(shop_id: int, sent: Sequence[str], refused: Sequence[tuple[str, str]], at: datetime) -> None:
    """Sent calls are never sent again; refused ones keep the platform's reason and are not retried."""
    if sent:
        await FlowOutboxRow.filter(shop_id=shop_id, key__in=list(sent)).update(status="sent", sent_at=at)
    for key, reason in refused:
        await FlowOutboxRow.filter(shop_id=shop_id, key=key).update(status="refused", error=reason[:2000], sent_at=at)


async def counts(shop_id: int) -> dict[str, int]:
    """Calls by status, e.g. {"sent": 12, "pending": 0}."""
    out: dict[str, int] = {}
    for status in await FlowOutboxRow.filter(shop_id=shop_id).values_list("status", flat=True):
        out[str(status)] = out.get(str(status), 0) + 1
    return out
