"""The apply rate of one worker on SQLite and PostgreSQL, as bench_intake.py runs it after the intake load.

BENCH_APPLY_EVENTS (default 5,000) deliveries accepted exactly as intake accepts them (inbox.record + enqueue), then
one arq worker (build_worker, the shipped job settings, no cron) runs until no inbox row is pending; on SQLite and on
PostgreSQL (bench/pg.py: BENCH_DATABASE_URL or a throwaway local cluster; skipped if neither). Write-back is off and
the per-shop recompute is debounced past the end of the run (a copied app.toml), so the figure is the apply path
alone. Each side runs in its own process: `python bench/apply_rate.py apply sqlite|postgres`.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# bench/ is the script's directory: its modules import by their plain names.
from app_setup import bench_config, env_for, install_shop, settings_from  # noqa: E402
from payloads import Deliveries  # noqa: E402
from pg import postgres  # noqa: E402
from report import emit  # noqa: E402

APPLY_EVENTS = int(os.environ.get("BENCH_APPLY_EVENTS", "5000"))


async def apply_side(label: str) -> None:
    """(In its own process.) Accept APPLY_EVENTS deliveries as intake does, then time one worker applying them."""
    import redis.asyncio as aioredis

    from adapters.registry import REGISTRY
    from connector import database, inbox, queue
    from connector.db import InboxRow
    from connector.runtime import open_redis
    from connector.services import Services
    from jobs.worker import build_worker

    env = dict(os.environ)
    settings = settings_from(env)
    shop_id = await install_shop(settings)
    client = aioredis.from_url(settings.secrets.redis_url)
    await client.flushdb()
    await client.aclose()
    await database.connect(settings)
    handle = open_redis(settings)
    services = Services(settings=settings, redis=handle, adapters=REGISTRY)
    deliveries = Deliveries(seed=3)
    try:
        started = time.perf_counter()
        for _ in range(APPLY_EVENTS):
            event_id, body = deliveries.next()
            inbox_id, new = await inbox.record(shop_id, "shopify", "orders/create", event_id, body)
            assert new
            await services.enqueue(queue.APPLY_EVENT, inbox_id, job_id=queue.apply_id(inbox_id))
        accept = time.perf_counter() - started
        emit(f"accept_rate_{label}", APPLY_EVENTS / accept, "events/s", note="inbox.record + enqueue in-process")
        # The shipped worker settings (max_jobs, timeouts); no cron: the sweep and reconciliation are not the figure.
        worker = build_worker(settings, handle, REGISTRY, own_database=False, handle_signals=False, cron_jobs=[])
        started = time.perf_counter()
        task = asyncio.create_task(worker.async_run())
        while True:
            await asyncio.sleep(0.05)
            if task.done():
                task.result()
                raise RuntimeError("worker stopped early")
            if not await InboxRow.filter(status=inbox.PENDING).exists():
                break
        seconds = time.perf_counter() - started
        task.cancel()  # stop polling, then let jobs in flight (the last recompute enqueues) finish before closing
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await worker.close()
        counts = await inbox.counts()
        emit(f"apply_rate_{label}", APPLY_EVENTS / seconds, "events/s", events=APPLY_EVENTS,
             seconds=round(seconds, 3), inbox=counts)
        if counts.get(inbox.APPLIED) != APPLY_EVENTS:
            raise RuntimeError(f"not every event applied: {counts}")
    finally:
        await services.close()
        handle.close()
        await database.close()


@contextmanager
def fresh_pg_database(url: str) -> Iterator[str]:
    """A new empty database on that server (BENCH_DATABASE_URL may hold other benches' tables), dropped after."""
    import asyncpg

    name = "bench_intake_" + uuid.uuid4().hex[:8]

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def apply(workdir: Path, redis_url: str) -> int:
    """apply_rate_sqlite and apply_rate_postgres, each in its own process (Tortoise caches SQL per dialect)."""
    config = bench_config(workdir)
    me = str(Path(__file__).resolve())
    rc = subprocess.call([sys.executable, me, "apply", "sqlite"], cwd=ROOT,
                         env=env_for(workdir / "apply-sqlite", config, redis_url))
    with postgres() as url:
        if url is None:
            print("# apply_rate_postgres: PostgreSQL skipped (no initdb; set BENCH_DATABASE_URL)", file=sys.stderr)
            return rc
        with fresh_pg_database(url) as db_url:
            rc = max(rc, subprocess.call([sys.executable, me, "apply", "postgres"], cwd=ROOT,
                                         env=env_for(workdir / "apply-pg", config, redis_url, db_url)))
    return rc


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "apply":
        sys.exit("usage: apply_rate.py apply sqlite|postgres")
    asyncio.run(apply_side(sys.argv[2]))
