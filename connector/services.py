"""What request handlers and jobs share: settings, the queue, the adapter registry."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq.connections import ArqRedis

from connector.config import Settings
from connector.runtime import RedisHandle, queue_pool

log = logging.getLogger(__name__)


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
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.pool = None
            log.warning("queue unavailable, %s left for the sweep: %s", function, exc.__class__.__name__)
            return False
        except Exception as exc:  # redis-py raises its own ConnectionError/TimeoutError subclasses
            if exc.__class__.__module__.startswith("redis"):
                self.pool = None
                log.warning("queue unavailable, %s left for the sweep: %s", function, exc.__class__.__name__)
                return False
            raise

    async def close(self) -> None:
        """Close the pool (the embedded server is released by its owner)."""
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None
