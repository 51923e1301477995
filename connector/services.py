"""What request handlers and jobs share: settings, the queue, the adapter registry."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from connector.config import Settings
from connector.runtime import RedisHandle, queue_pool

log = logging.getLogger(__name__)

# arq's enqueue_job (arq/connections.py) for many jobs in one round trip: for each job whose job key and result key
# are both absent, PSETEX the job key and ZADD the id to the queue: the keys and values enqueue_job writes. It checks
# under WATCH and gives up on a race; a script runs atomically, so "only if absent" holds at least as strictly.
# KEYS: queue, then per job its job key and result key. ARGV: expiry ms, score, then per job its id and its job as
# arq serializes it. Returns 1 (queued) or 0 per job.
ENQUEUE_MANY = """
local queued = {}
for i = 1, (#KEYS - 1) / 2 do
  if redis.call('EXISTS', KEYS[2 * i], KEYS[2 * i + 1]) == 0 then
    redis.call('PSETEX', KEYS[2 * i], ARGV[1], ARGV[2 * i + 2])
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[2 * i + 1])
    queued[i] = 1
  else
    queued[i] = 0
  end
end
return queued
"""


@dataclass
class Services:
    """Held on `app.state.services` and in the arq worker context (`ctx["services"]`)."""

    settings: Settings
    redis: RedisHandle
    pool: ArqRedis | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> bool:
        """Queue a job; False (logged, not raised) when Redis is unreachable, since the inbox sweep catches up."""
        try:
            if self.pool is None:
                self.pool = await queue_pool(self.redis)
            job = await self.pool.enqueue_job(
                function, *args, _job_id=job_id, _defer_by=timedelta(seconds=defer_by) if defer_by else None
            )
            return job is not None
        except Exception as exc:
            self._unreachable(function, exc)
            return False

    async def enqueue_many(self, function: str, jobs: Sequence[tuple[str, tuple[Any, ...]]]) -> list[bool]:
        """Queue (job id, args) jobs to run now in one round trip, as `enqueue` would one by one; True where queued.

        False where the job id is already queued or has a result, and for all when Redis is unreachable.
        """
        if not jobs:
            return []
        try:
            if self.pool is None:
                self.pool = await queue_pool(self.redis)
            pool = self.pool
            now = timestamp_ms()
            keys: list[str] = [pool.default_queue_name]
            argv: list[Any] = [pool.expires_extra_ms, now]
            for job_id, args in jobs:
                keys += [job_key_prefix + job_id, result_key_prefix + job_id]
                argv += [job_id, serialize_job(function, args, {}, None, now, serializer=pool.job_serializer)]
            queued = await pool.register_script(ENQUEUE_MANY)(keys=keys, args=argv)
            return [bool(q) for q in queued]
        except Exception as exc:
            self._unreachable(function, exc)
            return [False] * len(jobs)

    def _unreachable(self, function: str, exc: Exception) -> None:
        """Forget the pool and log when Redis is unreachable; anything else is a bug and is raised."""
        # redis-py raises its own ConnectionError/TimeoutError subclasses, not only the builtins.
        if isinstance(exc, (OSError, ConnectionError, TimeoutError)) or exc.__class__.__module__.startswith("redis"):
            self.pool = None
            log.warning("queue unavailable, %s left for the sweep: %s", function, exc.__class__.__name__)
            return
        raise exc

    async def close(self) -> None:
        """Close the pool (the embedded server is released by its owner)."""
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None
