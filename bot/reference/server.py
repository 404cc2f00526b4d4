"""The reference backend: a real Starlette + uvicorn server speaking the default golden-path protocol, with faults.

It is the stack the real backends run (FastAPI is Starlette under uvicorn), so its answers on the wire (403 on
close-before-accept, denial responses, close codes) are the ones the probe meets in production. It powers
``golden-path demo``, ``golden-path serve-reference`` and the test-suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request as HandshakeRequest

from bot.errors import ReferenceBackendError, UsageError
from bot.reference import graphql_ws, realtime
from bot.reference.backend import Backend, Stamps, answer_for
from bot.reference.chainlit import ChainlitBackend
from bot.reference.faults import Faults
from bot.reference.streams import StreamBackend

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent

WS_PATH = "/ws"
REALTIME_PATH = "/v1/realtime"  # the openai-realtime profile (bot/profiles/openai-realtime.yml)
MIN_SECRET_BYTES = 32  # RFC 7518 3.2; pyjwt warns on every shorter HS256 key
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# What a port that does not speak HTTP answers (the `garbage` fault): the client must fail to parse it.
GARBAGE = b"\x00\x15\x03\x03 golden-path reference: this port does not speak HTTP\r\n\r\n"
logger = logging.getLogger(__name__)


def create_app(
    *,
    secret: str,
    faults: Faults = Faults(),  # noqa: B008 (frozen, so a shared default is safe)
    version: str = "dev",
    login_password: str = "golden-path",
    event_delay_ms: float = 10,
    stamps: Stamps | None = None,
    socketio_ping_s: float = 25,
    socketio_ping_timeout_s: float = 20,
) -> Starlette:
    """The ASGI app. Every fault works under any ASGI server except ``garbage``, which needs our protocol class.

    Raises:
        UsageError: the secret is shorter than 32 bytes (HS256 needs at least that; pyjwt warns on every use).
    """
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise UsageError(
            f"the reference backend's JWT secret must be at least {MIN_SECRET_BYTES} bytes (HS256)"
        )
    delay_s = max(event_delay_ms, 0) / 1000
    backend = Backend(
        secret=secret,
        faults=faults,
        version=version,
        login_password=login_password,
        event_delay_s=max(event_delay_ms, 0) / 1000,
        stamps=stamps,
    )
    app = Starlette(
        middleware=[Middleware(ColdStart, faults=faults)],
        routes=[
            Route("/health", backend.health),
            Route("/api/health", backend.health),
            Route("/healthz", backend.healthz),
            Route("/auth/login", backend.login, methods=["POST"]),
            WebSocketRoute(WS_PATH, backend.websocket),
            WebSocketRoute(REALTIME_PATH, realtime.endpoint(backend)),
            # The SSE profiles (openai-chat, adk, ai-sdk) and Chainlit's Socket.IO wire, with the same faults.
            *StreamBackend(
                secret=secret, faults=faults, answer=answer_for, event_delay_s=delay_s, stamps=stamps
            ).routes(),
            *ChainlitBackend(
                secret=secret,
                faults=faults,
                answer=answer_for,
                event_delay_s=delay_s,
                stamps=stamps,
                ping_interval_s=socketio_ping_s,
                ping_timeout_s=socketio_ping_timeout_s,
            ).routes(),
            *graphql_ws.GraphQLChat(
                backend
            ).routes(),  # the graphql-ws profile (strawberry's graphql-transport-ws)
        ],
    )
    app.state.faults = faults  # read by _WebSocketProtocol for the `garbage` fault
    return app


class ColdStart:
    """The cold-start fault: a starting instance answers whatever arrives first late (a health request, a WebSocket
    upgrade, a stream request, a Socket.IO handshake), once; the requests after it find the instance warm."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.delay_s = faults.cold_start_ms / 1000
        self.warm = not faults.cold_start_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.warm and scope["type"] in ("http", "websocket"):
            self.warm = True
            await asyncio.sleep(self.delay_s)
        await self.app(scope, receive, send)


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, plus the one fault an ASGI app cannot show: garbage, not HTTP."""

    def handle_connect(self, event: HandshakeRequest) -> None:
        faults = getattr(getattr(self.config.app, "state", None), "faults", None)
        if (
            isinstance(faults, Faults)
            and faults.garbage
            and event.path.partition("?")[0] in (WS_PATH, REALTIME_PATH, graphql_ws.PATH)
        ):
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            self.transport.write(GARBAGE)
            self.transport.close()
            return
        super().handle_connect(event)

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # uvicorn 0.54 forgets this after a denial response and logs a spurious "ASGI callable returned
            # without completing handshake" error for every ws-502 / rate-limited rejection (Kludex/uvicorn#3138).
            self.handshake_complete = True


def uvicorn_config(app: Starlette, *, own_logging: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        ws=_WebSocketProtocol,  # websockets-sansio: the legacy `websockets` implementation is deprecated
        loop="asyncio",
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        log_level="warning",
        # A background server must not reconfigure the host process's logging; the foreground one may.
        log_config=uvicorn.config.LOGGING_CONFIG if own_logging else None,
        timeout_graceful_shutdown=2,  # a safety net: our handlers end on their own when connections close
    )


class PromptServer(uvicorn.Server):
    """``uvicorn.Server`` that begins its shutdown as soon as ``exit()`` is called from another thread.

    uvicorn notices ``should_exit`` at its next tick, up to 0.1 s later; the demo stops one server and the
    test-suite hundreds (tests/standins/asgi.py serves its test backends with this class too). The shutdown itself
    is uvicorn's, unchanged: its graceful wait for open connections and its ``timeout_graceful_shutdown``.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def main_loop(self) -> None:
        """uvicorn's loop (``on_tick`` every 0.1 s, until it says exit), woken early by ``exit()``."""
        wake = asyncio.Event()
        self._wake = (asyncio.get_running_loop(), wake)
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.1)

    def exit(self) -> None:
        """Ask the server to stop, from any thread (before ``main_loop`` runs, its first tick sees it)."""
        self.should_exit = True
        if self._wake is not None:
            loop, wake = self._wake
            with contextlib.suppress(RuntimeError):  # the loop has already closed: nothing left to wake
                loop.call_soon_threadsafe(wake.set)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it, uvicorn's two writes per response (headers, body)
        # meet the client's delayed ACK and every keep-alive request takes ~40 ms on loopback.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ReferenceBackendError(
            f"cannot start the reference backend on {host}:{port}: {exc.strerror or exc}; choose another port"
        ) from exc
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ReferenceServer:
    """The reference backend in a background thread with its own event loop, for the demo and tests.

    ``with ReferenceServer(secret=s, faults=parse_faults(["ws-502"])) as server: probe(server.url)``
    """

    def __init__(
        self,
        *,
        secret: str,
        faults: Faults = Faults(),  # noqa: B008 (frozen, so a shared default is safe)
        version: str = "dev",
        login_password: str = "golden-path",
        host: str = "127.0.0.1",
        port: int = 0,
        event_delay_ms: float = 10,
        stamps: Stamps | None = None,
        socketio_ping_s: float = 25,
        socketio_ping_timeout_s: float = 20,
    ) -> None:
        self.faults = faults
        self.host = host
        self.port = port
        # The ASGI app it serves: a test may wrap it (a stand-in front end) before the server starts.
        self.app: Any = create_app(
            secret=secret,
            faults=faults,
            version=version,
            login_password=login_password,
            event_delay_ms=event_delay_ms,
            stamps=stamps,
            socketio_ping_s=socketio_ping_s,
            socketio_ping_timeout_s=socketio_ping_timeout_s,
        )
        self._server: PromptServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; with port 0, the port is known once started."""
        if self.port == 0:
            raise ReferenceBackendError("the reference backend has no port yet: call start() first")
        return _url(self.host, self.port)

    def start(self) -> None:
        """Return once the server accepts connections.

        Raises:
            ReferenceBackendError: the port is taken, or the server did not start within 10 s.
        """
        if self._thread is not None:
            return
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = PromptServer(uvicorn_config(self.app, own_logging=False))
        self._server, self._error = server, None
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name="golden-path-reference", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive():
                self._thread = self._server = None
                sock.close()
                reason = f": {self._error!r}" if self._error is not None else ""
                raise ReferenceBackendError(
                    f"the reference backend on {self.url} stopped while starting{reason}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ReferenceBackendError(f"the reference backend on {self.url} did not start within 10 s")
            time.sleep(0.01)

    def _serve(self, server: PromptServer, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # uvicorn exits with SystemExit on startup failures; start() reports it
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        """Shut down within a few seconds, even with connections open or hanging; calling it again is harmless."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.exit()
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            logger.warning(
                "the reference backend on %s did not stop within %.0f s", self.url, 2 * STOP_TIMEOUT_S
            )

    def __enter__(self) -> ReferenceServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_forever(*, port: int, faults: Faults, secret: str, version: str, host: str = "127.0.0.1") -> None:
    """Serve in the foreground (``golden-path serve-reference``) until Ctrl-C or SIGTERM; the caller prints the URL.

    Raises:
        UsageError: the secret is too short.
        ReferenceBackendError: the port is taken.
    """
    app = create_app(secret=secret, faults=faults, version=version)
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn_config(app, own_logging=True))
    # uvicorn re-raises the signal after its graceful shutdown; Ctrl-C has done its job by then.
    with contextlib.suppress(KeyboardInterrupt), sock:
        server.run(sockets=[sock])
