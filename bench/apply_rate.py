"""The apply rate of one and two workers on SQLite and PostgreSQL, as bench_intake.py runs it after the intake load.

BENCH_APPLY_EVENTS (default 5,000) deliveries accepted exactly as intake accepts them (inbox.record + enqueue), then
worker processes (build_worker: the shipped job settings, no cron) started and connected before the clock starts run
until no inbox row is pending: apply_rate_sqlite and apply_rate_postgres (one worker, one shop) and
apply_rate_postgres_2workers (two workers, the events spread over two shops). PostgreSQL is bench/pg.py's
(BENCH_DATABASE_URL or a throwaway local cluster; skipped if neither). Write-back is off and the per-shop recompute
is debounced past the end of the run (a copied app.toml), so the figure is the apply path alone. Each side runs in
its own process: `python bench/apply_rate.py apply sqlite|postgres|postgres_2workers`; `python bench/apply_rate.py`
runs all three on a throwaway Redis.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
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
from processes import free_port, stop  # noqa: E402
from report import emit  # noqa: E402

APPLY_EVENTS = int(os.environ.get("BENCH_APPLY_EVENTS", "5000"))


TARGETS = {"sqlite": 500, "postgres": 1000}  # issue 14: events/s of one worker
GO_KEY = "bench:apply:go"
READY_KEY = "bench:apply:ready"


async def apply_side(label: str, workers: int = 1, shops: int = 1) -> None:
    """(In its own process.) Accept APPLY_EVENTS deliveries as intake does (spread over `shops` shops), then time
    `workers` worker processes applying them, from the moment they are told to start until no row is pending."""
    import redis.asyncio as aioredis

    from adapters.registry import REGISTRY
    from connector import database, inbox, queue, shops as shop_rows
    from connector.db import InboxRow
    from connector.runtime import open_redis
    from connector.services import Services

    env = dict(os.environ)
    settings = settings_from(env)
    shop_ids = [await install_shop(settings)]
    await database.connect(settings)
    for n in range(1, shops):
        row = await shop_rows.save_install(settings, "shopify", f"bench-apply-{n}.myshopify.com",
                                           {"access_token": "shpat_bench"})
        shop_ids.append(int(row.id))
    client = aioredis.from_url(settings.secrets.redis_url)
    await client.flushdb()
    handle = open_redis(settings)
    services = Services(settings=settings, redis=handle, adapters=REGISTRY)
    deliveries = Deliveries(seed=3)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        started = time.perf_counter()
        for n in range(APPLY_EVENTS):
            event_id, body = deliveries.next()
            inbox_id, new = await inbox.record(shop_ids[n % shops], "shopify", "orders/create", event_id, body)
            assert new
            await services.enqueue(queue.APPLY_EVENT, inbox_id, job_id=queue.apply_id(inbox_id))
        accept = time.perf_counter() - started
        emit(f"accept_rate_{label}", APPLY_EVENTS / accept, "events/s", note="inbox.record + enqueue in-process")
        # `retention worker` as deployed, one process each: started, connected and waiting before the clock starts.
        procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "worker", label], cwd=ROOT, env=env)
                 for _ in range(workers)]
        deadline = time.monotonic() + 120
        while int(await client.get(READY_KEY) or 0) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not start")
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        await client.set(GO_KEY, 1)
        while await InboxRow.filter(status=inbox.PENDING).exists():
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker stopped early")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        counts = await inbox.counts()
        rate = APPLY_EVENTS / seconds
        target = TARGETS.get(label)
        emit(f"apply_rate_{label}", rate, "events/s", **({"target": target, "met": rate >= target} if target else {}),
             events=APPLY_EVENTS, workers=workers, shops=shops, seconds=round(seconds, 3), inbox=counts)
        if counts.get(inbox.APPLIED) != APPLY_EVENTS:
            raise RuntimeError(f"not every event applied: {counts}")
    finally:
        for proc in procs:
            stop(proc)
        await client.aclose()
        await services.close()
        handle.close()
        await database.close()


async def worker_side() -> None:
    """(A worker process.) The shipped worker settings (max_jobs, poll, timeouts) without cron (the sweep and the
    reconciliation are not the figure): connect, say ready, wait for the start signal, run until SIGTERM."""
    import redis.asyncio as aioredis

    from adapters.registry import REGISTRY
    from connector import database
    from connector.runtime import open_redis
    from jobs.worker import build_worker

    settings = settings_from(dict(os.environ))
    await database.connect(settings)
    handle = open_redis(settings)
    client = aioredis.from_url(settings.secrets.redis_url)
    await client.incr(READY_KEY)
    while not await client.get(GO_KEY):
        await asyncio.sleep(0.01)
    await client.aclose()
    worker = build_worker(settings, handle, REGISTRY, own_database=False, cron_jobs=[])
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass
    finally:
        await worker.close()
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
    """apply_rate_sqlite, apply_rate_postgres and apply_rate_postgres_2workers (two workers, two shops), each in
    its own process (Tortoise caches SQL per dialect) on a fresh database."""
    config = bench_config(workdir)
    me = str(Path(__file__).resolve())
    rc = subprocess.call([sys.executable, me, "apply", "sqlite"], cwd=ROOT,
                         env=env_for(workdir / "apply-sqlite", config, redis_url))
    with postgres() as url:
        if url is None:
            print("# apply_rate_postgres: PostgreSQL skipped (no initdb; set BENCH_DATABASE_URL)", file=sys.stderr)
            return rc
        for label in ("postgres", "postgres_2workers"):
            with fresh_pg_database(url) as db_url:
                rc = max(rc, subprocess.call([sys.executable, me, "apply", label], cwd=ROOT,
                                             env=env_for(workdir / f"apply-{label}", config, redis_url, db_url)))
    return rc


def main() -> int:
    """The apply figures alone, on a throwaway Redis (bench_intake.py runs `apply` after its intake load)."""
    from connector.runtime import start_redis_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    try:
        with start_redis_server(workdir, port=free_port()) as redis:  # no persistence
            return apply(workdir, redis.url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


SIDES = {"sqlite": (1, 1), "postgres": (1, 1), "postgres_2workers": (2, 2)}  # label: (workers, shops)

if __name__ == "__main__":
    if len(sys.argv) == 1:
        sys.exit(main())
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        asyncio.run(worker_side())
    elif len(sys.argv) == 3 and sys.argv[1] == "apply" and sys.argv[2] in SIDES:
        asyncio.run(apply_side(sys.argv[2], *SIDES[sys.argv[2]]))
    else:
        sys.exit("usage: apply_rate.py [apply sqlite|postgres|postgres_2workers]")
