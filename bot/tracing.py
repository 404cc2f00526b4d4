"""Trace context per simulated user: every request carries ``traceparent`` and ``X-Cloud-Trace-Context``.

Cloud Run copies the trace id of a request into its request log and into the app's structured log lines, so a
user's requests can be found in Cloud Logging and Cloud Trace, and ``bot.server_logs`` can tie the server's entries to
the journey that failed. Trace ids are derived from the run id and the user: the same run always names the
same traces, and no two runs share one.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot import timestamps
from bot.results import UserTrace

if TYPE_CHECKING:
    import httpx

    from bot.protocol import Offer

RUN_USER = 0  # the run's own requests: health, the unauthenticated negative check
# The headers ``headers()`` adds (lower case): never a token, so evidence of where a token travels leaves them out.
HEADER_NAMES = frozenset({"traceparent", "x-cloud-trace-context"})

# The user whose journey the current task runs: asyncio copies the context into each task, so a user bound in
# its own task never leaks into another user's.
_current_user: ContextVar[int] = ContextVar("golden_path_trace_user", default=RUN_USER)


def trace_id_for(run_id: str, user: int) -> str:
    """32 lowercase hex digits, never all zero (W3C trace-context forbids that value)."""
    digest = hashlib.sha256(f"golden-path:{run_id}:{user}".encode()).hexdigest()[:32]
    return digest if digest.strip("0") else "0" * 31 + "1"


def cloud_trace_name(project: str, trace_id: str) -> str:
    """The ``trace`` field of a Cloud Logging entry: ``projects/P/traces/ID``."""
    return f"projects/{project}/traces/{trace_id}"


class RunTrace:
    """The trace ids of one run and when each user's first request left; thread- and task-safe."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._first_request: dict[int, datetime] = {}
        self._trace_ids: dict[int, str] = {}  # each user's, derived once (a user's requests each carry it)
        self._lock = threading.Lock()

    def trace_id(self, user: int) -> str:
        found = self._trace_ids.get(user)
        if found is None:
            found = self._trace_ids[user] = trace_id_for(self.run_id, user)
        return found

    def bind(self, user: int) -> None:
        """Requests made from now on in this task (and tasks it starts) belong to ``user``."""
        _current_user.set(user)

    def headers(self, user: int | None = None) -> dict[str, str]:
        """Fresh headers for one request: the user's trace id, a new span id, sampled."""
        who = _current_user.get() if user is None else user
        if who not in self._first_request:  # the clock and the lock only for a user's first request
            now = datetime.now(UTC)
            with self._lock:
                self._first_request.setdefault(who, now)
        trace_id = self.trace_id(who)
        span = secrets.randbits(64) or 1
        return {
            "traceparent": f"00-{trace_id}-{span:016x}-01",
            "X-Cloud-Trace-Context": f"{trace_id}/{span};o=1",
        }

    def sign_offer(self, offer: Offer, user: int) -> Offer:
        """The WebSocket upgrade request with ``user``'s trace headers added."""
        return replace(offer, headers=(*offer.headers, *self.headers(user).items()))

    def httpx_hooks(self) -> dict[str, list[Any]]:
        """``event_hooks`` for an ``httpx.AsyncClient``: every request gets the current user's headers."""

        async def add_headers(request: httpx.Request) -> None:
            request.headers.update(self.headers())

        return {"request": [add_headers]}

    def users(self) -> tuple[UserTrace, ...]:
        """Every user (and the run itself, as user 0) that sent at least one request, in user order."""
        with self._lock:
            seen = sorted(self._first_request.items())
        return tuple(
            UserTrace(user=user, trace_id=self.trace_id(user), first_request_at=timestamps.rfc3339(at))
            for user, at in seen
        )
