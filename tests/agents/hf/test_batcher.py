"""MicroBatcher: concurrent requests become batches; cancellation and errors stay contained."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from traject.agents.hf.batcher import MicroBatcher


def _doubling(log: list[list[int]], delay: float = 0.0):
    def run(batch: list[int]) -> list[int]:
        log.append(list(batch))
        assert threading.current_thread() is not threading.main_thread()  # off the event loop
        time.sleep(delay)
        return [2 * x for x in batch]
    return run


@pytest.mark.anyio
async def test_concurrent_requests_share_a_batch() -> None:
    log: list[list[int]] = []
    b = MicroBatcher(_doubling(log), max_batch_size=8, wait_s=0.05)
    results: dict[int, int] = {}

    async def one(x: int) -> None:
        results[x] = await b.submit(x)

    async with anyio.create_task_group() as tg:
        for x in range(5):
            tg.start_soon(one, x)
    assert results == {x: 2 * x for x in range(5)}
    assert log == [[0, 1, 2, 3, 4]] and b.stats.mean_batch_size == 5


@pytest.mark.anyio
async def test_max_batch_size_splits_and_late_arrivals_form_the_next_batch() -> None:
    log: list[list[int]] = []
    b = MicroBatcher(_doubling(log, delay=0.05), max_batch_size=3, wait_s=0.01)
    out: list[int] = []

    async def one(x: int, after: float) -> None:
        await anyio.sleep(after)
        out.append(await b.submit(x))

    async with anyio.create_task_group() as tg:
        for x in range(5):
            tg.start_soon(one, x, 0.0)
        tg.start_soon(one, 5, 0.02)  # arrives while the first batch runs
    assert sorted(out) == [0, 2, 4, 6, 8, 10]
    assert [len(x) for x in log] == [3, 3] and sorted(sum(log, [])) == list(range(6))


@pytest.mark.anyio
async def test_an_error_reaches_every_request_of_its_batch_only() -> None:
    calls = 0

    def run(batch: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return batch

    b = MicroBatcher(run, max_batch_size=2, wait_s=0.02)
    outcomes: list[object] = []

    async def one(x: int) -> None:
        try:
            outcomes.append(await b.submit(x))
        except RuntimeError as exc:
            outcomes.append(str(exc))

    async with anyio.create_task_group() as tg:
        for x in range(3):
            tg.start_soon(one, x)
    assert sorted(map(str, outcomes)) == ["2", "boom", "boom"]


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_the_queue_and_a_cancelled_leader_still_delivers() -> None:
    log: list[list[int]] = []
    b = MicroBatcher(_doubling(log, delay=0.1), max_batch_size=1, wait_s=0.0)
    got: list[int] = []

    async def keep(x: int) -> None:
        got.append(await b.submit(x))

    async with anyio.create_task_group() as tg:
        tg.start_soon(keep, 1)                  # leads the first batch
        await anyio.sleep(0.02)
        with anyio.move_on_after(0.03):
            await b.submit(99)                   # queued behind it, then cancelled
        tg.start_soon(keep, 2)
    assert got == [2, 4] and [99] not in log

    log.clear()
    b = MicroBatcher(_doubling(log, delay=0.1), max_batch_size=4, wait_s=0.02)
    got = []

    async def cancelled_leader() -> None:
        with anyio.move_on_after(0.05):  # its deadline passes while the batch runs in the thread
            await b.submit(5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancelled_leader)
        await anyio.sleep(0.005)
        tg.start_soon(keep, 3)
        tg.start_soon(keep, 4)
    assert log == [[5, 3, 4]] and sorted(got) == [6, 8]
