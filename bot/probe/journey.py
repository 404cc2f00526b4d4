"""The golden path for N simulated users at once: login -> connect -> message -> agent events -> answer.

Each user's journey returns CheckResults and raw timings; ``probe()`` runs health once, the users
concurrently (and an optional load phase), and turns timings into Metrics. Every wait has a deadline: a
per-step one from the settings, a journey one (the SLA) and one over the whole probe (``timeouts.run_s``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bot import auth, protocol
from bot import trace as tracing
from bot.probe import http as http_probe
from bot.probe import websocket as ws_probe
from bot.results import ARRIVALS_CAP, CheckResult, Failure, JourneySample, Kind, Metric, Status, Step
from bot.settings import Settings
from bot.shards import user_phases

FRAME_EVIDENCE = 20  # frames kept as evidence per user


@dataclass(slots=True)
class Timings:
    """Raw figures from one user's journey (milliseconds), None when the step was not reached."""

    handshake: float | None = None
    agent_startup: float | None = None  # message sent -> first expected event
    processing: float | None = None  # first expected event -> completion event
    max_event_gap: float | None = None
    total: float | None = None  # login start -> answer
    events: dict[str, float] = field(default_factory=dict)  # event -> ms after the message was sent


@dataclass(slots=True)
class UserJourney:
    user: int
    checks: list[CheckResult] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    frames: list[str] = field(default_factory=list)
    step: Step = Step.LOGIN  # the step in progress, for the run deadline's finding

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
class ProbeOutcome:
    checks: tuple[CheckResult, ...]
    metrics: tuple[Metric, ...]
    serving_version: str | None
    samples: tuple[JourneySample, ...] = ()
    health_samples: tuple[float, ...] = ()


async def probe(
    settings: Settings,
    *,
    base_url: str,
    credentials: auth.Credentials,
    on_token: Callable[[str], None] = lambda _token: None,
    trace: tracing.RunTrace | None = None,
    phases: Sequence[Sequence[int]] | None = None,
) -> ProbeOutcome:
    """Health, then the journey for ``journey.users`` users at once, then the optional load phase.

    Every request carries ``trace``'s headers for the user it belongs to (user 0: health, negative check)."""
    seen_tokens: list[str] = []

    def remember(token: str) -> None:
        seen_tokens.append(token)
        on_token(token)

    timeouts = settings.timeouts
    limits = httpx.Timeout(timeouts.request_s, connect=timeouts.connect_s)
    run_tag = uuid.uuid4().hex[:8]
    trace = trace or tracing.RunTrace(run_tag)
    checks: list[CheckResult] = []
    journeys: list[UserJourney] = []
    health_latencies: tuple[float, ...] = ()
    versions: tuple[str, ...] = ()
    deadline = time.monotonic() + timeouts.run_s
    hooks = trace.httpx_hooks()
    # No TLS context (certifi, ~30 ms) for plain http://: redirects are not followed, so no https is requested.
    async with httpx.AsyncClient(
        timeout=limits,
        trust_env=False,
        follow_redirects=False,
        event_hooks=hooks,
        verify=not base_url.startswith("http://"),
    ) as http:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                health = await http_probe.check_health(
                    http=http, base_url=base_url, settings=settings.health, version=settings.version
                )
                checks.extend(health.checks)
                health_latencies = health.latencies_ms
                versions = health.versions
        except TimeoutError:
            checks.append(_deadline_check("health", Step.HEALTH, None, timeouts.run_s))

        version, serving_version = http_probe.version_check(
            expected=settings.version.expected, serving=versions, field=settings.version.field
        )
        if version is not None:
            checks.append(version)

        if settings.websocket.negative_auth_check and settings.auth.mode != "none":
            checks.append(await _negative(settings, base_url=base_url, deadline=deadline, trace=trace))

        for users in phases if phases is not None else user_phases(settings):
            batch = [UserJourney(user) for user in users]
            journeys.extend(batch)
            await asyncio.gather(
                *(
                    _bounded(
                        j,
                        settings,
                        base_url=base_url,
                        credentials=credentials,
                        run_tag=run_tag,
                        http=http,
                        deadline=deadline,
                        on_token=remember,
                        trace=trace,
                    )
                    for j in batch
                )
            )
    for journey in journeys:
        checks.extend(journey.checks)
    metrics = _metrics(settings, health_latencies, journeys)
    checks.extend(_perf_checks(metrics))
    secrets = [
        credentials.secret,
        credentials.private_key,
        credentials.token,
        credentials.password,
        *seen_tokens,
    ]
    samples = tuple(_sample(j, arrivals=i < ARRIVALS_CAP) for i, j in enumerate(journeys))
    return ProbeOutcome(redact(checks, secrets), metrics, serving_version, samples, health_latencies)


def _sample(journey: UserJourney, *, arrivals: bool) -> JourneySample:
    t = journey.timings
    events = dict(t.events) if arrivals else {}
    return JourneySample(
        journey.user, t.handshake, t.agent_startup, t.max_event_gap, t.processing, t.total, events
    )


REDACTED = "[redacted]"


def redact(checks: list[CheckResult], secrets: list[str | None]) -> tuple[CheckResult, ...]:
    """Replace every secret and token (and the base64url form offered as a subprotocol) in what we keep.

    A server may echo a token back in a frame or an error body; nothing we write may carry it.
    """
    needles: set[str] = set()
    for secret in filter(None, secrets):
        needles |= {secret, protocol.b64url(secret)}
        needles |= {line.strip() for line in secret.splitlines() if len(line.strip()) >= 8}
    # Shorter than 4 characters, a "secret" would blank out ordinary words: it protects nothing anyway.
    ordered = sorted((n for n in needles if len(n) >= 4), key=len, reverse=True)
    if not ordered:
        return tuple(checks)

    def clean(text: str) -> str:
        for needle in ordered:
            text = text.replace(needle, REDACTED)
        return text

    cleaned = []
    for check in checks:
        failure = check.failure
        if failure is not None:
            evidence = {key: clean(value) for key, value in failure.evidence.items()}
            failure = replace(
                failure, message=clean(failure.message), detail=clean(failure.detail), evidence=evidence
            )
        cleaned.append(replace(check, summary=clean(check.summary), failure=failure))
    return tuple(cleaned)


async def _negative(
    settings: Settings, *, base_url: str, deadline: float, trace: tracing.RunTrace
) -> CheckResult:
    offer = trace.sign_offer(protocol.offer(base_url, settings.websocket, None), tracing.RUN_USER)
    timeout_s = max(0.1, min(settings.websocket.open_timeout_s, deadline - time.monotonic()))
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s + ws_probe.NEGATIVE_GRACE_S + 2):
            refused, failure, summary = await ws_probe.negative_check(offer, timeout_s=timeout_s)
    except TimeoutError:
        refused, failure, summary = None, None, "inconclusive: no answer before the deadline"
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    status = Status.PASS if refused else Status.FAIL if failure else Status.SKIP
    return CheckResult("auth-negative", Step.CONNECT, status, elapsed, None, summary, failure)


async def _bounded(journey: UserJourney, settings: Settings, *, deadline: float, **kwargs: object) -> None:
    """One user's journey under the SLA-plus-grace and the whole run's deadline."""
    budget = deadline - time.monotonic()
    try:
        async with asyncio.timeout(max(0.0, budget)):
            await _journey(journey, settings, **kwargs)  # type: ignore[arg-type]
    except TimeoutError:
        journey.checks.append(
            _deadline_check("run-deadline", journey.step, journey.user, settings.timeouts.run_s)
        )


def _deadline_check(check_id: str, step: Step, user: int | None, run_s: float) -> CheckResult:
    failure = Failure(
        Kind.TIMEOUT,
        f"The whole run's deadline ({run_s:.0f} s, timeouts.run_s) passed during the {step.value} step.",
        detail=step.value,
        evidence={"deadline": f"{run_s:.0f} s"},
    )
    return CheckResult(check_id, step, Status.FAIL, None, user, "run deadline passed", failure)


async def _journey(
    journey: UserJourney,
    settings: Settings,
    *,
    base_url: str,
    credentials: auth.Credentials,
    run_tag: str,
    http: httpx.AsyncClient,
    on_token: Callable[[str], None],
    trace: tracing.RunTrace,
) -> None:
    started = time.perf_counter()
    trace.bind(journey.user)  # this task's HTTP requests (login) carry this user's trace id
    later = (
        ("handshake", Step.CONNECT),
        ("message", Step.MESSAGE),
        ("events", Step.AGENT),
        ("answer", Step.ANSWER),
    )

    # 1. Login
    journey.step = Step.LOGIN
    try:
        identity = await auth.identity_for(
            journey.user,
            settings=settings.auth,
            credentials=credentials,
            run_tag=run_tag,
            http=http,
            base_url=base_url,
            on_token=on_token,
        )
    except auth.LoginError as exc:
        failure = Failure(Kind.LOGIN_FAILED, str(exc), evidence=exc.evidence)
        journey.add("login", Step.LOGIN, Status.FAIL, duration_ms=_since(started), failure=failure)
        journey.skip(*later, why="no token")
        return
    login_ms = _since(started)
    mode = settings.auth.mode
    journey.add(
        "login",
        Step.LOGIN,
        Status.PASS,
        duration_ms=login_ms,
        summary=f"token ({mode}) for {identity.subject}",
    )

    # 2. Handshake
    journey.step = Step.CONNECT
    offer = trace.sign_offer(protocol.offer(base_url, settings.websocket, identity.token), journey.user)
    handshake = await ws_probe.open_connection(
        offer,
        timeout_s=settings.websocket.open_timeout_s,
        require_echo=settings.websocket.require_subprotocol_echo,
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
        journey.skip(*later[1:], why="no connection")
        return
    assert handshake.connection is not None
    summary = f"101 Switching Protocols, subprotocol {handshake.subprotocol or '(none offered)'}"
    journey.add("handshake", Step.CONNECT, Status.PASS, duration_ms=handshake.elapsed_ms, summary=summary)

    connection = handshake.connection
    try:
        await _session(
            journey, settings, connection=connection, identity=identity, run_tag=run_tag, started=started
        )
    finally:
        await connection.close()


async def _session(
    journey: UserJourney,
    settings: Settings,
    *,
    connection: ClientConnection,
    identity: auth.Identity,
    run_tag: str,
    started: float,
) -> None:
    cfg = settings.journey
    thread_id = f"golden-path-{run_tag}-{journey.user}"
    user_id = identity.subject or None

    # 3. Message
    journey.step = Step.MESSAGE
    message = protocol.build_message(cfg, text=cfg.message, thread_id=thread_id)
    sent = time.perf_counter()
    try:
        await asyncio.wait_for(connection.send(json.dumps(message)), timeout=settings.timeouts.request_s)
    except (ConnectionClosed, TimeoutError) as exc:
        journey.add(
            "message",
            Step.MESSAGE,
            Status.FAIL,
            failure=_closed_failure(exc, waiting_for="the message was sent", frames=journey.frames),
        )
        journey.skip(("events", Step.AGENT), ("answer", Step.ANSWER), why="message not sent")
        return
    journey.add("message", Step.MESSAGE, Status.PASS, summary=f"sent {cfg.message_type}")

    # 4. Events, until the completion event, an error, a close or a deadline
    journey.step = Step.AGENT
    expected = list(cfg.expected_events)
    arrivals: dict[str, float] = {}
    order: list[str] = []
    run_id: str | None = None
    leaks: list[str] = []
    completion: protocol.Frame | None = None
    failure: Failure | None = None
    sla_deadline = started + cfg.sla_s
    last_event = sent
    max_gap = 0.0
    while completion is None and failure is None:
        waiting_for = next((e for e in expected if e not in arrivals), cfg.completion_event)
        time_left_sla = sla_deadline - time.perf_counter()
        wait = min(cfg.event_timeout_s, time_left_sla)
        try:
            raw = await asyncio.wait_for(connection.recv(), timeout=max(0.0, wait))
        except TimeoutError:
            if time_left_sla <= cfg.event_timeout_s:
                failure = Failure(
                    Kind.SLA_EXCEEDED,
                    f"No `{cfg.completion_event}` within the journey SLA of {cfg.sla_s:g} s "
                    f"(still waiting for `{waiting_for}`).",
                    evidence=_event_evidence(order, journey.frames) | {"sla": f"{cfg.sla_s:g} s"},
                )
            else:
                failure = Failure(
                    Kind.TIMEOUT,
                    f"No `{waiting_for}` event within {cfg.event_timeout_s:g} s (journey.event_timeout_s).",
                    detail=waiting_for,
                    evidence=_event_evidence(order, journey.frames),
                )
            break
        except ConnectionClosed as exc:
            failure = _closed_failure(
                exc, waiting_for=cfg.completion_event, frames=journey.frames, order=order
            )
            break
        now = time.perf_counter()
        text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
        if len(journey.frames) < FRAME_EVIDENCE:
            journey.frames.append(text[:1000])
        try:
            frame = protocol.parse_frame(text)
        except protocol.FrameError as exc:
            failure = Failure(
                Kind.WS_PROTOCOL,
                f"The server sent a frame the protocol does not allow: {exc}.",
                evidence={"frame": text[:2000]},
            )
            break
        if frame.type in cfg.error_events:
            failure = Failure(
                Kind.EVENT_ERROR,
                f"The server sent `{frame.type}` instead of the agent's events.",
                detail=frame.type,
                evidence=_event_evidence(order, journey.frames) | {"error frame": text[:2000]},
            )
            break
        if frame.type not in expected:
            continue  # welcome, heartbeats and unknown types carry no journey state
        leak = protocol.foreign_owner(frame, user_id=user_id, run_id=run_id, thread_id=thread_id)
        if leak is not None:
            leaks.append(f"`{frame.type}` with {leak}: {text[:300]}")
            continue
        if run_id is None and frame.field("run_id") is not None:
            run_id = str(frame.field("run_id"))
        if frame.type in arrivals:
            continue
        arrivals[frame.type] = now
        order.append(frame.type)
        max_gap = max(max_gap, (now - last_event) * 1000) if len(arrivals) > 1 else max_gap
        last_event = now
        if frame.type == cfg.completion_event:
            completion = frame

    journey.timings.events = {name: round((at - sent) * 1000, 3) for name, at in arrivals.items()}
    if arrivals:
        first = min(arrivals.values())
        journey.timings.agent_startup = round((first - sent) * 1000, 2)
        journey.timings.max_event_gap = round(max_gap, 2) if len(arrivals) > 1 else None
        if completion is not None:
            journey.timings.processing = round((arrivals[cfg.completion_event] - first) * 1000, 2)

    _event_checks(journey, settings, arrivals=arrivals, order=order, failure=failure, sent=sent)
    _isolation_check(journey, leaks)

    # 5. Answer
    journey.step = Step.ANSWER
    if completion is None:
        journey.add("answer", Step.ANSWER, Status.SKIP, summary=f"no `{cfg.completion_event}`")
        return
    answer = protocol.answer_text(completion, cfg.answer_fields)
    journey.timings.total = _since(started)
    evidence = {"completion frame": completion.raw[:2000]}
    if not answer:
        journey.add(
            "answer",
            Step.ANSWER,
            Status.FAIL,
            failure=Failure(
                Kind.ANSWER_EMPTY,
                f"`{cfg.completion_event}` carries no answer in {list(cfg.answer_fields)}.",
                evidence=evidence,
            ),
        )
    elif (pattern := protocol.canned_match(answer, cfg.canned_patterns)) is not None:
        journey.add(
            "answer",
            Step.ANSWER,
            Status.FAIL,
            failure=Failure(
                Kind.ANSWER_CANNED,
                "The answer matches the canned-fallback pattern " + repr(pattern) + ".",
                evidence=evidence | {"answer": answer[:2000]},
            ),
        )
    else:
        journey.add("answer", Step.ANSWER, Status.PASS, summary=f"{len(answer)} characters: {answer[:120]}")
    if journey.timings.total is not None and journey.timings.total > cfg.sla_s * 1000:
        journey.add(
            "sla",
            Step.ANSWER,
            Status.FAIL,
            duration_ms=journey.timings.total,
            failure=Failure(
                Kind.SLA_EXCEEDED,
                f"The journey took {journey.timings.total / 1000:.1f} s; the SLA is {cfg.sla_s:g} s.",
                evidence={"journey": f"{journey.timings.total:.0f} ms", "sla": f"{cfg.sla_s:g} s"},
            ),
        )


def _event_checks(
    journey: UserJourney,
    settings: Settings,
    *,
    arrivals: dict[str, float],
    order: list[str],
    failure: Failure | None,
    sent: float,
) -> None:
    cfg = settings.journey
    if failure is not None:
        journey.add("events", Step.AGENT, Status.FAIL, failure=failure)
        return
    missing = [e for e in cfg.expected_events if e not in arrivals]
    for name in missing:
        journey.add(
            f"event {name}",
            Step.AGENT,
            Status.FAIL,
            failure=Failure(
                Kind.EVENT_MISSING,
                f"`{name}` was not received before `{cfg.completion_event}`.",
                detail=name,
                evidence=_event_evidence(order, journey.frames),
            ),
        )
    expected_order = [e for e in cfg.expected_events if e in arrivals]
    if order != expected_order:
        journey.add(
            "event order",
            Step.AGENT,
            Status.FAIL,
            failure=Failure(
                Kind.EVENT_ORDER,
                f"Events arrived as {order}, expected {expected_order}.",
                evidence=_event_evidence(order, journey.frames),
            ),
        )
    if not missing and order == expected_order:
        took = (arrivals[cfg.completion_event] - sent) * 1000
        journey.add(
            "events",
            Step.AGENT,
            Status.PASS,
            duration_ms=round(took, 2),
            summary=f"{len(order)} events in order",
        )


def _isolation_check(journey: UserJourney, leaks: list[str]) -> None:
    if not leaks:
        journey.add("isolation", Step.ISOLATION, Status.PASS, summary="every event belonged to this user")
        return
    journey.add(
        "isolation",
        Step.ISOLATION,
        Status.FAIL,
        failure=Failure(
            Kind.ISOLATION_LEAK,
            f"User {journey.user} received {len(leaks)} event(s) that belong to another user or run.",
            evidence={f"foreign event {i + 1}": leak for i, leak in enumerate(leaks[:5])},
        ),
    )


def _closed_failure(
    exc: BaseException, *, waiting_for: str, frames: list[str], order: list[str] | None = None
) -> Failure:
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd
        code, reason = (frame.code, frame.reason) if frame else (1006, "no close frame (connection dropped)")
        evidence = _event_evidence(order or [], frames) | {"close code": str(code), "close reason": reason}
        return Failure(
            Kind.WS_CLOSED_EARLY,
            f"The server closed the connection (code {code}) before `{waiting_for}`.",
            detail=waiting_for,
            evidence=evidence,
        )
    return Failure(Kind.TIMEOUT, f"Timed out before {waiting_for}.", detail=waiting_for)


def _event_evidence(order: list[str], frames: list[str]) -> dict[str, str]:
    return {"events received": ", ".join(order) or "(none)", "frames": "\n".join(frames[-10:])}


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


METRICS = (
    # id, label, attribute of Timings (None: health latencies), target attribute of TargetsSettings
    ("api_ms", "API (health) latency", None, "api_ms"),
    ("handshake_ms", "WebSocket handshake", "handshake", "handshake_ms"),
    ("agent_startup_ms", "Agent startup (message to first event)", "agent_startup", "agent_startup_ms"),
    ("event_gap_ms", "Longest gap between events", "max_event_gap", None),
    ("processing_ms", "Processing (first event to completion)", "processing", "processing_ms"),
    ("total_ms", "Whole journey (login to answer)", "total", "total_ms"),
)


def _metrics(
    settings: Settings, health: tuple[float, ...], journeys: list[UserJourney]
) -> tuple[Metric, ...]:
    metrics = []
    for metric_id, label, attribute, target_attr in METRICS:
        if attribute is None:
            samples: list[float] = list(health)
        else:
            samples = [v for j in journeys if (v := getattr(j.timings, attribute)) is not None]
        target = getattr(settings.targets, target_attr) if target_attr else None
        metrics.append(
            Metric.from_samples(id=metric_id, label=label, unit="ms", samples=samples, target=target)
        )
    return tuple(metrics)


def _perf_checks(metrics: tuple[Metric, ...]) -> list[CheckResult]:
    checks = []
    for metric in metrics:
        if metric.status is Status.FAIL:
            checks.append(
                CheckResult(
                    f"metric {metric.id}",
                    Step.PERFORMANCE,
                    Status.FAIL,
                    metric.value,
                    None,
                    f"{metric.label}: p95 {metric.value} ms, target {metric.target:g} ms",
                    Failure(
                        Kind.PERF_TARGET_MISSED,
                        f"{metric.label}: p95 {metric.p95:.0f} ms over {metric.samples} samples, "
                        f"target {metric.target:g} ms.",
                        detail=metric.id,
                        subject=metric.label,
                        evidence={
                            "p50": f"{metric.p50} ms",
                            "p95": f"{metric.p95} ms",
                            "max": f"{metric.max} ms",
                            "target": f"{metric.target:g} ms",
                            "samples": str(metric.samples),
                        },
                    ),
                )
            )
    return checks
