"""Crashes: a worker killed mid-batch, Redis stopped mid-intake; real database, real Redis, real processes.

Nothing accepted is lost and nothing is counted twice: the end state is the in-order delivery's state.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from connector import inbox
from connector.config import Settings
from connector.db import CustomerRow, InboxRow, LineItemRow, OrderRow
from tests.conftest import RedisServer
from tests.ingestion.conftest import SECRET, drain, fast_config, install, intake
from tests.ingestion.test_apply import deliver, state
from tests.support.events import Event, history
from tests.support.live import free_port
from tests.support.procs import env_for, retention

pytestmark = pytest.mark.postgres


def latest(events: list[Event]) -> dict[str, dict[str, Any]]:
    """The newest version of every order and customer in the deliveries, by platform id."""
    newest: dict[str, dict[str, Any]] = {}
    for event in events:
        payload = json.loads(event.body, parse_float=Decimal)
        key = f"{event.topic.split('/')[0]}:{payload['id']}"
        if key not in newest or payload["updated_at"] > newest[key]["updated_at"]:
            newest[key] = payload
    return newest


async def assert_counted_once(shop_id: int, events: list[Event]) -> None:
    """One row per order, line and customer; sums of totals and quantities equal the newest versions' sums."""
    newest = latest(events)
    orders = [p for k, p in newest.items() if k.startswith("orders:")]
    customers = {str(p["id"]): p["first_name"] for k, p in newest.items() if k.startswith("customers:")}
    order_ids = await OrderRow.filter(shop_id=shop_id).values_list("platform_id", flat=True)
    line_ids = await LineItemRow.filter(shop_id=shop_id).values_list("platform_id", flat=True)
    assert sorted(order_ids) == sorted(str(p["id"]) for p in orders)
    assert sorted(line_ids) == sorted(str(li["id"]) for p in orders for li in p["line_items"])  # no line twice
    totals = await OrderRow.filter(shop_id=shop_id).values_list("total", flat=True)
    assert sum(totals, Decimal(0)) == sum((Decimal(p["total_price"]) for p in orders), Decimal(0))
    quantities = await LineItemRow.filter(shop_id=shop_id).values_list("quantity", flat=True)
    assert sum(quantities) == sum(li["quantity"] for p in orders for li in p["line_items"])
    cancelled = await OrderRow.filter(shop_id=shop_id, cancelled=True).count()
    assert cancelled == sum(1 for p in orders if p["cancelled_at"]) > 0
    names = dict(await CustomerRow.filter(shop_id=shop_id, platform_id__in=list(customers)).values_list(
        "platform_id", "first_name"))
    assert names == customers


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: Callable[[], str]) -> None:
    """Poll `check` every 10 ms until it holds; fail with `what()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(what())
        await asyncio.sleep(0.01)


class Workers:
    """`retention worker` processes for one test: env as deployed, fast schedules; none outlives the test."""

    def __init__(self, settings: Settings, tmp_path: Path, apply_batch_size: int = 4) -> None:
        config = fast_config(tmp_path)
        # arq's default poll (0.5 s): batches of 10 jobs twice a second leave time to see one in flight and kill it;
        # and apply batches of a few rows, so that a kill lands with rows of several batches applied and pending.
        config.write_text(re.sub(r"^apply_batch_size = \d+", f"apply_batch_size = {apply_batch_size}", config.read_text()
                                 .replace("worker_poll_seconds = 0.05", "worker_poll_seconds = 0.5"), flags=re.M))
        assert "worker_poll_seconds = 0.5" in config.read_text()
        assert f"apply_batch_size = {apply_batch_size}" in config.read_text()
        self.env = env_for(settings.data_dir, DATABASE_URL=settings.database_url,
                           REDIS_URL=settings.secrets.redis_url, RETENTION_CONFIG=str(config))
        self.log = tmp_path / "worker.log"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        proc = retention(["worker"], self.env, self.log)
        self.procs.append(proc)
        return proc

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "worker log:\n" + text[-4000:]

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def in_progress(client: redis.Redis) -> dict[str, int]:
    """apply_event jobs arq holds "in progress" (a killed worker's stay so for job_timeout): {job id: inbox id}."""
    out: dict[str, int] = {}
    for key in client.scan_iter("arq:in-progress:apply:*"):
        job_id = key.decode().removeprefix("arq:in-progress:")
        out[job_id] = int(job_id.split(":")[1])
    return out


async def pending_ids(shop_id: int) -> set[int]:
    return set(await InboxRow.filter(shop_id=shop_id, status="pending").values_list("id", flat=True))


async def until_none_pending(shop_id: int, timeout: float, log: Callable[[], str]) -> None:
    """Wait until none of the shop's deliveries is pending; after `timeout` seconds fail naming them, then `log()`."""
    left: set[int] = set()

    async def none_pending() -> bool:
        left.clear()
        left.update(await pending_ids(shop_id))
        return not left

    await eventually(none_pending, timeout, lambda: f"still pending: {sorted(left)}\n{log()}")


async def test_a_worker_killed_mid_batch_and_restarted_loses_and_double_counts_nothing(
    ingest: Settings, tmp_path: Path
) -> None:
    events = history(n_orders=60, versions=3)  # 180 order + 60 customer deliveries
    reference = await install(ingest, "in-order.myshopify.com")
    crashed = await install(ingest, "crashed.myshopify.com")
    await deliver(ingest, "in-order.myshopify.com", events)
    await drain(ingest)  # the reference: in order, applied in this process, before any worker process runs
    assert await InboxRow.filter(shop_id=reference, status="applied").count() == len(events)

    # The first 180 deliveries arrive while the app cannot reach Redis: only the worker's inbox sweep queues them.
    # The last 60 are queued by intake. The first kill hits intake jobs, the second sweep jobs.
    split = 180
    unreachable = dataclasses.replace(ingest, secrets=dataclasses.replace(
        ingest.secrets, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    await deliver(unreachable, "crashed.myshopify.com", events[:split])
    await deliver(ingest, "crashed.myshopify.com", events[split:])
    ids = await InboxRow.filter(shop_id=crashed).order_by("id").values_list("id", flat=True)
    assert len(ids) == len(events) and await pending_ids(crashed) == set(ids)
    swept_only, queued_by_intake = set(ids[:split]), set(ids[split:])

    queue = redis.Redis.from_url(ingest.secrets.redis_url)
    workers = Workers(ingest, tmp_path)

    async def applied() -> int:
        return await InboxRow.filter(shop_id=crashed, status="applied").count()

    async def kill_mid_apply(proc: subprocess.Popen[bytes], at_least: int, rows: set[int], sweep: bool) -> int:
        """Once `at_least` rows are applied, SIGKILL the worker while it runs jobs of that kind on `rows`."""
        seen = [0]
        before = set(in_progress(queue))

        async def reached() -> bool:
            assert proc.poll() is None, f"worker exited with {proc.returncode}\n{workers.tail()}"
            seen[0] = await applied()
            return seen[0] >= at_least

        await eventually(reached, 40, lambda: f"never {at_least} applied, only {seen[0]}\n{workers.tail()}")

        async def running() -> bool:
            assert proc.poll() is None, f"worker exited with {proc.returncode}\n{workers.tail()}"
            jobs = {i for job, i in in_progress(queue).items()
                    if job not in before and (":sweep" in job) == sweep and i in rows}
            return len(jobs & await pending_ids(crashed)) >= 5

        # arq starts up to max_jobs (10) jobs per poll, and they take milliseconds: kill a batch just started.
        await eventually(running, 20, lambda: f"no batch in flight\n{workers.tail()}")
        proc.kill()  # SIGKILL: no shutdown hook, no arq cleanup; its jobs stay "in progress" in Redis
        assert proc.wait(timeout=10) == -9
        pending = await pending_ids(crashed)
        cut = {job: i for job, i in in_progress(queue).items() if job not in before and i in pending}
        # Killed mid-apply: rows whose only running job died, some of the kind aimed at. A sweep may also re-queue
        # rows an earlier kill left pending, so jobs of the other kind may be among the cut.
        assert {i for job, i in cut.items() if (":sweep" in job) == sweep and i in rows}, cut
        return await applied()

    try:
        n = await kill_mid_apply(workers.start(), 20, queued_by_intake, sweep=False)
        assert 20 <= n < len(events)
        n = await kill_mid_apply(workers.start(), 100, swept_only, sweep=True)
        assert 100 <= n < len(events)
        workers.start()
        await until_none_pending(crashed, 40, workers.tail)
    finally:
        workers.kill_all()
        queue.close()
    assert all(proc.poll() is not None for proc in workers.procs)

    rows = await InboxRow.filter(shop_id=crashed).values_list("status", "attempts", "error", "applied_at")
    assert len(rows) == len(events)
    assert Counter(status for status, *_ in rows) == {"applied": len(events)}
    assert all(error is None and applied_at is not None for _, _, error, applied_at in rows)
    attempts = Counter(a for _, a, _, _ in rows)
    # Marked applied once each; a retried transient failure (a unique-key race between concurrent jobs) may add one.
    assert min(attempts) >= 1 and max(attempts) <= 2 and attempts[1] >= len(events) - 10, attempts
    assert await state(crashed) == await state(reference)
    await assert_counted_once(crashed, events)


async def post_all(client: httpx.AsyncClient, shop: str, events: list[Event]) -> float:
    """Deliver each event once, expecting 200 and a new inbox row; returns the slowest answer's seconds."""
    slowest = 0.0
    for event in events:
        started = time.monotonic()
        response = await client.post("/webhooks/shopify", content=event.body, headers=event.headers(shop, SECRET))
        slowest = max(slowest, time.monotonic() - started)
        assert response.status_code == 200 and response.json() == {"ok": True, "duplicate": False}, response.text
    return slowest


async def test_redis_stopped_during_intake_and_restarted_every_accepted_event_is_applied(
    ingest: Settings, redis_server: RedisServer
) -> None:
    shop = "outage.myshopify.com"
    shop_id = await install(ingest, shop)
    events = history(n_orders=60, versions=3, seed=23)  # 180 order + 60 customer deliveries
    before, during, after = events[:80], events[80:160], events[160:]

    async def rows_of(batch: list[Event]) -> set[int]:
        keys = [e.event_id for e in batch]
        return set(await InboxRow.filter(shop_id=shop_id, dedup_key__in=keys).values_list("id", flat=True))

    async with intake(ingest) as (client, services):
        await post_all(client, shop, before)
        assert (await client.get("/health")).status_code == 200
        redis_server.stop()
        try:
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["redis"].startswith("down") and health.json()["database"] == "ok"
            slowest = await post_all(client, shop, during)  # still 200: stored pending, left for the sweep
            assert slowest < 2, slowest  # well inside Shopify's 5 s: no waiting on the dead Redis
        finally:
            if redis_server.proc is None:
                redis_server.start()  # the other tests share this server
        assert await InboxRow.filter(shop_id=shop_id, status="pending").count() == len(before) + len(during)
        assert (await client.get("/health")).status_code == 200
        await post_all(client, shop, after)
        queued = {job.args[0] for job in await services.pool.queued_jobs() if job.function == "apply_event"}
    outage, last = await rows_of(during), await rows_of(after)
    assert len(outage) == len(during) and len(last) == len(after)
    assert outage.isdisjoint(queued) and last <= queued  # the outage's deliveries reach a worker only via the sweep

    async def swept() -> bool:  # the sweep queues a row once it has been pending for the delay
        return len(await inbox.stale_pending(ingest.schedules.inbox_pending_delay_seconds)) >= len(before + during)

    await eventually(swept, 10, lambda: "rows never old enough for the sweep")
    await drain(ingest)
    rows = await InboxRow.filter(shop_id=shop_id).values_list("status", "attempts")
    assert len(rows) == len(events)
    assert Counter(status for status, _ in rows) == {"applied": len(events)}
    attempts = Counter(a for _, a in rows)
    assert min(attempts) >= 1 and max(attempts) <= 2 and attempts[1] >= len(events) - 10, attempts
    await assert_counted_once(shop_id, events)
