"""Ingestion tasks: apply one stored webhook, and the sweep that re-queues what was stored but never applied."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from connector import inbox, inbox_batch, privacy, queue, shops
from connector.db import ShopRow
from connector.errors import Retryable
from connector.model import InstallState
from connector.services import Services
from jobs.tasks.context import retry_later, services
from jobs.tasks.recompute import schedule_recompute

log = logging.getLogger("retention.jobs")

INSTALL_SWEEP_TRIES = 5  # a shop whose install job keeps failing is left pending for the merchant to reinstall


async def apply_event(ctx: dict[str, Any], inbox_id: int) -> str:
    """Apply one inbox row and the pending rows of its shop that follow it, as one batch (inbox_batch.py), then
    schedule the shop's recompute once; transient failures retry with backoff, permanent ones stay failed."""
    found = services(ctx)
    try:
        batch = await inbox_batch.apply_batch(inbox_id, found.adapters, found.settings.runtime.apply_batch_size)
    except Retryable as exc:
        attempts = await inbox.note_attempt(inbox_id, str(exc))
        if attempts >= found.settings.schedules.max_apply_tries:
            log.error("inbox %s: giving up for now after %s tries (the sweep retries later): %s", inbox_id, attempts, exc)
            return "deferred"
        raise retry_later(ctx, exc) from exc
    # The batch's other rows are done: their intake jobs leave the queue rather than each take a worker slot and a
    # query to find that out (arq starts at most max_jobs jobs per poll).
    await found.drop_queued([queue.apply_id(i) for i in batch.statuses if i != inbox_id])
    if batch.applied is not None and batch.shop_id is not None:
        await schedule_recompute(found, batch.shop_id, batch.applied)
    return batch.status


async def sweep_inbox(ctx: dict[str, Any]) -> int:
    """Queue inbox rows still pending after the delay (Redis was down, a worker died mid-job), and stuck installs."""
    found = services(ctx)
    delay = found.settings.schedules.inbox_pending_delay_seconds
    rows = await inbox.stale_pending(delay)
    # A worker killed mid-job leaves its job id "in progress" in arq for job_timeout (an hour) and arq will not
    # queue that id again: the id changes every few sweeps, so such a row is queued afresh within minutes, while a
    # row still waiting in a busy queue gets at most one more (no-op once applied) job per window.
    window = int(shops.utcnow().timestamp() // (5 * max(delay, found.settings.schedules.inbox_sweep_seconds, 1)))
    for inbox_id, attempts in rows:
        await found.enqueue(queue.APPLY_EVENT, inbox_id, job_id=queue.apply_id(inbox_id, attempts, f"sweep:{window}"))
    await _requeue_pending_installs(found, delay)
    retention = found.settings.schedules.inbox_retention_days
    purged = await inbox.purge(retention) + await privacy.purge_exports(retention)
    if purged:
        log.info("retention: %s raw deliveries and exports older than %s days deleted", purged, retention)
    return len(rows)


async def _requeue_pending_installs(found: Services, delay: float) -> None:
    """An install whose job was never queued (Redis down at install time) or died is queued again, a few times."""
    cutoff = shops.utcnow() - timedelta(seconds=delay)
    for row in await ShopRow.filter(state=InstallState.PENDING.value, installed_at__lte=cutoff):
        tries = int(row.cursors.get("install_sweeps", 0))
        if tries >= INSTALL_SWEEP_TRIES or not row.credentials:
            continue
        if await found.enqueue(queue.INSTALL_SHOP, row.id, job_id=queue.install_id(row.id, "sweep")):
            await shops.set_cursor(row.id, "install_sweeps", str(tries + 1))
