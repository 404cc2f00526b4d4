"""The golden path for N simulated users at once: login -> connect -> (send -> agent events -> answer) per turn.

The probe is a small interpreter of the journey's steps (drawn in ``bot.probe.transport``) over the protocol
profile (``bot.protocol``): log in, open a session, run each turn of the conversation (``bot.probe.turn``: send
the turn's frames, read events with the profile's expressions), reconnect between turns when asked, and record
what happened (``bot.probe.record``: each turn's stream with arrival stamps, the timings, how a handshake or a
stream ended). The pure judge (``bot.judge``)
turns the records into checks after each phase: events, isolation, answer, SLA, metrics and performance.
``probe()`` runs health once, the users concurrently (and an optional load phase). Every wait has a deadline:
the event deadline (since the last *expected* event), the journey SLA and one over the whole probe
(``timeouts.run_s``); a deadline never drops what the stream showed so far, and a step that never ran is never
blamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import httpx

from bot import auth, expressions, judge, protocol, tracing, untrusted
from bot.probe import completeness, http_probe, isolation, sio, sse_session
from bot.probe import hold as holding
from bot.probe import negative as negative_probe
from bot.probe import steps as request_steps
from bot.probe import turn as turns
from bot.probe import websocket as ws_probe
from bot.probe.record import LATER_STEPS, Hooks, Stream, Timings, later_turns, turn_suffix
from bot.probe.turn import Context, run_deadline_failure
from bot.results import (
    ARRIVALS_CAP,
    CheckResult,
    ConnectionHold,
    Failure,
    JourneySample,
    Kind,
    Metric,
    Status,
    Step,
)
from bot.settings import Settings, TurnSettings
from bot.shards import user_phases
from bot.timestamps import elapsed_ms

# The check without a token: its deadline is at most this share of timeouts.run_s; it runs beside the users, so
# it never delays them.
NEGATIVE_SHARE = 0.1
POOL_USERS = 32  # users per HTTP connection pool (``probe``'s pool_for)


@dataclass(slots=True)
class UserJourney:
    user: int
    checks: list[CheckResult] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    step: Step = Step.LOGIN  # the step in progress, for the run deadline's finding
    stream: Stream | None = None  # the turn in progress (or the last one)
    streams: list[Stream] = field(default_factory=list)  # every turn's stream, in order
    # perf_counter: the journey's start, and when the stream ended (completion, error, close or deadline). The
    # stream is judged after the phase, so judging one user never delays the frames other users are receiving.
    started: float = 0.0
    received: float | None = None
    hold: ConnectionHold | None = None  # journey.hold_s: this user's connection kept open after its journey
    end: completeness.End = completeness.End.RAN
    subject: str | None = None  # the identity's subject once logged in ("" when the token names none)

    def proofs(self) -> frozenset[str]:
        """What showed the streams were this user's: the owner fields events named, and ``nonce`` when echoed;
        with several turns, what every turn showed."""
        if not self.streams:
            return frozenset()
        shown = [frozenset(s.owned_by | ({"nonce"} if s.own_nonce_seen else set())) for s in self.streams]
        return frozenset.intersection(*shown)

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


@dataclass(frozen=True, slots=True, repr=False)
class ProbeOutcome:
    checks: tuple[CheckResult, ...]
    metrics: tuple[Metric, ...]
    serving_version: str | None
    samples: tuple[JourneySample, ...] = ()  # raw per-journey figures, for shards and merge
    health_samples: tuple[float, ...] = ()
    hold: ConnectionHold | None = None

    def __repr__(self) -> str:
        # Short on purpose: ``asyncio.run`` formats its main task, result included, when it restores the SIGINT
        # handler (signal.getsignal builds a ValueError message with the handler's repr). A dataclass repr of
        # 1,000 users' checks cost ~40 ms of CPU there, for a message no one reads.
        return f"ProbeOutcome({len(self.checks)} checks, {len(self.metrics)} metrics)"


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
    first: tuple[float | None, str] = (None, "")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.run_s
    users = settings.journey.users + settings.load.users
    nonces = {user: protocol.new_nonce() for user in range(1, users + 1)}
    # No TLS context (certifi, ~30 ms) for plain http://: redirects are not followed, so no https is asked.
    # Built once: a conversation's users open their own pools with it (``own_client``).
    verify: bool | ssl.SSLContext = False if base_url.startswith("http://") else httpx.create_ssl_context()

    def client(*, shared: bool) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=limits,
            trust_env=False,
            follow_redirects=False,
            event_hooks=trace.httpx_hooks(),
            cookies=request_steps.no_cookies(),  # one user's cookies never go out with another user's requests
            # The users are as many browsers, each with its own connections: in a shared pool (``pool_for``) no
            # request waits for another user's connection. httpx's default limit (100) queued the rest: an SSE
            # user holds its connection for its whole stream, and that wait counted as the stream's opening.
            limits=httpx.Limits(max_connections=None if shared else 100),
            headers=dict(extra),
            verify=verify,
        )

    async with contextlib.AsyncExitStack() as closing, client(shared=True) as http:
        # The Socket.IO connections kept beside this pool (the negative check's), when it closes.
        closing.push_async_callback(sio.release, http)
        try:
            async with asyncio.timeout_at(deadline):
                health = await http_probe.check_health(
                    http=http, base_url=base_url, settings=settings.health, version=settings.version
                )
                checks.extend(health.checks)
                health_latencies, versions = health.latencies_ms, health.versions
                first = (health.first_ms, health.first_request)
        except TimeoutError:
            checks.append(_deadline_check("health", Step.HEALTH, None, timeouts.run_s))
        version, serving_version = http_probe.version_check(
            expected=settings.version.expected, serving=versions, field=settings.version.field
        )
        if version is not None:
            checks.append(version)

        # The check without a token runs beside the users under its own short deadline: it never delays them.
        negative_task: asyncio.Task[negative_probe.NegativeOutcome] | None = None
        stream_negative: asyncio.Task[CheckResult] | None = None
        if settings.auth.mode != "none" and settings.transport != "websocket":
            negative_deadline = min(deadline, loop.time() + NEGATIVE_SHARE * timeouts.run_s)
            stream_negative = _stream_negative(
                settings, base_url, negative_deadline, redactor, http, trace, extra
            )
            if stream_negative is None:
                checks.append(
                    negative_probe.skipped(
                        f"disabled ({settings.transport}.negative_auth_check: false)"
                    ).check
                )
        elif settings.auth.mode == "none":
            checks.append(
                negative_probe.skipped("not run: auth.mode is none (no credentials to withhold)").check
            )
        elif not settings.websocket.negative_auth_check:
            checks.append(negative_probe.skipped("disabled (websocket.negative_auth_check: false)").check)
        else:
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

        pools: dict[int, httpx.AsyncClient] = {}

        def pool_for(user: int) -> httpx.AsyncClient:
            # The users' requests go through pools of POOL_USERS users each, as browsers keep their own: one
            # httpcore pool for 1,000 users rescans all of its connections at every request and response (quadratic:
            # two fifths of a 1,000-user Socket.IO run's CPU went to one login request per user).
            shard = (user - 1) // POOL_USERS
            found = pools.get(shard)
            if found is None:
                found = pools[shard] = client(shared=True)
            return found

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
            own_client=lambda: client(shared=False),
            pool_for=pool_for,
        )
        planned = phases if phases is not None else user_phases(settings)
        try:
            for phase in planned:
                batch = [UserJourney(user) for user in phase]
                journeys.extend(batch)
                await asyncio.gather(*(_bounded(j, ctx) for j in batch))
                for journey in batch:
                    _judge(journey, ctx)
        finally:
            for pool in pools.values():
                await sio.release(pool)
                await pool.aclose()
        if negative_task is not None:
            negative = await negative_task
            checks.append(negative.check)
            await _explain_refusals(journeys, ctx, negative)
        if stream_negative is not None:
            checks.append(await stream_negative)
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
    # The run's first connection (the earliest attempt) is measured apart: cold_connect_ms, not the warm p95.
    attempts = [j for j in journeys if j.timings.connect_started is not None]
    coldest = min(attempts, key=lambda j: j.timings.connect_started or 0.0) if attempts else None
    samples = tuple(_sample(j, arrivals=i < ARRIVALS_CAP, cold=j is coldest) for i, j in enumerate(journeys))
    metrics = (
        *judge.metrics(
            samples, health_latencies, judge.targets(settings.targets), judge.labels(settings.transport)
        ),
        judge.cold_start(*first),
        judge.cold_connect(samples, settings.transport),
    )
    checks.extend(judge.performance(metrics))
    held = next((j.hold for j in journeys if j.hold is not None), None)
    if settings.journey.hold_s and held is None and any(j.user == holding.HOLDING_USER for j in journeys):
        # User 1's journey ended before its last turn's connection was open: said so, never silently skipped.
        why = "the journey did not complete, so no connection was left to hold after it"
        held = holding.not_held(
            holding.HOLDING_USER, settings.journey.hold_s, why, transport=settings.transport
        )
    return ProbeOutcome(_cleaned(checks, redactor), metrics, serving_version, samples, health_latencies, held)


def _judge(journey: UserJourney, ctx: Context) -> None:
    """The checks of every turn whose stream ended in time, and the SLA (a deadline judges its own)."""
    if journey.stream is None or journey.received is None:
        return
    _judge_streams(journey, ctx)
    last = journey.streams[-1]
    if last.completion is not None and len(journey.streams) == len(ctx.journey.conversation):
        journey.timings.total = round((journey.received - journey.started) * 1000, 2)
    if (sla := judge.sla(journey.timings.total, ctx.journey, user=journey.user)) is not None:
        journey.checks.append(sla)


def _judge_streams(journey: UserJourney, ctx: Context) -> None:
    """Each turn's events, isolation and answer (and expectation) checks from what its stream showed, also after
    a deadline; the timings come from the first turn, the longest gap from every turn."""
    cfg = ctx.journey
    nonces = protocol.Nonces(ctx.nonces[journey.user], ctx.every_nonce)
    conversation = cfg.conversation
    values = {"nonce": ctx.nonces[journey.user], "thread_id": _thread(ctx, journey.user)}
    previous: str | None = None
    for stream in journey.streams:
        several = len(journey.streams) > 1  # only then does a later turn's evidence show the one before
        if stream.judged:
            previous = (judge.answer_of(stream, cfg)[0] or previous) if several else None
            continue
        stream.judged = True
        user = journey.user
        if stream.turn == 1:
            journey.timings.take(stream, cfg.completion_event)
        elif stream.gaps:
            gap = round(stream.max_gap, 2)
            journey.timings.max_event_gap = max(journey.timings.max_event_gap or 0.0, gap)
        found = [
            *judge.events(stream, cfg, user=user),
            judge.isolation(stream, cfg, user=user, requests=_message_templates(ctx.settings)),
            judge.answer(stream, cfg, user=user, nonces=nonces, redactor=ctx.redactor),
        ]
        spec = conversation[stream.turn - 1]
        expectation = judge.expectation(
            stream, spec, cfg, user=user, values=values, previous=previous, redactor=ctx.redactor
        )
        if expectation is not None:
            found.append(expectation)
        journey.checks.extend(_numbered(found, stream.turn))
        if several:
            previous = judge.answer_of(stream, cfg)[0] or previous


def _numbered(checks: list[CheckResult], turn: int) -> list[CheckResult]:
    """Turn 1's checks keep their ids (``events``, ``answer``); a later turn's say which turn they judge."""
    return checks if turn == 1 else [replace(c, id=c.id + turn_suffix(turn)) for c in checks]


def _thread(ctx: Context, user: int) -> str:
    return f"golden-path-{ctx.run_tag}-{user}"


def _sample(journey: UserJourney, *, arrivals: bool, cold: bool) -> JourneySample:
    t = journey.timings
    events = dict(t.events) if arrivals else {}
    sent_at = t.message_sent_at if arrivals else None
    return JourneySample(
        journey.user,
        t.handshake,
        t.agent_startup,
        t.max_event_gap,
        t.processing,
        t.total,
        events,
        sent_at,
        first_connection=cold,
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
        summary = redactor.clean(check.summary)
        # A check without a failure whose summary held no secret is kept as it is (most checks of a big run).
        unchanged = failure is None and check.failure is None and summary is check.summary
        out.append(check if unchanged else replace(check, summary=summary, failure=failure))
    return tuple(out)


async def _negative(
    settings: Settings,
    *,
    base_url: str,
    deadline: float,
    redactor: untrusted.Redactor,
    trace: tracing.RunTrace,
    extra: tuple[tuple[str, str], ...] = (),
) -> negative_probe.NegativeOutcome:
    frames = [f.frame for f in settings.journey.send]
    offer = trace.sign_offer(
        protocol.offer(base_url, settings.websocket, None, frames=frames), tracing.RUN_USER
    )
    loop = asyncio.get_running_loop()
    timeout_s = max(0.1, min(settings.websocket.open_timeout_s, deadline - loop.time()))
    started = time.perf_counter()
    # The upgrade, the frames of the first turn, the silence that ends the check, and a moment to close.
    wait_s = min(negative_probe.WAIT_S, settings.journey.event_timeout_s)
    budget = timeout_s + settings.timeouts.request_s + wait_s * (1 + len(settings.journey.send)) + 0.5
    try:
        async with asyncio.timeout(max(0.1, min(budget, deadline - loop.time()))):
            outcome = await negative_probe.negative_check(
                offer, settings=settings, timeout_s=timeout_s, redactor=redactor, extra_headers=extra
            )
    except TimeoutError:
        check = CheckResult(
            "auth-negative", Step.CONNECT, Status.NOT_VERIFIED, None, None, "no answer before the deadline"
        )
        return negative_probe.NegativeOutcome(check, None)
    elapsed = elapsed_ms(started)
    return negative_probe.NegativeOutcome(replace(outcome.check, duration_ms=elapsed), outcome.refusal)


async def _explain_refusals(
    journeys: list[UserJourney], ctx: Context, negative: negative_probe.NegativeOutcome
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
    hint = await ws_probe.plain_http_hint(
        ctx.http, protocol.http_url(ctx.base_url, path), timeout_s=min(ctx.settings.timeouts.request_s, 5)
    )
    for journey, index in refused:
        check = journey.checks[index]
        assert check.failure is not None
        failure = Failure(
            Kind.WS_UPGRADE_STATUS,
            f"The upgrade to {path} answered the same HTTP 403 with a valid token, without a token, and to "
            f"{bogus}, a path that cannot exist: {path} is probably not routed to a WebSocket handler (Starlette "
            "answers 403 for an unknown WebSocket route), so check websocket.path and the server's routes. If it "
            "is routed, the server refuses every upgrade before it reads the token."
            + (f" {hint}" if hint else ""),
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
        failure = run_deadline_failure(journey.step, ctx.settings.timeouts.run_s)
        done = {c.id for c in journey.checks}
        if journey.stream is not None and not journey.stream.judged:
            journey.stream.failure = journey.stream.failure or failure
            _judge_streams(journey, ctx)
        elif journey.step not in (Step.AGENT, Step.ANSWER) or "events" not in done:
            journey.add(_step_check(journey.step), journey.step, Status.FAIL, failure=failure)
        done = {c.id for c in journey.checks} | {c.id.split(" ")[0] for c in journey.checks}
        journey.skip(
            *[(c, s) for c, s in LATER_STEPS if c not in done], why="not reached before the run deadline"
        )


def _step_check(step: Step) -> str:
    return {Step.LOGIN: "login", Step.CONNECT: "handshake", Step.MESSAGE: "message"}.get(step, "run-deadline")


def _deadline_check(check_id: str, step: Step, user: int | None, run_s: float) -> CheckResult:
    return CheckResult(
        check_id, step, Status.FAIL, None, user, "run deadline passed", run_deadline_failure(step, run_s)
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
            http=ctx.http_for(journey.user),
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

    if ctx.settings.transport != "websocket":
        await _stream_journey(journey, ctx, identity=identity, started=started)
        return
    values = _values(ctx, journey, identity)
    owners = protocol.Owners(user=identity.subject or None, run=None, thread=values["thread_id"])
    # The connection's age counts from before the upgrade request, as the server's (or Cloud Run's request
    # timeout) does from its arrival: stamped after the handshake, an age could be shorter than the server's.
    opened = asyncio.get_running_loop().time()
    connection = await _connect(journey, ctx, identity, check_id="handshake")
    if connection is None:
        journey.skip(*LATER_STEPS[1:], why="no connection")
        return
    conversation = ctx.journey.conversation
    loop = asyncio.get_running_loop()
    reconnected = False
    completed = False
    try:
        for number, spec in enumerate(conversation, start=1):
            reconnected = reconnected or (number > 1 and spec.reconnect)
            # The turn's stream from its start, before a reconnect: a deadline meanwhile is this turn's, never the
            # completed turn's before it.
            stream = Stream(sent=loop.time(), turn=number, reconnected=reconnected)
            journey.stream = stream
            journey.streams.append(stream)
            if number > 1 and spec.reconnect:
                await connection.session.close()
                identity = await _renewed(journey, ctx, identity, values)
                reopened = loop.time()
                again = await _connect(journey, ctx, identity, check_id=f"reconnect (turn {number})")
                if again is None:
                    stream.judged = True  # nothing was received: the reconnect check says why
                    journey.skip(
                        *later_turns(number, len(conversation)), why=f"no connection for turn {number}"
                    )
                    break
                connection, opened = again, reopened
            if not await _turn(journey, ctx, connection, spec, stream, values, owners):
                journey.skip(
                    *later_turns(number + 1, len(conversation)), why=f"turn {number} did not complete"
                )
                break
        else:
            completed = True
        # The journey's time ends here, not after the hold or the close. Set only when the turns ended by
        # themselves: a run deadline meanwhile leaves it unset, so the journey is judged as cut (_bounded).
        journey.received = time.perf_counter()
        journey.step = Step.ANSWER  # judged with the answer once the phase is over (_judge)
        if ctx.journey.hold_s and journey.user == holding.HOLDING_USER:
            session = connection.session
            journey.hold = await holding.after_journey(
                session.connection if isinstance(session, ws_probe.WebSocketSession) else None,
                user=journey.user,
                requested_s=ctx.journey.hold_s,
                deadline=ctx.deadline,
                opened_at=opened,
                completed=completed,
                redactor=ctx.redactor,
            )
    finally:
        await connection.session.close()


async def _connect(
    journey: UserJourney, ctx: Context, identity: auth.Identity, *, check_id: str
) -> turns.Connection | None:
    """Open a session as ``identity`` and record the handshake; None when there is no usable session."""
    journey.step = Step.CONNECT
    frames = [f.frame for f in ctx.journey.send]
    offer = ctx.trace.sign_offer(
        protocol.offer(ctx.base_url, ctx.settings.websocket, identity.token, frames=frames), journey.user
    )
    if check_id == "handshake":
        journey.timings.connect_started = asyncio.get_running_loop().time()
    opened = await ws_probe.open_session(
        offer,
        timeout_s=ctx.settings.websocket.open_timeout_s,
        require_echo=ctx.settings.websocket.require_subprotocol_echo,
        redactor=ctx.redactor,
        extra_headers=ctx.extra_headers,
    )
    if check_id == "handshake":
        journey.timings.handshake = opened.elapsed_ms if opened.session is not None else None
    if opened.failure is not None:
        journey.add(
            check_id, Step.CONNECT, Status.FAIL, duration_ms=opened.elapsed_ms, failure=opened.failure
        )
        if opened.session is not None:
            await opened.session.close()
        return None
    assert opened.session is not None
    journey.add(check_id, Step.CONNECT, Status.PASS, duration_ms=opened.elapsed_ms, summary=opened.detail)
    return turns.Connection(opened.session)


async def _renewed(
    journey: UserJourney, ctx: Context, identity: auth.Identity, values: dict[str, str]
) -> auth.Identity:
    """The same user's identity for a reconnect: its token again, or a new one when it is about to expire."""
    if identity.expires_at is None or identity.expires_at - time.time() > auth.EXPIRY_MARGIN_S:
        return identity
    try:
        renewed = await auth.identity_for(
            journey.user,
            settings=ctx.settings.auth,
            credentials=ctx.credentials,
            run_tag=ctx.run_tag,
            http=ctx.http_for(journey.user),
            base_url=ctx.base_url,
            on_token=ctx.on_token,
            logins=ctx.logins,
        )
    except auth.LoginError:
        return identity  # the old token is offered; a refusal is then the handshake's finding
    if renewed.token:
        values |= expressions.token_values(renewed.token)
    return renewed


async def _turn(
    journey: UserJourney,
    ctx: Context,
    connection: turns.Connection,
    spec: TurnSettings,
    stream: Stream,
    values: dict[str, str],
    owners: protocol.Owners,
) -> bool:
    """One turn: its message sent and its events received into its stream; True when it completed."""
    cfg = ctx.journey
    number = stream.turn
    suffix = turn_suffix(number)
    values |= {"message": spec.message, "turn": str(number), "turn_id": protocol.new_uuid()}
    journey.step = Step.MESSAGE
    later, failure = await turns.send_opening(stream, connection, ctx, values=values)
    if failure is not None:
        stream.judged = True  # nothing was received: the message check says why
        journey.add(f"message{suffix}", Step.MESSAGE, Status.FAIL, failure=failure)
        journey.skip(*[(f"{c}{suffix}", s) for c, s in LATER_STEPS[2:]], why="message not sent")
        return False
    parts = [f"sent {', '.join(stream.sent_frames)}"] if stream.sent_frames else []
    parts += [f"{expressions.frame_type(f.frame)} once `{f.after}` arrives" for f in later]
    summary = "; ".join(parts)
    journey.add(f"message{suffix}", Step.MESSAGE, Status.PASS, summary=summary)
    journey.step = Step.AGENT
    loop = asyncio.get_running_loop()
    sla_deadline = loop.time() - (time.perf_counter() - journey.started) + cfg.sla_s
    await turns.receive(
        stream, connection, ctx, owners=owners, later=later, values=values, sla_deadline=sla_deadline
    )
    return stream.completion is not None


def _values(ctx: Context, journey: UserJourney, identity: auth.Identity) -> dict[str, str]:
    values = {
        "message": ctx.journey.conversation[0].message,
        "turn": "1",
        "thread_id": _thread(ctx, journey.user),
        "user": identity.subject or f"user-{journey.user}",
        "nonce": ctx.nonces[journey.user],
        "message_id": protocol.new_uuid(),
        "turn_id": protocol.new_uuid(),
    }
    if identity.token:  # a frame may carry it (graphql-ws connection_init); without one it renders empty
        values |= expressions.token_values(identity.token)
    else:
        values |= {"token": "", "token_b64": ""}
    return values


def _message_templates(settings: Settings) -> tuple[str, ...]:
    """The templates other than frames that carry the message (SSE's request body, request steps' bodies)."""
    if settings.transport != "sse":
        return ()
    return (settings.sse.body or "", *(r.body or "" for r in settings.journey.requests))


async def _stream_journey(
    journey: UserJourney, ctx: Context, *, identity: auth.Identity, started: float
) -> None:
    """The journey over SSE or Socket.IO, every turn of it: the transport opens, sends and reads (SSE: a request
    per turn; Socket.IO: emits per turn on one connection), reconnecting when a turn asks; the turn's bookkeeping
    (``bot.probe.turn.take``) records each event as it does a WebSocket frame."""
    cfg = ctx.journey
    values = request_steps.UserValues({**cfg.values, **_values(ctx, journey, identity)})
    owners = protocol.Owners(user=identity.subject or None, run=None, thread=values.values["thread_id"])
    nonces = protocol.Nonces(values.values["nonce"], ctx.every_nonce)
    sla_deadline = asyncio.get_running_loop().time() - (time.perf_counter() - started) + cfg.sla_s

    def hooks(stream: Stream) -> Hooks:
        journey.streams.append(stream)
        return Hooks(
            take=lambda m: turns.take(stream, ctx, m.raw, at=m.at, owners=owners, nonces=nonces, name=m.name),
            due=lambda: min(stream.last_expected + cfg.event_timeout_s, sla_deadline, ctx.deadline - 0.25),
            stalled=lambda: turns.stalled(stream, ctx, sla_deadline=sla_deadline, later=[]),
            waiting_for=lambda: turns.waiting_for(stream, cfg),
        )

    async def renew() -> str | None:
        """The same user's token for a reconnect (a new one when it is about to expire)."""
        nonlocal identity
        identity = await _renewed(journey, ctx, identity, values.values)
        return identity.token

    run = request_steps.UserRun(
        settings=ctx.settings,
        http=ctx.http_for(journey.user),
        base_url=ctx.base_url,
        redactor=ctx.redactor,
        headers=(*ctx.extra_headers, *ctx.trace.headers(journey.user).items()),
        user=values,
        token=identity.token,
        hooks=hooks,
        own_client=ctx.own_client,
        renew=renew,
        hold_s=cfg.hold_s if journey.user == holding.HOLDING_USER else 0.0,
        deadline=ctx.deadline,
    )
    transport = sse_session if ctx.settings.transport == "sse" else sio
    await transport.run_journey(journey, run)
    for stream in journey.streams:
        # A streamed answer may split the nonce across deltas: the joined answer counts as echoed text too.
        joined = "".join(stream.answer_parts)
        stream.own_nonce_seen = stream.own_nonce_seen or nonces.own_in(joined)


def _stream_negative(
    settings: Settings,
    base_url: str,
    deadline: float,
    redactor: untrusted.Redactor,
    http: httpx.AsyncClient,
    trace: tracing.RunTrace,
    extra: tuple[tuple[str, str], ...],
) -> asyncio.Task[CheckResult] | None:
    """The check without a token on SSE or Socket.IO, beside the users under its own deadline (None: disabled)."""
    if settings.transport == "sse" and settings.sse.negative_auth_check:
        return asyncio.create_task(
            sse_session.negative_check(
                settings, base_url=base_url, deadline=deadline, redactor=redactor, http=http
            )
        )
    if settings.transport == "socketio" and settings.socketio.negative_auth_check:
        headers = (*extra, *trace.headers(tracing.RUN_USER).items())
        check = sio.negative_check(
            settings, base_url=base_url, deadline=deadline, redactor=redactor, http=http, headers=headers
        )
        return asyncio.create_task(check)
    return None
