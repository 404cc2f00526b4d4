"""The probe against backends written the way their communities write them, configured from the README's examples.

A GraphQL subscription server (strawberry-graphql, graphql-transport-ws, the token in connection_init), a FastAPI
WebSocket taking its token as a query parameter at ``/v1/realtime?model=...``, and an OAuth2 token service in its
own process (form-encoded client credentials) in front of a chat backend. Each config is the README's worked
example for that protocol, read from the README, so the documentation is what is tested.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import diagnose, expressions
from bot.auth import Credentials, parse_users
from bot.cli import main
from bot.config import build_settings
from bot.probe.journey import ProbeOutcome, probe
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.results import CheckResult, Kind, Status
from bot.settings import Settings
from tests.configs import QUIET_TARGETS, merged, readme_example
from tests.standins import fastapi_realtime, graphql_chat
from tests.standins.asgi import AsgiProcess, AsgiServer

SECRET = "protocol-tests-secret-0123456789abcdefghijkl"
FAST = {
    "journey": {"users": 3, "event_timeout_s": 1.5},
    "websocket": {"open_timeout_s": 2},
    "timeouts": {"connect_s": 2, "request_s": 2, "run_s": 20},
    "targets": QUIET_TARGETS,
}


def settings_for(title: str, url: str, **extra: Any) -> Settings:
    config = merged(merged(readme_example(title), FAST), extra)
    config.pop("url", None)
    return build_settings(config, {"url": url})


def run(settings: Settings, credentials: Credentials) -> tuple[ProbeOutcome, list[str]]:
    outcome = asyncio.run(probe(settings, base_url=settings.url or "", credentials=credentials))
    findings = diagnose.diagnose(outcome.checks, service="svc")
    return outcome, [f.fingerprint for f in findings]


def probe_example(title: str, app: Any, **extra: Any) -> tuple[ProbeOutcome, list[str]]:
    """The README's example ``title`` (``extra`` config merged in) probing ``app``, an ASGI app on 127.0.0.1."""
    with AsgiServer(app) as server:
        return run(settings_for(title, server.url, **extra), Credentials(secret=SECRET))


def checks(outcome: ProbeOutcome, check_id: str) -> list[CheckResult]:
    return [c for c in outcome.checks if c.id == check_id]


# -- GraphQL over WebSocket (strawberry) -------------------------------------------------------------------------

GRAPHQL = "Example: GraphQL subscriptions (graphql-transport-ws)"


def test_probe__graphql_subscription_server_passes_with_the_token_in_connection_init():
    outcome, findings = probe_example(GRAPHQL, graphql_chat.create_app(secret=SECRET))
    assert findings == []
    for check_id in ("login", "handshake", "message", "events", "isolation", "answer"):
        assert [c.status for c in checks(outcome, check_id)] == [Status.PASS] * 3, check_id
    answers = [c.summary for c in checks(outcome, "answer")]
    assert all("2 + 2 = 4" in a for a in answers), answers
    negative = checks(outcome, "auth-negative")[0]  # anonymous connection_init refused as the protocol says
    assert (negative.status, negative.summary) == (
        Status.PASS,
        "refused without a token (close 4403 after `connection_init`)",
    )


GRAPHQL_FAULTS = {
    "broken-auth": "svc:ws-auth-rejected:4403",  # strawberry's refusal at connection_init
    "stall": "svc:timeout:done",
    "canned": "svc:answer-canned",
    "empty": "svc:answer-empty",
    "cross-talk": "svc:isolation-leak",
    "close-after-accept": "svc:ws-closed-early:done",
    "end-early": "svc:event-missing:done",  # `complete` without `done`: at once, not a timeout
    "anonymous": "svc:ws-unauthenticated-accepted",  # acknowledged without a token, then served
    "error": "svc:event-error:error",  # the resolver raised: a `next` carrying `errors`, then `complete`
}


@pytest.mark.parametrize("fault", sorted(GRAPHQL_FAULTS))
def test_probe__graphql_fault_gives_its_own_kind(fault: str):
    _, findings = probe_example(GRAPHQL, graphql_chat.create_app(secret=SECRET, fault=fault))
    assert GRAPHQL_FAULTS[fault] in findings, findings
    if fault != "anonymous":
        assert "svc:ws-unauthenticated-accepted" not in findings


def test_probe__graphql_stream_ended_without_done_is_missing_at_once_with_what_arrived():
    outcome, findings = probe_example(
        GRAPHQL,
        graphql_chat.create_app(secret=SECRET, fault="end-early"),
        journey={"event_timeout_s": 60, "users": 1},
    )
    assert findings == ["svc:event-missing:done"]
    failure = checks(outcome, "event done")[0].failure
    assert failure is not None
    assert failure.message == "`done` was not received before the server ended the stream with `complete`."
    assert failure.evidence["events received"] == "delta"
    assert checks(outcome, "answer")[0].status is Status.SKIP


def test_probe__negative_check_turned_off_shows_as_not_run_disabled():
    outcome, findings = probe_example(
        GRAPHQL, graphql_chat.create_app(secret=SECRET), websocket={"negative_auth_check": False}
    )
    assert findings == []
    negative = checks(outcome, "auth-negative")[0]
    assert (negative.status, negative.summary) == (
        Status.SKIP,
        "disabled (websocket.negative_auth_check: false)",
    )


TURNS = "Example: a conversation of two turns with a reconnect between them"


def test_probe__two_turns_with_a_reconnect_pass_when_the_backend_keeps_the_conversation():
    outcome, findings = probe_example(TURNS, graphql_chat.create_app(secret=SECRET))
    assert findings == []
    assert [c.status for c in checks(outcome, "reconnect (turn 2)")] == [Status.PASS] * 3
    assert [c.status for c in checks(outcome, "expect (turn 2)")] == [Status.PASS] * 3
    latencies = [c.duration_ms for c in checks(outcome, "events (turn 2)")]
    assert len(latencies) == 3 and all(ms is not None and ms > 0 for ms in latencies)  # latency per turn


def test_probe__two_turns_with_a_reconnect_fail_session_lost_when_the_backend_forgets():
    outcome, findings = probe_example(TURNS, graphql_chat.create_app(secret=SECRET, fault="forget-sessions"))
    assert findings == ["svc:session-lost:turn-2"], findings
    finding = diagnose.diagnose(outcome.checks, service="svc")[0]
    assert finding.severity.value == "P0" and finding.occurrences == 3
    assert "This is a new conversation" in finding.evidence["answer"]
    assert "marmalade" in finding.evidence["previous answer"]
    assert finding.evidence["reconnected"].startswith("as the same user to thread golden-path-")


def test_probe__a_run_deadline_during_the_reconnect_cuts_turn_2_and_never_blames_turn_1():
    """Turn 1 completed; the reconnect for turn 2 is never answered and the run's deadline passes meanwhile: the
    journey was cut (never a pass on turn 1 alone), the deadline is turn 2's, and turn 1's checks stay passed."""
    outcome, findings = probe_example(
        TURNS,
        graphql_chat.create_app(secret=SECRET, fault="hang-reconnect"),
        journey={
            "users": 1,
            "sla_s": 3,
        },  # run_s leaves the SLA its time: the revision hung (P0), not the config
        websocket={"open_timeout_s": 60, "negative_auth_check": False},
        timeouts={"run_s": 8},
    )
    assert findings == ["svc:journeys-incomplete:connect", "svc:timeout:connect"], findings
    for check_id in ("handshake", "events", "answer", "isolation"):
        assert [c.status for c in checks(outcome, check_id)] == [Status.PASS], check_id
    cut = checks(outcome, "events (turn 2)")
    assert [c.status for c in cut] == [Status.FAIL]
    assert cut[0].failure is not None
    assert (
        cut[0].failure.message
        == "The whole run's deadline (8 s, timeouts.run_s) passed during the connect step."
    )


def test_probe__graphql_query_braces_reach_the_server_as_written():
    """`{{ ... }}` in the template is the query's selection set; a wrong query would be a GraphQL error."""
    settings = settings_for(GRAPHQL, "http://127.0.0.1:1")
    subscribe = next(f.frame for f in settings.journey.send if f.after == "connection_ack")
    assert "{{ type text threadId }}" in subscribe

    frame = json.loads(expressions.render(subscribe, {"message": "m", "thread_id": "t", "nonce": "n"}))
    assert "{ type text threadId }" in frame["payload"]["query"]
    assert frame["payload"]["variables"] == {"message": "[n] m", "threadId": "t"}


# -- the reference backend's GraphQL subscriptions (demo --profile graphql-ws) ----------------------------------


def demo_graphql(tmp_path: Path, *argv: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    argv = (
        "demo",
        "--profile",
        "graphql-ws",
        "--users",
        "3",
        "--output-dir",
        str(tmp_path),
        "--quiet",
        *argv,
    )
    code = main(list(argv), env={}, stdout=out, stderr=err)
    return code, json.loads((tmp_path / "results.json").read_text()), err.getvalue()


def test_main__demo_graphql_ws_passes_with_isolation_verified_and_the_negative_check_refused(tmp_path: Path):
    code, saved, err = demo_graphql(tmp_path)
    assert (code, saved["verdict"]) == (0, "pass"), saved["findings"] or err
    by_id: dict[str, list[dict[str, Any]]] = {}
    for check in saved["checks"]:
        by_id.setdefault(check["id"], []).append(check)
    for check_id in ("handshake", "events", "isolation", "answer"):
        assert [c["status"] for c in by_id[check_id]] == ["pass"] * 3, check_id
    assert all("subprotocol graphql-transport-ws" in c["summary"] for c in by_id["handshake"])
    assert all("and used 1 tool" in c["summary"] for c in by_id["answer"]), by_id["answer"]
    negative = by_id["auth-negative"][0]
    assert (negative["status"], negative["summary"]) == (
        "pass",
        "refused without a token (close 4403 after `connection_init`)",
    )


def test_main__demo_graphql_ws_error_event_is_a_next_carrying_errors_and_fails_with_event_error(
    tmp_path: Path,
):
    code, saved, err = demo_graphql(tmp_path, "--fault", "error-event")
    assert (code, saved["verdict"]) == (1, "fail"), err
    finding = next(f for f in saved["findings"] if f["kind"] == "event-error")
    assert finding["fingerprint"] == "golden-path-reference:event-error:error"
    assert (
        '"errors":[{"message":"LLM provider returned 401: invalid API key"'
        in finding["evidence"]["error frame"]
    )


REFERENCE_GRAPHQL_FAULTS = {
    "ws-502": "svc:ws-upgrade-status:502",
    "ws-403": "svc:ws-auth-rejected:4403",  # every token refused at connection_init, as strawberry refuses
    "subprotocol-none": "svc:ws-subprotocol:no-echo",
    "accept-unauthenticated": "svc:ws-unauthenticated-accepted",
    "close-early": "svc:ws-closed-early:done",
    "end-at-once": "svc:ws-closed-early:done",
    "max-age:30": "svc:ws-closed-early:done",
    "cross-talk": "svc:isolation-leak",
    "canned-answer": "svc:answer-canned",
    "empty-answer": "svc:answer-empty",
    "drop-event:agent_completed": "svc:event-missing:done",  # `complete` without `done`: at once
    "garbage": "svc:ws-protocol",
}


@pytest.mark.parametrize("fault", sorted(REFERENCE_GRAPHQL_FAULTS))
def test_probe__reference_backend_fault_gives_its_kind_over_graphql_ws(fault: str):
    # run_s 20: the check without a token gets a tenth of it (2 s), and its verdict must survive the close on a
    # burst of deltas it has not read (websockets reads the close reply only after its queue drains).
    with ReferenceServer(secret=SECRET, faults=parse_faults([fault])) as server:
        _, findings = run(settings_for(GRAPHQL, server.url), Credentials(secret=SECRET))
    assert REFERENCE_GRAPHQL_FAULTS[fault] in findings, findings
    if fault != "accept-unauthenticated":
        assert "svc:ws-unauthenticated-accepted" not in findings


# -- FastAPI WebSocket, token in the query, ?model= in the path --------------------------------------------------

REALTIME = "Example: a FastAPI WebSocket with the token in the query"


def test_probe__fastapi_query_token_backend_passes_and_keeps_the_model_parameter():
    outcome, findings = probe_example(REALTIME, fastapi_realtime.create_app(secret=SECRET))
    assert findings == []
    assert [c.status for c in checks(outcome, "answer")] == [Status.PASS] * 3
    assert all(
        "(gpt-4o-mini)" in c.summary for c in checks(outcome, "answer")
    )  # the model reached the server
    assert checks(outcome, "auth-negative")[0].status is Status.PASS


REALTIME_FAULTS = {
    "broken-auth": "svc:ws-auth-rejected:1008",
    "anonymous": "svc:ws-unauthenticated-accepted",
    "stall": "svc:timeout:response.output_text.done",
    "canned": "svc:answer-canned",
    "empty": "svc:answer-empty",
    "cross-talk": "svc:isolation-leak",
    "close-after-accept": "svc:ws-closed-early:response.done",
    "end-early": "svc:event-missing:response.output_text.done",  # `response.done` (incomplete) came early
}


@pytest.mark.parametrize("fault", sorted(REALTIME_FAULTS))
def test_probe__fastapi_fault_gives_its_own_kind(fault: str):
    _, findings = probe_example(REALTIME, fastapi_realtime.create_app(secret=SECRET, fault=fault))
    assert REALTIME_FAULTS[fault] in findings, findings
    if fault != "anonymous":
        assert "svc:ws-unauthenticated-accepted" not in findings


@pytest.mark.parametrize(("gap", "at_least_ms"), [("expected", 550), ("all", 550)])
def test_probe__a_stall_between_deltas_is_the_longest_gap(gap: str, at_least_ms: float):
    outcome, findings = probe_example(
        REALTIME, fastapi_realtime.create_app(secret=SECRET, fault="pause"), journey={"gap": gap}
    )
    assert findings == []
    metric = next(m for m in outcome.metrics if m.id == "event_gap_ms")
    assert metric.max is not None and metric.max >= at_least_ms, metric


def test_probe__turns_on_one_connection_each_judge_their_own_answer():
    turns = [
        {"message": "first question"},
        {"message": "second question", "expect": "second question -> 4"},
        {"message": "third question", "expect": "^nothing like this$"},
    ]
    outcome, findings = probe_example(
        REALTIME, fastapi_realtime.create_app(secret=SECRET), journey={"turns": turns, "users": 2}
    )
    assert findings == ["svc:answer-unexpected:turn-3"], findings
    assert [c.status for c in checks(outcome, "expect (turn 2)")] == [Status.PASS] * 2
    assert [c.status for c in checks(outcome, "handshake")] == [Status.PASS] * 2
    assert not checks(outcome, "reconnect (turn 2)")  # one connection for every turn
    assert all("third question" in c.summary for c in checks(outcome, "answer (turn 3)"))


def test_probe__auth_refused_after_accept_names_where_the_token_travels():
    outcome, findings = probe_example(
        REALTIME, fastapi_realtime.create_app(secret=SECRET, fault="broken-auth")
    )
    failure = next(c.failure for c in outcome.checks if c.failure is not None and c.user == 1)
    assert failure.kind is Kind.WS_AUTH_REJECTED, findings
    assert failure.evidence["token travels in"] == "query parameter `token`"
    finding = diagnose.diagnose(outcome.checks, service="svc")[0]
    assert "query parameter `token`" in finding.remediation
    assert "jwt.<base64url>" not in finding.remediation


def test_probe__refused_query_shows_the_full_url_and_the_bogus_path_keeps_the_query():
    """A model the server does not serve: FastAPI refuses the upgrade (403) with or without a token, and so does
    a path that cannot exist with the same query. The evidence shows the URL with its query and no token."""
    with AsgiServer(fastapi_realtime.create_app(secret=SECRET)) as server:
        settings = settings_for(REALTIME, server.url, websocket={"path": "/v1/realtime?model=unknown-model"})
        outcome, findings = run(settings, Credentials(secret=SECRET))
        port = server.port
    assert findings == ["svc:ws-upgrade-status:403"], findings
    failure = checks(outcome, "handshake")[0].failure
    assert failure is not None
    assert failure.evidence["url"] == f"ws://127.0.0.1:{port}/v1/realtime?model=unknown-model&token=<token>"
    bogus = failure.evidence["path that cannot exist"]
    assert bogus.startswith("/v1/realtime-golden-path-no-such-route-") and "?model=unknown-model:" in bogus


# -- an OAuth2 token service in its own process, in front of a chat backend ----------------------------------------

OAUTH = "Example: a separate auth service (OAuth2 client credentials)"
CLIENTS = {
    "golden-path-1": "s3cret+one/1",
    "golden-path-2": "s3cret+two/2",
    "golden-path-3": "s3cret+three/3",
}


@pytest.fixture
def oauth(tmp_path: Path) -> Iterator[tuple[AsgiProcess, Path]]:
    log = tmp_path / "grants.log"
    env = {"OAUTH_CLIENTS": json.dumps(CLIENTS), "OAUTH_SIGNING_KEY": SECRET, "OAUTH_LOG": str(log)}
    with AsgiProcess("tests.standins.oauth_service:app", env=env, ready_path="/healthz") as service:
        yield service, log


def oauth_credentials(settings: Settings) -> Credentials:
    entries = [{"client_id": k, "client_secret": v} for k, v in CLIENTS.items()]
    env = settings.auth.login.users_env
    assert env is not None
    return Credentials(users=parse_users(json.dumps(entries), env))


def oauth_settings(service: AsgiProcess, backend_url: str, **extra: Any) -> Settings:
    auth = {"login": {"url": f"{service.url}/oauth/token"}}
    return settings_for(OAUTH, backend_url, auth=auth, **extra)


def test_probe__separate_auth_service_gives_each_user_its_own_identity(oauth: tuple[AsgiProcess, Path]):
    service, log = oauth
    with ReferenceServer(secret=SECRET) as backend:
        settings = oauth_settings(service, backend.url)
        outcome, findings = run(settings, oauth_credentials(settings))
    assert findings == []
    subjects = sorted(c.summary.rsplit(" ", 1)[1] for c in checks(outcome, "login"))
    assert subjects == sorted(CLIENTS)  # one client each: distinct identities, so isolation means something
    assert [c.status for c in checks(outcome, "isolation")] == [Status.PASS] * 3
    assert checks(outcome, "auth-negative")[0].status is Status.PASS
    assert sorted(log.read_text().split()) == sorted(CLIENTS)  # one grant per client, form-encoded
    text = json.dumps([c.summary for c in outcome.checks])
    assert not any(secret in text for secret in CLIENTS.values())


def test_probe__one_client_for_every_user_logs_in_once_while_its_token_lasts(oauth: tuple[AsgiProcess, Path]):
    service, log = oauth
    with ReferenceServer(secret=SECRET) as backend:
        settings = oauth_settings(service, backend.url, journey={"users": 5})
        one = parse_users(
            json.dumps([{"client_id": "golden-path-1", "client_secret": CLIENTS["golden-path-1"]}]), "X"
        )
        _, findings = run(settings, Credentials(users=one))
    assert findings == []
    assert log.read_text().split() == ["golden-path-1"]  # five users, one login: the answer is shared


def test_probe__a_token_the_backend_cannot_verify_is_refused_at_the_handshake(tmp_path: Path):
    """The backend refuses the auth service's token before accepting (HTTP 403), as it refuses no token and an
    unknown route: on the wire that cannot be told from an unrouted path, so the finding names both causes."""
    env = {"OAUTH_CLIENTS": json.dumps(CLIENTS), "OAUTH_SIGNING_KEY": SECRET, "OAUTH_FAULT": "wrong-key"}
    with (
        AsgiProcess("tests.standins.oauth_service:app", env=env, ready_path="/healthz") as service,
        ReferenceServer(secret=SECRET) as backend,
    ):
        settings = oauth_settings(service, backend.url)
        outcome, findings = run(settings, oauth_credentials(settings))
    assert findings == ["svc:ws-upgrade-status:403"], findings
    finding = diagnose.diagnose(outcome.checks, service="svc")[0]
    assert "JWT secret" in finding.remediation and "websocket.path" in finding.remediation


def test_probe__a_refused_client_is_login_failed_naming_the_auth_service(oauth: tuple[AsgiProcess, Path]):
    service, _ = oauth
    with ReferenceServer(secret=SECRET) as backend:
        settings = oauth_settings(service, backend.url)
        wrong = parse_users(json.dumps([{"client_id": "golden-path-1", "client_secret": "wrong"}]), "X")
        outcome, findings = run(settings, Credentials(users=wrong))
    assert "svc:login-failed" in findings
    failure = checks(outcome, "login")[0].failure
    assert failure is not None
    assert failure.message == f"login at {service.url}/oauth/token answered HTTP 401"
    assert "invalid_client" in failure.evidence["body"]


@pytest.mark.parametrize(
    ("fault", "fingerprint"),
    [
        ("never-complete", "svc:timeout:agent_completed"),
        ("canned-answer", "svc:answer-canned"),
        ("cross-talk", "svc:isolation-leak"),
        ("close-early", "svc:ws-closed-early:agent_completed"),
        ("empty-answer", "svc:answer-empty"),
        ("accept-unauthenticated", "svc:ws-unauthenticated-accepted"),
    ],
)
def test_probe__chat_backend_faults_behind_the_auth_service_keep_their_kind(
    oauth: tuple[AsgiProcess, Path], fault: str, fingerprint: str
):
    service, _ = oauth
    with ReferenceServer(secret=SECRET, faults=parse_faults([fault])) as backend:
        settings = oauth_settings(service, backend.url)
        _, findings = run(settings, oauth_credentials(settings))
    assert fingerprint in findings, findings
