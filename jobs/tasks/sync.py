"""Shop tasks: finish an install, backfill or reconcile a shop, and the cron that reconciles every shop."""
from __future__ import annotations

import logging
from typing import Any, cast

from connector import queue, shops
from connector.db import ShopRow
from connector.errors import Fatal, Retryable
from connector.model import InstallState
from connector.store import Applied, apply_changes
from jobs.tasks.context import retry_later, services
from jobs.tasks.recompute import schedule_recompute

log = logging.getLogger("retention.jobs")


async def install_shop(ctx: dict[str, Any], shop_id: int) -> str:
    """After install: the adapter registers webhooks/definitions (and checks keys); then the backfill starts."""
    found = services(ctx)
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None or row.state == InstallState.UNINSTALLED.value:
        return "gone"
    conn = await shops.connection(found.settings, row)
    try:
        await found.adapter(row.platform).on_installed(conn)
    except Retryable as exc:
        raise retry_later(ctx, exc) from exc
    except Fatal as exc:
        log.error("shop %s: install check failed, left pending: %s", shop_id, exc)
        return "failed"
    await shops.set_state(shop_id, InstallState.ACTIVE)
    await found.enqueue(queue.SYNC_SHOP, shop_id, job_id=queue.sync_id(shop_id))
    return "active"


async def sync_shop(ctx: dict[str, Any], shop_id: int) -> dict[str, int]:
    """Backfill (no cursor yet) or reconcile (since the cursor): one apply path, resumable page by page."""
    found = services(ctx)
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None or row.state != InstallState.ACTIVE.value:
        return {}
    conn = await shops.connection(found.settings, row)
    adapter = found.adapter(row.platform)
    counts: dict[str, int] = {}
    total = Applied()
    try:
        await adapter.ensure_webhooks(conn)
        for kind in adapter.sync_kinds:
            cursor = await shops.get_cursor(shop_id, f"sync:{kind}")
            async for page in adapter.pull(conn, kind, cursor):
                applied = await apply_changes(shop_id, page.changes)
                total.merge(applied)
                counts[kind] = counts.get(kind, 0) + len(page.changes)
                # The cursor moves only after the page is stored: a crash resumes from the last stored page.
                await shops.set_cursor(shop_id, f"sync:{kind}", page.cursor)
    except Retryable as exc:
        await schedule_recompute(found, shop_id, total)
        raise retry_later(ctx, exc) from exc
    if not row.cursors.get(shops.BACKFILLED):  # every kind pulled to its end once: the shop's history is complete
        await shops.set_cursor(shop_id, shops.BACKFILLED, shops.utcnow().isoformat())
    await schedule_recompute(found, shop_id, total)
    return counts


async def reconcile_all(ctx: dict[str, Any]) -> int:
    """Cron: queue a sync of every active shop (webhooks are not guaranteed; WooCommerce never retries)."""
    found = services(ctx)
    ids = cast(list[int], await ShopRow.filter(state=InstallState.ACTIVE.value).values_list("id", flat=True))
    # One Redis round trip for all shops (10,000 shops: one call, not 10,000); a sync still queued keeps its id.
    await found.enqueue_many(queue.SYNC_SHOP, [(queue.sync_id(shop_id), (shop_id,)) for shop_id in ids])
    return len(ids)
