"""Connection lifetime (``journey.hold_s``): one user keeps its WebSocket open after its journey, with pings,
and records whether, when and by whom it was closed.

On Cloud Run a WebSocket is one request: it lives until the service's request timeout, and a proxy may end an
idle connection sooner. The probe only records; the report compares the connection's age at the close with the
revision's request timeout.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bot.results import ConnectionHold
from bot.untrusted import Redactor

PING_EVERY_S = 15.0  # a browser-like keepalive, well under the idle limits of proxies (60 s and more)
PONG_TIMEOUT_S = 10.0
REASON_CHARS = 200


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
    start = loop.time()
    end = start + seconds
    pings = pongs = frames = 0
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
                return _record(
                    user, seconds, start, opened_at, "golden-path", 1011, "no pong", pings, pongs, frames
                )
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        if rcvd is not None:
            reason = redactor.clip(rcvd.reason, REASON_CHARS)
            return _record(user, seconds, start, opened_at, "server", rcvd.code, reason, pings, pongs, frames)
        reason = "no close frame (the connection was dropped)"
        return _record(user, seconds, start, opened_at, "network", 1006, reason, pings, pongs, frames)
    return _record(user, seconds, start, opened_at, "", None, "", pings, pongs, frames)


def _record(
    user: int,
    seconds: float,
    start: float,
    opened_at: float,
    closed_by: str,
    code: int | None,
    reason: str,
    pings: int,
    pongs: int,
    frames: int,
) -> ConnectionHold:
    now = asyncio.get_running_loop().time()
    return ConnectionHold(
        user=user,
        requested_s=seconds,
        held_s=round(now - start, 3),
        age_s=round(now - opened_at, 3),
        closed_by=closed_by,
        close_code=code,
        close_reason=reason,
        pings=pings,
        pongs=pongs,
        frames=frames,
    )
