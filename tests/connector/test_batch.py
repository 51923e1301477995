"""Group commit: what arrives during a flush goes in the next one, each caller gets its own answer or error."""
from __future__ import annotations

import asyncio

import pytest

from connector.batch import Batcher


class Store:
    """A flush that records its batches, refuses negative items, and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if any(i < 0 for i in items):
            raise ValueError(f"negative in {items}")
        return [i * 10 for i in items]


async def test_items_submitted_during_a_flush_go_together_in_the_next_one() -> None:
    store = Store()
    store.gate.clear()
    batcher: Batcher[int, int] = Batcher(store.flush)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)  # the first flush starts at once, alone
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await first == 10 and await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert store.batches == [[1], [2, 3, 4, 5, 6]]
    assert (batcher.flushes, batcher.largest, batcher.fallbacks) == (2, 5, 0)


async def test_a_failing_item_fails_only_its_own_caller() -> None:
    store = Store()
    batcher: Batcher[int, int] = Batcher(store.flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, -3, 4)), return_exceptions=True)
    assert results[:2] == [10, 20] and results[3] == 40
    assert isinstance(results[2], ValueError)
    assert store.batches == [[1, 2, -3, 4], [1], [2], [-3], [4]]  # the batch, then each item alone
    assert batcher.fallbacks == 1


async def test_batches_are_capped_and_a_cancelled_caller_leaves_the_others_answered() -> None:
    store = Store()
    store.gate.clear()
    batcher: Batcher[int, int] = Batcher(store.flush, max_size=2)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    store.gate.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert [d for i, d in enumerate(done) if i != 1] == [10, 30, 40, 50]
    assert isinstance(done[1], asyncio.CancelledError)
    assert store.batches == [[1, 2], [3, 4], [5]]
    assert await batcher.submit(7) == 70  # still usable afterwards


@pytest.mark.parametrize("size", [1, 3])
async def test_a_flush_that_answers_the_wrong_number_of_results_is_an_error(size: int) -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(short)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(size)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
