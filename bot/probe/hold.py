"""Connection lifetime (``journey.hold_s``): one user keeps its connection open after its journey, with the
protocol's keepalive, and records whether, when and by whom it was closed.

On Cloud Run a WebSocket, an event stream and a Socket.IO WebSocket are each one request: it lives until the
service's request timeout, and a proxy may end an idle connection sooner. The probe only records; the report
compares the connection's age at the close with the revision's request timeout. The WebSocket is held here (with
pings); the event stream in ``bot.probe.sse_session`` (the server's `:` comments are its keepalive) and the
Socket.IO connection in ``bot.probe.sio`` (Engine.IO's PING/PONG, counted by ``EngineKeepalive``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bot.results import ConnectionHold
from bot.untrusted import Redactor

PING_EVERY_S = 15.0  # a browser-like keepalive, well under the idle limits of proxies (60 s and more)
PONG_TIMEOUT_S = 10.0
REASON_CHARS = 200
HOLDING_USER = 1  # one user holds its connection, also in a sharded run (the shard that runs user 1)
# The SSE answer that ends with its stream (ADK, OpenAI-compatible, AI SDK): nothing stays open to hold.
CLOSED_WITH_ANSWER = (
    "the stream closed with the answer; each answer is one request bounded by the request timeout"
)


async def hold(
    connection: ClientConnection,
    *,
    user: int,
    seconds: float,
    opened_at: float,
    redactor: Redactor,
    ping_every_s: float = PING_EVERY_S,
) -> ConnectionHold:
    """Keep ``connection`` open for ``seconds`` (reading what arrives, pinging every ``ping_every_s``), or until
    it is closed. ``opened_at``: loop time of the upgrade, for the connection's age at the close. Bounded: it
    returns by ``seconds`` plus one pong timeout."""
    loop = asyncio.get_running_loop()
    clock = Clock(user, seconds, opened_at, "websocket")
    end = clock.start + seconds
    pings = pongs = frames = 0

    def record(closed_by: str, code: int | None, reason: str) -> ConnectionHold:
        return clock.ended(closed_by, reason, code=code, pings=pings, pongs=pongs, frames=frames)

    try:
        while (left := end - loop.time()) > 0:
            try:
                async with asyncio.timeout(min(ping_every_s, left)):
                    await connection.recv()  # cancellation-safe in websockets' asyncio API
                frames += 1
                continue
            except TimeoutError:
                pass
            if end - loop.time() <= 0:
                break
            waiter = await connection.ping()
            pings += 1
            try:
                async with asyncio.timeout(PONG_TIMEOUT_S):
                    await waiter
                pongs += 1
            except TimeoutError:
                return record("golden-path", 1011, "no pong")
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        if rcvd is not None:
            reason = redactor.clip(rcvd.reason, REASON_CHARS)
            return record("server", rcvd.code, reason)
        reason = "no close frame (the connection was dropped)"
        return record("network", 1006, reason)
    return record("", None, "")


async def after_journey(
    connection: ClientConnection | None,
    *,
    user: int,
    requested_s: float,
    deadline: float,
    opened_at: float,
    completed: bool,
    redactor: Redactor,
) -> ConnectionHold:
    """The WebSocket hold after a journey (``connection``: None when the session is not a WebSocket), within the
    run's ``deadline`` (loop time); SSE and Socket.IO hold theirs in their own modules."""
    if not completed:
        return not_held(
            user, requested_s, "the journey did not complete on this connection", transport="websocket"
        )
    if connection is None:
        return not_held(user, requested_s, "the session is not a WebSocket", transport="websocket")
    left = deadline - asyncio.get_running_loop().time() - 1.0 - PONG_TIMEOUT_S
    seconds = max(0.0, min(requested_s, left))
    held = await hold(connection, user=user, seconds=seconds, opened_at=opened_at, redactor=redactor)
    return replace(held, requested_s=requested_s)


def not_held(user: int, requested_s: float, why: str, *, transport: str) -> ConnectionHold:
    """The hold that did not happen, and why (never silently skipped)."""
    return ConnectionHold(user, requested_s, 0.0, 0.0, "not held", None, why, transport=transport)


@dataclass(frozen=True, slots=True)
class Clock:
    """What a hold's outcome says whatever ended it: whose connection, the hold asked for, when the connection
    was opened and when the hold started (loop time: now, when the clock is made), over which transport."""

    user: int
    requested_s: float
    opened_at: float
    transport: str
    start: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def ended(
        self,
        closed_by: str,
        reason: str,
        *,
        code: int | None = None,
        pings: int = 0,
        pongs: int = 0,
        frames: int = 0,
        comments: int = 0,
    ) -> ConnectionHold:
        """How the hold ended, now; ``code``: the WebSocket close code (none for SSE and Socket.IO)."""
        now = asyncio.get_running_loop().time()
        return ConnectionHold(
            user=self.user,
            requested_s=self.requested_s,
            held_s=round(now - self.start, 3),
            age_s=round(now - self.opened_at, 3),
            closed_by=closed_by,
            close_code=code,
            close_reason=reason,
            pings=pings,
            pongs=pongs,
            frames=frames,
            transport=self.transport,
            comments=comments,
        )


class EngineKeepalive(logging.Handler):
    """Counts Engine.IO's keepalive on one Socket.IO connection from the python-socketio client's own log (its
    ``engineio_logger``; checked against python-engineio 4.x): the server's PINGs, the client's PONGs, when the
    server last sent anything, and the client giving up on a silent server (its ping timeout)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.pings = self.pongs = 0
        self.last_packet = time.monotonic()
        self.silent = False  # "Server has stopped communicating": no packet within pingInterval + pingTimeout

    def emit(self, record: logging.LogRecord) -> None:
        kind = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if record.msg == "Received packet %s data %s":
            self.last_packet = time.monotonic()
            self.pings += kind == "PING"
        elif record.msg == "Sending packet %s data %s":
            self.pongs += kind == "PONG"
        elif record.msg == "Server has stopped communicating, aborting":
            self.silent = True

    def logger(self) -> logging.Logger:
        """A logger of its own (not registered, not propagated) for ``socketio.AsyncClient(engineio_logger=...)``."""
        logger = logging.Logger("golden-path.engineio", logging.INFO)
        logger.propagate = False
        logger.addHandler(self)
        return logger
