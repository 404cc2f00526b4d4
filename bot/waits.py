"""Every deliberate wait of the bot (settles, back-offs, polls), and one switch that zeroes them for tests.

The bot waits on purpose in a few places: the PR comment settles before it is read back, GitHub retries back
off, Cloud Logging is given time to ingest the run's last entries, the Cloud Run waiter polls a revision or an
operation. Each goes through ``sleep`` here. ``set_testing(True)`` (hynek/stamina's testing mode, the model)
turns every such wait into a record: the wait is not slept, it is added to the waits ``recorded()`` collects,
and ``clock()`` moves on by it, so a deadline measured with ``clock`` still runs out after as many polls as it
would have. Tests then prove a wait happens by asserting the requested wait, never by sleeping it.

Timeouts on the network (a peer that never answers) are deadlines, not waits: they are not touched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Wait:
    """A wait the bot asked for: how long, and why (e.g. ``github retry``, ``logs settle``)."""

    seconds: float
    why: str


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.testing = False
        self.skipped_s = 0.0  # waits not slept in testing mode: ``clock`` adds them
        self.recorders: list[list[Wait]] = []


_state = _State()


class _Restore:
    """What ``set_testing`` returns: usable as a context manager that restores the previous mode."""

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        set_testing(self._previous)


def set_testing(on: bool = True) -> _Restore:
    """Zero every wait (``on``) or wait for real. ``with set_testing(False): ...`` waits for real inside the
    block only (a test whose subject is the wait itself, e.g. concurrent writers meeting within a settle)."""
    with _state.lock:
        previous, _state.testing = _state.testing, on
    return _Restore(previous)


def is_testing() -> bool:
    return _state.testing


def sleep(seconds: float, why: str = "wait") -> None:
    """Wait ``seconds`` (nothing when it is not positive); in testing mode, record it and return at once."""
    if seconds <= 0:
        return
    with _state.lock:
        testing = _state.testing
        if testing:
            _state.skipped_s += seconds
            for recorder in _state.recorders:
                recorder.append(Wait(seconds, why))
    if not testing:
        time.sleep(seconds)


def clock() -> float:
    """``time.monotonic()``, plus every wait skipped in testing mode: deadlines see the time those waits stood
    for, so a bounded poll ends after the same number of polls either way."""
    return time.monotonic() + _state.skipped_s


@contextmanager
def recorded() -> Iterator[list[Wait]]:
    """The waits asked for (in testing mode) while the block runs, in order."""
    waits: list[Wait] = []
    with _state.lock:
        _state.recorders.append(waits)
    try:
        yield waits
    finally:
        with _state.lock:
            _state.recorders.remove(waits)
