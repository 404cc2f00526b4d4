"""A receive loop's deadline that events move: ``asyncio.timeout_at`` read lazily.

An event stream's deadline moves with every expected event (the event timeout runs from the last one), and a
stream may carry hundreds of deltas. ``asyncio.timeout_at(...).reschedule`` at each of them cancels a timer
handle and pushes a new one onto the loop's heap every time (five per journey over WebSocket, one per delta over
SSE: thousands of dead handles at 1,000 users). ``MovingDeadline`` sets one timer at the deadline as it stands,
and when that timer fires it reads the deadline again: if an event moved it, the timer is set again; only when
it has really passed is the task cancelled, as ``asyncio.timeout`` does, and ``TimeoutError`` raised at the
``async with``. So a wait is never cut short by a stale deadline, and nothing is cancelled that asyncio's own
timeout would not have cancelled (an SSE body's read may not be cancelled halfway and resumed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

TOLERANCE_S = (
    0.001  # a deadline this close when the timer fires has passed (the loop fires timers a hair early)
)


class MovingDeadline:
    """``async with MovingDeadline(due):`` raises ``TimeoutError`` once ``due()`` (loop time) has passed.

    ``due`` is called when the block starts and each time the timer fires; it must be cheap and must not
    raise."""

    __slots__ = ("_cancelling", "_due", "_expired", "_handle", "_loop", "_task")

    def __init__(self, due: Callable[[], float]) -> None:
        self._due = due
        self._expired = False
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> MovingDeadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("MovingDeadline should be used inside a task")
        self._task = task
        self._loop = asyncio.get_running_loop()
        self._cancelling = task.cancelling()
        self._handle = self._loop.call_at(self._due(), self._fire)
        return self

    def _fire(self) -> None:
        when = self._due()
        if when > self._loop.time() + TOLERANCE_S:
            self._handle = self._loop.call_at(when, self._fire)  # an event moved it: wait on
            return
        self._handle = None
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        # As asyncio.timeouts.Timeout: the cancellation is ours unless someone else also asked for one.
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    @property
    def expired(self) -> bool:
        return self._expired
