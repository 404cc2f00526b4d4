"""Misbehaving peers on 127.0.0.1: raw TCP/HTTP that breaks the rules, and a scripted WebSocket backend.

``RawHTTPServer`` answers each path with a *behaviour* that writes whatever bytes it likes to the socket (a
garbage status line, a body that never ends, one byte per second, silence). ``ScriptedBackend`` is a real
WebSocket server (websockets) whose health, login and session answers a test writes, e.g. to echo every
credential it was sent back in every channel it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

# -- raw HTTP over TCP ---------------------------------------------------------------------------------------

Behaviour = Callable[[socket.socket, threading.Event], None]


def _head(status: int, headers: Mapping[str, str], reason: str | None = None) -> bytes:
    phrase = reason if reason is not None else HTTPStatus(status).phrase
    # One request per connection, so every answer says Connection: close, as RFC 9112 9.6 requires of such a
    # server; without it the client pools the connection and may send its next request (a login) on it just
    # as the server closes it ("Server disconnected without sending a response", under load).
    headers = {**headers, "Connection": "close"}
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Behaviour:
    """A complete, well-formed answer."""

    def behave(sock: socket.socket, stop: threading.Event) -> None:
        head = {"Content-Type": "application/json", **(headers or {}), "Content-Length": str(len(body))}
        sock.sendall(_head(status, head) + body)

    return behave


def silent() -> Behaviour:
    """Accept the connection, read the request, never answer (until the client gives up)."""

    def behave(sock: socket.socket, stop: threading.Event) -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                if not sock.recv(4096):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    return behave


def garbage(data: bytes = b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n") -> Behaviour:
    """Something that is not HTTP where the status line should be."""

    def behave(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(data)

    return behave


def sized_body(size: int, *, content_type: str = "application/json", chunk: int = 256 * 1024) -> Behaviour:
    """A body of ``size`` bytes with a Content-Length, streamed (the server never holds it whole)."""

    def behave(sock: socket.socket, stop: threading.Event) -> None:
        head = {"Content-Type": content_type, "Content-Length": str(size)}
        sock.sendall(_head(200, head))
        block = b'{"status": "ok", "pad": "' + b"x" * chunk
        sent = 0
        while sent < size and not stop.is_set():
            piece = block[: min(chunk, size - sent)]
            try:
                sock.sendall(piece)
            except OSError:
                return
            sent += len(piece)

    return behave


def endless_chunked(chunk: bytes = b"x" * 65536) -> Behaviour:
    """``Transfer-Encoding: chunked`` that never sends the last chunk."""

    def behave(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(_head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while not stop.is_set():
            try:
                sock.sendall(framed)
            except OSError:
                return

    return behave


def drip(body: bytes = b'{"status": "ok"}', *, every_s: float = 1.0) -> Behaviour:
    """Headers at once, then the body one byte per ``every_s`` (each read succeeds; the whole never ends)."""

    def behave(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(_head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}))
        for byte in body:
            if stop.wait(every_s):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return

    return behave


def redirect(location: str) -> Behaviour:
    """``302 Found`` to ``location`` (point it at the same path for a loop)."""
    return respond(302, b"", {"Location": location, "Content-Type": "text/html"})


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                piece = sock.recv(4096)
                if not piece:
                    return
                data += piece
        except OSError:
            return
        request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
        self.server.seen.append(request_line)
        behaviour = self.server.routes.get(path, respond(404, b'{"detail": "Not Found"}'))
        with contextlib.suppress(OSError):
            behaviour(sock, self.server.stopping)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, routes: Mapping[str, Behaviour]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = dict(routes)
        self.stopping = threading.Event()
        self.seen: list[str] = []


class RawHTTPServer:
    """A TCP server on 127.0.0.1 whose every path misbehaves as told; unknown paths answer 404."""

    def __init__(self, routes: Mapping[str, Behaviour]) -> None:
        self._server = _TCPServer(routes)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="raw-http"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[str]:
        """Request lines received, in order."""
        return self._server.seen

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# -- a scripted WebSocket backend ----------------------------------------------------------------------------

Session = Callable[[ServerConnection, str | None], Awaitable[None]]
Answer = tuple[int, str] | tuple[int, str, Mapping[str, str]]  # status, body[, extra headers]


def offered_token(request: Request) -> str | None:
    """The token the client offered, from ``Authorization: Bearer`` (None for the unauthenticated check)."""
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() or None


class WebSocketServerThread:
    """A real WebSocket server (websockets) on 127.0.0.1, its event loop in a thread of its own, for the length of
    a ``with``. A subclass answers plain HTTP in ``process_request`` (None lets the upgrade go on), serves each
    accepted WebSocket in ``handler``, and releases in ``closing`` whatever it keeps waiting when the test ends."""

    def __init__(
        self, *, subprotocols: tuple[str, ...] = ("jwt-auth",), name: str = "websocket-server"
    ) -> None:
        self._subprotocols = subprotocols
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | Awaitable[Response | None] | None:
        return None

    async def handler(self, connection: ServerConnection) -> None:
        await connection.wait_closed()

    async def closing(self) -> None:
        """Runs in the server's loop before it closes."""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await serve(
                self.handler,
                "127.0.0.1",
                0,
                process_request=self.process_request,
                subprotocols=[*self._subprotocols],  # type: ignore[list-item]
                ping_interval=None,
            )
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self._thread.name} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            await self.closing()
            self._server.close(close_connections=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class ScriptedBackend(WebSocketServerThread):
    """A real WebSocket server: ``http`` maps a GET path to a function of the request giving (status, body)
    or (status, body, headers);
    ``session`` runs for each accepted WebSocket with the token the client offered."""

    def __init__(
        self,
        *,
        http: Mapping[str, Callable[[Request], Answer]],
        session: Session,
        ws_path: str = "/ws",
        subprotocols: tuple[str, ...] = ("jwt-auth",),
    ) -> None:
        super().__init__(subprotocols=subprotocols, name="scripted-backend")
        self._http = dict(http)
        self._session = session
        self._ws_path = ws_path

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == self._ws_path:
            return None
        answer = self._http.get(path)
        status, body, *extra = answer(request) if answer else (404, '{"detail": "Not Found"}')
        headers = Headers({"Content-Type": "application/json", **(extra[0] if extra else {})})
        headers["Content-Length"] = str(len(body.encode()))
        return Response(status, HTTPStatus(status).phrase, headers, body.encode())

    async def handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        with contextlib.suppress(Exception):  # a peer hanging up mid-script is part of the game
            await self._session(connection, offered_token(connection.request))


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
