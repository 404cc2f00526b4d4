"""bot.probe.deadline.MovingDeadline: a receive loop's deadline that events move, read when its timer fires."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.probe.deadline import MovingDeadline


async def _ticks(gap_s: float, count: int) -> AsyncIterator[int]:
    """What an SSE body is: an async generator a cancellation would end for good."""
    for n in range(count):
        await asyncio.sleep(gap_s)
        yield n


def test_events_that_keep_moving_the_deadline_are_never_cut_and_the_timer_is_not_reset_per_event():
    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        last = loop.time()
        reads = 0

        def due() -> float:
            nonlocal reads
            reads += 1
            return last + 0.3  # the event timeout runs from the last event

        got = []
        async with MovingDeadline(due):
            async for n in _ticks(0.05, 20):  # 1 s of events, each 0.05 s after the one before
                got.append(n)
                last = loop.time()
        return got, reads

    got, reads = asyncio.run(main())
    assert got == list(range(20))
    # Read when the block starts and when the timer fires (about every 0.3 s, more often only on a loaded machine
    # whose ticks come late), never once per event.
    assert reads < len(got)


def test_a_deadline_that_passes_raises_timeout_error_at_the_deadline_from_the_last_event():
    async def main() -> tuple[float, float, list[int]]:
        loop = asyncio.get_running_loop()
        started = last = loop.time()
        got: list[int] = []
        with pytest.raises(TimeoutError):
            async with MovingDeadline(lambda: last + 0.2):
                async for n in _ticks(0.1, 3):
                    got.append(n)
                    last = loop.time()
                await asyncio.sleep(5)  # the stream stalls: 0.2 s after its last event is the deadline
        return loop.time() - started, last - started, got

    took, last, got = asyncio.run(main())
    assert got == [0, 1, 2]
    assert last + 0.19 <= took < last + 2.0  # at the deadline, not after the stalled wait (5 s)


def test_a_deadline_already_past_raises_at_the_first_wait():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with MovingDeadline(lambda: loop.time() - 1):
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(main(), 2))


def test_someone_elses_cancellation_stays_a_cancellation_and_the_task_can_finish():
    async def victim(started: asyncio.Event) -> str:
        loop = asyncio.get_running_loop()
        try:
            async with MovingDeadline(lambda: loop.time() + 10):
                started.set()
                await asyncio.sleep(5)
        except TimeoutError:
            return "timeout"
        return "finished"

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(victim(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_leaving_the_block_early_stops_the_timer():
    async def main() -> int:
        loop = asyncio.get_running_loop()
        fired = 0

        def due() -> float:
            nonlocal fired
            fired += 1
            return loop.time() + 0.05

        async with MovingDeadline(due):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # no timer left behind to cancel this task
        return fired

    assert asyncio.run(main()) == 1
