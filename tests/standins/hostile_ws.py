"""Misbehaving WebSocket servers on 127.0.0.1, each one way a real backend breaks the session (issue #10).

Every behaviour speaks the reference protocol until it misbehaves: it reads the client's message, and sends the
reference events with the client's ``thread_id`` unless it is told to do otherwise. They run on the real
``websockets`` server in a thread with its own loop, so the probe meets real frames, closes and TCP resets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
Behaviour = Callable[[ServerConnection], Awaitable[None]]


async def read_message(connection: ServerConnection) -> dict[str, Any]:
    """The client's start_agent message (its payload), or {} when it sends something else."""
    message = json.loads(await connection.recv())
    payload = message.get("payload") if isinstance(message, dict) else None
    return payload if isinstance(payload, dict) else {}


def event(name: str, thread_id: str, **fields: Any) -> str:
    data = {"thread_id": thread_id, **fields}
    if name == "agent_completed":
        data.setdefault("result", "The answer is 4.")
    return json.dumps({"type": name, "data": data})


async def journey(connection: ServerConnection, *, until: str | None = None) -> str:
    """Read the message and send the reference events (up to ``until``, excluded); returns the thread id."""
    thread_id = str((await read_message(connection)).get("thread_id", ""))
    for name in EVENTS:
        if name == until:
            break
        await connection.send(event(name, thread_id))
    return thread_id


async def hold(connection: ServerConnection) -> None:
    """Keep the connection open and silent until the client leaves."""
    with contextlib.suppress(ConnectionClosed):
        await connection.wait_closed()


# -- behaviours ------------------------------------------------------------------------------------------------


async def silence(connection: ServerConnection) -> None:
    """101, then nothing at all."""
    await hold(connection)


async def heartbeats(connection: ServerConnection) -> None:
    """agent_started, then heartbeats every 50 ms forever: a stalled agent behind a live connection."""
    await journey(connection, until="agent_thinking")
    await heartbeats_forever(connection)


async def heartbeats_forever(connection: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await connection.send(json.dumps({"type": "heartbeat"}))
            await asyncio.sleep(0.05)


async def not_json(connection: ServerConnection) -> None:
    await journey(connection, until="agent_thinking")
    await connection.send("<html>502 Bad Gateway</html>")
    await hold(connection)


async def binary(connection: ServerConnection) -> None:
    await journey(connection, until="agent_thinking")
    await connection.send(b"\x00\x01\x02\xff")
    await hold(connection)


async def invalid_utf8(connection: ServerConnection) -> None:
    await journey(connection, until="agent_thinking")
    await connection.send(b'{"type": "agent_thinking", "x": "\xff\xfe"}', text=True)
    await hold(connection)


async def huge_frame(connection: ServerConnection) -> None:
    """A 50 MB text frame: over the client's 4 MiB limit."""
    await journey(connection, until="agent_thinking")
    with contextlib.suppress(ConnectionClosed):
        await connection.send(b'{"type": "agent_thinking", "x": "' + b"x" * 50_000_000 + b'"}', text=True)
    await hold(connection)


async def huge_frame_busy(connection: ServerConnection) -> None:
    """The start of a 50 MB frame, then 2.5 s of not reading: a server still pushing such a frame reads the
    client's close (and closes TCP) late, after the client's event deadline has passed."""
    await journey(connection, until="agent_thinking")
    transport = connection.transport
    assert transport is not None
    transport.pause_reading()
    header = bytes([0x81, 127]) + (50_000_000).to_bytes(8, "big")  # FIN + text, 64-bit length, unmasked
    transport.write(header + b'{"type": "agent_thinking", "x": "' + b"x" * 65_536)
    await asyncio.sleep(2.5)
    transport.abort()


def small_frames(count: int, *, foreign: bool = False) -> Behaviour:
    """``count`` small frames between agent_started and the rest: heartbeats, or another user's events."""

    async def behaviour(connection: ServerConnection) -> None:
        thread_id = str((await read_message(connection)).get("thread_id", ""))
        await connection.send(event("agent_started", thread_id))
        frame = (
            event("agent_thinking", "someone-elses-thread") if foreign else json.dumps({"type": "progress"})
        )
        with contextlib.suppress(ConnectionClosed):
            for index in range(count):
                await connection.send(frame)
                if index % 1000 == 0:
                    await asyncio.sleep(0)
            for name in EVENTS[1:]:
                await connection.send(event(name, thread_id))
        await hold(connection)

    return behaviour


async def nested(connection: ServerConnection) -> None:
    """A 2.4 KB frame of 1,200 nested arrays (a RecursionError for a naive parser)."""
    await journey(connection, until="agent_thinking")
    await connection.send('{"type": "agent_thinking", "data": ' + "[" * 1200 + "]" * 1200 + "}")
    await hold(connection)


async def wrong_types(connection: ServerConnection) -> None:
    """Every field of every event of the wrong type; the event names themselves are right."""
    await read_message(connection)
    for name in EVENTS:
        body: dict[str, Any] = {"type": name, "user_id": ["u"], "run_id": {"id": 1}, "thread_id": 12.5}
        body |= {"data": "text", "payload": 7, "result": {"not": "text"}, "timestamp": None}
        await connection.send(json.dumps(body))
    await hold(connection)


async def wrong_type_name(connection: ServerConnection) -> None:
    await read_message(connection)
    await connection.send(json.dumps({"type": 42, "data": {}}))
    await hold(connection)


async def other_users_events(connection: ServerConnection) -> None:
    """Our events, plus another user's run interleaved (a shared queue)."""
    thread_id = str((await read_message(connection)).get("thread_id", ""))
    for name in EVENTS:
        await connection.send(event(name, "golden-path-other-user-thread", user_id="someone-else"))
        await connection.send(event(name, thread_id))
    await hold(connection)


async def auth_failed_after_upgrade(connection: ServerConnection) -> None:
    """Accept, read the message, then refuse the token in an error frame and close 4001."""
    await read_message(connection)
    error = {"type": "error_message", "error_code": "AUTH_FAILED", "message": "token signature invalid"}
    await connection.send(json.dumps(error))
    await connection.close(4001, "authentication failed")


async def restart_without_token(connection: ServerConnection) -> None:
    """Accept any connection; one without a token is closed with 1012 (service restart): not a refusal."""
    if "Authorization" not in connection.request.headers:
        await connection.close(1012, "service restart")
        return
    await journey(connection)
    await hold(connection)


async def complete(connection: ServerConnection) -> None:
    """A healthy session."""
    await journey(connection)
    await hold(connection)


def close_at(step: str, code: int) -> Behaviour:
    """Close with ``code`` at ``step``: right after the upgrade, after the message, or mid-stream (1006: drop
    the TCP connection without a close frame)."""

    async def behaviour(connection: ServerConnection) -> None:
        if step != "connect":
            thread_id = str((await read_message(connection)).get("thread_id", ""))
            if step == "events":
                await connection.send(event("agent_started", thread_id))
                await connection.send(event("agent_thinking", thread_id))
        if code == 1006:
            assert connection.transport is not None
            connection.transport.abort()
            return
        await connection.close(code, f"closing at {step}")

    return behaviour


BEHAVIOURS: dict[str, Behaviour] = {
    "silence": silence,
    "heartbeats": heartbeats,
    "not-json": not_json,
    "binary": binary,
    "invalid-utf8": invalid_utf8,
    "huge-frame": huge_frame,
    "huge-frame-busy": huge_frame_busy,
    "small-frames": small_frames(100_000),
    "nested": nested,
    "wrong-types": wrong_types,
    "wrong-type-name": wrong_type_name,
    "other-users-events": other_users_events,
    "auth-failed": auth_failed_after_upgrade,
    "restart-without-token": restart_without_token,
    "complete": complete,
}


def _not_offered(connection: ServerConnection, request: Request, response: Response) -> Response:
    response.headers["Sec-WebSocket-Protocol"] = "not-offered"
    return response


@contextlib.contextmanager
def running(
    behaviour: Behaviour, *, subprotocols: list[str] | None = None, echo: str = "yes"
) -> Iterator[str]:
    """Serve ``behaviour`` on 127.0.0.1; yields the http:// base URL.

    ``echo``: "yes" selects jwt-auth, "none" selects nothing, "not-offered" answers a protocol never offered.
    """
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    url: list[str] = []
    stop: list[asyncio.Future[None]] = []

    async def handler(connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await behaviour(connection)

    async def main() -> None:
        stop.append(loop.create_future())
        options: dict[str, Any] = {"max_size": None, "ping_interval": None}
        if echo == "yes":
            options["subprotocols"] = subprotocols or ["jwt-auth"]
        if echo == "not-offered":
            options["process_response"] = _not_offered
        async with serve(handler, "127.0.0.1", 0, **options) as server:
            url.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
            ready.set()
            await stop[0]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(lambda: stop[0].done() or stop[0].set_result(None))
        thread.join(10)
        loop.close()
