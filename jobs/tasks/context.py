"""What every task shell takes from the arq context: the shared services, and how a transient failure retries."""
from __future__ import annotations

from typing import Any

from arq import Retry

from connector.errors import Retryable
from connector.services import Services


def services(ctx: dict[str, Any]) -> Services:
    """The services the worker put in the context at startup (settings, queue, adapters)."""
    found: Services = ctx["services"]
    return found


def backoff(tries: int) -> float:
    """Seconds before try number `tries + 1`: doubling, at most five minutes."""
    return float(min(300, 2 ** tries))


def retry_later(ctx: dict[str, Any], exc: Retryable) -> Retry:
    """arq's Retry after the platform's own delay, or our backoff."""
    return Retry(defer=exc.retry_after or backoff(ctx.get("job_try", 1)))
