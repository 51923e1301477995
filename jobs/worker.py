"""The arq worker: task functions, cron schedules, and the shared services in its context."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis.exceptions
from arq import cron
from arq.cron import CronJob
from arq.typing import WorkerCoroutine
from arq.worker import Worker, func

from connector import database, logs, queue
from connector.adapter import Adapter
from connector.config import Settings
from connector.model import Platform
from connector.runtime import RedisHandle
from connector.services import Services
from jobs import tasks

log = logging.getLogger("retention.worker")


def _every(seconds: int) -> dict[str, Any]:
    """arq cron fields for 'every N seconds' (N under a minute) or 'every N minutes'."""
    if seconds < 60:
        return {"second": set(range(0, 60, max(1, seconds)))}
    minutes = max(1, seconds // 60)
    return {"minute": set(range(0, 60, minutes)), "second": {0}}


def cron_jobs(settings: Settings) -> list[CronJob]:
    """The periodic work: inbox sweep, reconciliation of every shop, full refits that are due."""
    sched = settings.schedules
    return [
        cron(tasks.sweep_inbox, run_at_startup=True, **_every(sched.inbox_sweep_seconds)),
        cron(tasks.reconcile_all, **_every(sched.reconcile_minutes * 60)),
        cron(tasks.refit_due, minute={17}, second={0}),  # hourly, away from the quarter-hour reconciliation
    ]


TASKS: dict[str, WorkerCoroutine] = {
    queue.APPLY_EVENT: tasks.apply_event,
    queue.INSTALL_SHOP: tasks.install_shop,
    queue.SYNC_SHOP: tasks.sync_shop,
    queue.RECOMPUTE_SHOP: tasks.recompute_shop,
    queue.SWEEP_INBOX: tasks.sweep_inbox,
    queue.RECONCILE_ALL: tasks.reconcile_all,
    queue.REFIT_DUE: tasks.refit_due,
    queue.ACCURACY_SHOP: tasks.accuracy_shop,
}


def functions() -> list[Any]:
    """Every task the worker runs; job ids deduplicate only while queued or running (keep_result=0)."""
    return [func(task, name=name, keep_result=0, max_tries=20) for name, task in TASKS.items()]


# Any Redis error: a connection lost mid-pipeline surfaces as a WatchError, mid-script as a ResponseError.
REDIS_ERRORS = (redis.exceptions.RedisError, ConnectionError, OSError)
EXIT_REDIS_LOST = 75  # EX_TEMPFAIL: the supervisor should start the worker again


class RedisLost(Exception):
    """Redis stayed unreachable past the reconnect window: the worker exits non-zero for its supervisor."""


class RetentionWorker(Worker):
    """arq's Worker that survives a Redis restart and always stops on SIGTERM.

    arq lets a Redis error escape its poll loop; its close() then fails on the same error before the shutdown hook,
    so the database connection (aiosqlite's thread) stayed open, the process never exited and, its event loop
    stopped, SIGTERM went unheard. Here a poll that loses Redis waits for it to come back (redis-py reconnects on
    the next command) and polls on; past `reconnect_seconds` the worker stops and exits non-zero. Shutdown always
    runs the hook, and jobs cancelled by SIGTERM end quietly (their rows stay pending for the sweep).
    """

    def __init__(self, *args: Any, reconnect_seconds: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reconnect_seconds = reconnect_seconds
        self.redis_lost: BaseException | None = None

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_ERRORS as exc:
            await self._reconnect(exc)

    async def _reconnect(self, exc: BaseException) -> None:
        try:  # a job that lost its connection while Redis restarted reports it here after Redis is back
            await self.pool.ping()
            log.info("worker: a Redis call failed (%s); Redis answers, polling on", exc.__class__.__name__)
            return
        except REDIS_ERRORS:
            pass
        log.warning("worker: Redis unreachable (%s); waiting up to %ss for it", exc.__class__.__name__,
                    self.reconnect_seconds)
        deadline = time.monotonic() + self.reconnect_seconds
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
            try:
                await self.pool.ping()
                log.info("worker: Redis is back; polling again")
                return
            except REDIS_ERRORS as again:
                if time.monotonic() >= deadline:
                    self.redis_lost = again
                    raise RedisLost(f"Redis unreachable for {self.reconnect_seconds}s: {again}") from again

    async def close(self) -> None:
        if not self._pool:
            return
        if self.tasks:  # cancelled by SIGTERM, or running on: their end, not their exception, is what matters
            _, running = await asyncio.wait(list(self.tasks.values()), timeout=30)
            for task in running:
                task.cancel()
        try:
            await self.pool.delete(self.health_check_key)
        except REDIS_ERRORS:
            pass  # expires by itself
        try:
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)
        finally:
            try:
                await self.pool.aclose()
            except REDIS_ERRORS:
                pass
            self._pool = None


def build_worker(settings: Settings, handle: RedisHandle, adapters: Mapping[Platform, Adapter], *,
                 own_database: bool = True, **overrides: Any) -> Worker:
    """An arq Worker wired to our database, Redis and these adapters (own_database=False: the caller has it open)."""

    async def startup(ctx: dict[str, Any]) -> None:
        if own_database:
            await database.connect(settings)
        ctx["services"] = Services(settings=settings, redis=handle, adapters=adapters)

    async def shutdown(ctx: dict[str, Any]) -> None:
        services: Services | None = ctx.get("services")
        if services is not None:
            await services.close()
        if own_database:
            await database.close()

    logs.install()
    options: dict[str, Any] = {
        "functions": functions(),
        "cron_jobs": cron_jobs(settings),
        "redis_settings": handle.settings,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "keep_result": 0,
        "max_jobs": settings.runtime.worker_max_jobs,
        # arq starts at most max_jobs jobs per poll: at its default 0.5 s poll a worker applies ~20 events/s.
        "poll_delay": settings.runtime.worker_poll_seconds,
        # Also how long a job id stays "in progress" after its worker was killed (timeout + 10 s): a killed
        # recompute or sync blocks its shop's next one that long. A 1M-customer recompute takes ~2 min and a sync
        # stopped by the timeout resumes from its cursor at the next reconciliation.
        "job_timeout": 1200,
        "handle_signals": True,
        "health_check_interval": 10,
        "reconnect_seconds": settings.runtime.worker_redis_reconnect_seconds,
    }
    options.update(overrides)
    return RetentionWorker(**options)
