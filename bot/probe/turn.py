"""One turn of a conversation on an open session: send the turn's frames, read events until the turn ends.

The step model is drawn in ``bot.probe.transport``'s docstring. A turn sends its frames (a connection's first
turn also sends the ``each: connection`` frames; a frame with ``after: EVENT`` waits until that event has arrived
on the connection), then reads frames until the completion event, an end event (``journey.end_events``), an
error event, a close or a deadline. Each frame is accounted for in constant work (``take``) and recorded in the
turn's ``Stream``; the judge turns the record into checks once the phase is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx

from bot import auth, expressions, protocol, tracing, untrusted
from bot.probe import completeness
from bot.probe.deadline import MovingDeadline
from bot.probe.record import EVIDENCE_CHARS, Stream
from bot.probe.transport import Closed, Session
from bot.results import Failure, Kind, Step
from bot.settings import FrameSettings, JourneySettings, Settings

FRAME_CHARS = 1000  # per frame kept
OTHER_NAMES = 20  # distinct names of ignored/foreign frames counted per user
ANSWER_CHARS = 1_000_000  # a streamed answer longer than this is cut (memory stays bounded under a flood)
ERROR_CLOSE_WAIT_S = 1.0  # after an error frame, how long to wait for the close that says "auth refused"


@dataclass(frozen=True, slots=True)
class Context:
    """What every user's journey shares: settings, the redactor, the nonces, the run's deadline."""

    settings: Settings
    base_url: str
    credentials: auth.Credentials
    run_tag: str
    http: httpx.AsyncClient
    on_token: Callable[[str], None]
    redactor: untrusted.Redactor
    nonces: dict[int, str]
    deadline: float  # loop time
    trace: tracing.RunTrace  # per-user trace headers on every request (the revision's logs find them)
    extra_headers: tuple[tuple[str, str], ...] = ()  # e.g. a Cloud Run ID token, on every upgrade
    every_nonce: frozenset[str] = frozenset()  # built once: a set per user would cost O(n²) at 1,000 users
    logins: auth.Logins = field(default_factory=auth.Logins)  # login answers shared while their token lasts
    # A new connection pool like ``http`` (a conversation's own over SSE, and a fresh one on a reconnect).
    own_client: Callable[[], httpx.AsyncClient] | None = None
    # The pool a user's requests share with a few other users' (``http_for``); None: ``http`` for everyone.
    pool_for: Callable[[int], httpx.AsyncClient] | None = None

    def http_for(self, user: int) -> httpx.AsyncClient:
        """The connection pool for ``user``'s requests (login, request steps, streams)."""
        return self.http if self.pool_for is None else self.pool_for(user)

    @property
    def journey(self) -> JourneySettings:
        return self.settings.journey

    def clip(self, text: str, limit: int = EVIDENCE_CHARS) -> str:
        return self.redactor.clip(text, limit)


@dataclass(slots=True)
class Connection:
    """One open session and what has arrived on it, across the turns that use it."""

    session: Session
    seen: set[str] = field(default_factory=set)  # events an `after:` frame waits for, once they arrived here
    fresh: bool = True  # no turn ran on it yet: its `each: connection` frames are still to be sent


def run_deadline_failure(step: Step, run_s: float) -> Failure:
    return Failure(
        Kind.TIMEOUT,
        f"The whole run's deadline ({run_s:.0f} s, timeouts.run_s) passed during the {step.value} step.",
        detail=step.value,
        evidence={"deadline": f"{run_s:.0f} s"} | completeness.run_deadline_evidence(run_s),
    )


async def send_opening(
    stream: Stream, connection: Connection, ctx: Context, *, values: dict[str, str]
) -> tuple[list[FrameSettings], Failure | None]:
    """Send the turn's frames that need not wait; the ones waiting for an event, and why sending failed."""
    cfg = ctx.journey
    frames = [f for f in cfg.send if f.each == "turn" or connection.fresh]
    connection.fresh = False
    ready = [f for f in frames if f.after is None or f.after in connection.seen]
    later = [f for f in frames if f not in ready]
    stream.sent = stream.last_expected = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(ctx.settings.timeouts.request_s):
            for frame in ready:
                await connection.session.send(expressions.render(frame.frame, values))
    except (Closed, TimeoutError) as exc:
        return later, closed_failure(exc, waiting_for="the message was sent", stream=stream, ctx=ctx)
    stream.sent_frames = [expressions.frame_type(f.frame) for f in ready]
    return later, None


async def receive(
    stream: Stream,
    connection: Connection,
    ctx: Context,
    *,
    owners: protocol.Owners,
    later: list[FrameSettings],
    values: dict[str, str],
    sla_deadline: float,
) -> None:
    """Read frames until the completion event, an end event, an error, a close or a deadline: the event timeout
    runs from the last expected event (heartbeats and foreign frames do not keep a stalled agent alive), read
    lazily (``MovingDeadline``)."""
    cfg = ctx.journey
    nonces = protocol.Nonces(values["nonce"], ctx.every_nonce)
    waited_for = {f.after for f in cfg.send if f.after is not None}
    session = connection.session

    def due() -> float:
        return min(stream.last_expected + cfg.event_timeout_s, sla_deadline, ctx.deadline - 0.25)

    try:
        async with MovingDeadline(due):
            while stream.completion is None and stream.failure is None:
                data, at = await session.receive()
                name = take(stream, ctx, data, at=at, owners=owners, nonces=nonces)
                del data  # a 4 MiB frame must not stay alive while the next one is read
                if name is None:
                    continue
                if name in waited_for:
                    connection.seen.add(name)
                if name in cfg.error_events:
                    stream.failure = await _error_event(stream, ctx, session, name)
                    break
                if name in cfg.end_events and stream.completion is None:
                    stream.ended = name[:80]  # ended on purpose: the missing events are judged at once
                    break
                if later:
                    for frame in [f for f in later if f.after == name]:
                        later.remove(frame)
                        await session.send(expressions.render(frame.frame, values))
                        stream.sent_frames.append(expressions.frame_type(frame.frame))
    except TimeoutError:
        closed = session.pending_close()  # the client closed before the deadline, the wire is not down yet
        if closed is not None:
            stream.failure = closed_failure(
                closed, waiting_for=waiting_for(stream, cfg), stream=stream, ctx=ctx
            )
        else:
            failure = stalled(stream, ctx, sla_deadline=sla_deadline, later=later)
            stream.failure = replace(failure, evidence=failure.evidence | session.evidence())
    except Closed as exc:
        stream.failure = closed_failure(exc, waiting_for=waiting_for(stream, cfg), stream=stream, ctx=ctx)


def take(
    stream: Stream,
    ctx: Context,
    raw: str | bytes,
    *,
    at: float,
    owners: protocol.Owners,
    nonces: protocol.Nonces,
    name: str | None = None,
) -> str | None:
    """Account for one frame that was read off the socket at ``at`` (loop time); returns its event name when the
    loop must act on it (expected or error). ``name``: the event's name when the transport knows it (an SSE
    `event:` field or sentinel, a Socket.IO event qualified for this run)."""
    cfg = ctx.settings.journey
    now = at
    all_frames = cfg.gap == "all"
    if all_frames and stream.arrivals:
        _gap(stream, now)
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", errors="replace")
    kept = ctx.clip(text, FRAME_CHARS)
    stream.frames.append(kept)
    foreign = nonces.foreign_in(text)
    if foreign is not None:
        _leak(stream, f"a frame carrying another user's nonce {foreign}: {kept[:300]}")
        return None
    if not stream.own_nonce_seen:
        stream.own_nonce_seen = nonces.own_in(text)
    try:
        frame = protocol.parse_frame(raw, event_name=cfg.event_name, name=name)
    except protocol.FrameError as exc:
        websocket = ctx.settings.transport == "websocket"
        engine_io = websocket and text.startswith(('0{"sid"', "40", "42["))
        stream.failure = Failure(
            Kind.WS_PROTOCOL if websocket else Kind.STREAM_PROTOCOL,
            f"The server sent a frame that does not match the protocol: {exc}."
            + (
                " It is an Engine.IO packet: this is a Socket.IO server, set `transport: socketio`."
                if engine_io
                else ""
            ),
            evidence=stream.evidence() | {"frame": ctx.clip(text)},
        )
        return None
    if frame.name in cfg.error_events:
        return frame.name
    if frame.name not in cfg.expected_events:
        # Ignored frames (welcome, heartbeats) and unknown ones carry no journey state; both are counted for the
        # evidence, the unknown ones marked, since they may be the events the profile misnames.
        name = frame.name[:80] if frame.name in cfg.ignored_events else f"{frame.name[:80]} (unexpected)"
        if name in stream.others or len(stream.others) < OTHER_NAMES:
            stream.others[name] = stream.others.get(name, 0) + 1
        return frame.name  # a welcome frame may be what the next frame to send waits for
    named = protocol.owner_values(frame, cfg.owner)
    if named:
        stream.owned = True
        stream.owned_by.update(named)
        leak = protocol.foreign_owner(named, owners, run=stream.run_id)
        if leak is not None:
            _leak(stream, f"`{frame.name[:80]}` with {leak}: {kept[:300]}")
            return None
        stream.run_id = stream.run_id or named.get("run")
    if frame.name == cfg.answer.stream_event and stream.answer_chars < ANSWER_CHARS:
        part = expressions.reader(cfg.answer.expression)(frame.body)
        if isinstance(part, str):
            stream.answer_parts.append(part)
            stream.answer_chars += len(part)
    if frame.name in stream.arrivals:
        if frame.name in cfg.repeating_events:
            stream.last_expected = now
        if not all_frames:
            _gap(stream, now)  # a repeated event (a delta) counts: a stall mid-answer is a gap
        return frame.name
    if not stream.arrivals:
        stream.last_gap = now  # the first expected event starts the clock
    elif not all_frames:
        _gap(stream, now)
    stream.arrivals[frame.name] = now
    stream.order.append(frame.name)
    stream.last_expected = now
    if frame.name == cfg.completion_event:
        stream.completion = frame
    return frame.name


def _leak(stream: Stream, what: str) -> None:
    stream.leak_count += 1
    if len(stream.leaks) < 5:
        stream.leaks.append(what)


def _gap(stream: Stream, now: float) -> None:
    stream.max_gap = max(stream.max_gap, (now - stream.last_gap) * 1000)
    stream.last_gap = now
    stream.gaps += 1


def waiting_for(stream: Stream, cfg: JourneySettings) -> str:
    required = [e for e in cfg.expected_events if e not in cfg.optional_events]
    return next((e for e in required if e not in stream.arrivals), cfg.completion_event)


def stalled(stream: Stream, ctx: Context, *, sla_deadline: float, later: list[FrameSettings]) -> Failure:
    cfg = ctx.journey
    now = asyncio.get_running_loop().time()
    awaited = (later[0].after if later else None) or waiting_for(stream, cfg)
    evidence = stream.evidence()
    if now >= ctx.deadline - 0.3:
        stream.cut = True
        return (
            run_deadline_failure(Step.AGENT, ctx.settings.timeouts.run_s)
            if not stream.arrivals
            else Failure(
                Kind.TIMEOUT,
                f"The run's deadline ({ctx.settings.timeouts.run_s:g} s) passed while waiting for `{awaited}`.",
                detail=awaited,
                evidence=evidence | completeness.run_deadline_evidence(ctx.settings.timeouts.run_s),
            )
        )
    if now >= sla_deadline - 0.01:
        return Failure(
            Kind.SLA_EXCEEDED,
            f"No `{cfg.completion_event}` within the journey SLA of {cfg.sla_s:g} s "
            f"(still waiting for `{awaited}`).",
            evidence=evidence | {"sla": f"{cfg.sla_s:g} s"},
        )
    since = "the message was sent" if not stream.arrivals else f"`{stream.order[-1]}`"
    others = sum(stream.others.values())
    heard = (
        f"; only {', '.join(sorted(stream.others))} arrived ({others} frame{'s' if others != 1 else ''})"
        if others
        else "; nothing else arrived"
    )
    return Failure(
        Kind.TIMEOUT,
        f"No `{awaited}` within {cfg.event_timeout_s:g} s of {since} (journey.event_timeout_s){heard}.",
        detail=awaited,
        evidence=evidence,
    )


async def _error_event(stream: Stream, ctx: Context, session: Session, name: str) -> Failure:
    """An error frame; followed by an auth close (websocket.auth_close_codes), auth refused after the upgrade."""
    error_frame = stream.frames[-1] if stream.frames else ""
    try:
        async with asyncio.timeout(ERROR_CLOSE_WAIT_S):
            while True:
                await session.receive()
    except Closed as exc:
        if exc.code in ctx.settings.websocket.auth_close_codes:
            return _auth_closed(exc, stream, ctx, error_frame=error_frame)
    except TimeoutError:
        pass
    return stream.error_event(name)


def _auth_closed(exc: Closed, stream: Stream, ctx: Context, *, error_frame: str = "") -> Failure:
    code, reason = exc.code, ctx.clip(exc.reason, 200)
    travel = protocol.token_travel(ctx.settings.websocket, tuple(f.frame for f in ctx.journey.send))
    evidence = stream.evidence() | {
        "close code": str(code),
        "close reason": reason,
        "token travels in": travel,
    }
    if error_frame:
        evidence["error frame"] = error_frame
    return Failure(
        Kind.WS_AUTH_REJECTED,
        f"The server accepted the upgrade, then refused the token: close code {code}"
        + (" after an error frame." if error_frame else "."),
        detail=str(code),
        evidence=evidence,
    )


def closed_failure(exc: BaseException, *, waiting_for: str, stream: Stream, ctx: Context) -> Failure:
    """A close (or a send timeout) classified: our own protocol close, an auth refusal, or an early close. The
    fingerprint's detail is the completion event (stable across runs); the text names the step."""
    detail = ctx.journey.completion_event
    if not isinstance(exc, Closed):
        return Failure(Kind.TIMEOUT, f"Timed out before {waiting_for}.", detail=waiting_for)
    if exc.client_code is not None:
        # Our own close: the server sent something the protocol forbids (too big, not UTF-8).
        code = exc.client_code
        return Failure(
            Kind.WS_PROTOCOL,
            f"The server sent {exc.violation or 'what the protocol forbids'}, so the client closed the "
            f"connection (code {code}) while waiting for `{waiting_for}`.",
            detail=str(code),
            evidence=stream.evidence() | {"client close code": str(code), "client close reason": exc.reason},
        )
    if exc.code in ctx.settings.websocket.auth_close_codes:
        return _auth_closed(exc, stream, ctx)
    code = exc.code if exc.code is not None else 1006
    return Failure(
        Kind.WS_CLOSED_EARLY,
        f"The server closed the connection (code {code}) before `{waiting_for}`.",
        detail=detail,
        evidence=stream.evidence() | {"close code": str(code), "close reason": ctx.clip(exc.reason, 200)},
    )
