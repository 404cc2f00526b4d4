"""The reference backend: a real Starlette + uvicorn server speaking the default golden-path protocol, with faults.

It is the stack the real backends run (FastAPI is Starlette under uvicorn), so its answers on the wire (403 on
close-before-accept, denial responses, close codes) are the ones the probe meets in production. It powers
``golden-path demo``, ``golden-path serve-reference`` and the test-suite.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request as HandshakeRequest

from bot.errors import ReferenceBackendError, UsageError
from bot.reference.chainlit import ChainlitBackend
from bot.reference.faults import EVENTS, STALE_VERSION, Faults
from bot.reference.streams import StreamBackend

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent

REFERENCE_SERVICE = "golden-path-reference"
WS_PATH = "/ws"
REALTIME_PATH = "/v1/realtime"  # the openai-realtime profile (bot/profiles/openai-realtime.yml)
TOKEN_TTL_S = 15 * 60
MIN_SECRET_BYTES = 32  # RFC 7518 3.2; pyjwt warns on every shorter HS256 key
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
ERROR_EVENT_MESSAGE = "LLM provider returned 401: invalid API key"
CLOSE_EARLY_REASON = "main cleanup"
# What a port that does not speak HTTP answers (the `garbage` fault): the client must fail to parse it.
GARBAGE = b"\x00\x15\x03\x03 golden-path reference: this port does not speak HTTP\r\n\r\n"

# Where each event keeps its fields: real servers use all three shapes, so a client must read them all.
_PLACEMENT = {
    "agent_started": None,  # at the root
    "agent_thinking": "data",
    "tool_executing": "payload",
    "tool_completed": "payload",
    "agent_completed": "data",
}
# Client message type -> the payload key holding the user's text (DESIGN.md section 3, step 5).
_TEXT_FIELDS = {"start_agent": "user_request", "user_message": "content"}
_ARITHMETIC = re.compile(r"(\d+(?:\.\d+)?)\s*([-+*/x×])\s*(\d+(?:\.\d+)?)")
_REMEMBERED_USERS = 100

Frame = dict[str, Any]

logger = logging.getLogger(__name__)


def create_app(
    *,
    secret: str,
    faults: Faults = Faults(),  # noqa: B008 (frozen, so a shared default is safe)
    version: str = "dev",
    login_password: str = "golden-path",
    event_delay_ms: float = 10,
    stamps: Stamps | None = None,
) -> Starlette:
    """The ASGI app. Every fault works under any ASGI server except ``garbage``, which needs our protocol class.

    Raises:
        UsageError: the secret is shorter than 32 bytes (HS256 needs at least that; pyjwt warns on every use).
    """
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise UsageError(
            f"the reference backend's JWT secret must be at least {MIN_SECRET_BYTES} bytes (HS256)"
        )
    backend = _Backend(
        secret=secret,
        faults=faults,
        version=version,
        login_password=login_password,
        event_delay_s=max(event_delay_ms, 0) / 1000,
        stamps=stamps,
    )
    app = Starlette(
        routes=[
            Route("/health", backend.health),
            Route("/api/health", backend.health),
            Route("/healthz", backend.healthz),
            Route("/auth/login", backend.login, methods=["POST"]),
            WebSocketRoute(WS_PATH, backend.websocket),
            WebSocketRoute(REALTIME_PATH, backend.realtime_websocket),
            # The SSE profiles (openai-chat, adk, ai-sdk), with the same faults.
            *StreamBackend(
                secret=secret, faults=faults, answer=answer_for, event_delay_s=max(event_delay_ms, 0) / 1000
            ).routes(),
            # The chainlit profile: header auth and Chainlit's Socket.IO wire, with the same faults.
            *ChainlitBackend(
                secret=secret, faults=faults, answer=answer_for, event_delay_s=max(event_delay_ms, 0) / 1000
            ).routes(),
        ]
    )
    app.state.faults = faults  # read by _WebSocketProtocol for the `garbage` fault
    return app


@dataclass(frozen=True, slots=True)
class _Connection:
    websocket: WebSocket
    user_id: str
    connection_id: str


@dataclass(slots=True)
class Stamps:
    """For benchmarks: when each event was sent, in ms after its run's message arrived (``time.monotonic``,
    which is CLOCK_MONOTONIC, system-wide on Linux), per thread id; and when each run completed. Frames then
    carry ``server_ms`` too."""

    sent: dict[str, dict[str, float]] = field(default_factory=dict)
    sent_at: dict[str, dict[str, float]] = field(default_factory=dict)  # the same, as monotonic seconds
    completed: list[float] = field(default_factory=list)  # monotonic seconds
    first_received: float | None = None  # monotonic seconds: the earliest message with an event sent

    def record(self, run: _Run, name: str) -> float:
        now = time.monotonic()
        if self.first_received is None or run.received < self.first_received:
            self.first_received = run.received
        elapsed = round((now - run.received) * 1000, 3)
        self.sent.setdefault(run.thread_id, {})[name] = elapsed
        self.sent_at.setdefault(run.thread_id, {})[name] = now
        if name == "agent_completed":
            self.completed.append(now)
        return elapsed


@dataclass(frozen=True, slots=True)
class _Run:
    user_id: str
    run_id: str
    thread_id: str
    text: str
    received: float = 0.0  # time.monotonic() when the message arrived

    @property
    def ids(self) -> Frame:
        return {"user_id": self.user_id, "run_id": self.run_id, "thread_id": self.thread_id}


class _Registry:
    """Open connections, and the last event sent for each user: the global state behind the cross-talk fault.

    Only touched from the server's event loop, so it needs no lock.
    """

    def __init__(self) -> None:
        self.connections: dict[str, _Connection] = {}
        self._last_event: dict[str, Frame] = {}  # user id -> frame, least recently updated first

    def add(self, connection: _Connection) -> None:
        self.connections[connection.connection_id] = connection

    def remove(self, connection: _Connection) -> None:
        self.connections.pop(connection.connection_id, None)

    def remember(self, user_id: str, frame: Frame) -> None:
        self._last_event.pop(user_id, None)
        self._last_event[user_id] = frame
        while len(self._last_event) > _REMEMBERED_USERS:
            del self._last_event[next(iter(self._last_event))]

    def stale_event(self, *, not_for: str) -> Frame | None:
        """The most recent event of another user: what a stale global buffer hands to the next run."""
        for user_id, frame in reversed(self._last_event.items()):
            if user_id != not_for:
                return frame
        return None


class _Backend:
    """The request handlers, sharing the settings, the faults and the connection registry."""

    def __init__(
        self,
        *,
        secret: str,
        faults: Faults,
        version: str,
        login_password: str,
        event_delay_s: float,
        stamps: Stamps | None = None,
    ) -> None:
        self.secret = secret
        self.faults = faults
        self.version = version
        self.login_password = login_password
        self.event_delay_s = event_delay_s
        self.registry = _Registry()
        self.stamps = stamps

    # HTTP

    async def health(self, request: Request) -> JSONResponse:
        if self.faults.health_503:
            return JSONResponse({"status": "unhealthy", "checks": {"redis": "down"}}, status_code=503)
        version = STALE_VERSION if self.faults.stale_version else self.version
        if self.faults.wrong_service:
            return JSONResponse({"status": "healthy", "service": "frontend", "version": version})
        return JSONResponse(
            {"status": "healthy", "service": REFERENCE_SERVICE, "version": version, "commit": version}
        )

    async def healthz(self, request: Request) -> JSONResponse:
        """The openai-realtime profile's health: ``{"ok": true, "version": ...}``."""
        if self.faults.health_503:
            return JSONResponse({"ok": False, "checks": {"redis": "down"}}, status_code=503)
        version = STALE_VERSION if self.faults.stale_version else self.version
        service = "frontend" if self.faults.wrong_service else REFERENCE_SERVICE
        return JSONResponse({"ok": True, "version": version, "service": service})

    async def login(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        username = body.get("username") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(username, str) or not username or not isinstance(password, str):
            detail = 'expected a JSON body {"username": "...", "password": "..."}'
            return JSONResponse({"detail": detail}, status_code=422)
        if not hmac.compare_digest(password.encode(), self.login_password.encode()):
            return JSONResponse({"detail": "invalid username or password"}, status_code=401)
        return JSONResponse({"access_token": self._mint(username), "token_type": "bearer"})

    def _mint(self, username: str) -> str:
        now = int(time.time())
        claims = {
            "sub": username,
            "iat": now,
            "exp": now + TOKEN_TTL_S,
            "jti": uuid.uuid4().hex,
            "token_type": "access",
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    # WebSocket: the handshake

    async def websocket(self, websocket: WebSocket) -> None:
        user_id = await self._handshake(websocket)
        if user_id is not None:
            await self._session(_Connection(websocket, user_id, str(uuid.uuid4())))

    async def realtime_websocket(self, websocket: WebSocket) -> None:
        user_id = await self._handshake(websocket)
        if user_id is not None:
            from bot.reference.realtime import RealtimeSession

            session = RealtimeSession(self, _Connection(websocket, user_id, str(uuid.uuid4())))
            await session.serve()

    async def _handshake(self, websocket: WebSocket) -> str | None:
        """Accept (returning the user id) or refuse the upgrade, bent by the faults; None when refused."""
        faults = self.faults
        if faults.hang:
            await _wait_for_disconnect(websocket)
            return None
        if faults.ws_502:
            body = "502 Bad Gateway: the upstream did not answer the upgrade"
            await websocket.send_denial_response(PlainTextResponse(body, status_code=502))
            return None
        if faults.rate_limited:
            response = JSONResponse(
                {"detail": "rate limit exceeded"}, status_code=429, headers={"Retry-After": "30"}
            )
            await websocket.send_denial_response(response)
            return None
        user_id = self._authenticate(websocket)
        if faults.ws_403 and user_id is not None:
            # A valid token refused (a JWT secret that differs from the issuer's): the app's own denial.
            denial = {"detail": "invalid token: signature verification failed"}
            await websocket.send_denial_response(JSONResponse(denial, status_code=403))
            return None
        if faults.ws_403 or (user_id is None and not faults.accept_unauthenticated):
            await websocket.close(code=1008)  # before accept: uvicorn answers the upgrade with HTTP 403
            return None
        if faults.slow_handshake_ms:
            await asyncio.sleep(faults.slow_handshake_ms / 1000)
        offered = websocket.scope.get("subprotocols", [])
        echo = "jwt-auth" if "jwt-auth" in offered and not faults.subprotocol_none else None
        if faults.subprotocol_none and not offered:
            echo = "jwt-auth"  # nothing was offered: a misconfigured server answers with one anyway
        await websocket.accept(subprotocol=echo)
        if faults.end_at_once:
            await websocket.close(code=1000, reason="done")
            return None
        return user_id or "anonymous"

    def _authenticate(self, websocket: WebSocket) -> str | None:
        """The user id from the first token offered (subprotocol, header, query), or None when none is valid."""
        token = _offered_token(websocket)
        if token is None:
            return None
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={"verify_aud": False, "require": ["sub", "exp"]},
            )
        except jwt.InvalidTokenError:
            return None
        subject = claims.get("sub")
        return subject if isinstance(subject, str) and subject else None

    # WebSocket: the session

    async def _session(self, connection: _Connection) -> None:
        """Serve one accepted connection: runs go in tasks so a disconnect is seen (and cleaned up) at once."""
        self.registry.add(connection)
        runs: set[asyncio.Task[None]] = set()
        try:
            await self._pause("connection_established")
            if "connection_established" not in self.faults.drop_events:
                welcome = {"user_id": connection.user_id, "connection_id": connection.connection_id}
                await _send(connection.websocket, {"type": "connection_established", "data": welcome})
            while True:
                message = await connection.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                run = await self._read_message(connection, message)
                if run is not None:
                    task = asyncio.create_task(self._run(connection, run))
                    runs.add(task)
                    task.add_done_callback(_finish_run(runs))
        finally:
            self.registry.remove(connection)
            for task in runs:
                task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)

    async def _read_message(self, connection: _Connection, message: Mapping[str, Any]) -> _Run | None:
        """The run a client message asks for; anything else gets an error frame (the connection stays open)."""
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
        try:
            frame = json.loads(raw)
        except ValueError as exc:
            await _send_error(connection.websocket, f"invalid JSON: {exc}")
            return None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            await _send(connection.websocket, {"type": "pong", "timestamp": _now()})
            return None
        if kind not in _TEXT_FIELDS:
            await _send_error(
                connection.websocket,
                f"unknown message type {kind!r}; expected one of: {', '.join(_TEXT_FIELDS)}",
            )
            return None
        payload = frame.get("payload")
        text_field = _TEXT_FIELDS[kind]
        text = payload.get(text_field) if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            await _send_error(
                connection.websocket, f"{kind}: payload.{text_field} must be a non-empty string"
            )
            return None
        thread_id = payload.get("thread_id") if isinstance(payload, dict) else None
        if not isinstance(thread_id, str) or not thread_id:
            thread_id = f"thread-{uuid.uuid4().hex[:12]}"
        return _Run(
            user_id=connection.user_id,
            run_id=str(uuid.uuid4()),
            thread_id=thread_id,
            text=text,
            received=time.monotonic(),
        )

    async def _run(self, connection: _Connection, run: _Run) -> None:
        """Send the agent's events for one run, bent by the faults."""
        faults = self.faults
        if faults.cross_talk:
            stale = self.registry.stale_event(not_for=run.user_id)
            if stale is not None:
                await _send(connection.websocket, stale)
        order = list(EVENTS)
        if faults.out_of_order:
            order[2], order[3] = order[3], order[2]
        for name in order:
            if name == "agent_completed" and faults.never_complete:
                return  # silent from now on: the client must time out
            await self._pause(name)
            if name == "tool_executing" and faults.error_event:
                error = {"error": ERROR_EVENT_MESSAGE, **run.ids}
                await self._emit(connection, run, {"type": "agent_error", "data": error, "timestamp": _now()})
                return
            if name not in faults.drop_events:
                await self._emit(connection, run, _event(name, run, answer=self._answer(run.text)))
            if name == "agent_thinking":
                if faults.close_early:
                    if connection.websocket.application_state is WebSocketState.CONNECTED:
                        await connection.websocket.close(code=1000, reason=CLOSE_EARLY_REASON)
                    return
                await self._pause("heartbeat")
                if "heartbeat" not in faults.drop_events:
                    await _send(connection.websocket, {"type": "heartbeat", "timestamp": _now()})

    async def _emit(self, connection: _Connection, run: _Run, frame: Frame) -> None:
        if self.stamps is not None:
            frame = {**frame, "server_ms": self.stamps.record(run, str(frame["type"]))}
        if not self.faults.cross_talk:
            await _send(connection.websocket, frame)
            return
        self.registry.remember(run.user_id, frame)
        for other in list(self.registry.connections.values()):  # the bug: every open connection gets it
            await _send(other.websocket, frame)

    async def _pause(self, frame: str) -> None:
        delay_s = self.event_delay_s + self.faults.extra_delay_ms(frame) / 1000
        if delay_s > 0:
            await asyncio.sleep(delay_s)

    def _answer(self, text: str) -> str:
        if self.faults.empty_answer:
            return ""
        if self.faults.canned_answer:
            return f"Agent response for: {text}"
        return answer_for(text)


def answer_for(text: str) -> str:
    """The healthy agent's answer: deterministic, derived from the request, and not a canned fallback."""
    return (
        f"The reference agent read your request ('{text[:60]}') and used 1 tool. Answer: {_solve(text)[1]}."
    )


def _solve(text: str) -> tuple[str, str]:
    """What the agent's one tool computes: (its input, its result). The first arithmetic, else a word count."""
    match = _ARITHMETIC.search(text)
    if match is None:
        return text[:60], f"your request has {len(text.split())} words"
    a, op, b = float(match[1]), match[2], float(match[3])
    if op == "+":
        value = a + b
    elif op == "-":
        value = a - b
    elif op in "*x×":
        value = a * b
    elif b == 0:
        return match[0], "undefined (division by zero)"
    else:
        value = a / b
    return match[0], _number(value)


def _event(name: str, run: _Run, *, answer: str) -> Frame:
    fields: Frame = {**run.ids}
    expression, result = _solve(run.text)
    if name == "agent_started":
        fields["agent_name"] = "reference_agent"
    elif name == "agent_thinking":
        fields["thought"] = "Reading the request and choosing a tool."
    elif name == "tool_executing":
        fields.update(tool_name="calculator", parameters={"expression": expression})
    elif name == "tool_completed":
        fields.update(tool_name="calculator", result=result)
    else:
        fields.update(result=answer, status="success")
    placement = _PLACEMENT[name]
    if placement is None:
        return {"type": name, **fields, "timestamp": _now()}
    return {"type": name, placement: fields, "timestamp": _now()}


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:.6g}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _offered_token(websocket: WebSocket) -> str | None:
    """The token the way real clients offer it, in order: ``jwt.<base64url>`` subprotocol, bearer, query."""
    for offer in websocket.scope.get("subprotocols", []):
        if isinstance(offer, str) and offer.startswith("jwt."):
            encoded = offer[len("jwt.") :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return ""  # offered but unreadable: an invalid token, not a missing one
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return websocket.query_params.get("token") or None


async def _send(websocket: WebSocket, frame: Frame) -> bool:
    """Send if the connection is still open; False when it is gone (a broadcast must not fail on one peer)."""
    if websocket.application_state is not WebSocketState.CONNECTED:
        return False
    try:
        await websocket.send_json(frame)
    except WebSocketDisconnect:
        return False
    return True


async def _send_error(websocket: WebSocket, message: str) -> None:
    await _send(websocket, {"type": "error", "data": {"message": message}, "timestamp": _now()})


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    """Neither accept nor reject (the `hang` fault) until the client leaves or the server shuts down."""
    await websocket.receive()  # websocket.connect
    await websocket.receive()  # websocket.disconnect: uvicorn sends it on connection loss and on shutdown


def _finish_run(runs: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        runs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("reference backend run failed", exc_info=task.exception())

    return done


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, plus the one fault an ASGI app cannot show: garbage, not HTTP."""

    def handle_connect(self, event: HandshakeRequest) -> None:
        faults = getattr(getattr(self.config.app, "state", None), "faults", None)
        if (
            isinstance(faults, Faults)
            and faults.garbage
            and event.path.partition("?")[0] in (WS_PATH, REALTIME_PATH)
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


def _uvicorn_config(app: Starlette, *, own_logging: bool) -> uvicorn.Config:
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


def _bind(host: str, port: int) -> socket.socket:
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
    ) -> None:
        self.faults = faults
        self.host = host
        self.port = port
        self._app = create_app(
            secret=secret,
            faults=faults,
            version=version,
            login_password=login_password,
            event_delay_ms=event_delay_ms,
            stamps=stamps,
        )
        self._server: uvicorn.Server | None = None
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
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(_uvicorn_config(self._app, own_logging=False))
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

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
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
        server.should_exit = True
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
    sock = _bind(host, port)
    server = uvicorn.Server(_uvicorn_config(app, own_logging=True))
    # uvicorn re-raises the signal after its graceful shutdown; Ctrl-C has done its job by then.
    with contextlib.suppress(KeyboardInterrupt), sock:
        server.run(sockets=[sock])
