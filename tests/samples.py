"""Sample runs for tests: healthy, each P0 kind, degraded-only and without Cloud Run facts.

Findings and impact come from the real ``bot.diagnose.diagnose`` and ``bot.impact.assess``, so the texts are the
ones users see; the checks, evidence and timings imitate what the probe records against a FastAPI/uvicorn agent
backend on Cloud Run. Everything is fixed (times, ids, durations) so rendered reports are stable snapshots.

Usage: ``samples.run("healthy")``, ``samples.run("ws-auth-rejected")``; ``samples.NAMES`` lists them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bot.diagnose import diagnose
from bot.impact import assess
from bot.results import (
    JOURNEY_STEPS,
    CheckResult,
    Failure,
    Kind,
    Metric,
    Run,
    Status,
    Step,
    Target,
    TrafficAction,
    verdict_for,
)
from bot.settings import ImpactSettings, TargetsSettings

SERVICE = "chat-backend"
USERS = 5
RUN_ID = "9391234567-1"
STARTED_AT = "2025-06-03T14:21:07Z"
FINISHED_AT = "2025-06-03T14:21:11Z"
RUN_URL = "https://github.com/acme/chat/actions/runs/9391234567"
COMMIT = "4f2a9c1e0b7d3a6f58c2e1d9a0b4c7e6f1a2b3c4"
TAG_URL = "https://pr-42---chat-backend-7x2kq4ab3c-ew.a.run.app"
WS_URL = TAG_URL.replace("https://", "wss://") + "/ws"
IMPACT = ImpactSettings(arr_at_risk=1_200_000, users_description="customers")
TARGETS = TargetsSettings()

CLOUD_RUN_TARGET = Target(
    url=TAG_URL,
    service=SERVICE,
    project="acme-prod",
    region="europe-west1",
    revision="chat-backend-00042-xoz",
    revision_url=TAG_URL,
    image="europe-west1-docker.pkg.dev/acme-prod/backend/chat-backend:pr-42",
    digest="sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    created="2025-06-03T14:17:52.481913Z",
    traffic_percent=0,
    previous_revision="chat-backend-00041-pim",
    labels={"commit-sha": COMMIT[:7]},
    expected_version=COMMIT[:7],
    serving_version=COMMIT[:7],
)
URL_ONLY_TARGET = Target(url="https://chat.staging.acme.dev", service="chat.staging.acme.dev")

HEADERS_403 = (
    "content-type: text/plain; charset=utf-8\n"
    "date: Tue, 03 Jun 2025 14:21:08 GMT\n"
    "server: Google Frontend\n"
    "content-length: 0"
)
BODY_502 = (
    "<html><head>\n"
    '<meta http-equiv="content-type" content="text/html;charset=utf-8">\n'
    "<title>502 Server Error</title>\n"
    "</head>\n"
    "<body text=#000000 bgcolor=#ffffff>\n"
    "<h1>Error: Server Error</h1>\n"
    "<h2>The server encountered a temporary error and could not complete your request."
    "<p>Please try again in 30 seconds.</h2>\n"
    "<h2></h2>\n"
    "</body></html>"
)
OFFERED = "jwt-auth, jwt.<token: 412 characters, redacted>"
EVENTS = "agent_started, agent_thinking, tool_executing, tool_completed, agent_completed"

# Per-user timings in milliseconds: (login, handshake, send, events, answer).
TIMINGS = {
    1: (3.1, 31.4, 1.2, 512.0, 0.4),
    2: (2.8, 35.2, 1.1, 548.3, 0.3),
    3: (3.4, 38.9, 1.4, 601.7, 0.5),
    4: (2.9, 41.3, 1.0, 577.9, 0.4),
    5: (3.0, 44.6, 1.3, 633.2, 0.4),
}
STEP_IDS = {Step.LOGIN: "login", Step.CONNECT: "handshake", Step.MESSAGE: "send", Step.AGENT: "events",
            Step.ANSWER: "answer"}  # fmt: skip
PASS_SUMMARIES = {
    Step.LOGIN: "minted an HS256 token for golden-path-user-{user}",
    Step.CONNECT: "connected; the server selected subprotocol jwt-auth",
    Step.MESSAGE: "sent start_agent",
    Step.AGENT: "received all 5 events in order",
    Step.ANSWER: "answer of 31 characters",
}


def _journey(
    fail_at: Step | None = None, failure: Callable[[int], Failure | None] | None = None
) -> list[CheckResult]:
    """Every user's login -> connect -> message -> agent -> answer; from ``fail_at`` on, failed then not run."""
    checks = []
    for user, timings in TIMINGS.items():
        failed_step: Step | None = None
        for step, duration in zip(JOURNEY_STEPS, timings, strict=True):
            check_id = STEP_IDS[step]
            failed = failure(user) if failure is not None and step is fail_at else None
            if failed_step is not None:
                checks.append(
                    CheckResult(
                        check_id, step, Status.SKIP, user=user, summary=f"not run: {failed_step} failed"
                    )
                )
            elif failed is not None:
                failed_step = step
                checks.append(
                    CheckResult(check_id, step, Status.FAIL, duration, user, failed.message, failure=failed)
                )
            else:
                summary = PASS_SUMMARIES[step].format(user=user)
                checks.append(CheckResult(check_id, step, Status.PASS, duration, user, summary))
    return checks


def _service_checks(*, cloud_run: bool = True) -> list[CheckResult]:
    checks = []
    if cloud_run:
        checks.append(
            CheckResult("revision-ready", Step.REVISION, Status.PASS, 1840.0, None, "the revision is Ready")
        )
    checks.append(
        CheckResult(
            "health", Step.HEALTH, Status.PASS, 38.2, None, 'GET /health answered 200 {"status": "healthy"}'
        )
    )
    if cloud_run:
        checks.append(CheckResult("version", Step.HEALTH, Status.PASS, None, None, f"serving {COMMIT[:7]}"))
    checks.append(
        CheckResult(
            "unauthenticated", Step.CONNECT, Status.PASS, 12.5, None, "refused without a token (HTTP 403)"
        )
    )
    return checks


def _isolation(status: Status = Status.PASS) -> CheckResult:
    summary = {
        Status.PASS: "5 users received only their own events",
        Status.SKIP: "not run: the journey did not complete",
        Status.FAIL: "",
        Status.NOT_VERIFIED: "not verified: the events name no owner (journey.owner) and no sent frame carries a {nonce}",
    }[status]
    return CheckResult("isolation", Step.ISOLATION, status, None, None, summary)


def _sla(status: Status = Status.PASS) -> CheckResult:
    summary = (
        "slowest journey 680 ms (SLA 45 s)" if status is Status.PASS else "not run: no journey completed"
    )
    return CheckResult("sla", Step.PERFORMANCE, status, None, None, summary)


def _metrics(
    *, journey: bool = True, handshake: list[float] | None = None, health: bool = True
) -> tuple[Metric, ...]:
    connected = journey or handshake is not None
    handshakes = handshake if handshake is not None else [t[1] for t in TIMINGS.values()]
    return (
        Metric.from_samples(
            id="api_ms",
            label="Health endpoint",
            unit="ms",
            samples=[38.2] if health else [],
            target=TARGETS.api_ms,
        ),
        Metric.from_samples(
            id="handshake_ms",
            label="WebSocket handshake",
            unit="ms",
            samples=handshakes if connected else [],
            target=TARGETS.handshake_ms,
        ),
        Metric.from_samples(
            id="agent_startup_ms",
            label="Agent startup (first event)",
            unit="ms",
            samples=[121.5, 134.0, 142.8, 150.2, 171.9] if journey else [],
            target=TARGETS.agent_startup_ms,
        ),
        Metric.from_samples(
            id="event_gap_ms",
            label="Time between events",
            unit="ms",
            samples=[38.0, 52.4, 61.0, 75.3, 96.1] if journey else [],
            target=None,
        ),
        Metric.from_samples(
            id="processing_ms",
            label="Processing (to agent_completed)",
            unit="ms",
            samples=[98.4, 112.0, 131.7, 140.3, 162.5] if journey else [],
            target=TARGETS.processing_ms,
        ),
        Metric.from_samples(
            id="total_ms",
            label="Whole journey",
            unit="ms",
            samples=[548.1, 588.5, 645.9, 625.2, 680.1] if journey else [],
            target=TARGETS.total_ms,
        ),
    )


def _run(
    checks: list[CheckResult],
    *,
    metrics: tuple[Metric, ...],
    target: Target = CLOUD_RUN_TARGET,
    impact: ImpactSettings = IMPACT,
    traffic: tuple[TrafficAction, ...] = (),
) -> Run:
    findings = diagnose(checks, service=target.service)
    return Run(
        run_id=RUN_ID,
        started_at=STARTED_AT,
        finished_at=FINISHED_AT,
        duration_ms=4212.0,
        verdict=verdict_for(findings),
        target=target,
        checks=tuple(checks),
        metrics=metrics,
        findings=findings,
        impact=assess(findings, settings=impact, journey_name="AI chat"),
        users=USERS,
        commit=COMMIT,
        run_url=RUN_URL,
        tool_version="0.1.0",
        traffic_actions=traffic,
    )


def healthy() -> Run:
    checks = [*_service_checks(), *_journey(), _isolation(), _sla()]
    promote = TrafficAction(
        "promote", CLOUD_RUN_TARGET.revision or "", 100, True, "100% of traffic now served"
    )
    return _run(checks, metrics=_metrics(), traffic=(promote,))


def no_cloud_run() -> Run:
    """Tested by URL (``--url``): no revision, image or traffic facts, and no revenue configured."""
    checks = [*_service_checks(cloud_run=False), *_journey(), _isolation(), _sla()]
    return _run(checks, metrics=_metrics(), target=URL_ONLY_TARGET, impact=ImpactSettings())


def isolation_not_verified() -> Run:
    """Everything passed, but the events name no owner and no nonce was sent: isolation could not be checked."""
    checks = [*_service_checks(), *_journey(), _isolation(Status.NOT_VERIFIED), _sla()]
    return _run(checks, metrics=_metrics())


def degraded() -> Run:
    """The journey works; the URL serves the previous commit and the handshake is slower than its target."""
    stale = "9c0d3b2"
    checks = _service_checks()
    checks[2] = CheckResult(
        "version",
        Step.HEALTH,
        Status.FAIL,
        None,
        None,
        f"serving {stale}, expected {COMMIT[:7]}",
        Failure(
            Kind.VERSION_SKEW,
            f"The health body reports version {stale}; the expected commit is {COMMIT[:7]}.",
            evidence={
                "expected": COMMIT[:7],
                "serving": stale,
                "health_body": f'{{"status": "healthy", "version": "{stale}"}}',
            },
        ),
    )
    slow = [61.2, 74.8, 80.1, 93.5, 118.9]
    perf = CheckResult(
        "perf:handshake_ms",
        Step.PERFORMANCE,
        Status.FAIL,
        None,
        None,
        "WebSocket handshake p95 119 ms, target 50 ms",
        Failure(
            Kind.PERF_TARGET_MISSED,
            "WebSocket handshake p95 is 118.9 ms against a target of 50 ms.",
            detail="handshake_ms",
            evidence={"samples_ms": ", ".join(f"{s:g}" for s in slow), "target_ms": "50"},
        ),
    )
    target = replace(CLOUD_RUN_TARGET, serving_version=stale)
    return _run(
        [*checks, *_journey(), _isolation(), _sla(), perf], metrics=_metrics(handshake=slow), target=target
    )


def _connect_failure(failure: Failure) -> Run:
    checks = _service_checks()
    checks[-1] = replace(
        checks[-1], status=Status.SKIP, summary="not judged: every upgrade fails", duration_ms=None
    )
    journey = _journey(Step.CONNECT, lambda user: failure)
    return _run(
        [*checks, *journey, _isolation(Status.SKIP), _sla(Status.SKIP)], metrics=_metrics(journey=False)
    )


def _agent_failure(step: Step, failure: Failure, users: tuple[int, ...] = tuple(TIMINGS)) -> Run:
    journey = _journey(step, lambda user: failure if user in users else None)
    return _run(
        [*_service_checks(), *journey, _isolation(Status.SKIP), _sla(Status.SKIP)],
        metrics=_metrics(journey=False, handshake=[t[1] for t in TIMINGS.values()]),
    )


def ws_upgrade_status() -> Run:
    return _connect_failure(
        Failure(
            Kind.WS_UPGRADE_STATUS,
            "The WebSocket upgrade answered HTTP 502.",
            detail="502",
            evidence={
                "url": WS_URL,
                "status": "502",
                "response_headers": HEADERS_403.replace("text/plain", "text/html").replace(
                    "content-length: 0", f"content-length: {len(BODY_502)}"
                ),
                "body": BODY_502,
            },
        )
    )


def ws_auth_rejected() -> Run:
    return _connect_failure(
        Failure(
            Kind.WS_AUTH_REJECTED,
            "The server refused the upgrade with HTTP 403.",
            detail="403",
            evidence={
                "url": WS_URL,
                "status": "403",
                "offered_subprotocols": OFFERED,
                "response_headers": HEADERS_403,
                "body": "",
            },
        )
    )


def ws_subprotocol() -> Run:
    return _connect_failure(
        Failure(
            Kind.WS_SUBPROTOCOL,
            "The server accepted the connection but selected none of the offered subprotocols.",
            evidence={
                "url": WS_URL,
                "status": "101",
                "offered_subprotocols": OFFERED,
                "selected_subprotocol": "(none)",
            },
        )
    )


def ws_protocol() -> Run:
    return _agent_failure(
        Step.AGENT,
        Failure(
            Kind.WS_PROTOCOL,
            "A frame after agent_started is not JSON.",
            evidence={"frame": "Internal Server Error", "after_event": "agent_started"},
        ),
    )


def ws_closed_early() -> Run:
    return _agent_failure(
        Step.AGENT,
        Failure(
            Kind.WS_CLOSED_EARLY,
            'The server closed the connection with code 1000 ("main cleanup") after agent_thinking.',
            detail="agent_completed",
            evidence={
                "close_code": "1000",
                "close_reason": "main cleanup",
                "events_received": "connection_established, agent_started, agent_thinking",
                "elapsed_ms": "212",
            },
        ),
    )


def ws_unauthenticated_accepted() -> Run:
    checks = _service_checks()
    checks[-1] = CheckResult(
        "unauthenticated",
        Step.CONNECT,
        Status.FAIL,
        14.1,
        None,
        "accepted without a token",
        Failure(
            Kind.WS_UNAUTHENTICATED_ACCEPTED,
            "A connection without any token was accepted (HTTP 101) and sent a welcome frame.",
            evidence={
                "url": WS_URL,
                "status": "101",
                "sent": "no Authorization header, no subprotocol",
                "first_frame": '{"type": "connection_established", "user_id": "anonymous"}',
            },
        ),
    )
    return _run([*checks, *_journey(), _isolation(), _sla()], metrics=_metrics())


def login_failed() -> Run:
    failure = Failure(
        Kind.LOGIN_FAILED,
        "POST /auth/login answered HTTP 500.",
        evidence={
            "url": TAG_URL + "/auth/login",
            "status": "500",
            "body": '{"detail": "database unavailable"}',
        },
    )
    checks = _service_checks()
    checks[-1] = replace(checks[-1], status=Status.SKIP, summary="not run: no token", duration_ms=None)
    journey = _journey(Step.LOGIN, lambda user: failure)
    return _run(
        [*checks, *journey, _isolation(Status.SKIP), _sla(Status.SKIP)], metrics=_metrics(journey=False)
    )


def event_missing() -> Run:
    return _agent_failure(
        Step.AGENT,
        Failure(
            Kind.EVENT_MISSING,
            "agent_completed arrived without tool_completed.",
            detail="tool_completed",
            evidence={
                "expected": EVENTS,
                "received": "agent_started, agent_thinking, tool_executing, agent_completed",
            },
        ),
    )


def stalled(run_id: str = RUN_ID) -> Run:
    """Only the completion event arrives for every user: four events missing after one stall."""
    base = event_missing()
    checks = [c for c in base.checks if c.failure is None]
    for user in range(1, USERS + 1):
        for name in ("agent_started", "agent_thinking", "tool_executing", "tool_completed"):
            failure = Failure(Kind.EVENT_MISSING, f"agent_completed arrived without {name}.", detail=name)
            checks.append(CheckResult(f"event {name}", Step.AGENT, Status.FAIL, None, user, "", failure))
    findings = diagnose(checks, service=base.target.service)
    return replace(
        base, run_id=run_id, checks=tuple(checks), findings=findings, verdict=verdict_for(findings)
    )


def event_order() -> Run:
    return _agent_failure(
        Step.AGENT,
        Failure(
            Kind.EVENT_ORDER,
            "tool_completed arrived before tool_executing.",
            evidence={
                "expected": EVENTS,
                "received": "agent_started, agent_thinking, tool_completed, tool_executing, agent_completed",
            },
        ),
        users=(2, 5),
    )


def event_error() -> Run:
    return _agent_failure(
        Step.AGENT,
        Failure(
            Kind.EVENT_ERROR,
            "The agent sent agent_error after agent_thinking.",
            detail="agent_error",
            evidence={
                "frame": '{"type": "agent_error", "payload": {"error": "openai.AuthenticationError: Error code: 401 - '
                'Incorrect API key provided: sk-proj-****************T3kA", "run_id": "run-1"}}',
                "events_received": "agent_started, agent_thinking, agent_error",
            },
        ),
    )


def answer_empty() -> Run:
    return _agent_failure(
        Step.ANSWER,
        Failure(
            Kind.ANSWER_EMPTY,
            "agent_completed carried no answer in any of result, final_response, response, answer, content.",
            evidence={"frame": '{"type": "agent_completed", "data": {"result": "", "run_id": "run-1"}}'},
        ),
    )


def answer_canned() -> Run:
    return _agent_failure(
        Step.ANSWER,
        Failure(
            Kind.ANSWER_CANNED,
            "The answer matches the fallback pattern ^Agent response for:.",
            evidence={
                "answer": "Agent response for: What is 2 + 2? Answer in one sentence.",
                "pattern": "^Agent response for:",
            },
        ),
    )


def isolation_leak() -> Run:
    leak = CheckResult(
        "isolation",
        Step.ISOLATION,
        Status.FAIL,
        None,
        2,
        "user 2 received an event of user 4",
        Failure(
            Kind.ISOLATION_LEAK,
            "User 2 received an agent_thinking event that belongs to user 4.",
            evidence={
                "frame": '{"type": "agent_thinking", "user_id": "golden-path-user-4", "run_id": "run-4", '
                '"data": {"thought": "Adding 2 and 2"}}',
                "expected_user_id": "golden-path-user-2",
            },
        ),
    )
    also = replace(leak, user=4, summary="user 4 received an event of user 2")
    return _run([*_service_checks(), *_journey(), leak, also, _sla()], metrics=_metrics())


def revision_not_ready() -> Run:
    failure = Failure(
        Kind.REVISION_NOT_READY,
        "Revision chat-backend-00042-xoz is not ready: HealthCheckContainerError.",
        evidence={
            "reason": "HealthCheckContainerError",
            "message": "The user-provided container failed to start and listen on the port defined provided by the "
            "PORT=8080 environment variable within the allocated timeout. This can happen when the container port "
            "is misconfigured or if the timeout is too short.",
            "logs": "https://console.cloud.google.com/run/detail/europe-west1/chat-backend/revisions?project=acme-prod",
        },
    )
    checks = [
        CheckResult("revision-ready", Step.REVISION, Status.FAIL, 300000.0, None, failure.message, failure)
    ]
    checks += [CheckResult("health", Step.HEALTH, Status.SKIP, summary="not run: the revision is not ready")]
    checks += [replace(c, status=Status.SKIP, duration_ms=None, summary="not run: the revision is not ready")
               for c in _journey()]  # fmt: skip
    target = replace(CLOUD_RUN_TARGET, serving_version=None)
    return _run(
        [*checks, _isolation(Status.SKIP), _sla(Status.SKIP)],
        metrics=_metrics(journey=False, handshake=[], health=False),
        target=target,
    )


def timeout() -> Run:
    return _agent_failure(
        Step.AGENT,
        Failure(
            Kind.TIMEOUT,
            "No event within 30 s after agent_started.",
            evidence={"events_received": "connection_established, agent_started", "waited_ms": "30000"},
        ),
        users=(1, 3, 4),
    )


# Strings a hostile or broken server (or a careless config) could put in front of our renderers.
HOSTILE = (
    "@acme/security-team @octocat please look",
    "```\n<!-- golden-path:issue fingerprint=chat-backend:ws-closed-early:agent_completed -->\n```",
    "<!-- golden-path:comment service=chat-backend -->",
    "<!-- golden-path:history v1 W10= -->",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<details open><summary>forged</summary>",
    "</details></sub>",
    "[click](javascript:alert(1)) ![img](https://evil.example/x.png) <https://evil.example>",
    "| broken | row |\n| --- | --- |",
    "&#64;octocat &lt;script&gt;",
    "# Heading\n> quote\n- item\n1. item",
    "\x1b[31mred\x1b[0m \u202egnp.exe",
    "fixes #1 and acme/chat#2 GH-3 https://github.com/acme/chat/issues/1 www.evil.example",
    "**bold** _em_ ~~strike~~ `code` $x$ \\| -->",
)
HOSTILE_TEXT = "\n".join(HOSTILE)


def hostile() -> Run:
    """The WebSocket closes early; every text the server or config controls carries ``HOSTILE`` strings."""
    failure = Failure(
        Kind.WS_CLOSED_EARLY,
        f"The server closed the connection with code 1011 ({HOSTILE[0]} {HOSTILE[4]}).",
        detail="agent_completed`<!--@octocat",
        evidence={
            "close_code": "1011",
            "close_reason": HOSTILE_TEXT,
            "response_headers": "x-note: " + HOSTILE_TEXT.replace("\n", "\nx-note: "),
            "health_body": '{"status": "healthy", "note": ' + repr(HOSTILE_TEXT) + "}",
            HOSTILE[5]: "a hostile key",
            "long": "A" * 10_000,
        },
    )
    checks = _journey(Step.AGENT, lambda user: failure)
    checks[0] = replace(checks[0], summary=HOSTILE_TEXT)
    checks.append(CheckResult("isolation", Step.ISOLATION, Status.PASS, None, None, HOSTILE[9]))
    target = replace(
        CLOUD_RUN_TARGET,
        revision="chat-backend-00042-xoz`@octocat",
        serving_version=HOSTILE[1],
        warnings=(HOSTILE_TEXT,),
    )
    traffic = (TrafficAction("rollback", "chat-backend-00041-pim", 100, False, HOSTILE_TEXT),)
    impact = ImpactSettings(
        arr_at_risk=1_200_000, journey="@acme/sales <b>chat</b>", users_description=HOSTILE[8]
    )
    run = _run(
        [*_service_checks(), *checks, _sla(Status.SKIP)],
        metrics=_metrics(),
        target=target,
        impact=impact,
        traffic=traffic,
    )
    return replace(run, tool_version="0.1.0 <script>", run_url="javascript:alert(1)")


# Each kind that blocks the golden path (P0), with the sample that shows it.
P0_SAMPLES: dict[Kind, Callable[[], Run]] = {
    Kind.REVISION_NOT_READY: revision_not_ready,
    Kind.LOGIN_FAILED: login_failed,
    Kind.WS_UPGRADE_STATUS: ws_upgrade_status,
    Kind.WS_AUTH_REJECTED: ws_auth_rejected,
    Kind.WS_SUBPROTOCOL: ws_subprotocol,
    Kind.WS_UNAUTHENTICATED_ACCEPTED: ws_unauthenticated_accepted,
    Kind.WS_PROTOCOL: ws_protocol,
    Kind.WS_CLOSED_EARLY: ws_closed_early,
    Kind.TIMEOUT: timeout,
    Kind.EVENT_MISSING: event_missing,
    Kind.EVENT_ORDER: event_order,
    Kind.EVENT_ERROR: event_error,
    Kind.ANSWER_EMPTY: answer_empty,
    Kind.ANSWER_CANNED: answer_canned,
    Kind.ISOLATION_LEAK: isolation_leak,
}

SAMPLES: dict[str, Callable[[], Run]] = {
    "healthy": healthy,
    "degraded": degraded,
    "no-cloud-run": no_cloud_run,
    "isolation-not-verified": isolation_not_verified,
    **{kind.value: build for kind, build in P0_SAMPLES.items()},
}
NAMES = tuple(SAMPLES)


def run(name: str) -> Run:
    """The sample run called ``name`` (see ``NAMES``)."""
    return SAMPLES[name]()


# -- the revision's own logs (bot/server_logs.py) ---------------------------------------------------------------------

TRACE_IDS = {user: f"{user:x}" * 32 for user in range(0, USERS + 1)}
LOG_EXPLORER = (
    "https://console.cloud.google.com/logs/query;query=resource.type%3D%22cloud_run_revision%22?project=acme"
)


def server_logs(*, example: str = "Exception in ASGI application", details: str = "") -> Run:
    """The 502 upgrade with what the revision logged: a traceback group tied by trace, a warning tied by time,
    and the failed upgrade's request log beside the client's view."""
    from bot.results import FindingLogs, LogGroup, RequestLog, ServerLogs, UserTrace

    base = ws_upgrade_status()
    details = details or (
        'Traceback (most recent call last):\n  File "/app/main.py", line 88, in websocket_endpoint\n'
        "    session = await agent_pool.acquire(timeout=1.5)\nTimeoutError: agent pool 3f2a9c1d7e exhausted"
    )
    groups = (
        LogGroup("Exception in ASGI application … TimeoutError: agent pool <id> exhausted", "ERROR", USERS,
                 "2025-06-03T14:21:08.412Z", example, details, (TRACE_IDS[1],), "trace"),
        LogGroup("WARNING redis pool at <n>% (<n>/<n>)", "WARNING", 3, "2025-06-03T14:21:07.950Z",
                 "WARNING redis pool at 92% (46/50)", "", (), "time"),
    )  # fmt: skip
    requests = tuple(
        RequestLog(
            TRACE_IDS[user], user, "GET", WS_URL, 502, 1.3 + user, "2025-06-03T14:21:08.410Z", "HTTP 502"
        )
        for user in (1, 2)
    )
    logs = ServerLogs(
        status="read",
        message="Read 14 entries of revision chat-backend-00042-pr in 2 calls; 2 groups tied to findings.",
        window_start="2025-06-03T14:21:02.000Z",
        window_end="2025-06-03T14:21:17.000Z",
        explorer_url=LOG_EXPLORER,
        api_calls=2,
        entries=14,
        groups=groups,
        findings=(FindingLogs(base.findings[0].fingerprint, LOG_EXPLORER, groups, requests),),
    )
    traces = tuple(UserTrace(user, trace, "2025-06-03T14:21:07.901Z") for user, trace in TRACE_IDS.items())
    return replace(base, traces=traces, logs=logs)


def server_logs_denied() -> Run:
    from bot.results import ServerLogs

    message = (
        "Server logs were not read: Cloud Logging refused to list entries (HTTP 403: Permission "
        "'logging.logEntries.list' denied on resource (or it may not exist).): grant roles/logging.viewer on "
        "project acme to the identity this job runs as."
    )
    return replace(ws_upgrade_status(), logs=ServerLogs(status="denied", message=message))


def hostile_logs() -> Run:
    """Log text is the server's: every hostile string in a group's example, its traceback and a request URL."""
    run = server_logs(example=HOSTILE_TEXT.replace("\n", " "), details=HOSTILE_TEXT)
    assert run.logs is not None
    section = run.logs.findings[0]
    request = replace(section.requests[0], url=HOSTILE_TEXT, client_view=HOSTILE_TEXT)
    section = replace(section, requests=(request,))
    return replace(run, logs=replace(run.logs, findings=(section,), message=HOSTILE_TEXT))
