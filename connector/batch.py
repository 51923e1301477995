"""Group commit: calls that arrive while a flush is running are flushed together in the next one."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Queue items, flush them in batches, one flush at a time; each caller gets its own item's result.

    The first item is flushed at once (no timer, so an idle server adds no latency); items submitted meanwhile
    wait for that flush to finish and go together in the next. When a batch fails, each of its items is flushed
    again alone, so one bad item fails only its own caller.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], max_size: int = 256,
                 shared: Callable[[Exception], bool] = lambda exc: False) -> None:
        self._flush = flush
        self._max_size = max_size
        # A failure that is no item's fault (the database locked or down): every item of the batch, and every item
        # waiting, gets it at once; retrying them one by one would make the last caller wait for all the others.
        self._shared = shared
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.flushes = 0  # batches flushed (fallback flushes of single items included)
        self.largest = 0  # the most items flushed together
        self.fallbacks = 0  # batches that failed and were retried item by item

    async def submit(self, item: T) -> R:
        """Flush `item` with whatever else is waiting; its result, or its exception, once its batch is done."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_size], self._waiting[self._max_size:]
                await self._flush_batch(batch)
        finally:
            self._runner = None
            # Only when cancelled (the loop shutting down) are futures left: their callers must not wait forever.
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting = []

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.flushes += 1
        self.largest = max(self.largest, len(batch))
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"flush returned {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if self._shared(exc):
                waiting, self._waiting = self._waiting, []
                for _, future in [*batch, *waiting]:
                    if not future.done():
                        future.set_exception(exc)
                return
            if len(batch) > 1:
                self.fallbacks += 1
                for one in batch:
                    await self._flush_batch([one])
                return
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():  # its caller may have been cancelled meanwhile
                future.set_result(result)
