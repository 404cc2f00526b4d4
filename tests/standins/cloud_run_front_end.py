"""A stand-in for Cloud Run's front end in front of one revision: a proxy on 127.0.0.1 that forwards each request to
a backend and enforces the service's request timeout the way Cloud Run does.

Cloud Run's docs ("Configure request timeout for services"; "Using WebSockets"): the request timeout is the time
within which a response must be returned; if it is not, "Cloud Run closes the network connection and returns an
HTTP 504 error". A WebSocket or a stream is one HTTP request under the same timeout: once open, it is cut at the
timeout (clients "are disconnected" and must reconnect), whatever the app does. So, per request, from its arrival:
- no response byte from the backend within ``timeout_s``: the client gets HTTP 504 with Google's body
  ("upstream request timeout") and the connection is closed;
- a response (a stream, an upgraded WebSocket) still going at ``timeout_s``: the connection is closed, without
  a WebSocket close frame and without the end of the chunked body (the client sees the connection drop).

It forwards bytes unchanged, one request per client connection (``Connection: close`` is set on plain HTTP
requests so that the backend ends the response: a kept-alive connection would carry a second request under the
first one's clock; an upgrade keeps its ``Connection: Upgrade``). ``cuts`` records what it did.

``silent_after_s`` is a test's network fault, not Cloud Run's: from that long after a request's arrival, nothing
more is forwarded either way and the connection stays open, as when a path black-holes or an instance freezes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Self

GATEWAY_TIMEOUT = (
    b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain\r\ncontent-length: 24\r\nconnection: close\r\n"
    b"\r\nupstream request timeout"
)
HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Cut:
    """One request the timeout ended: ``"504"`` (no response had started) or ``"cut"`` (an open response)."""

    what: str
    request: str  # the request line
    after_s: float


class CloudRunFrontEnd:
    """``with CloudRunFrontEnd(backend_url, timeout_s=2) as front: front.url``: the proxy in a thread."""

    def __init__(self, backend_url: str, *, timeout_s: float, silent_after_s: float | None = None) -> None:
        host, _, port = backend_url.removeprefix("http://").rstrip("/").partition(":")
        self._backend = (host, int(port))
        self.timeout_s = timeout_s
        self.silent_after_s = silent_after_s
        self.cuts: list[Cut] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cloud-run-front-end", daemon=True
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        started.result(timeout=5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._proxy(client_in, client_out)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            client_out.transport.abort()  # the connection ends without any goodbye, as a cut does

    async def _proxy(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        head = await client_in.readuntil(b"\r\n\r\n")
        arrived = time.monotonic()
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        backend_in, backend_out = await asyncio.open_connection(*self._backend)
        try:
            backend_out.write(_closing(head))
            await backend_out.drain()
            started = asyncio.Event()
            silent_at = None if self.silent_after_s is None else arrived + self.silent_after_s
            upstream = asyncio.ensure_future(_pipe(client_in, backend_out, silent_at=silent_at))
            downstream = asyncio.ensure_future(_pipe(backend_in, client_out, started, silent_at=silent_at))
            try:
                async with asyncio.timeout(self.timeout_s):
                    await started.wait()
            except TimeoutError:
                self.cuts.append(Cut("504", request_line, round(time.monotonic() - arrived, 3)))
                downstream.cancel()
                client_out.write(GATEWAY_TIMEOUT)
                with contextlib.suppress(OSError):
                    await client_out.drain()
                upstream.cancel()
                return
            left = self.timeout_s - (time.monotonic() - arrived)
            done, _ = await asyncio.wait({downstream}, timeout=max(0.0, left))
            if not done:
                self.cuts.append(Cut("cut", request_line, round(time.monotonic() - arrived, 3)))
            upstream.cancel()
            downstream.cancel()
            await asyncio.gather(upstream, downstream, return_exceptions=True)
        finally:
            backend_out.transport.abort()


async def _pipe(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    started: asyncio.Event | None = None,
    *,
    silent_at: float | None = None,
) -> None:
    """Bytes from ``source`` to ``sink`` until ``source`` ends; ``started`` set with the first byte; from
    ``silent_at`` (monotonic) on, what arrives is dropped."""
    while chunk := await source.read(64 * 1024):
        if started is not None:
            started.set()
        if silent_at is not None and time.monotonic() >= silent_at:
            continue
        sink.write(chunk)
        await sink.drain()


def _closing(head: bytes) -> bytes:
    """The request head with ``Connection: close`` unless it asks for an upgrade (one request per connection)."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    upgrade = any(line.lower().startswith(b"upgrade:") for line in lines[1:])
    if upgrade:
        return head
    kept = [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n"
