"""The demo's "where merchants act" part: native Shopify segments in the store, and Flow triggers sent.

The first recompute is the Flow baseline (no trigger for what customers already were). To show triggers, the demo
then recomputes as of 45 days later with no new orders: customers lapse, become at risk or leave segments, and each
change goes to Flow once (the sandbox checks every payload against extensions/flow-*/shopify.extension.toml).
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import timedelta
from typing import Any

from tortoise.exceptions import OperationalError

from adapters.registry import REGISTRY
from adapters.shopify import documents
from adapters.shopify.connect import http_client, open_client
from connector import shops
from connector.config import Settings
from connector.db import FlowOutboxRow, ShopRow
from jobs.tasks.recompute import recompute

LATER_DAYS = 45


async def report(settings: Settings, shop_id: int) -> None:
    row = await ShopRow.get(id=shop_id)
    async with http_client() as http:
        client = open_client(await shops.connection(settings, row), http)
        data = await client.execute(documents.load("segments_page"), {"first": 100, "after": None}, "segments")
    ours = [n for n in data["segments"]["nodes"] if n["name"].startswith(settings.native_segments.name_prefix)]
    print(f"{len(ours)} customer segments in the store's admin (Shopify Email, discounts and Flow can target them):")
    for node in ours[:6]:
        print(f"  {node['name']:<34} {node['query']}")
    if len(ours) > 6:
        print(f"  … and {len(ours) - 6} more")
    summary = await later_recompute(settings, shop_id)
    flow = summary.get("flow") or {}
    print(f"recompute as of {LATER_DAYS} days later, no new orders: {flow.get('queued', 0)} Flow trigger(s) queued, "
          f"{flow.get('sent', 0)} sent, {flow.get('refused', 0)} refused by the store")
    rows = await FlowOutboxRow.filter(shop_id=shop_id, status="sent").order_by("id")
    for (handle, segment), n in Counter((r.handle, r.payload.get("segment", "")) for r in rows).most_common(6):
        print(f"  {handle:<28} {segment:<16} {n:>5}")
    if rows:
        print(f"  e.g. flowTriggerReceive(handle: {rows[0].handle!r}, payload: {rows[0].payload})")


async def later_recompute(settings: Settings, shop_id: int, tries: int = 5) -> dict[str, Any]:
    """The recompute as of LATER_DAYS from now, run in this process beside the worker's: on SQLite a transaction
    that read before the worker committed cannot take the write lock (SQLITE_BUSY_SNAPSHOT, which no busy timeout
    waits out), so it runs again; a recompute is idempotent."""
    for attempt in range(1, tries + 1):
        try:
            # Full: every customer is judged as of that day (a scoped run would look only at customers changed since
            # the last run, and there are none).
            return await recompute(settings, REGISTRY, shop_id, shops.utcnow() + timedelta(days=LATER_DAYS), full=True)
        except (OperationalError, sqlite3.OperationalError) as exc:  # raw connections raise sqlite3's own
            if "locked" not in str(exc) or attempt == tries:
                raise
            await asyncio.sleep(2 * attempt)
    raise AssertionError("unreachable")
