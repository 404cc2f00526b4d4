"""The golden path for N simulated users at once: login -> connect -> send -> agent events -> answer.

The probe is a small interpreter of the journey's steps over the protocol profile (``bot.protocol``): send the
configured frames, read events with the profile's expressions, and record what happened (``bot.probe.record``:
each stream with arrival stamps, the timings, how a handshake or a stream ended). The pure judge (``bot.judge``)
turns the records into checks after each phase: events, isolation, answer, SLA, metrics and performance.
``probe()`` runs health once, the users concurrently (and an optional load phase). Every wait has a deadline:
the event deadline (since the last *expected* event), the journey SLA and one over the whole probe
(``timeouts.run_s``); a deadline never drops what the stream showed so far, and a step that never ran is never
blamed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed

from bot import auth, expressions, judge, protocol, tracing, untrusted
from bot.probe import completeness, http_probe, isolation
from bot.probe import websocket as ws_probe
from bot.probe.record import EVIDENCE_CHARS, Stream, Timings
from bot.results import ARRIVALS_CAP, CheckResult, Failure, JourneySample, Kind, Metric, Status, Step
from bot.settings import JourneySettings, Settings
from bot.shards import user_phases
from bot.timestamps import elapsed_ms

FRAME_CHARS = 1000  # per frame kept
OTHER_NAMES = 20  # distinct names of ignored/foreign frames counted per user
ANSWER_CHARS = 1_000_000  # a streamed answer longer than this is cut (memory stays bounded under a flood)
ERROR_CLOSE_WAIT_S = 1.0  # after an error frame, how long to wait for the close that says "auth refused"
# The check without a token: its upgrade's deadline is at most this share of timeouts.run_s (and
# websocket.open_timeout_s); it runs beside the users, so it never delays them.
NEGATIVE_SHARE = 0.1


@dataclass(slots=True)
class UserJourney:
    user: int
    checks: list[CheckResult] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    step: Step = Step.LOGIN  # the step in progress, for the run deadline's finding
    stream: Stream | None = None
    # perf_counter: the journey's start, and when the stream ended (completion, error, close or deadline). The
    # stream is judged after the phase, so judging one user never delays the frames other users are receiving.
    started: float = 0.0
    received: float | None = None
    end: completeness.End = completeness.End.RAN
    subject: str | None = None  # the identity's subject once logged in ("" when the token names none)

    def proofs(self) -> frozenset[str]:
        """What showed the stream was this user's: the owner fields events named, and ``nonce`` when echoed."""
        if self.stream is None:
            return frozenset()
        return frozenset(self.stream.owned_by | ({"nonce"} if self.stream.own_nonce_seen else set()))

    def ending(self) -> completeness.JourneyEnd:
        if self.stream is not None and self.stream.cut:  # cut while waiting for the agent's events
            return completeness.JourneyEnd(self.user, completeness.End.CUT, Step.AGENT)
        step = Step.LOGIN if self.end is completeness.End.NOT_STARTED else self.step
        return completeness.JourneyEnd(self.user, self.end, step)

    def add(
        self,
        check_id: str,
        step: Step,
        status: Status,
        *,
        duration_ms: float | None = None,
        summary: str = "",
        failure: Failure | None = None,
    ) -> None:
        self.checks.append(CheckResult(check_id, step, status, duration_ms, self.user, summary, failure))

    def skip(self, *checks: tuple[str, Step], why: str) -> None:
        for check_id, step in checks:
            self.add(check_id, step, Status.SKIP, summary=why)


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

    @property
    def journey(self) -> JourneySettings:
        return self.settings.journey

    def clip(self, text: str, limit: int = EVIDENCE_CHARS) -> str:
        return self.redactor.clip(text, limit)


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    checks: tuple[CheckResult, ...]
    metrics: tuple[Metric, ...]
    serving_version: str | None
    samples: tuple[JourneySample, ...] = ()  # raw per-journey figures, for shards and merge
    health_samples: tuple[float, ...] = ()


LATER_STEPS = (
    ("handshake", Step.CONNECT),
    ("message", Step.MESSAGE),
    ("events", Step.AGENT),
    ("isolation", Step.ISOLATION),
    ("answer", Step.ANSWER),
)


async def probe(
    settings: Settings,
    *,
    base_url: str,
    credentials: auth.Credentials,
    on_token: Callable[[str], None] = lambda _token: None,
    trace: tracing.RunTrace | None = None,
    extra_headers: Mapping[str, str] | None = None,
    phases: Sequence[Sequence[int]] | None = None,
) -> ProbeOutcome:
    """Health, then the journey for ``journey.users`` users at once, then the optional load phase.

    Every request carries ``trace``'s headers for the user it belongs to (user 0: health, negative check).
    ``extra_headers`` go on every HTTP request and WebSocket upgrade (e.g. a Cloud Run ID token in
    ``X-Serverless-Authorization``); their values are secrets, redacted from what is kept.
    """
    extra = tuple((extra_headers or {}).items())
    redactor = untrusted.Redactor(
        [*credentials.secrets(), *(value.removeprefix("Bearer ") for _, value in extra)]
    )
    run_tag = uuid.uuid4().hex[:8]
    trace = trace or tracing.RunTrace(run_tag)

    def remember(token: str) -> None:
        redactor.add(token)  # before anything the server sends back with it can be kept
        on_token(token)

    timeouts = settings.timeouts
    limits = httpx.Timeout(timeouts.request_s, connect=timeouts.connect_s)
    checks: list[CheckResult] = []
    journeys: list[UserJourney] = []
    versions: tuple[str, ...] = ()
    health_latencies: tuple[float, ...] = ()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.run_s
    users = settings.journey.users + settings.load.users
    nonces = {user: protocol.new_nonce() for user in range(1, users + 1)}
    async with httpx.AsyncClient(
        timeout=limits,
        trust_env=False,
        follow_redirects=False,
        event_hooks=trace.httpx_hooks(),
        headers=dict(extra),
        # No TLS context (certifi, ~30 ms) for plain http://: redirects are not followed, so no https is asked.
        verify=not base_url.startswith("http://"),
    ) as http:
        try:
            async with asyncio.timeout_at(deadline):
                health = await http_probe.check_health(
                    http=http, base_url=base_url, settings=settings.health, version=settings.version
                )
                checks.extend(health.checks)
                health_latencies, versions = health.latencies_ms, health.versions
        except TimeoutError:
            checks.append(_deadline_check("health", Step.HEALTH, None, timeouts.run_s))
        version, serving_version = http_probe.version_check(
            expected=settings.version.expected, serving=versions, field=settings.version.field
        )
        if version is not None:
            checks.append(version)

        # The check without a token runs beside the users under its own short deadline: it never delays them.
        negative_task: asyncio.Task[ws_probe.NegativeOutcome] | None = None
        if settings.websocket.negative_auth_check and settings.auth.mode != "none":
            negative_deadline = min(deadline, loop.time() + NEGATIVE_SHARE * timeouts.run_s)
            negative_task = asyncio.create_task(
                _negative(
                    settings,
                    base_url=base_url,
                    deadline=negative_deadline,
                    redactor=redactor,
                    trace=trace,
                    extra=extra,
                )
            )
        before_users_s = timeouts.run_s - max(0.0, deadline - loop.time())

        ctx = Context(
            settings,
            base_url,
            credentials,
            run_tag,
            http,
            remember,
            redactor,
            nonces,
            deadline,
            trace,
            extra,
            frozenset(nonces.values()),
        )
        planned = phases if phases is not None else user_phases(settings)
        for phase in planned:
            batch = [UserJourney(user) for user in phase]
            journeys.extend(batch)
            await asyncio.gather(*(_bounded(j, ctx) for j in batch))
            for journey in batch:
                _judge(journey, ctx)
        if negative_task is not None:
            negative = await negative_task
            checks.append(negative.check)
            await _explain_refusals(journeys, ctx, negative)
    one_token = settings.auth.mode == "token" and settings.journey.users + settings.load.users > 1
    indistinct = isolation.indistinct(
        {j.user: j.subject for j in journeys if j.subject is not None}, one_token=one_token
    )
    for journey in journeys:
        journey.checks = isolation.rejudged(
            journey.checks, why=indistinct.get(journey.user), proofs=journey.proofs()
        )
    ends = [j.ending() for j in journeys]
    first_cut = next((j for j, e in zip(journeys, ends, strict=True) if e.end is completeness.End.CUT), None)
    unfinished = completeness.judge(
        ends,
        shown=completeness.shown_by(first_cut.checks, first_cut.user) if first_cut else None,
        run_s=timeouts.run_s,
        sla_s=settings.journey.sla_s,
        phases=len([p for p in planned if p]),
        before_users_s=before_users_s,
    )
    if unfinished is not None:
        checks.append(unfinished)
    for journey in journeys:
        checks.extend(completeness.spared(journey.checks, unfinished))
    samples = tuple(_sample(j, arrivals=i < ARRIVALS_CAP) for i, j in enumerate(journeys))
    metrics = judge.metrics(samples, health_latencies, judge.targets(settings.targets))
    checks.extend(judge.performance(metrics))
    return ProbeOutcome(_cleaned(checks, redactor), metrics, serving_version, samples, health_latencies)


def _judge(journey: UserJourney, ctx: Context) -> None:
    """The events, isolation, answer and SLA checks of a stream that ended in time (a deadline judges its own)."""
    stream = journey.stream
    if stream is None or stream.judged or journey.received is None:
        return
    _judge_stream(journey, ctx)
    if stream.completion is not None:
        journey.timings.total = round((journey.received - journey.started) * 1000, 2)
    nonces = protocol.Nonces(ctx.nonces[journey.user], ctx.every_nonce)
    user = journey.user
    journey.checks.append(judge.answer(stream, ctx.journey, user=user, nonces=nonces, redactor=ctx.redactor))
    if (sla := judge.sla(journey.timings.total, ctx.journey, user=user)) is not None:
        journey.checks.append(sla)


def _judge_stream(journey: UserJourney, ctx: Context) -> None:
    """The timings, the events check and the isolation check from what the stream showed (also after a
    deadline)."""
    stream = journey.stream
    assert stream is not None
    stream.judged = True
    journey.timings.take(stream, ctx.journey.completion_event)
    journey.checks.extend(judge.events(stream, ctx.journey, user=journey.user))
    journey.checks.append(judge.isolation(stream, ctx.journey, user=journey.user))


def _sample(journey: UserJourney, *, arrivals: bool) -> JourneySample:
    t = journey.timings
    events = dict(t.events) if arrivals else {}
    sent_at = t.message_sent_at if arrivals else None
    return JourneySample(
        journey.user, t.handshake, t.agent_startup, t.max_event_gap, t.processing, t.total, events, sent_at
    )


def _cleaned(checks: list[CheckResult], redactor: untrusted.Redactor) -> tuple[CheckResult, ...]:
    """A last pass over everything kept, for text that entered before a token was known (e.g. health)."""
    if not redactor:
        return tuple(checks)
    out = []
    for check in checks:
        failure = check.failure
        if failure is not None:
            evidence = {key: redactor.clean(value) for key, value in failure.evidence.items()}
            failure = replace(
                failure,
                message=redactor.clean(failure.message),
                detail=redactor.clean(failure.detail),
                evidence=evidence,
            )
        out.append(replace(check, summary=redactor.clean(check.summary), failure=failure))
    return tuple(out)


async def _negative(
    settings: Settings,
    *,
    base_url: str,
    deadline: float,
    redactor: untrusted.Redactor,
    trace: tracing.RunTrace,
    extra: tuple[tuple[str, str], ...] = (),
) -> ws_probe.NegativeOutcome:
    frames = [f.frame for f in settings.journey.send]
    offer = trace.sign_offer(
        protocol.offer(base_url, settings.websocket, None, frames=frames), tracing.RUN_USER
    )
    loop = asyncio.get_running_loop()
    timeout_s = max(0.1, min(settings.websocket.open_timeout_s, deadline - loop.time()))
    started = time.perf_counter()
    try:
        # The upgrade's deadline, the grace an accepted connection gets, and a moment to close it.
        async with asyncio.timeout(timeout_s + ws_probe.NEGATIVE_GRACE_S + 0.5):
            outcome = await ws_probe.negative_check(
                offer, timeout_s=timeout_s, redactor=redactor, extra_headers=extra
            )
    except TimeoutError:
        check = CheckResult(
            "auth-negative", Step.CONNECT, Status.NOT_VERIFIED, None, None, "no answer before the deadline"
        )
        return ws_probe.NegativeOutcome(check, None)
    elapsed = elapsed_ms(started)
    return ws_probe.NegativeOutcome(replace(outcome.check, duration_ms=elapsed), outcome.refusal)


async def _explain_refusals(
    journeys: list[UserJourney], ctx: Context, negative: ws_probe.NegativeOutcome
) -> None:
    """The same 403 for the token, for no token and for a path that cannot exist: the path is probably not routed
    (Starlette answers 403 for an unknown WebSocket route), not a JWT problem."""
    refused = [
        (journey, index)
        for journey in journeys
        for index, check in enumerate(journey.checks)
        if check.id == "handshake"
        and check.failure is not None
        and check.failure.kind is Kind.WS_AUTH_REJECTED
    ]
    if not refused or negative.refusal is None or negative.refusal[0] != 403:
        return
    first = refused[0][0].checks[refused[0][1]].failure
    if ws_probe.refusal_of(first) != negative.refusal:
        return
    # Another path with the same query: a route that needs its query (?model=...) answers the same for both.
    bogus = protocol.sibling_path(ctx.settings.websocket.path, f"-golden-path-no-such-route-{ctx.run_tag}")
    frames = [f.frame for f in ctx.journey.send]
    offer = ctx.trace.sign_offer(
        protocol.offer(ctx.base_url, ctx.settings.websocket, None, path=bogus, frames=frames),
        tracing.RUN_USER,
    )
    timeout_s = max(
        0.1, min(ctx.settings.websocket.open_timeout_s, ctx.deadline - asyncio.get_running_loop().time())
    )
    refusal = await ws_probe.upgrade_refusal(
        offer, timeout_s=timeout_s, redactor=ctx.redactor, extra_headers=ctx.extra_headers
    )
    if refusal != negative.refusal:
        return
    path = ctx.settings.websocket.path
    for journey, index in refused:
        check = journey.checks[index]
        assert check.failure is not None
        failure = Failure(
            Kind.WS_UPGRADE_STATUS,
            f"The upgrade to {path} answered the same HTTP 403 with a valid token, without a token, and to "
            f"{bogus}, a path that cannot exist: {path} is probably not routed to a WebSocket handler (Starlette "
            "answers 403 for an unknown WebSocket route), so check websocket.path and the server's routes. If it "
            "is routed, the server refuses every upgrade before it reads the token.",
            detail="403",
            evidence=check.failure.evidence
            | {"path that cannot exist": f"{bogus}: HTTP 403, the same answer"},
            subject="403: the WebSocket path is probably not routed",
        )
        journey.checks[index] = replace(check, failure=failure)


async def _bounded(journey: UserJourney, ctx: Context) -> None:
    """One user's journey under the whole run's deadline; what it showed so far is judged, never dropped."""
    if asyncio.get_running_loop().time() >= ctx.deadline:
        # Health (or an earlier phase) used the whole run: this user never started, so no step of it is blamed.
        journey.end = completeness.End.NOT_STARTED
        journey.skip(("login", Step.LOGIN), *LATER_STEPS, why="not started: the run deadline had passed")
        return
    try:
        async with asyncio.timeout_at(ctx.deadline):
            await _journey(journey, ctx)
    except TimeoutError:
        if journey.received is not None:
            return  # the stream ended in time, only the close was cut short: judged after the phase (_judge)
        journey.end = completeness.End.CUT
        failure = _run_deadline_failure(journey.step, ctx.settings.timeouts.run_s)
        done = {c.id for c in journey.checks}
        if journey.stream is not None and not journey.stream.judged:
            journey.stream.failure = journey.stream.failure or failure
            _judge_stream(journey, ctx)
        elif journey.step not in (Step.AGENT, Step.ANSWER) or "events" not in done:
            journey.add(_step_check(journey.step), journey.step, Status.FAIL, failure=failure)
        done = {c.id for c in journey.checks} | {c.id.split(" ")[0] for c in journey.checks}
        journey.skip(
            *[(c, s) for c, s in LATER_STEPS if c not in done], why="not reached before the run deadline"
        )


def _step_check(step: Step) -> str:
    return {Step.LOGIN: "login", Step.CONNECT: "handshake", Step.MESSAGE: "message"}.get(step, "run-deadline")


def _run_deadline_failure(step: Step, run_s: float) -> Failure:
    return Failure(
        Kind.TIMEOUT,
        f"The whole run's deadline ({run_s:.0f} s, timeouts.run_s) passed during the {step.value} step.",
        detail=step.value,
        evidence={"deadline": f"{run_s:.0f} s"} | completeness.run_deadline_evidence(run_s),
    )


def _deadline_check(check_id: str, step: Step, user: int | None, run_s: float) -> CheckResult:
    return CheckResult(
        check_id, step, Status.FAIL, None, user, "run deadline passed", _run_deadline_failure(step, run_s)
    )


async def _journey(journey: UserJourney, ctx: Context) -> None:
    started = journey.started = time.perf_counter()
    ctx.trace.bind(journey.user)  # this task's HTTP requests (login) carry this user's trace id
    journey.step = Step.LOGIN
    try:
        identity = await auth.identity_for(
            journey.user,
            settings=ctx.settings.auth,
            credentials=ctx.credentials,
            run_tag=ctx.run_tag,
            http=ctx.http,
            base_url=ctx.base_url,
            on_token=ctx.on_token,
            logins=ctx.logins,
        )
    except auth.LoginError as exc:
        failure = Failure(Kind.LOGIN_FAILED, str(exc), evidence=exc.evidence)
        journey.add("login", Step.LOGIN, Status.FAIL, duration_ms=elapsed_ms(started), failure=failure)
        journey.skip(*LATER_STEPS, why="no token")
        return
    journey.subject = identity.subject
    summary = f"token ({ctx.settings.auth.mode}) for {identity.subject}"
    journey.add("login", Step.LOGIN, Status.PASS, duration_ms=elapsed_ms(started), summary=summary)

    journey.step = Step.CONNECT
    frames = [f.frame for f in ctx.journey.send]
    offer = ctx.trace.sign_offer(
        protocol.offer(ctx.base_url, ctx.settings.websocket, identity.token, frames=frames), journey.user
    )
    handshake = await ws_probe.open_connection(
        offer,
        timeout_s=ctx.settings.websocket.open_timeout_s,
        require_echo=ctx.settings.websocket.require_subprotocol_echo,
        redactor=ctx.redactor,
        extra_headers=ctx.extra_headers,
    )
    journey.timings.handshake = handshake.elapsed_ms if handshake.connection is not None else None
    if handshake.failure is not None:
        journey.add(
            "handshake",
            Step.CONNECT,
            Status.FAIL,
            duration_ms=handshake.elapsed_ms,
            failure=handshake.failure,
        )
        if handshake.connection is not None:
            await handshake.connection.close()
        journey.skip(*LATER_STEPS[1:], why="no connection")
        return
    assert handshake.connection is not None
    summary = f"101 Switching Protocols, subprotocol {handshake.subprotocol or '(none offered)'}"
    journey.add("handshake", Step.CONNECT, Status.PASS, duration_ms=handshake.elapsed_ms, summary=summary)
    try:
        await _session(journey, ctx, connection=handshake.connection, identity=identity, started=started)
    finally:
        await handshake.connection.close()


def _values(ctx: Context, journey: UserJourney, identity: auth.Identity) -> dict[str, str]:
    values = {
        "message": ctx.journey.message,
        "thread_id": f"golden-path-{ctx.run_tag}-{journey.user}",
        "user": identity.subject or f"user-{journey.user}",
        "nonce": ctx.nonces[journey.user],
    }
    if identity.token:  # a frame may carry it (graphql-ws connection_init); without one it renders empty
        values |= expressions.token_values(identity.token)
    else:
        values |= {"token": "", "token_b64": ""}
    return values


async def _session(
    journey: UserJourney,
    ctx: Context,
    *,
    connection: ws_probe.StampedConnection,
    identity: auth.Identity,
    started: float,
) -> None:
    cfg = ctx.journey
    values = _values(ctx, journey, identity)
    owners = protocol.Owners(user=identity.subject or None, run=None, thread=values["thread_id"])
    first = [f for f in cfg.send if f.after is None]
    later = [f for f in cfg.send if f.after is not None]

    journey.step = Step.MESSAGE
    loop = asyncio.get_running_loop()
    stream = Stream(sent=loop.time())
    stream.last_expected = stream.sent
    try:
        async with asyncio.timeout(ctx.settings.timeouts.request_s):
            for frame in first:
                await connection.send(expressions.render(frame.frame, values))
    except (ConnectionClosed, TimeoutError) as exc:
        failure = _closed_failure(
            exc, waiting_for="the message was sent", stream=stream, ctx=ctx, detail=cfg.completion_event
        )
        journey.add("message", Step.MESSAGE, Status.FAIL, failure=failure)
        journey.skip(*LATER_STEPS[2:], why="message not sent")
        return
    kinds = ", ".join(expressions.frame_type(f.frame) for f in first)
    journey.add("message", Step.MESSAGE, Status.PASS, summary=f"sent {kinds}")

    journey.step = Step.AGENT
    journey.stream = stream
    sla_deadline = loop.time() - (time.perf_counter() - started) + cfg.sla_s
    await _receive(
        journey, ctx, connection, owners=owners, later=later, values=values, sla_deadline=sla_deadline
    )
    journey.received = time.perf_counter()
    journey.step = Step.ANSWER  # judged with the answer once the phase is over (_judge)


async def _receive(
    journey: UserJourney,
    ctx: Context,
    connection: ws_probe.StampedConnection,
    *,
    owners: protocol.Owners,
    later: list[Any],
    values: dict[str, str],
    sla_deadline: float,
) -> None:
    """Read frames until the completion event, an error, a close or a deadline: one timeout, rescheduled
    whenever an expected event arrives (heartbeats and foreign frames do not keep a stalled agent alive)."""
    cfg = ctx.journey
    stream = journey.stream
    assert stream is not None
    nonces = protocol.Nonces(values["nonce"], ctx.every_nonce)

    def due() -> float:
        return min(stream.last_expected + cfg.event_timeout_s, sla_deadline, ctx.deadline - 0.25)

    try:
        async with asyncio.timeout_at(due()) as budget:
            while stream.completion is None and stream.failure is None:
                raw = await connection.recv()
                name = _take(stream, ctx, raw, at=connection.arrival(), owners=owners, nonces=nonces)
                del raw  # a 4 MiB frame must not stay alive while the next one is read
                if name is None:
                    continue
                if name in cfg.error_events:
                    stream.failure = await _error_event(stream, ctx, connection, name)
                    break
                for frame in [f for f in later if f.after == name]:
                    later.remove(frame)
                    await connection.send(expressions.render(frame.frame, values))
                budget.reschedule(due())
    except TimeoutError:
        closed = ws_probe.own_close(connection)  # the client failed the connection before the deadline
        if closed is None:
            stalled = _stalled(stream, ctx, sla_deadline=sla_deadline, later=later)
            stream.failure = replace(stalled, evidence=stalled.evidence | connection.flood_evidence())
        else:
            stream.failure = _closed_failure(
                closed,
                waiting_for=_waiting_for(stream, cfg),
                stream=stream,
                ctx=ctx,
                detail=cfg.completion_event,
            )
    except ConnectionClosed as exc:
        stream.failure = _closed_failure(
            exc, waiting_for=_waiting_for(stream, cfg), stream=stream, ctx=ctx, detail=cfg.completion_event
        )


def _take(
    stream: Stream,
    ctx: Context,
    raw: str | bytes,
    *,
    at: float,
    owners: protocol.Owners,
    nonces: protocol.Nonces,
) -> str | None:
    """Account for one frame that was read off the socket at ``at`` (loop time); returns its event name when the
    loop must act on it (expected or error)."""
    cfg = ctx.journey
    now = at
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", errors="replace")
    kept = ctx.clip(text, FRAME_CHARS)
    stream.frames.append(kept)
    foreign = nonces.foreign_in(text)
    if foreign is not None:
        _leak(stream, f"a frame carrying another user's nonce {foreign}: {kept[:300]}")
        return None
    stream.own_nonce_seen = stream.own_nonce_seen or nonces.own_in(text)
    try:
        frame = protocol.parse_frame(raw, event_name=cfg.event_name)
    except protocol.FrameError as exc:
        stream.failure = Failure(
            Kind.WS_PROTOCOL,
            f"The server sent a frame that does not match the protocol: {exc}.",
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
    stream.owned = stream.owned or bool(named)
    leak = protocol.foreign_owner(named, owners, run=stream.run_id)
    if leak is not None:
        _leak(stream, f"`{frame.name[:80]}` with {leak}: {kept[:300]}")
        return None
    stream.owned_by.update(named)
    stream.run_id = stream.run_id or named.get("run")
    if frame.name == cfg.answer.stream_event and stream.answer_chars < ANSWER_CHARS:
        part = expressions.search(cfg.answer.expression, frame.body)
        if isinstance(part, str):
            stream.answer_parts.append(part)
            stream.answer_chars += len(part)
    if frame.name in stream.arrivals:
        if frame.name in cfg.repeating_events:
            stream.last_expected = now
        return frame.name
    if stream.arrivals:
        stream.max_gap = max(stream.max_gap, (now - stream.last_expected) * 1000)
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


def _waiting_for(stream: Stream, cfg: JourneySettings) -> str:
    required = [e for e in cfg.expected_events if e not in cfg.optional_events]
    return next((e for e in required if e not in stream.arrivals), cfg.completion_event)


def _stalled(stream: Stream, ctx: Context, *, sla_deadline: float, later: list[Any]) -> Failure:
    cfg = ctx.journey
    now = asyncio.get_running_loop().time()
    waiting_for = later[0].after if later else _waiting_for(stream, cfg)
    evidence = stream.evidence()
    if now >= ctx.deadline - 0.3:
        stream.cut = True
        return (
            _run_deadline_failure(Step.AGENT, ctx.settings.timeouts.run_s)
            if not stream.arrivals
            else Failure(
                Kind.TIMEOUT,
                f"The run's deadline ({ctx.settings.timeouts.run_s:g} s) passed while waiting for `{waiting_for}`.",
                detail=waiting_for,
                evidence=evidence | completeness.run_deadline_evidence(ctx.settings.timeouts.run_s),
            )
        )
    if now >= sla_deadline - 0.01:
        return Failure(
            Kind.SLA_EXCEEDED,
            f"No `{cfg.completion_event}` within the journey SLA of {cfg.sla_s:g} s "
            f"(still waiting for `{waiting_for}`).",
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
        f"No `{waiting_for}` within {cfg.event_timeout_s:g} s of {since} (journey.event_timeout_s){heard}.",
        detail=waiting_for,
        evidence=evidence,
    )


async def _error_event(
    stream: Stream, ctx: Context, connection: ws_probe.StampedConnection, name: str
) -> Failure:
    """An error frame; followed by an auth close (1008, 4001, 4003, 4401, 4403), auth refused after the upgrade."""
    error_frame = stream.frames[-1] if stream.frames else ""
    try:
        async with asyncio.timeout(ERROR_CLOSE_WAIT_S):
            while True:
                await connection.recv()
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if code in ws_probe.AUTH_CLOSE_CODES:
            return _auth_closed(exc, stream, ctx, error_frame=error_frame)
    except TimeoutError:
        pass
    return Failure(
        Kind.EVENT_ERROR,
        f"The server sent `{name[:80]}` instead of the agent's events.",
        detail=name[:80],
        evidence=stream.evidence() | {"error frame": error_frame},
    )


def _auth_closed(exc: ConnectionClosed, stream: Stream, ctx: Context, *, error_frame: str = "") -> Failure:
    assert exc.rcvd is not None
    code, reason = exc.rcvd.code, ctx.clip(exc.rcvd.reason, 200)
    travel = protocol.token_travel(ctx.settings.websocket, [f.frame for f in ctx.journey.send])
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


def _closed_failure(
    exc: BaseException, *, waiting_for: str, stream: Stream, ctx: Context, detail: str | None = None
) -> Failure:
    """A close (or a send timeout) classified: our own protocol close, an auth refusal, or an early close.
    ``detail`` keeps an early close's fingerprint stable (the completion event) while the text names the step."""
    if not isinstance(exc, ConnectionClosed):
        return Failure(Kind.TIMEOUT, f"Timed out before {waiting_for}.", detail=waiting_for)
    sent, rcvd = exc.sent, exc.rcvd
    if rcvd is None and sent is not None and sent.code in ws_probe.CLIENT_CLOSES:
        # Our own close: the server sent something the protocol forbids (too big, not UTF-8).
        return Failure(
            Kind.WS_PROTOCOL,
            f"The server sent {ws_probe.CLIENT_CLOSES[sent.code]}, so the client closed the connection "
            f"(code {sent.code}) while waiting for `{waiting_for}`.",
            detail=str(sent.code),
            evidence=stream.evidence()
            | {"client close code": str(sent.code), "client close reason": sent.reason},
        )
    if rcvd is not None and rcvd.code in ws_probe.AUTH_CLOSE_CODES:
        return _auth_closed(exc, stream, ctx)
    code, reason = (
        (rcvd.code, ctx.clip(rcvd.reason, 200)) if rcvd else (1006, "no close frame (connection dropped)")
    )
    return Failure(
        Kind.WS_CLOSED_EARLY,
        f"The server closed the connection (code {code}) before `{waiting_for}`.",
        detail=detail or waiting_for,
        evidence=stream.evidence() | {"close code": str(code), "close reason": reason},
    )
