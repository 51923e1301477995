"""Many shops: the refit's per-shop phase spreads a cohort without ever delaying a refit; the crons queue each shop once."""
from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from arq.connections import RedisSettings, create_pool

from adapters.registry import REGISTRY
from connector import database, shops
from connector.config import Secrets, Settings
from connector.model import InstallState
from connector.runtime import RedisHandle
from connector.services import Services
from jobs.tasks.recompute import FULL_REFIT_AT, PLAN_SETTINGS, SPREAD, full_refit_due, phase, plan_settings
from jobs.tasks.sync import reconcile_all


def test_a_shops_refit_comes_early_by_its_phase_and_never_later_than_refit_hours() -> None:
    settings = Settings()
    period = timedelta(hours=settings.schedules.refit_hours)
    last = datetime(2026, 1, 1, tzinfo=timezone.utc)
    cursors = {FULL_REFIT_AT: last.isoformat(), PLAN_SETTINGS: plan_settings(settings)}
    phases = [phase(shop_id) for shop_id in range(1, 2001)]
    assert all(0 <= p < 1 for p in phases) and phases == [phase(shop_id) for shop_id in range(1, 2001)]
    assert max(phases) - min(phases) > 0.9  # spread over the whole range, not bunched
    for shop_id in (1, 2, 3, 500, 1999):
        early = period * (1 - SPREAD * phase(shop_id))
        assert full_refit_due(cursors, settings, last + period, shop_id)  # never later than refit_hours
        assert full_refit_due(cursors, settings, last + early + timedelta(seconds=1), shop_id)
        assert not full_refit_due(cursors, settings, last + early - timedelta(seconds=1), shop_id)
    # Shops refitted together come due over a window of SPREAD * refit_hours, not in one hour.
    due_hours = {int((period * (1 - SPREAD * p)).total_seconds() // 3600) for p in phases}
    assert len(due_hours) >= int(SPREAD * settings.schedules.refit_hours)


def test_a_fit_made_before_the_backfill_completed_is_refit_at_once() -> None:
    settings = Settings()
    fitted = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    cursors = {FULL_REFIT_AT: fitted.isoformat(), PLAN_SETTINGS: plan_settings(settings)}
    assert not full_refit_due(cursors, settings, fitted + timedelta(minutes=5), 1)
    # Webhooks ran the first (full) recompute while the backfill was still pulling the history in.
    during = {**cursors, shops.BACKFILLED: (fitted + timedelta(seconds=30)).isoformat()}
    assert full_refit_due(during, settings, fitted + timedelta(minutes=5), 1)
    after = {**cursors, shops.BACKFILLED: (fitted - timedelta(seconds=30)).isoformat()}
    assert not full_refit_due(after, settings, fitted + timedelta(minutes=5), 1)


async def test_the_reconcile_cron_queues_one_sync_per_active_shop_and_no_second_while_one_waits(
        settings: Settings, redis_url: str) -> None:
    ids = {}
    for name, state in [("a", InstallState.ACTIVE), ("b", InstallState.ACTIVE), ("c", InstallState.PENDING),
                        ("d", InstallState.UNINSTALLED)]:
        row = await shops.save_install(settings, "shopify", f"{name}.myshopify.com", {"access_token": "t"}, state=state)
        ids[name] = row.id
    services = Services(settings=settings, adapters=REGISTRY, redis=RedisHandle(RedisSettings.from_dsn(redis_url)))
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        assert await reconcile_all({"services": services}) == 2
        assert await reconcile_all({"services": services}) == 2  # the same two, still queued: not queued again
        jobs = await pool.queued_jobs()
        assert sorted((j.function, j.job_id, j.args) for j in jobs) == sorted(
            ("sync_shop", f"sync:{ids[n]}", (ids[n],)) for n in ("a", "b"))
    finally:
        await pool.aclose()
        await services.close()
