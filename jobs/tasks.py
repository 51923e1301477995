"""arq task shells: load, call the pure or adapter code, save. Each is safe to run twice."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from arq import Retry

from adapters import get_adapter
from connector import inbox, shops
from connector.db import ShopRow
from connector.errors import Fatal, Retryable
from connector.model import InstallState
from connector.services import Services
from connector.store import Applied, apply_changes

log = logging.getLogger("retention.jobs")

SYNC_KINDS = ("products", "customers", "orders", "checkouts")


def _services(ctx: dict[str, Any]) -> Services:
    return ctx["services"]


def _backoff(tries: int) -> float:
    return float(min(300, 2 ** tries))


async def schedule_recompute(ctx: dict[str, Any], shop_id: int, applied: Applied) -> None:
    """Mark the shop dirty and queue one debounced recompute (a burst of events costs one)."""
    if not applied.changed or applied.uninstalled or applied.erased:
        return
    services = _services(ctx)
    await shops.set_cursor(shop_id, "dirty_at", shops.utcnow().isoformat())
    await services.enqueue(
        "recompute_shop", shop_id, job_id=f"recompute:{shop_id}",
        defer_by=services.settings.schedules.recompute_debounce_seconds,
    )


async def apply_event(ctx: dict[str, Any], inbox_id: int) -> str:
    """Apply one inbox row; transient failures retry with backoff, permanent ones stay failed in the inbox."""
    services = _services(ctx)
    try:
        outcome = await inbox.apply_event(inbox_id)
    except Retryable as exc:
        attempts = await inbox.note_attempt(inbox_id, str(exc))
        if attempts >= services.settings.schedules.max_apply_tries:
            log.error("inbox %s: giving up for now after %s tries (the sweep retries later): %s", inbox_id, attempts, exc)
            return "deferred"
        raise Retry(defer=exc.retry_after or _backoff(ctx.get("job_try", 1))) from exc
    if outcome.applied is not None and outcome.shop_id is not None:
        await schedule_recompute(ctx, outcome.shop_id, outcome.applied)
    return outcome.status


INSTALL_SWEEP_TRIES = 5  # a shop whose install job keeps failing is left pending for the merchant to reinstall


async def sweep_inbox(ctx: dict[str, Any]) -> int:
    """Queue inbox rows still pending after the delay (Redis was down, a worker died mid-job), and stuck installs."""
    services = _services(ctx)
    delay = services.settings.schedules.inbox_pending_delay_seconds
    rows = await inbox.stale_pending(delay)
    # A worker killed mid-job leaves its job id "in progress" in arq for job_timeout (an hour) and arq will not
    # queue that id again: the id changes every few sweeps, so such a row is queued afresh within minutes, while a
    # row still waiting in a busy queue gets at most one more (no-op once applied) job per window.
    window = int(shops.utcnow().timestamp() // (5 * max(delay, services.settings.schedules.inbox_sweep_seconds, 1)))
    for inbox_id, attempts in rows:
        await services.enqueue("apply_event", inbox_id, job_id=f"apply:{inbox_id}:{attempts}:sweep:{window}")
    await _requeue_pending_installs(services, delay)
    return len(rows)


async def _requeue_pending_installs(services: Services, delay: float) -> None:
    """An install whose job was never queued (Redis down at install time) or died is queued again, a few times."""
    cutoff = shops.utcnow() - timedelta(seconds=delay)
    for row in await ShopRow.filter(state=InstallState.PENDING.value, installed_at__lte=cutoff):
        tries = int(row.cursors.get("install_sweeps", 0))
        if tries >= INSTALL_SWEEP_TRIES or not row.credentials:
            continue
        if await services.enqueue("install_shop", row.id, job_id=f"install:{row.id}:sweep"):
            await shops.set_cursor(row.id, "install_sweeps", str(tries + 1))


async def install_shop(ctx: dict[str, Any], shop_id: int) -> str:
    """After install: the adapter registers webhooks/definitions (and checks keys); then the backfill starts."""
    services = _services(ctx)
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None or row.state == InstallState.UNINSTALLED.value:
        return "gone"
    conn = await shops.connection(services.settings, row)
    try:
        await get_adapter(row.platform).on_installed(conn)
    except Retryable as exc:
        raise Retry(defer=exc.retry_after or _backoff(ctx.get("job_try", 1))) from exc
    except Fatal as exc:
        log.error("shop %s: install check failed, left pending: %s", shop_id, exc)
        return "failed"
    await shops.set_state(shop_id, InstallState.ACTIVE)
    await services.enqueue("sync_shop", shop_id, job_id=f"sync:{shop_id}")
    return "active"


async def sync_shop(ctx: dict[str, Any], shop_id: int) -> dict[str, int]:
    """Backfill (no cursor yet) or reconcile (since the cursor): one apply path, resumable page by page."""
    services = _services(ctx)
    row = await ShopRow.get_or_none(id=shop_id)
    if row is None or row.state != InstallState.ACTIVE.value:
        return {}
    conn = await shops.connection(services.settings, row)
    adapter = get_adapter(row.platform)
    counts: dict[str, int] = {}
    total = Applied()
    ensure = getattr(adapter, "ensure_webhooks", None)
    try:
        if ensure is not None:
            await ensure(conn)
        for kind in getattr(adapter, "sync_kinds", SYNC_KINDS):
            cursor = await shops.get_cursor(shop_id, f"sync:{kind}")
            async for page in adapter.pull(conn, kind, cursor):
                applied = await apply_changes(shop_id, page.changes)
                total.merge(applied)
                counts[kind] = counts.get(kind, 0) + len(page.changes)
                # The cursor moves only after the page is stored: a crash resumes from the last stored page.
                await shops.set_cursor(shop_id, f"sync:{kind}", page.cursor)
    except Retryable as exc:
        await schedule_recompute(ctx, shop_id, total)
        raise Retry(defer=exc.retry_after or _backoff(ctx.get("job_try", 1))) from exc
    await schedule_recompute(ctx, shop_id, total)
    return counts


async def reconcile_all(ctx: dict[str, Any]) -> int:
    """Cron: queue a sync of every active shop (webhooks are not guaranteed; WooCommerce never retries)."""
    services = _services(ctx)
    ids = await ShopRow.filter(state=InstallState.ACTIVE.value).values_list("id", flat=True)
    for shop_id in ids:
        await services.enqueue("sync_shop", shop_id, job_id=f"sync:{shop_id}")
    return len(ids)

from jobs.recompute import recompute_shop, refit_due  # noqa: E402,F401
