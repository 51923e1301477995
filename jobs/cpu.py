"""CPU-bound work off the worker's event loop, in a daemon thread, so the loop keeps answering (SIGTERM above all)."""
from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run_cpu(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in a daemon thread of its own; its result (or exception) awaited here.

    A computation run on the loop holds the loop for its whole length: arq's SIGTERM handler, its health check and
    every other job wait for it, so a worker told to stop in the middle of a long recompute overran its stop timeout
    and was killed. Here the loop stays free. Cancelled (SIGTERM), the awaiting job ends at once and arq queues it
    again; the thread, a daemon, does not hold the process's exit back, and what it computes (pure, no I/O) is
    dropped and computed again by the retry. Not asyncio.to_thread: the default executor's threads are joined at
    exit, which would wait for the computation after all.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if done.done():  # cancelled meanwhile: nobody waits for it
            return
        if ok:
            done.set_result(value)
        else:
            done.set_exception(value)

    def work() -> None:
        try:
            outcome: tuple[bool, Any] = (True, context.run(fn, *args, **kwargs))
        except BaseException as exc:  # handed to the awaiting task, which raises it
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed: the worker stopped while this ran
            pass

    threading.Thread(target=work, name=f"cpu-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await done
