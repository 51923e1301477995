"""What request handlers and jobs share: settings, the queue, and the adapters the process was assembled with."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.commands.core import AsyncScript

from connector.adapter import Adapter
from connector.config import Settings
from connector.model import Platform
from connector.runtime import RedisHandle, queue_pool

log = logging.getLogger(__name__)

# arq's enqueue_job (arq/connections.py) for many jobs in one round trip: for each job whose job key and result key
# are both absent, PSETEX the job key and ZADD the id to the queue: the keys and values enqueue_job writes. It checks
# under WATCH and gives up on a race; a script runs atomically, so "only if absent" holds at least as strictly.
# KEYS: the queue. ARGV: expiry ms, score, job key prefix, result key prefix, the job ids joined by newlines, the
# jobs as arq serializes them end to end, and their lengths joined by commas. Returns 1 (queued) or 0 per job.
# The jobs travel as three arguments, not two per job: redis-py packs each argument in Python, which cost more than
# the script itself. The job keys are built here from their prefixes, as arq builds them (arq runs on one Redis).
ENQUEUE_MANY = """
local ids, queued, pos, i = {}, {}, 1, 0
for id in string.gmatch(ARGV[5], "[^\\n]+") do ids[#ids + 1] = id end
for size in string.gmatch(ARGV[7], "%d+") do
  i = i + 1
  local job_key, id = ARGV[3] .. ids[i], ids[i]
  local job = string.sub(ARGV[6], pos, pos + tonumber(size) - 1)
  pos = pos + tonumber(size)
  if redis.call('EXISTS', job_key, ARGV[4] .. id) == 0 then
    redis.call('PSETEX', job_key, ARGV[1], job)
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    queued[i] = 1
  else
    queued[i] = 0
  end
end
return queued
"""


# Drop queued jobs whose work is already done (rows a batched apply committed): for each id still queued and not
# started, hold its in-progress key for a while (a worker between its WATCH and EXEC then gives the job up, as for a
# job started elsewhere), remove it from the queue and delete its job key. KEYS: the queue. ARGV: in-progress prefix,
# job key prefix, hold ms, the job ids joined by newlines. Returns how many were dropped.
DROP_MANY = """
local dropped = 0
for id in string.gmatch(ARGV[4], "[^\\n]+") do
  if redis.call('ZSCORE', KEYS[1], id) and redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('PSETEX', ARGV[1] .. id, ARGV[3], '1')
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', ARGV[2] .. id)
    dropped = dropped + 1
  end
end
return dropped
"""


def _checked_ids(job_ids: Sequence[str]) -> Sequence[str]:
    """The ids, unless one is empty or holds a newline (the scripts receive them joined by newlines)."""
    if any(not job_id or "\n" in job_id for job_id in job_ids):
        raise ValueError("job ids must be non-empty and hold no newline")
    return job_ids


@dataclass
class Services:
    """Held on `app.state.services` and in the arq worker context (`ctx["services"]`)."""

    settings: Settings
    redis: RedisHandle
    adapters: Mapping[Platform, Adapter]  # handed in by whoever starts the process (adapters.REGISTRY)
    pool: ArqRedis | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _enqueue_many: AsyncScript | None = field(default=None, repr=False)
    _drop_many: AsyncScript | None = field(default=None, repr=False)

    def adapter(self, platform: Platform | str) -> Adapter:
        """The adapter for a platform; KeyError naming it when this process was not given one."""
        try:
            return self.adapters[Platform(platform)]
        except (KeyError, ValueError):
            raise KeyError(f"no adapter for platform {platform!r}") from None

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> bool:
        """Queue a job; False (logged, not raised) when Redis is unreachable, since the inbox sweep catches up."""
        try:
            pool = await self._pool()
            job = await pool.enqueue_job(
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
        ids = _checked_ids([job_id for job_id, _ in jobs])
        try:
            pool = await self._pool()
            now = timestamp_ms()
            serialized = [serialize_job(function, args, {}, None, now, serializer=pool.job_serializer)
                          for _, args in jobs]
            argv: list[bytes | str | int] = [pool.expires_extra_ms, now, job_key_prefix, result_key_prefix, "\n".join(ids), b"".join(serialized),
                    ",".join(str(len(job)) for job in serialized)]
            if self._enqueue_many is None or self._enqueue_many.registered_client is not pool:
                self._enqueue_many = pool.register_script(ENQUEUE_MANY)
            queued = await self._enqueue_many(keys=[pool.default_queue_name], args=argv)
            return [bool(q) for q in queued]
        except Exception as exc:
            self._unreachable(function, exc)
            return [False] * len(jobs)

    async def drop_queued(self, job_ids: Sequence[str], hold_seconds: float = 60.0) -> int:
        """Remove jobs not yet started from the queue, in one round trip (their work was done by another job);
        how many were removed. 0 when Redis is unreachable: the jobs then run, and find nothing left to do."""
        if not job_ids:
            return 0
        _checked_ids(job_ids)
        try:
            pool = await self._pool()
            if self._drop_many is None or self._drop_many.registered_client is not pool:
                self._drop_many = pool.register_script(DROP_MANY)
            return int(await self._drop_many(keys=[pool.default_queue_name], args=[
                in_progress_key_prefix, job_key_prefix, int(hold_seconds * 1000), "\n".join(job_ids)]))
        except Exception as exc:
            self._unreachable("drop_queued", exc)
            return 0

    async def _pool(self) -> ArqRedis:
        """The queue's pool, opened on first use (and again after Redis was unreachable)."""
        if self.pool is None:
            self.pool = await queue_pool(self.redis)
        return self.pool

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
