"""Scheduling many shops: the refit and reconcile crons over BENCH_SCHEDULE_SHOPS (default 10,000) active shops.

Figures: the wall time of one refit_due and one reconcile_all tick (SQLite + the embedded Redis: read every shop,
decide, queue the jobs in one round trip), the jobs they queue, and the stampede check: every shop refitted at the
same moment (a deploy, a migration), then hour by hour over four days the most refits due in one hourly tick, with the
per-shop phase against the plain refit_hours period (the peer: what the schedule did before).
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import emit  # noqa: E402  (bench/ is the script's directory)

SHOPS = int(os.environ.get("BENCH_SCHEDULE_SHOPS", "10000"))
HOURS = 96


def peak_per_hour(settings: Any, phased: bool) -> tuple[int, int]:
    """(most refits due in one hourly tick, ticks with any), all shops last refitted at the same moment."""
    from jobs.tasks.recompute import FULL_REFIT_AT, PLAN_SETTINGS, full_refit_due, plan_settings

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    digest = plan_settings(settings)
    last = {shop_id: start for shop_id in range(1, SHOPS + 1)}
    peak = busy = 0
    for hour in range(1, HOURS + 1):
        now = start + timedelta(hours=hour)
        due = [s for s, at in last.items()
               if full_refit_due({FULL_REFIT_AT: at.isoformat(), PLAN_SETTINGS: digest}, settings, now,
                                 s if phased else None, digest)]
        for shop_id in due:
            last[shop_id] = now
        peak, busy = max(peak, len(due)), busy + bool(due)
    return peak, busy


async def ticks(settings: Any) -> dict[str, float]:
    """Time one refit_due and one reconcile_all over SHOPS active shops, half of them due for a refit."""
    from tortoise.connection import get_connection

    from adapters.registry import REGISTRY
    from connector import database
    from connector.database import sql, timestamp
    from connector.runtime import open_redis
    from connector.services import Services
    from jobs.tasks.recompute import FULL_REFIT_AT, PLAN_SETTINGS, plan_settings, refit_due
    from jobs.tasks.sync import reconcile_all

    await database.migrate(settings)
    await database.connect(settings)
    handle = open_redis(settings)
    services = Services(settings=settings, redis=handle, adapters=REGISTRY)
    try:
        conn = get_connection("default")
        now = datetime.now(timezone.utc)
        digest = plan_settings(settings)
        old, fresh = (now - timedelta(hours=settings.schedules.refit_hours + 1)).isoformat(), now.isoformat()
        rows = [(f"s{i}.myshopify.com", "shopify", "active", "", "",
                 f'{{"{FULL_REFIT_AT}": "{old if i % 2 else fresh}", "{PLAN_SETTINGS}": "{digest}"}}',
                 timestamp(conn, now), timestamp(conn, now), timestamp(conn, now)) for i in range(SHOPS)]
        await conn.execute_many(sql(conn, "INSERT INTO shop (domain, platform, state, scopes, credentials, "
                                          "cursors, installed_at, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"), rows)
        ctx = {"services": services}
        started = time.perf_counter()
        refits = await refit_due(ctx)
        refit_s = time.perf_counter() - started
        started = time.perf_counter()
        syncs = await reconcile_all(ctx)
        sync_s = time.perf_counter() - started
        return {"refit_s": refit_s, "refits": refits, "sync_s": sync_s, "syncs": syncs}
    finally:
        await services.close()
        handle.close()
        await database.close()


def main() -> int:
    from connector.config import Secrets, Settings

    base = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(base, runtime=dataclasses.replace(base.runtime, data_dir=tmp),
                                       secrets=Secrets(database_url=""))
        measured = asyncio.run(ticks(settings))
    emit("schedule.refit_due_tick", measured["refit_s"], "s", shops=SHOPS, queued=measured["refits"],
         note="SQLite + embedded Redis; one enqueue_many round trip")
    emit("schedule.reconcile_all_tick", measured["sync_s"], "s", shops=SHOPS, queued=measured["syncs"])
    phased, phased_busy = peak_per_hour(settings, True)
    plain, plain_busy = peak_per_hour(settings, False)
    emit("schedule.refit_peak_per_hour", phased, "shops", shops=SHOPS, hours=HOURS, busy_hours=phased_busy,
         baseline="refit_hours period without per-shop phase", baseline_value=plain, ratio=round(plain / max(phased, 1), 2),
         note="all shops last refitted at the same moment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
