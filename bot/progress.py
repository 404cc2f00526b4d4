"""Progress in the log: a line when a phase starts and ends, and a heartbeat at least every few seconds while
waiting, with the elapsed time and what is awaited, so a long wait never looks like a hang.

``Progress`` is given where to write (``emit``); the pipeline uses it as::

    with progress.phase("probe"), progress.waiting("the journeys of 5 users"):
        outcome = asyncio.run(journey.probe(...))

The heartbeat runs in a daemon thread, so it keeps ticking around blocking calls (the Cloud Run client) as well
as around an ``asyncio.run`` whose loop is busy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HEARTBEAT_S = 5.0  # the promise: a line at least every 5 s during any wait


class Progress:
    def __init__(
        self,
        emit: Callable[[str], None],
        *,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        self._lock = threading.Lock()

    def say(self, message: str) -> None:
        with self._lock:
            self._emit(message)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """``phase NAME: started`` now, ``phase NAME: done in 1.2 s`` (or ``failed after``) at the end."""
        started = self._clock()
        self.say(f"phase {name}: started")
        try:
            yield
        except BaseException:
            self.say(f"phase {name}: failed after {_seconds(self._clock() - started)}")
            raise
        self.say(f"phase {name}: done in {_seconds(self._clock() - started)}")

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """Every ``heartbeat_s`` until the block ends: ``still awaiting WHAT (12 s elapsed)``."""
        started = self._clock()
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self._heartbeat_s):
                self.say(f"still awaiting {what} ({_seconds(self._clock() - started)} elapsed)")

        ticker = threading.Thread(target=tick, name="golden-path-heartbeat", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join(timeout=1)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
