"""Timestamps and elapsed times as golden-path writes them: RFC 3339 in UTC with ``Z``; milliseconds. Pure."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

Precision = Literal["auto", "seconds", "milliseconds"]


def rfc3339(moment: datetime, timespec: Precision = "milliseconds") -> str:
    """``2026-01-02T03:04:05.678Z``: in UTC (a naive moment is taken as UTC), to ``timespec``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse(text: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or an offset; none means UTC) as an aware datetime.

    Raises:
        ValueError: not an ISO 8601 timestamp.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading), to 0.01 ms."""
    return round((time.perf_counter() - started) * 1000, 2)
