"""The demo's "where merchants act" part: native Shopify segments in the store, and the Flow triggers sent.

The first recompute is the Flow baseline (no trigger for what customers already were). Every trigger after it comes
from a real change: live orders and the proof's burst move customers between segments, the worker's recompute
notices, and each change goes to Flow once (the sandbox checks every payload against the definitions in
extensions/flow-*/shopify.extension.toml).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter

from adapters.shopify import documents
from adapters.shopify.connect import http_client, open_client
from connector import insights, shops
from connector.config import Settings
from connector.database import json_column
from connector.db import CustomerRow, FlowOutboxRow, InboxRow, ShopRow
from connector.home.data import run_started


async def segments(settings: Settings, shop_id: int) -> None:
    """The customer segments we created in the store, read back from it."""
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


async def echoes(shop_id: int) -> None:
    """Our writes come back as webhooks; they mark no customer changed, so they cause no second write."""
    topics = ["customers/update", "customer.tags_added"]
    count = await InboxRow.filter(shop_id=shop_id, topic__in=topics).count()
    row = await insights.shop(shop_id, "last_run")
    last = dict(json_column(row.data)) if row is not None else {}
    # The last run is the full refit once the whole history was in (the first runs met a backfill under way).
    marked = 0 if row is None else await CustomerRow.filter(
        shop_id=shop_id, changed_at__gt=run_started(row.computed_at, last)).count()
    print(f"the last recompute ({last.get('run')}) planned {last.get('planned')} change(s) and wrote "
          f"{last.get('accepted')}; our writes came back as {count} customers/update + customer.tags_added "
          f"webhooks, which marked {marked} customer(s) changed: no write of ours causes another")


async def flow_triggers(shop_id: int, timeout: float = 60) -> None:
    """What the worker's recomputes sent to Flow since the baseline, by trigger and segment."""
    # The run that counted the last orders saved its insights first and sends to Flow after: wait for its summary.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kpis, last = await insights.shop(shop_id, "kpis"), await insights.shop(shop_id, "last_run")
        if kpis is None or (last is not None and last.computed_at >= kpis.computed_at):
            break
        await asyncio.sleep(0.5)
    rows = await FlowOutboxRow.filter(shop_id=shop_id).order_by("id")
    status = Counter(r.status for r in rows)
    print(f"{len(rows)} Flow trigger(s) queued by the recomputes since the first one (the baseline): "
          f"{status.get('sent', 0)} sent, {status.get('refused', 0)} refused by the store, "
          f"{status.get('pending', 0)} waiting for the next run")
    sent = [r for r in rows if r.status == "sent"]
    for (handle, segment), n in Counter((r.handle, r.payload.get("segment", "")) for r in sent).most_common(6):
        print(f"  {handle:<28} {segment:<16} {n:>5}")
    if sent:
        print(f"  e.g. flowTriggerReceive(handle: {sent[0].handle!r}, payload: {sent[0].payload})")
