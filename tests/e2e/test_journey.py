"""The real probe against the real reference backend (and raw sockets), one test per fault."""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bot import diagnose, results
from bot.auth import Credentials
from bot.config import build_settings
from bot.probe.journey import probe
from bot.reference.faults import FAULTS, parse_faults
from bot.reference.server import ReferenceServer
from bot.results import Kind, Severity, Status, Verdict
from bot.settings import Settings, TargetsSettings
from tests.configs import QUIET_TARGETS

SECRET = "reference-secret-for-tests-0123456789abcdef"
VERSION = "1111111aaaaaaa"
FAST = {
    "journey": {"event_timeout_s": 1.5, "users": 3},
    "websocket": {"open_timeout_s": 1.5},
    "timeouts": {"connect_s": 1.5, "request_s": 1.5, "run_s": 20},
    "targets": QUIET_TARGETS,  # a fault's kind is the subject, not the machine's speed
}


def _settings(url: str, **overrides: object) -> Settings:
    return build_settings(FAST, {"url": url, "version.expected": VERSION, **overrides})


def _run(settings: Settings, *, secret: str = SECRET):
    outcome = asyncio.run(
        probe(settings, base_url=settings.url or "", credentials=Credentials(secret=secret))
    )
    findings = diagnose.diagnose(outcome.checks, service="ref")
    return outcome, findings


@pytest.fixture
def healthy() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        yield server


def test_probe__healthy_backend_passes_with_every_metric_measured(healthy: ReferenceServer):
    # Every metric measured, none judged on this shared machine (its timing targets live in benchmarks/).
    generous = {f"targets.{metric}": ms for metric, ms in QUIET_TARGETS.items()}
    outcome, findings = _run(_settings(healthy.url, **generous))
    assert findings == ()
    assert results.verdict_for(findings) is Verdict.PASS
    by_id = {(c.id, c.user): c for c in outcome.checks}
    for user in (1, 2, 3):
        for check in ("login", "handshake", "message", "events", "isolation", "answer"):
            assert by_id[(check, user)].status is Status.PASS, (check, user)
    assert by_id[("auth-negative", None)].status is Status.PASS
    assert outcome.serving_version == VERSION
    for metric in outcome.metrics:
        assert metric.status is Status.PASS, metric
        # 3 users, 3 warm health requests (health.latency_samples); the first request and the run's first
        # connection once each, never in the warm figures
        once = {"cold_start_ms": 1, "cold_connect_ms": 1, "handshake_ms": 2}
        assert metric.samples == once.get(metric.id, 3), metric
        assert metric.p50 is not None and metric.p50 > 0, metric


# fault -> (failure kind, severity, fingerprint detail)
EXPECTED = {
    "ws-502": (Kind.WS_UPGRADE_STATUS, Severity.P0, "502"),
    "ws-403": (Kind.WS_AUTH_REJECTED, Severity.P0, "403"),
    "rate-limited": (Kind.RATE_LIMITED, Severity.P0, "429"),
    "subprotocol-none": (Kind.WS_SUBPROTOCOL, Severity.P0, "no-echo"),
    "accept-unauthenticated": (Kind.WS_UNAUTHENTICATED_ACCEPTED, Severity.P0, ""),
    "drop-event:tool_executing": (Kind.EVENT_MISSING, Severity.P0, "tool_executing"),
    "delay:agent_thinking=400": (Kind.PERF_TARGET_MISSED, Severity.P1, "processing_ms"),
    "close-early": (Kind.WS_CLOSED_EARLY, Severity.P0, "agent_completed"),
    "end-at-once": (Kind.WS_CLOSED_EARLY, Severity.P0, "agent_completed"),
    "cross-talk": (Kind.ISOLATION_LEAK, Severity.P0, ""),
    "canned-answer": (Kind.ANSWER_CANNED, Severity.P0, ""),
    "empty-answer": (Kind.ANSWER_EMPTY, Severity.P0, ""),
    "error-event": (Kind.EVENT_ERROR, Severity.P0, "agent_error"),
    "out-of-order": (Kind.EVENT_ORDER, Severity.P0, ""),
    "never-complete": (Kind.TIMEOUT, Severity.P0, "agent_completed"),
    "hang": (Kind.TIMEOUT, Severity.P0, "upgrade"),
    "health-503": (Kind.HTTP_STATUS, Severity.P1, "503"),
    "wrong-service": (Kind.WRONG_SERVICE, Severity.P1, "frontend"),
    "stale-version": (Kind.VERSION_SKEW, Severity.P1, "version"),
    "slow-handshake:300": (Kind.PERF_TARGET_MISSED, Severity.P1, "handshake_ms"),
    "garbage": (Kind.WS_PROTOCOL, Severity.P0, ""),
}


# Faults that only show in a metric: no finding, the figure measured.
MEASURED = {"cold-start:700": "cold_start_ms"}


# Faults that show only in a connection held after the journey (journey.hold_s): tests/e2e/test_cli_realtime.py.
HELD = {"max-age:2000"}


# Faults that show only in a conversation of several turns (journey.turns): tests/e2e/test_stream_turns.py.
CONVERSATION = {"forget-sessions"}


def test_expected__covers_every_fault_the_reference_backend_offers():
    covered = {spec.split(":")[0] for spec in [*EXPECTED, *MEASURED, *HELD, *CONVERSATION]}
    assert covered == {name.split(":")[0] for name in FAULTS}


@pytest.mark.parametrize("fault", sorted(MEASURED))
def test_probe__a_measured_fault_is_a_figure_not_a_finding(fault: str):
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults([fault])) as server:
        outcome, findings = _run(_settings(server.url))
    assert findings == ()
    metric = next(m for m in outcome.metrics if m.id == MEASURED[fault])
    assert metric.value is not None and metric.value >= float(fault.split(":")[1])


PROFILES = ("reference", "user-message", "openai-realtime")
# How the fingerprint detail of a reference event reads in the openai-realtime profile.
REALTIME_DETAILS = {
    "tool_executing": "response.output_text.delta",
    "agent_completed": "response.done",
    "agent_error": "error",
    "no-echo": "negotiation",  # it offers no subprotocol: the fault selects one anyway
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_probe__each_fault_yields_its_kind_and_severity_in_every_profile(fault: str, profile: str):
    kind, severity, detail = EXPECTED[fault]
    overrides: dict[str, object] = {"journey.profile": profile}
    if kind is Kind.PERF_TARGET_MISSED:  # the production target the fault is made to miss
        overrides[f"targets.{detail}"] = TargetsSettings.model_fields[detail].default
    if profile == "openai-realtime":
        detail = REALTIME_DETAILS.get(detail, detail)
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults([fault])) as server:
        _, findings = _run(_settings(server.url, **overrides))
    fingerprint = diagnose.fingerprint("ref", kind, detail)
    assert fingerprint in [f.fingerprint for f in findings], findings
    finding = next(f for f in findings if f.fingerprint == fingerprint)
    assert finding.severity is severity
    assert finding.evidence, "a finding without evidence"
    expected_verdict = Verdict.FAIL if severity is Severity.P0 else Verdict.DEGRADED
    assert results.verdict_for(findings) is expected_verdict
    if severity is Severity.P1:
        assert all(f.severity is Severity.P1 for f in findings), findings


@pytest.mark.parametrize("profile", PROFILES)
def test_probe__healthy_reference_backend_passes_and_verifies_isolation_in_every_profile(profile: str):
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        outcome, findings = _run(_settings(server.url, **{"journey.profile": profile}))
    assert findings == ()
    isolation = [c for c in outcome.checks if c.id == "isolation"]
    assert [c.status for c in isolation] == [Status.PASS] * 3
    how = "verified by nonce" if profile == "openai-realtime" else "named this user"
    assert all(how in c.summary for c in isolation), isolation


def test_probe__wrong_secret_on_a_bare_403_server_cannot_be_told_from_an_unrouted_path(
    healthy: ReferenceServer,
):
    # The reference backend refuses a bad token by closing before accept: the same bare 403 Starlette gives an
    # unknown route, so the diagnosis names both, the unrouted path first.
    _, findings = _run(_settings(healthy.url), secret="not-the-secret-" + "x" * 32)
    assert [f.kind for f in findings] == [Kind.WS_UPGRADE_STATUS]
    assert "probably not routed" in findings[0].observed
    assert "refuses every upgrade before it reads the token" in findings[0].observed


def test_probe__wrong_websocket_path_is_probably_not_routed(healthy: ReferenceServer):
    _, findings = _run(_settings(healthy.url, **{"websocket.path": "/socket"}))
    assert [(f.kind, f.fingerprint) for f in findings] == [
        (Kind.WS_UPGRADE_STATUS, "ref:ws-upgrade-status:403")
    ]
    assert "/socket is probably not routed" in findings[0].observed
    assert findings[0].title.startswith("WebSocket path probably not routed")
    assert "websocket.path" in findings[0].remediation
    assert findings[0].evidence["path that cannot exist"].endswith("HTTP 403, the same answer")


def test_probe__a_valid_token_refused_with_its_own_answer_is_an_auth_rejection():
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["ws-403"])) as server:
        _, findings = _run(_settings(server.url))
    assert [f.kind for f in findings] == [Kind.WS_AUTH_REJECTED]


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A TCP server that accepts connections and never answers a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    sock.close()


def test_probe__server_that_accepts_tcp_and_never_answers_times_out_within_deadlines(silent_listener: str):
    started = time.monotonic()
    _, findings = _run(_settings(silent_listener))
    elapsed = time.monotonic() - started
    kinds = {(f.kind, f.step.value) for f in findings}
    assert (Kind.TIMEOUT, "health") in kinds
    assert (Kind.TIMEOUT, "connect") in kinds
    assert results.verdict_for(findings) is Verdict.FAIL
    # health (1.5 s) + negative check (1.5 s + grace) + users in parallel (1.5 s): far below run_s (20 s)
    assert elapsed < 15


def test_probe__run_deadline_bounds_everything(silent_listener: str):
    settings = build_settings(
        {
            **FAST,
            "timeouts": {"connect_s": 5, "request_s": 5, "run_s": 1},
            "websocket": {"open_timeout_s": 5},
        },
        {"url": silent_listener},
    )
    outcome, findings = _run(settings)
    assert any(c.id == "health" and c.failure and c.failure.kind is Kind.TIMEOUT for c in outcome.checks)
    assert any(f.kind is Kind.TIMEOUT for f in findings)


def test_probe__nothing_listening_is_connect_refused():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    _, findings = _run(_settings(f"http://127.0.0.1:{port}"))
    assert {f.kind for f in findings} >= {Kind.CONNECT_REFUSED}
    assert any(f.severity is Severity.P0 for f in findings)


def test_probe__login_endpoint_mode(healthy: ReferenceServer):
    settings = build_settings({**FAST, "auth": {"mode": "login"}}, {"url": healthy.url})
    outcome = asyncio.run(
        probe(settings, base_url=healthy.url, credentials=Credentials(password="golden-path"))
    )
    assert diagnose.diagnose(outcome.checks, service="ref") == ()
    outcome = asyncio.run(probe(settings, base_url=healthy.url, credentials=Credentials(password="wrong")))
    findings = diagnose.diagnose(outcome.checks, service="ref")
    assert [(f.kind, f.severity) for f in findings] == [(Kind.LOGIN_FAILED, Severity.P0)]
    assert findings[0].evidence["status"] == "401"


def test_probe__load_phase_adds_users_and_samples(healthy: ReferenceServer):
    settings = build_settings(
        {**FAST, "journey": {**FAST["journey"], "users": 2}, "load": {"users": 4}}, {"url": healthy.url}
    )
    outcome, findings = _run(settings)
    assert findings == ()
    assert {c.user for c in outcome.checks if c.id == "answer"} == {1, 2, 3, 4, 5, 6}
    assert next(m for m in outcome.metrics if m.id == "handshake_ms").samples == 5  # 6 but the cold first


def test_probe__tokens_and_secret_echoed_by_the_server_never_reach_the_results():
    """A server that quotes the credentials it got (header, subprotocol, secret) in an error frame."""
    from websockets.asyncio.server import serve

    async def scenario() -> str:
        async def handler(connection) -> None:
            headers = connection.request.headers
            offered = headers.get("Sec-WebSocket-Protocol", "")
            await connection.recv()
            message = f"bad token {headers.get('Authorization')} offered {offered} secret {SECRET}"
            await connection.send(json.dumps({"type": "error", "data": {"message": message}}))
            await connection.wait_closed()

        async with serve(handler, "127.0.0.1", 0, subprotocols=["jwt-auth"]) as server:
            port = server.sockets[0].getsockname()[1]
            settings = _settings(f"http://127.0.0.1:{port}")
            outcome = await probe(
                settings, base_url=settings.url or "", credentials=Credentials(secret=SECRET)
            )
        findings = diagnose.diagnose(outcome.checks, service="echo")
        assert Kind.EVENT_ERROR in {f.kind for f in findings}
        return repr(outcome.checks)

    dumped = asyncio.run(scenario())
    assert "[redacted]" in dumped
    assert SECRET not in dumped
    assert "Bearer ey" not in dumped and "jwt.ey" not in dumped


def test_probe__subprotocol_echo_can_be_waived_for_non_browser_clients():
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["subprotocol-none"])) as server:
        strict, _ = _run(_settings(server.url))
        waived = build_settings(
            {**FAST, "websocket": {"open_timeout_s": 1.5, "require_subprotocol_echo": False}},
            {"url": server.url, "version.expected": VERSION},
        )
        _, findings = _run(waived)
    assert findings == ()
    assert any(c.failure and c.failure.kind is Kind.WS_SUBPROTOCOL for c in strict.checks)


def test_version_check__any_version_like_field_may_match():
    from bot.probe.http_probe import version_check

    check, serving = version_check(expected="dev", serving=("1.4.2", "dev"), field="version")
    assert check is not None and check.status is Status.PASS and serving == "dev"
    check, _ = version_check(expected="abcdef1234567", serving=("abcdef1",), field="version")
    assert check is not None and check.status is Status.PASS
    check, serving = version_check(expected="abcdef1234567", serving=("1.4.2", "0000000"), field="version")
    assert check is not None and check.failure is not None and check.failure.kind is Kind.VERSION_SKEW
    check, _ = version_check(expected="abc", serving=(), field="version")
    assert check is not None and check.status is Status.NOT_VERIFIED


def test_probe__each_event_arrives_after_the_server_sent_it_on_the_shared_monotonic_clock():
    from bot.reference.backend import Stamps

    stamps = Stamps()
    with ReferenceServer(secret=SECRET, version=VERSION, stamps=stamps) as server:
        outcome, findings = _run(_settings(server.url))
    assert findings == ()
    assert len(outcome.samples) == 3 and len(stamps.sent) == 3 and len(stamps.completed) == 3
    for sample in outcome.samples:
        (thread,) = [t for t in stamps.sent if t.endswith(f"-{sample.user}")]
        server_sent = stamps.sent[thread]
        assert list(sample.events) == list(server_sent)  # all five, in the order sent
        # Relative to the message: the client sent before the server received, and the server sent each event
        # before the client recorded its arrival.
        assert all(sample.events[name] >= server_sent[name] for name in server_sent)
        # Absolute, on the one CLOCK_MONOTONIC: every arrival after the server's send, and within a second of it.
        assert sample.message_sent_at is not None
        for name, at in stamps.sent_at[thread].items():
            arrived = sample.message_sent_at + sample.events[name] / 1000
            assert at <= arrived < at + 1.0


def test_probe__users_who_never_started_before_the_run_deadline_are_not_blamed():
    from tests.standins.hostile_http import RawHTTPServer, silent

    with RawHTTPServer({"/health": silent(), "/ws": silent()}) as server:
        settings = build_settings(
            {"journey": {"users": 2}, "timeouts": {"run_s": 1}, "health": {"timeout_s": 30}},
            {"url": server.url},
        )
        outcome, findings = _run(settings)
    # Health used the whole run: it is a finding, and so are the journeys that never ran (a configuration problem
    # at run_s 1 s: P1, the gate still fails); no user step that never ran is failed.
    assert [(f.kind, f.step.value, f.severity) for f in findings] == [
        (Kind.TIMEOUT, "health", Severity.P1),
        (Kind.JOURNEYS_INCOMPLETE, "login", Severity.P1),
    ]
    assert "0 of 2 journeys ran to the end; 2 were never started" in findings[1].observed
    assert results.verdict_for(findings) is Verdict.FAIL
    user_checks = [c for c in outcome.checks if c.user is not None]
    assert user_checks and all(c.status is Status.SKIP for c in user_checks)
    assert all("not started" in c.summary for c in user_checks)


def test_probe__events_each_within_the_event_timeout_pass_however_long_the_stream_and_a_stall_counts_from_the_last():
    # Three gaps of 0.7 s with a 1 s event timeout: 2.1 s of stream, no gap over the limit (the timer set at the
    # message fires at 1 s and the wait goes on, since an event moved the deadline meanwhile).
    steady = [f"delay:{name}=700" for name in ("agent_thinking", "tool_executing", "tool_completed")]
    tight = {"journey.event_timeout_s": 1.0, "journey.users": 1, "journey.sla_s": 30}
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(steady)) as server:
        outcome, findings = _run(_settings(server.url, **tight))
    assert findings == ()
    assert {c.id: c.status for c in outcome.checks}["events"] is Status.PASS
    # agent_thinking 0.7 s late, then tool_executing 3 s late: the stall is judged 1 s after agent_thinking, not
    # 1 s after the message (too early) nor at the SLA.
    stall = ["delay:agent_thinking=700", "delay:tool_executing=3000"]
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(stall)) as server:
        started = time.monotonic()
        outcome, findings = _run(_settings(server.url, **tight))
        took = time.monotonic() - started
    assert [f.kind for f in findings] == [Kind.TIMEOUT]
    events = next(c for c in outcome.checks if c.id == "events")
    assert (
        events.failure is not None
        and "No `tool_executing` within 1 s of `agent_thinking`" in events.failure.message
    )
    assert 1.6 <= took < 6.0  # never before agent_thinking + 1 s; long before the SLA (30 s)
