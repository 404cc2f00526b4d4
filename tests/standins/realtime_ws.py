"""A chat backend written only for the tests, in the OpenAI-Realtime shape, not the reference backend.

It is what issue #12's user had: ``/healthz`` answering ``{"ok": true, "version": ...}``, a JWT in the
``Authorization`` header only, ``session.created`` on connect, the client's ``conversation.item.create`` (text at
``item.content[0].text``) then ``response.create``, and a stream of ``response.output_text.delta`` events ending
with ``response.done``. No event names its user. Faults: ``canned``, ``empty``, ``cross-talk`` (every event
goes to every open connection: the bug a shared global queue gives).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

VERSION = "9f8e7d6c5b4a"


class RealtimeBackend:
    def __init__(self, *, secret: str, fault: str | None = None, path: str = "/realtime") -> None:
        self.secret = secret
        self.fault = fault
        self.path = path
        self.open: set[ServerConnection] = set()
        self.url = ""

    def _health(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            body = json.dumps({"ok": True, "version": VERSION}).encode()
            # websockets closes the connection after an HTTP answer: say so, as its own respond() does.
            headers = Headers(
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ]
            )
            return Response(200, "OK", headers, body)
        if request.path != self.path:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.InvalidTokenError:
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid token\n")
        if scheme != "Bearer" or not claims.get("sub"):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid token\n")
        return None

    async def _handler(self, connection: ServerConnection) -> None:
        self.open.add(connection)
        text = ""
        try:
            await connection.send(json.dumps({"type": "session.created", "session": {"id": "sess_1"}}))
            async for raw in connection:
                event = json.loads(raw)
                if event.get("type") == "conversation.item.create":
                    text = event["item"]["content"][0]["text"]
                elif event.get("type") == "response.create":
                    await self._respond(connection, text)
        finally:
            self.open.discard(connection)

    async def _respond(self, connection: ServerConnection, text: str) -> None:
        answer = f"You asked: {text}. The answer is 4."
        if self.fault == "canned":
            answer = "I'm sorry, I can't help with that."
        elif self.fault == "empty":
            answer = ""
        response_id = f"resp_{uuid.uuid4().hex[:8]}"
        events: list[dict[str, Any]] = [{"type": "response.created", "response": {"id": response_id}}]
        events += [
            {"type": "response.output_text.delta", "response_id": response_id, "delta": answer[i : i + 7]}
            for i in range(0, len(answer), 7)
        ]
        events.append({"type": "response.output_text.done", "response_id": response_id, "text": answer})
        output = [{"type": "message", "content": [{"type": "output_text", "text": answer}]}]
        events.append({"type": "response.done", "response": {"id": response_id, "output": output}})
        for event in events:
            await asyncio.sleep(0.005)
            targets = list(self.open) if self.fault == "cross-talk" else [connection]
            for target in targets:
                with contextlib.suppress(ConnectionClosed):  # a peer that left must not stop the broadcast
                    await target.send(json.dumps(event))


@contextmanager
def running(*, secret: str, fault: str | None = None, path: str = "/realtime") -> Iterator[RealtimeBackend]:
    """The backend on 127.0.0.1 in a thread with its own loop; ``backend.url`` is its http:// base URL."""
    backend = RealtimeBackend(secret=secret, fault=fault, path=path)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        async with serve(backend._handler, "127.0.0.1", 0, process_request=backend._health) as server:
            backend.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield backend
    finally:
        loop.call_soon_threadsafe(lambda: stop is not None and not stop.done() and stop.set_result(None))
        thread.join(5)
        loop.close()
