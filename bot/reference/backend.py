"""The reference backend's behaviour: the handlers (health, login, the WebSocket handshake and session), the
agent's events and answers, and the connection registry, each bent by the faults. ``bot.reference.server``
serves them with uvicorn; ``bot.reference.realtime`` speaks the openai-realtime profile over the same backend,
``bot.reference.graphql_ws`` the graphql-ws one.
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
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bot.reference.faults import STALE_VERSION, Faults

REFERENCE_SERVICE = "golden-path-reference"
TOKEN_TTL_S = 15 * 60
ERROR_EVENT_MESSAGE = "LLM provider returned 401: invalid API key"
CLOSE_EARLY_REASON = "main cleanup"

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


@dataclass(frozen=True, slots=True)
class Connection:
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

    def record(self, run: Run, name: str) -> float:
        now = time.monotonic()
        if self.first_received is None or run.received < self.first_received:
            self.first_received = run.received
        elapsed = round((now - run.received) * 1000, 3)
        self.sent.setdefault(run.thread_id, {})[name] = elapsed
        self.sent_at.setdefault(run.thread_id, {})[name] = now
        if name == "agent_completed":
            self.completed.append(now)
        return elapsed

    def run_done(self, received: float) -> None:
        """A run of another transport (SSE, Socket.IO) whose message arrived at ``received`` just completed."""
        if self.first_received is None or received < self.first_received:
            self.first_received = received
        self.completed.append(time.monotonic())


@dataclass(frozen=True, slots=True)
class Run:
    user_id: str
    run_id: str
    thread_id: str
    text: str
    received: float = 0.0  # time.monotonic() when the message arrived

    @property
    def ids(self) -> Frame:
        return {"user_id": self.user_id, "run_id": self.run_id, "thread_id": self.thread_id}


class Registry:
    """Open connections, and the last event sent for each user: the global state behind the cross-talk fault.

    Only touched from the server's event loop, so it needs no lock.
    """

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self._last_event: dict[str, Frame] = {}  # user id -> frame, least recently updated first

    def add(self, connection: Connection) -> None:
        self.connections[connection.connection_id] = connection

    def remove(self, connection: Connection) -> None:
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


class Backend:
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
        self.registry = Registry()
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
        user_id = await self.handshake(websocket)
        if user_id is None:
            return
        ager = asyncio.create_task(self._close_at_max_age(websocket)) if self.faults.max_age_ms else None
        try:
            await self._session(Connection(websocket, user_id, str(uuid.uuid4())))
        finally:
            if ager is not None:
                ager.cancel()

    async def _close_at_max_age(self, websocket: WebSocket) -> None:
        """The max-age fault: a connection lifetime enforced by the server (or a proxy in front of it)."""
        await asyncio.sleep(self.faults.max_age_ms / 1000)
        with contextlib.suppress(RuntimeError):  # already closed
            await websocket.close(code=1001, reason="max connection age")

    async def handshake(self, websocket: WebSocket) -> str | None:
        """Accept (returning the user id) or refuse the upgrade, bent by the faults; None when refused."""
        faults = self.faults
        if await self.refuse_upgrade(websocket):
            return None
        user_id = self.user_for(_offered_token(websocket))
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

    async def refuse_upgrade(self, websocket: WebSocket) -> bool:
        """The faults of an upgrade before the app reads a token: True when refused. (The cold start delays the
        upgrade before it gets here: ``bot.reference.server.ColdStart``.)"""
        faults = self.faults
        if faults.hang:
            await wait_for_disconnect(websocket)
            return True
        if faults.ws_502:
            body = "502 Bad Gateway: the upstream did not answer the upgrade"
            await websocket.send_denial_response(PlainTextResponse(body, status_code=502))
            return True
        if faults.rate_limited:
            response = JSONResponse(
                {"detail": "rate limit exceeded"}, status_code=429, headers={"Retry-After": "30"}
            )
            await websocket.send_denial_response(response)
            return True
        return False

    def user_for(self, token: str | None) -> str | None:
        """The user id a token names (its ``sub``), or None when there is none or it is not valid."""
        return subject_of(token, self.secret, require=("sub", "exp"))

    # WebSocket: the session

    async def _session(self, connection: Connection) -> None:
        """Serve one accepted connection: runs go in tasks so a disconnect is seen (and cleaned up) at once."""
        self.registry.add(connection)
        runs: set[asyncio.Task[None]] = set()
        try:
            await self.pause("connection_established")
            if "connection_established" not in self.faults.drop_events:
                welcome = {"user_id": connection.user_id, "connection_id": connection.connection_id}
                await send(connection.websocket, {"type": "connection_established", "data": welcome})
            while True:
                message = await connection.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                run = await self._read_message(connection, message)
                if run is not None:
                    task = asyncio.create_task(self._run(connection, run))
                    runs.add(task)
                    task.add_done_callback(finish_run(runs))
        finally:
            self.registry.remove(connection)
            for task in runs:
                task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)

    async def _read_message(self, connection: Connection, message: Mapping[str, Any]) -> Run | None:
        """The run a client message asks for; anything else gets an error frame (the connection stays open)."""
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
        try:
            frame = json.loads(raw)
        except ValueError as exc:
            await send_error(connection.websocket, f"invalid JSON: {exc}")
            return None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            await send(connection.websocket, {"type": "pong", "timestamp": _now()})
            return None
        if kind not in _TEXT_FIELDS:
            await send_error(
                connection.websocket,
                f"unknown message type {kind!r}; expected one of: {', '.join(_TEXT_FIELDS)}",
            )
            return None
        payload = frame.get("payload")
        text_field = _TEXT_FIELDS[kind]
        text = payload.get(text_field) if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            await send_error(connection.websocket, f"{kind}: payload.{text_field} must be a non-empty string")
            return None
        thread_id = payload.get("thread_id") if isinstance(payload, dict) else None
        if not isinstance(thread_id, str) or not thread_id:
            thread_id = f"thread-{uuid.uuid4().hex[:12]}"
        return Run(
            user_id=connection.user_id,
            run_id=str(uuid.uuid4()),
            thread_id=thread_id,
            text=text,
            received=time.monotonic(),
        )

    async def _run(self, connection: Connection, run: Run) -> None:
        """Send the agent's events for one run, bent by the faults."""
        faults = self.faults
        if faults.cross_talk:
            stale = self.registry.stale_event(not_for=run.user_id)
            if stale is not None:
                await send(connection.websocket, stale)
        order = faults.event_order()
        for name in order:
            if name == "agent_completed" and faults.never_complete:
                return  # silent from now on: the client must time out
            await self.pause(name)
            if name == "tool_executing" and faults.error_event:
                error = {"error": ERROR_EVENT_MESSAGE, **run.ids}
                await self.emit(connection, run, {"type": "agent_error", "data": error, "timestamp": _now()})
                return
            if name not in faults.drop_events:
                await self.emit(connection, run, _event(name, run, answer=self.answer(run.text)))
            if name == "agent_thinking":
                if faults.close_early:
                    if connection.websocket.application_state is WebSocketState.CONNECTED:
                        await connection.websocket.close(code=1000, reason=CLOSE_EARLY_REASON)
                    return
                await self.pause("heartbeat")
                if "heartbeat" not in faults.drop_events:
                    await send(connection.websocket, {"type": "heartbeat", "timestamp": _now()})

    async def emit(self, connection: Connection, run: Run, frame: Frame) -> None:
        if self.stamps is not None:
            frame = {**frame, "server_ms": self.stamps.record(run, str(frame["type"]))}
        if not self.faults.cross_talk:
            await send(connection.websocket, frame)
            return
        self.registry.remember(run.user_id, frame)
        for other in list(self.registry.connections.values()):  # the bug: every open connection gets it
            await send(other.websocket, frame)

    async def pause(self, frame: str) -> None:
        await wait_before(frame, self.faults, self.event_delay_s)

    def answer(self, text: str) -> str:
        if self.faults.empty_answer:
            return ""
        if self.faults.canned_answer:
            return f"Agent response for: {text}"
        return answer_for(text)


class Answers:
    """The answers of the wires that keep a conversation (SSE, Socket.IO), bent by the faults: canned, empty,
    another user's recent message mixed in (cross-talk); a later turn's names what the user said earlier."""

    def __init__(self, faults: Faults, answer: Callable[[str], str]) -> None:
        self.faults = faults
        self.answer_for = answer
        self.recent: deque[tuple[str, str]] = deque(maxlen=100)  # (user, text) of recent messages

    def reply(self, user: str, text: str, earlier: Sequence[str] = ()) -> str:
        other = next((t for u, t in reversed(self.recent) if u != user), None)
        self.recent.append((user, text))
        if self.faults.empty_answer:
            return ""
        if self.faults.canned_answer:
            return f"Agent response for: {text}"
        answer = self.answer_for(text)
        if earlier:
            answer += f" Earlier you said: {' / '.join(t[:100] for t in earlier)}"
        return f"{answer} (also: {other[:60]})" if self.faults.cross_talk and other else answer


async def wait_before(frame: str, faults: Faults, event_delay_s: float) -> None:
    """The pause before sending ``frame``: the event delay plus the delay faults' extra for it."""
    delay_s = event_delay_s + faults.extra_delay_ms(frame) / 1000
    if delay_s > 0:
        await asyncio.sleep(delay_s)


def subject_of(token: str | None, secret: str, *, require: tuple[str, ...] = ("sub",)) -> str | None:
    """The subject (``sub``) of an HS256 token signed with ``secret`` carrying the ``require``d claims, or None
    when there is no token or it is not valid (an ``exp`` it has is always checked)."""
    if not token:
        return None
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"verify_aud": False, "require": list(require)}
        )
    except jwt.InvalidTokenError:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) and subject else None


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


def _event(name: str, run: Run, *, answer: str) -> Frame:
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


async def send(websocket: WebSocket, frame: Frame) -> bool:
    """Send if the connection is still open; False when it is gone (a broadcast must not fail on one peer)."""
    if websocket.application_state is not WebSocketState.CONNECTED:
        return False
    try:
        await websocket.send_json(frame)
    except WebSocketDisconnect:
        return False
    return True


async def send_error(websocket: WebSocket, message: str) -> None:
    await send(websocket, {"type": "error", "data": {"message": message}, "timestamp": _now()})


async def wait_for_disconnect(websocket: WebSocket) -> None:
    """Neither accept nor reject (the `hang` fault) until the client leaves or the server shuts down."""
    await websocket.receive()  # websocket.connect
    await websocket.receive()  # websocket.disconnect: uvicorn sends it on connection loss and on shutdown


def finish_run(runs: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        runs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("reference backend run failed", exc_info=task.exception())

    return done
