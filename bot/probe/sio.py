"""Socket.IO: one user's connection through python-socketio's asyncio client, its classification into failure
kinds, the journey's receive loop and the negative check.

The client does Engine.IO (polling, then the WebSocket upgrade, as browsers do; pings and pongs stay inside
it and never count as events). The open packet is not acceptance: only the namespace's CONNECT is, and a
CONNECT_ERROR is the server refusing the CONNECT auth payload or the cookie (``stream-auth-rejected``). Every
received event becomes a document ``{"event": NAME, "data": ...}`` read with ``journey.event_name``; a
completion event that arrives before the event that starts this message's run (``socketio.run_starts_with``,
e.g. Chainlit's ``task_end`` of the connection itself before the ``task_start`` of the message) is not this
run's completion. A DISCONNECT before completion is ``stream-closed-early``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from bot import expressions, protocol, tracing, untrusted
from bot.probe import hold as holding
from bot.probe import steps as request_steps
from bot.probe.deadline import MovingDeadline
from bot.probe.http_probe import timeout_hint, transport_failure
from bot.probe.record import LATER_STEPS, Hooks, Message, Stream, later_turns, turn_suffix
from bot.results import CheckResult, ConnectionHold, Failure, Kind, Status, Step
from bot.settings import Settings, TurnSettings
from bot.timestamps import elapsed_ms

if TYPE_CHECKING:
    import aiohttp
    import socketio

    from bot.probe.journey import UserJourney


def _socketio() -> Any:
    """python-socketio (with aiohttp) costs about 120 ms to import: it loads with the first Socket.IO journey, not
    at the start of every run (a one-user WebSocket run's start-up is benchmarked).

    Its package also imports its synchronous client, whose Engine.IO client imports requests and urllib3 (30 ms
    and 5 MB, in every run that speaks Socket.IO, for a client we never use). requests is hidden while the package
    loads, unless something already imported it: python-engineio's synchronous client then keeps ``requests =
    None``, as it does where requests is not installed, and requests stays importable for everything else."""
    if "socketio" not in sys.modules and "requests" not in sys.modules:
        sys.modules["requests"] = None  # type: ignore[assignment]  # import requests: ImportError
        try:
            import socketio
        except ImportError:
            pass  # a python-engineio that needs requests after all: it loads as it is, below
        finally:
            del sys.modules["requests"]
    import socketio

    return socketio


BEFORE_RUN = " (before this message's run)"


class Disconnected(Exception):
    """The server disconnected (or the connection dropped) before the journey was complete."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Connect:
    """What the client presents: URL (with the token's query), headers (token, cookies), the CONNECT auth."""

    url: str
    path: str
    namespace: str
    headers: tuple[tuple[str, str], ...]
    auth: Any
    transports: tuple[str, ...]

    def evidence(self) -> dict[str, str]:
        names = [n for n, _ in self.headers if n.lower() not in tracing.HEADER_NAMES]
        auth_keys = ", ".join(sorted(self.auth)) if isinstance(self.auth, dict) else "(none)"
        return {
            "url": self.url.split("?", 1)[0],
            "socketio_path": self.path,
            "namespace": self.namespace,
            "headers sent": ", ".join(names) or "(none)",
            "CONNECT auth keys": auth_keys,
        }


class Inbox:
    """``asyncio.Queue``'s ``put_nowait`` and ``get`` for one reader: a deque and the reader's future. A Queue
    holds three deques and an Event with a fourth (3 KB), and each Socket.IO user has one for as long as it is
    connected."""

    __slots__ = ("_items", "_reader")

    def __init__(self) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._reader: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    async def get(self) -> Any:
        """The oldest item, waiting for one; a cancelled wait takes nothing."""
        while not self._items:
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return self._items.popleft()


@dataclass(slots=True)
class Connection:
    """An open Socket.IO connection; ``recv()`` returns each received event in order of arrival."""

    client: socketio.AsyncClient
    namespace: str
    settings: Settings
    queue: Inbox = field(default_factory=Inbox)
    run_started: bool = False
    events: int = 0
    seen: set[str] = field(
        default_factory=set
    )  # event names that arrived here: an emit `after` one goes at once
    fresh: bool = True  # no turn ran on it yet: its `each: connection` emits are still to be sent
    keepalive: holding.EngineKeepalive | None = None  # the holding user's Engine.IO PING/PONG counter
    opened_at: float = 0.0  # loop time the connection was asked for (its age at a close counts from here)

    async def recv(self) -> Message:
        """The next event, named for this run.

        Raises:
            Disconnected: the connection ended before this event.
        """
        return (await self.next_event())[1]

    async def next_event(self) -> tuple[str, Message]:
        """The next event's Socket.IO name as the server sent it (what an emit's ``after`` waits for), and the
        event named for this run, as ``recv()``.

        Raises:
            Disconnected: the connection ended before this event.
        """
        item = await self.queue.get()
        if isinstance(item, Disconnected):
            raise item
        event, data, at = item
        self.events += 1
        document = {"event": event, "data": data}
        raw = json.dumps(document, separators=(",", ":"), default=str)
        cfg = self.settings.journey
        name = expressions.search(cfg.event_name, document)
        if not isinstance(name, str) or not name:
            return event, Message(raw, None, at)  # the journey reports the frame the profile cannot name
        starts = self.settings.socketio.run_starts_with
        if starts is not None and not self.run_started:
            if name == starts:
                self.run_started = True
            elif name in cfg.expected_events and name not in cfg.error_events:
                name += BEFORE_RUN  # the connection's own, not this message's run
        return event, Message(raw, name, at)

    async def emit(self, event: str, data: Any) -> None:
        if data is None:
            await self.client.emit(event, namespace=self.namespace)
        else:
            await self.client.emit(event, data, namespace=self.namespace)

    async def close(self) -> None:
        try:
            async with asyncio.timeout(2):
                await self.client.disconnect()
        except (TimeoutError, _socketio().exceptions.SocketIOError, OSError):
            pass
        # After giving a silent server up, python-engineio leaves its WebSocket open: close it here (aiohttp
        # releases the connection when a close is cut short).
        ws = getattr(self.client.eio, "ws", None)
        if ws is not None and not ws.closed:
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(0.5):
                    await ws.close()


@dataclass(frozen=True, slots=True)
class Opened:
    connection: Connection | None
    elapsed_ms: float
    failure: Failure | None


async def open_connection(
    connect: Connect,
    settings: Settings,
    *,
    timeout_s: float,
    redactor: untrusted.Redactor,
    http: httpx.AsyncClient | None = None,
    keepalive: holding.EngineKeepalive | None = None,
) -> Opened:
    """Connect (Engine.IO, then the namespace's CONNECT with the auth payload) and classify the outcome;
    ``keepalive`` (the holding user's only) counts Engine.IO's PING/PONG from the client's log."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    client = _socketio().AsyncClient(
        reconnection=False,
        handle_sigint=False,
        request_timeout=timeout_s,
        ssl_verify=True,
        engineio_logger=keepalive.logger() if keepalive is not None else False,
        http_session=_sessions(http),
    )
    connection = Connection(client, connect.namespace, settings)
    refusals: list[Any] = []

    async def on_any(event: str, *args: Any) -> None:
        data = args[0] if len(args) == 1 else (list(args) if args else None)
        connection.queue.put_nowait((event, data, loop.time()))

    async def on_connect_error(*args: Any) -> None:
        refusals.append(args[0] if len(args) == 1 else list(args))

    async def on_disconnect(*args: Any) -> None:
        reason = str(args[0]) if args else "disconnected"
        connection.queue.put_nowait(Disconnected(reason))

    client.on("*", on_any, namespace=connect.namespace)
    client.on("connect_error", on_connect_error, namespace=connect.namespace)
    client.on("disconnect", on_disconnect, namespace=connect.namespace)
    evidence = connect.evidence()
    try:
        async with asyncio.timeout(timeout_s + 1):
            await client.connect(
                connect.url,
                headers=dict(connect.headers),
                auth=connect.auth,
                transports=list(connect.transports),
                namespaces=[connect.namespace],
                socketio_path=connect.path,
                wait_timeout=timeout_s,
            )
    except _socketio().exceptions.ConnectionError as exc:
        await connection.close()
        return Opened(None, elapsed_ms(started), _connect_failure(exc, refusals, evidence, redactor))
    except (TimeoutError, OSError) as exc:
        await connection.close()
        failure = transport_failure(exc, what="Socket.IO connection")
        return Opened(
            None,
            elapsed_ms(started),
            Failure(failure.kind, failure.message, "connect", evidence | failure.evidence),
        )
    except Exception as exc:  # the client's own errors, e.g. aiohttp's RuntimeError on a body it lost
        await connection.close()
        code = await _handshake_status(http, connect) if http is not None else None
        if code is not None and not 200 <= code < 300:
            return Opened(None, elapsed_ms(started), _status_failure(str(code), "", evidence))
        failure = Failure(
            Kind.STREAM_PROTOCOL,
            f"The Socket.IO client could not complete the handshake: {type(exc).__name__}: "
            f"{redactor.clip(str(exc), 200)}.",
            "handshake",
            evidence | {"error": redactor.clip(f"{type(exc).__name__}: {exc}", 500)},
        )
        return Opened(None, elapsed_ms(started), failure)
    return Opened(connection, elapsed_ms(started), None)


# One aiohttp connector per pool of users (``pool_for``'s), as their other HTTP requests share one httpx pool:
# python-engineio's default, a session with its own connector per client, cost about 3 KB per user (a fiftieth
# of a Socket.IO user's memory). Each client still has its own session, so its own cookie jar: python-engineio
# keeps the user's Cookie header in it for the WebSocket upgrade, and a shared one would mix users' cookies.
_CONNECTORS: weakref.WeakKeyDictionary[httpx.AsyncClient, aiohttp.TCPConnector] = weakref.WeakKeyDictionary()


def _sessions(http: httpx.AsyncClient | None) -> Callable[[], aiohttp.ClientSession] | None:
    """A factory of aiohttp sessions on ``http``'s pool's connector, for python-engineio (which closes each session
    it made, not the connector: ``release`` does); None without a pool (python-engineio's own session)."""
    if http is None:
        return None
    import aiohttp

    connector = _CONNECTORS.get(http)
    if connector is None or connector.closed:
        connector = _CONNECTORS[http] = aiohttp.TCPConnector(limit=0)  # no limit: as many as the pool's users

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, connector_owner=False)

    return session


async def release(http: httpx.AsyncClient) -> None:
    """Close the Engine.IO connections kept beside ``http``'s pool (call it where the pool is closed)."""
    connector = _CONNECTORS.pop(http, None)
    if connector is not None:
        await connector.close()


def _status_failure(code: str, body: str, evidence: dict[str, str]) -> Failure:
    kind = {"401": Kind.STREAM_AUTH_REJECTED, "403": Kind.STREAM_AUTH_REJECTED, "429": Kind.RATE_LIMITED}.get(
        code, Kind.STREAM_STATUS
    )
    return Failure(
        kind,
        f"The Socket.IO handshake (Engine.IO polling) was answered with HTTP {code}."
        + (timeout_hint(int(code)) if code.isdigit() else ""),
        code,
        evidence | {"status": code, "body": body},
        subject=f"HTTP {code} on the Socket.IO handshake",
    )


async def _handshake_status(http: httpx.AsyncClient, connect: Connect) -> int | None:
    """The HTTP status of the Engine.IO handshake itself, asked once more with a plain GET when the client
    failed without saying it (None: no HTTP answer)."""
    url = protocol.http_url(connect.url, connect.path.rstrip("/") + "/?EIO=4&transport=polling")
    try:
        async with asyncio.timeout(5):
            answer = await http.get(url, headers=dict(connect.headers))
    except (httpx.HTTPError, OSError, TimeoutError):
        return None
    return answer.status_code


def _connect_failure(
    exc: socketio.exceptions.ConnectionError,
    refusals: list[Any],
    evidence: dict[str, str],
    redactor: untrusted.Redactor,
) -> Failure:
    text = str(exc)
    if refusals and "namespaces failed to connect" in text:
        shown = redactor.clip(json.dumps(refusals[0], default=str), 500)
        return Failure(
            Kind.STREAM_AUTH_REJECTED,
            f"The Socket.IO CONNECT with a valid token was refused (CONNECT_ERROR {shown}).",
            "connect-error",
            evidence | {"CONNECT_ERROR": shown},
            subject="Socket.IO CONNECT_ERROR",
        )
    if text.startswith("Unexpected status code"):
        body = redactor.clip(json.dumps(refusals[0], default=str), 500) if refusals else ""
        return _status_failure(text.split()[3], body, evidence)
    if "OPEN packet" in text or "Unexpected response" in text:
        return Failure(
            Kind.STREAM_PROTOCOL,
            f"The Socket.IO path did not answer as a Socket.IO server ({redactor.clip(text, 200)}).",
            "handshake",
            evidence | {"error": redactor.clip(text, 500)},
        )
    return Failure(
        Kind.CONNECT_REFUSED,
        f"The Socket.IO connection failed: {redactor.clip(text, 200)}.",
        "connect",
        evidence | {"error": redactor.clip(text, 500)},
    )


async def run_journey(journey: UserJourney, run: request_steps.UserRun) -> None:
    """Request steps (e.g. a login for a cookie), a Socket.IO connection, then per turn its emits and its events.
    ``reconnect: true`` disconnects and connects again as the same user: the same cookies, the same CONNECT auth
    (Chainlit's ``sessionId``), the token renewed when due."""
    settings = run.settings
    cfg = settings.socketio
    conversation = settings.journey.conversation
    journey.step = Step.CONNECT
    if settings.journey.requests:
        outcome = await request_steps.run(
            run.http,
            settings.journey.requests,
            base_url=run.base_url,
            user=run.user,
            token=run.token,
            way=cfg.token,
            redactor=run.redactor,
        )
        if outcome.failure is not None:
            journey.add("handshake", Step.CONNECT, Status.FAIL, failure=outcome.failure)
            journey.skip(*LATER_STEPS[1:], why="a request step before the connection failed")
            return
    connection = await _open(journey, run, check_id="handshake")
    if connection is None:
        journey.skip(*LATER_STEPS[1:], why="no connection")
        return
    reconnected = False
    try:
        for number, spec in enumerate(conversation, start=1):
            reconnected = reconnected or (number > 1 and spec.reconnect)
            stream = Stream(sent=asyncio.get_running_loop().time(), turn=number, reconnected=reconnected)
            hooks = run.begin_turn(journey, stream) if number > 1 else None
            if number > 1 and spec.reconnect:
                await connection.close()
                if run.renew is not None:
                    run = replace(run, token=await run.renew())
                again = await _open(journey, run, check_id=f"reconnect{turn_suffix(number)}")
                if again is None:
                    stream.judged = True  # nothing was received: the reconnect check says why
                    why = f"no connection for turn {number}"
                    journey.skip(*later_turns(number, len(conversation)), why=why)
                    break
                connection = again
            if not await _turn(journey, run, connection, spec, stream, hooks):
                why = f"turn {number} did not complete"
                journey.skip(*later_turns(number + 1, len(conversation)), why=why)
                break
        if connection.keepalive is not None and journey.stream is not None:
            journey.received = time.perf_counter()  # the journey's time ends here, not after the hold
            journey.hold = await _hold(connection, journey.stream, run, user=journey.user)
    finally:
        await connection.close()
    journey.received = journey.received or time.perf_counter()
    journey.step = Step.ANSWER


async def _open(journey: UserJourney, run: request_steps.UserRun, *, check_id: str) -> Connection | None:
    """Connect as this user (its token, cookies, CONNECT auth) and record the outcome as ``check_id``."""
    settings = run.settings
    cfg = settings.socketio
    journey.step = Step.CONNECT
    connect = connect_for(settings, run.base_url, user=run.user, token=run.token, headers=run.headers)
    keepalive = holding.EngineKeepalive() if run.hold_s else None
    opened_at = asyncio.get_running_loop().time()
    if check_id == "handshake":
        journey.timings.connect_started = opened_at
    opened = await open_connection(
        connect,
        settings,
        timeout_s=cfg.open_timeout_s,
        redactor=run.redactor,
        http=run.http,
        keepalive=keepalive,
    )
    if opened.connection is None:
        assert opened.failure is not None
        journey.add(
            check_id, Step.CONNECT, Status.FAIL, duration_ms=opened.elapsed_ms, failure=opened.failure
        )
        return None
    if check_id == "handshake":
        journey.timings.handshake = opened.elapsed_ms
    summary = f"connected to namespace {cfg.namespace}"
    journey.add(check_id, Step.CONNECT, Status.PASS, duration_ms=opened.elapsed_ms, summary=summary)
    opened.connection.keepalive, opened.connection.opened_at = keepalive, opened_at
    return opened.connection


async def _turn(
    journey: UserJourney,
    run: request_steps.UserRun,
    connection: Connection,
    spec: TurnSettings,
    stream: Stream,
    hooks: Hooks | None,
) -> bool:
    """One turn: its emits (``each: connection`` ones only on a new connection; one waiting for an event that
    already arrived on this connection goes at once), then its events into ``stream`` (``hooks``: registered at
    the turn's start, None for turn 1); True when it completed."""
    cfg = run.settings.socketio
    number = stream.turn
    suffix = turn_suffix(number)
    values = run.user.values
    values |= {"message": spec.message, "turn": str(number), "turn_id": protocol.new_uuid()}
    emits = [e for e in cfg.emit if e.each == "turn" or connection.fresh]
    connection.fresh = False
    connection.run_started = False  # this message's run starts with its own `run_starts_with`
    now = [e for e in emits if e.after is None or e.after in connection.seen]
    later = [
        (e.after, e.event, template_data(e.data, values))
        for e in emits
        if e.after is not None and e.after not in connection.seen
    ]
    stream.sent = stream.last_expected = asyncio.get_running_loop().time()
    journey.step = Step.MESSAGE
    try:
        for emit in now:
            await connection.emit(emit.event, template_data(emit.data, values))
    except _socketio().exceptions.SocketIOError as exc:
        failure = Failure(
            Kind.STREAM_CLOSED_EARLY,
            f"The Socket.IO connection was gone before turn {number}'s message could be emitted "
            f"({type(exc).__name__}: {run.redactor.clip(str(exc), 200)}).",
            detail=run.settings.journey.completion_event,
            evidence={"emitted": ", ".join(e.event for e in now)},
        )
        stream.judged = True  # nothing was received: the message check says why
        journey.add(f"message{suffix}", Step.MESSAGE, Status.FAIL, failure=failure)
        journey.skip(*later_turns(number, number)[1:], why="message not sent")
        return False
    journey.add(
        f"message{suffix}", Step.MESSAGE, Status.PASS, summary="emitted " + ", ".join(e.event for e in emits)
    )
    journey.step = Step.AGENT
    journey.stream = stream
    await receive(connection, stream, run.settings, hooks=hooks or run.hooks(stream), later=later)
    return stream.completion is not None


async def _hold(
    connection: Connection, stream: Stream, run: request_steps.UserRun, *, user: int
) -> ConnectionHold:
    """Keep a completed journey's connection open for ``journey.hold_s`` (within the run's deadline), counting the
    events that arrive; Engine.IO's PING/PONG is the keepalive. How it ended: the server's DISCONNECT (or
    Engine.IO CLOSE), the transport dropped, the client giving up on a server that stopped pinging, or still
    open."""
    wanted, keepalive, opened_at = run.hold_s, connection.keepalive, connection.opened_at
    assert keepalive is not None
    if stream.completion is None or stream.failure is not None:
        why = "the journey did not complete on this connection"
        return holding.not_held(user, wanted, why, transport="socketio")
    clock = holding.Clock(user, wanted, opened_at, "socketio")
    start = clock.start
    frames = 0

    def ended(closed_by: str, reason: str) -> ConnectionHold:
        return clock.ended(closed_by, reason, pings=keepalive.pings, pongs=keepalive.pongs, frames=frames)

    try:
        async with asyncio.timeout(max(0.0, min(wanted, run.deadline - start - 1.0))):
            while True:
                await connection.recv()
                frames += 1
    except TimeoutError:
        return ended("", "")
    except Disconnected as exc:
        if keepalive.silent:
            eio = connection.client.eio
            # What the client waited: the OPEN packet's pingInterval + pingTimeout (python-engineio's server sends
            # the interval in whole seconds, so a sub-second interval reads 0).
            known = eio.ping_interval is not None and eio.ping_timeout is not None
            limit = f"{eio.ping_interval + eio.ping_timeout:g} s" if known else "its ping timeout"
            why = f"no Engine.IO packet from the server within its ping interval and timeout ({limit})"
            return ended("golden-path", why)
        if exc.reason == "server disconnect":
            return ended("server", "the server disconnected (a Socket.IO DISCONNECT or an Engine.IO CLOSE)")
        reason = run.redactor.clip(exc.reason, 100)
        return ended("network", f"no DISCONNECT; python-socketio reported a {reason}")


async def receive(
    connection: Connection,
    stream: Stream,
    settings: Settings,
    *,
    hooks: Hooks,
    later: list[tuple[str, str, Any]],
) -> None:
    """Read events until the completion event, an error, a disconnect or a deadline; ``later`` holds the emits
    that wait for an event (``(after, event, data)``), sent when an event of that Socket.IO name arrives. The
    message counts as sent when the last of them goes out."""
    cfg = settings.journey
    try:
        async with MovingDeadline(hooks.due):  # moved by expected events, read when its timer fires
            while stream.completion is None and stream.failure is None:
                raw_event, message = await connection.next_event()
                name = hooks.take(message)
                connection.seen.update(n for n in (raw_event, name) if isinstance(n, str))
                for pending in [p for p in later if p[0] in (raw_event, name)]:
                    later.remove(pending)
                    await connection.emit(pending[1], pending[2])
                    if not later and not stream.arrivals:
                        stream.sent = stream.last_expected = asyncio.get_running_loop().time()
                if name is not None and name in cfg.error_events:
                    stream.failure = stream.error_event(name, " on the Socket.IO connection")
                    return
    except TimeoutError:
        stream.failure = hooks.stalled()
    except Disconnected as exc:
        stream.failure = Failure(
            Kind.STREAM_CLOSED_EARLY,
            f"The server disconnected the Socket.IO connection ({exc.reason}) before `{hooks.waiting_for()}`.",
            detail=cfg.completion_event,
            evidence=stream.evidence() | {"disconnect": exc.reason},
        )


def template_data(template: str | None, values: dict[str, str]) -> Any:
    """An emit's data: the JSON template filled in (None: the event carries no data)."""
    if template is None:
        return None
    return json.loads(expressions.render(template, values))


async def negative_check(
    settings: Settings,
    *,
    base_url: str,
    deadline: float,
    redactor: untrusted.Redactor,
    http: httpx.AsyncClient,
    headers: Sequence[tuple[str, str]],
) -> CheckResult:
    """The journey's opening without credentials: connect, emit as a user does. A CONNECT_ERROR, HTTP 401/403,
    or an error event before any journey event passes; the journey's own events served to the anonymous client
    fail; anything else is `not verified` with what happened. The Engine.IO open is never acceptance."""
    started = time.perf_counter()
    cfg = settings.journey

    def result(status: Status, summary: str, failure: Failure | None = None) -> CheckResult:
        return CheckResult("auth-negative", Step.CONNECT, status, elapsed_ms(started), None, summary, failure)

    user = request_steps.anonymous_user(settings)
    if cfg.requests:
        outcome = await request_steps.run(
            http,
            cfg.requests,
            base_url=base_url,
            user=user,
            token=None,
            way=settings.socketio.token,
            redactor=redactor,
        )
        if outcome.refused:
            return result(Status.PASS, "refused without a token at a request step")
        if outcome.failure is not None:
            return result(Status.NOT_VERIFIED, f"not verified: {outcome.failure.message}")
    values = user.values
    connect = connect_for(settings, base_url, user=user, token=None, headers=headers)
    loop = asyncio.get_running_loop()
    budget = max(
        0.1, min(settings.socketio.open_timeout_s + min(cfg.event_timeout_s, 10), deadline - loop.time())
    )
    opened = await open_connection(
        connect, settings, timeout_s=settings.socketio.open_timeout_s, redactor=redactor, http=http
    )
    if opened.connection is None:
        failure = opened.failure
        if failure is not None and failure.kind is Kind.STREAM_AUTH_REJECTED:
            return result(Status.PASS, f"refused without credentials ({failure.subject or failure.detail})")
        return result(Status.NOT_VERIFIED, f"not verified: {failure.message if failure else 'no connection'}")
    connection = opened.connection
    emits = settings.socketio.emit
    try:
        async with asyncio.timeout(budget):
            later = [(e.after, e.event, template_data(e.data, values)) for e in emits if e.after is not None]
            for emit in [e for e in emits if e.after is None]:
                await connection.emit(emit.event, template_data(emit.data, values))
            while True:
                raw_event, message = await connection.next_event()
                for pending in [p for p in later if p[0] in (raw_event, message.name)]:
                    later.remove(pending)
                    await connection.emit(pending[1], pending[2])
                name = message.name
                if name in cfg.error_events:
                    return result(
                        Status.PASS, f"refused without credentials: `{name}` before any journey event"
                    )
                if name in cfg.expected_events and name != settings.socketio.run_starts_with:
                    failure = Failure(
                        Kind.STREAM_UNAUTHENTICATED_ACCEPTED,
                        f"A Socket.IO client with no credentials got the journey's own events (`{name}`).",
                        evidence=connect.evidence()
                        | {"first journey event": redactor.clip(message.raw, 1000)},
                    )
                    return result(Status.FAIL, "served without credentials", failure)
    except TimeoutError:
        return result(
            Status.NOT_VERIFIED,
            "not verified: connected without credentials, but no journey event "
            "and no refusal before the deadline",
        )
    except Disconnected as exc:
        return result(
            Status.NOT_VERIFIED, f"not verified: disconnected ({exc.reason}) before any journey event"
        )
    finally:
        await connection.close()


def connect_for(
    settings: Settings,
    base_url: str,
    *,
    user: request_steps.UserValues,
    token: str | None,
    headers: Sequence[tuple[str, str]],
) -> Connect:
    """The connection a user (or, without a token, the negative check) presents: the token as configured,
    the cookies request steps collected, ``headers`` (trace, ID token)."""
    cfg = settings.socketio
    values = user.values
    headers = [
        *request_steps.token_headers(cfg.token, token),
        *request_steps.header_values(cfg.headers, values, token),
        *user.cookie_header(),
        *headers,
    ]
    query = request_steps.token_query(cfg.token, token)
    url = protocol.http_url(base_url, "", query=query) if query else base_url
    filled = {**values, **expressions.token_values(token or "")}
    auth = json.loads(expressions.render(cfg.auth, filled)) if cfg.auth is not None else None
    return Connect(url, cfg.path, cfg.namespace, tuple(headers), auth, cfg.transports)
