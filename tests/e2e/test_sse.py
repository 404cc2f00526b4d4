"""The SSE transport: the event-stream parser (WHATWG rules), the recorded wires of ADK and the AI SDK, the
OpenAI-compatible stream read by the official client, and the probe against each SSE profile with each fault."""

import asyncio
import json
import time
from pathlib import Path

import openai
import pytest

from bot import diagnose, results
from bot.auth import Credentials, mint
from bot.config import build_settings
from bot.errors import ConfigError
from bot.probe.journey import probe
from bot.probe.sse import Event, EventStreamParser, EventTooLarge
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.results import Kind, Severity, Status, Verdict
from bot.settings import AuthSettings, Settings
from tests.cli_support import check_url_argv, results_json, run_main, write_config
from tests.configs import QUIET_TARGETS, QUIET_TARGETS_YAML, readme_yaml

SECRET = "reference-secret-for-tests-0123456789abcdef"
VERSION = "1111111aaaaaaa"
FIXTURES = Path(__file__).parent.parent / "fixtures"
FAST = {
    "journey": {"event_timeout_s": 1.5, "users": 3},
    "sse": {"open_timeout_s": 1.5},
    "timeouts": {"connect_s": 1.5, "request_s": 1.5, "run_s": 20},
    # Performance is measured in benchmarks/: here a busy 2-core machine must not add a finding.
    "targets": QUIET_TARGETS,
}
SSE_PROFILES = ("openai-chat", "adk", "ai-sdk")


def _events(*chunks: bytes) -> list[Event]:
    parser = EventStreamParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


# -- the parser -------------------------------------------------------------------------------------------


def test_feed__multi_line_data_joins_with_line_feeds_and_names_event_and_id():
    events = _events(b"event: delta\nid: 7\ndata: first\ndata:second\ndata\n\n")
    assert events == [Event(data="first\nsecond\n", event="delta", id="7")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_feed__every_line_ending_the_spec_allows(newline: bytes):
    body = newline.join([b"data: a", b"", b": keep-alive", b"data: b", b"", b""])
    assert [e.data for e in _events(body)] == ["a", "b"]


def test_feed__a_crlf_split_across_two_reads_is_one_line_end():
    assert [e.data for e in _events(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")] == ["a", "b"]


def test_feed__utf8_split_across_reads_and_a_leading_bom():
    text = "data: é€\n\n".encode()
    assert [e.data for e in _events(b"\xef\xbb\xbf" + text[:7], text[7:])] == ["é€"]


def test_feed__blank_lines_after_an_id_dispatch_nothing():
    """An event with an empty data buffer is not dispatched, however many blank lines follow an `id:`."""
    events = _events(b"id: 1\ndata: x\n\n\n\n:ping\n\nevent: lonely\n\n")
    assert [(e.data, e.id) for e in events] == [("x", "1")]


def test_feed__an_id_holding_nul_is_ignored_and_the_last_id_is_kept():
    events = _events(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_feed__an_event_cut_off_by_the_end_of_the_body_is_not_dispatched():
    assert _events(b"data: complete\n\ndata: cut off") == [Event(data="complete")]


def test_feed__stamps_each_event_with_the_read_that_completed_it():
    parser = EventStreamParser()
    assert parser.feed(b"data: a\n", at=1.0) == []
    assert parser.feed(b"\ndata: b\n\n", at=2.0) == [Event("a", at=2.0), Event("b", at=2.0)]


def test_feed__a_line_without_end_past_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("bot.probe.sse.MAX_LINE_CHARS", 10)
    with pytest.raises(EventTooLarge):
        EventStreamParser().feed(b"data: " + b"x" * 20)


# -- the recorded wires, and the reference backend's streams beside them -----------------------------------


def _recorded(path: Path) -> tuple[dict[str, str], list[dict[str, object] | str]]:
    head, _, body = path.read_bytes().partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    datas: list[dict[str, object] | str] = []
    for event in _events(body):
        datas.append(event.data if event.data == "[DONE]" else json.loads(event.data))
    return {k.lower(): v for k, v in headers.items()}, datas


def _shape(value: object) -> object:
    """Keys and types, not values: what a client reads from the wire."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def _stream(server: ReferenceServer, method: str, path: str, body: dict[str, object], user: str) -> bytes:
    import httpx

    token = mint(AuthSettings(), key=SECRET, algorithm="HS256", subject=user)
    with httpx.Client(trust_env=False, timeout=5) as client:
        answer = client.request(
            method, f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    return answer.content


def test_reference_adk__replays_adk_api_servers_recorded_wire():
    headers, recorded = _recorded(FIXTURES / "adk" / "run_sse.http")
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        session = json.loads(_stream(server, "POST", "/apps/echo_agent/users/u-1/sessions", {}, "u-1"))
        body = {
            "appName": "echo_agent",
            "userId": "u-1",
            "sessionId": session["id"],
            "newMessage": {"role": "user", "parts": [{"text": "What is 2 + 2?"}]},
        }
        served = [json.loads(e.data) for e in _events(_stream(server, "POST", "/run_sse", body, "u-1"))]
    assert list(session) == list(
        json.loads((FIXTURES / "adk" / "session.http").read_text().split("\n\n", 1)[1])
    )
    assert [_shape(e) for e in served] == [_shape(e) for e in recorded]


def test_reference_adk__error_frame_is_adks_own():
    _, recorded = _recorded(FIXTURES / "adk" / "run_sse_mid_error.http")
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["error-event"])) as server:
        session = json.loads(_stream(server, "POST", "/apps/a/users/u-1/sessions", {}, "u-1"))
        body = {
            "app_name": "a",
            "user_id": "u-1",
            "session_id": session["id"],
            "new_message": {"parts": [{"text": "x"}]},
        }
        raw = _stream(server, "POST", "/run_sse", body, "u-1")
    served = [json.loads(e.data) for e in _events(raw)]
    assert [_shape(e) for e in served] == [_shape(e) for e in recorded]
    assert raw.endswith(b"}}\n\n") and b'data: {"error": "RuntimeError: ' in raw  # ADK's spacing, not compact


@pytest.mark.parametrize(("fixture", "fault"), [("chat.http", None), ("chat_error.http", "error-event")])
def test_reference_ai_sdk__replays_the_ai_sdks_recorded_ui_message_stream(fixture: str, fault: str | None):
    headers, recorded = _recorded(FIXTURES / "ai-sdk" / fixture)
    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    faults = parse_faults([fault] if fault else [])
    message = {"id": "m-1", "role": "user", "parts": [{"type": "text", "text": "What is 2 + 2?"}]}
    with ReferenceServer(secret=SECRET, version=VERSION, faults=faults, event_delay_ms=0) as server:
        raw = _stream(server, "POST", "/api/chat", {"messages": [message]}, "u-1")
    served = [e.data if e.data == "[DONE]" else json.loads(e.data) for e in _events(raw)]
    types = [e if isinstance(e, str) else e["type"] for e in served]
    recorded_types = [e if isinstance(e, str) else e["type"] for e in recorded]
    # The recording streams the answer in two deltas, the reference in 16-character pieces: compare the runs.
    squeeze = lambda seq: [t for i, t in enumerate(seq) if i == 0 or t != "text-delta" or seq[i - 1] != t]  # noqa: E731
    assert squeeze(types) == squeeze(recorded_types)


def test_reference_openai__the_official_client_reads_the_stream_and_its_error_envelope():
    token = mint(AuthSettings(), key=SECRET, algorithm="HS256", subject="u-1")
    message = [{"role": "user", "content": "[gpn0123456789ab] What is 2 + 2?"}]
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=token, max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=message, stream=True)
        answer = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=f"{server.url}/v1", api_key="wrong", max_retries=0
            ).chat.completions.create(model="m", messages=message, stream=True)
    assert "[gpn0123456789ab]" in answer and "Answer: 4" in answer
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["error-event"])) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=token, max_retries=0)
        with pytest.raises(openai.APIError, match="invalid API key"):
            for _chunk in client.chat.completions.create(model="m", messages=message, stream=True):
                pass


# -- the probe against each profile -------------------------------------------------------------------------


def _settings(url: str, profile: str, **overrides: object) -> Settings:
    return build_settings(FAST, {"url": url, "journey.profile": profile, **overrides})


def _run(settings: Settings) -> tuple[object, tuple[results.Finding, ...]]:
    outcome = asyncio.run(
        probe(settings, base_url=settings.url or "", credentials=Credentials(secret=SECRET))
    )
    return outcome, diagnose.diagnose(outcome.checks, service="ref")


@pytest.mark.parametrize("profile", SSE_PROFILES)
def test_probe__healthy_sse_backend_passes_with_isolation_verified_and_the_negative_check_refused(
    profile: str,
):
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        outcome, findings = _run(_settings(server.url, profile))
    assert findings == ()
    by_id = {(c.id, c.user): c for c in outcome.checks}
    for user in (1, 2, 3):
        for check in ("login", "handshake", "message", "events", "answer"):
            assert by_id[(check, user)].status is Status.PASS, (check, user)
        assert by_id[("isolation", user)].status is Status.PASS
        assert "verified by nonce" in by_id[("isolation", user)].summary
    negative = by_id[("auth-negative", None)]
    assert negative.status is Status.PASS and "HTTP 401" in negative.summary
    handshake = next(m for m in outcome.metrics if m.id == "handshake_ms")
    assert handshake.label == "Stream opened (request to response headers)" and handshake.samples == 2


# fault -> profile -> (kind, fingerprint detail); one row per failure the issue names.
EXPECTED = {
    "ws-403": {p: (Kind.STREAM_AUTH_REJECTED, "401") for p in SSE_PROFILES},
    "ws-502": {p: (Kind.STREAM_STATUS, "502") for p in SSE_PROFILES},
    "close-early": {
        "openai-chat": (Kind.STREAM_CLOSED_EARLY, "[DONE]"),
        "adk": (Kind.EVENT_MISSING, "text"),  # ADK has no end marker: an early end is a missing answer
        "ai-sdk": (Kind.STREAM_CLOSED_EARLY, "[DONE]"),
    },
    "end-at-once": {
        "openai-chat": (Kind.STREAM_CLOSED_EARLY, "[DONE]"),
        "adk": (Kind.STREAM_CLOSED_EARLY, "end_of_body"),
        "ai-sdk": (Kind.STREAM_CLOSED_EARLY, "[DONE]"),
    },
    "never-complete": {
        "openai-chat": (Kind.TIMEOUT, "[DONE]"),
        "adk": (Kind.TIMEOUT, "text"),
        "ai-sdk": (Kind.TIMEOUT, "finish"),
    },
    "error-event": {p: (Kind.EVENT_ERROR, "error") for p in SSE_PROFILES},
    "canned-answer": {p: (Kind.ANSWER_CANNED, "") for p in SSE_PROFILES},
    "empty-answer": {
        "openai-chat": (Kind.ANSWER_EMPTY, ""),
        "adk": (Kind.ANSWER_EMPTY, ""),
        "ai-sdk": (Kind.EVENT_MISSING, "text-delta"),  # an empty answer streams no text-delta at all
    },
    "cross-talk": {p: (Kind.ISOLATION_LEAK, "") for p in SSE_PROFILES},
    "accept-unauthenticated": {p: (Kind.STREAM_UNAUTHENTICATED_ACCEPTED, "") for p in SSE_PROFILES},
    "rate-limited": {p: (Kind.RATE_LIMITED, "429") for p in SSE_PROFILES},
}


@pytest.mark.parametrize("profile", SSE_PROFILES)
@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_probe__each_fault_yields_its_kind_in_every_sse_profile(fault: str, profile: str):
    kind, detail = EXPECTED[fault][profile]
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults([fault])) as server:
        _, findings = _run(_settings(server.url, profile))
    fingerprint = diagnose.fingerprint("ref", kind, detail)
    assert fingerprint in [f.fingerprint for f in findings], findings
    finding = next(f for f in findings if f.fingerprint == fingerprint)
    assert finding.severity is Severity.P0 and finding.evidence
    assert results.verdict_for(findings) is Verdict.FAIL


@pytest.mark.parametrize("profile", SSE_PROFILES)
def test_probe__a_body_that_ends_at_once_is_closed_early_without_waiting_for_the_event_timeout(profile: str):
    settings = _settings("http://x", profile, **{"journey.event_timeout_s": 30, "journey.users": 1})
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["end-at-once"])) as server:
        started = time.monotonic()
        _, findings = _run(settings.model_copy(update={"url": server.url}))
        took = time.monotonic() - started
    assert [f.kind for f in findings] == [Kind.STREAM_CLOSED_EARLY]
    assert "before any event" in findings[0].observed
    assert took < 15, "waited out the event timeout"


@pytest.mark.parametrize("profile", SSE_PROFILES)
def test_probe__a_stream_slower_than_the_sla_is_sla_exceeded(profile: str):
    faults = parse_faults(["delay:agent_completed=1200"])
    with ReferenceServer(secret=SECRET, version=VERSION, faults=faults) as server:
        _, findings = _run(_settings(server.url, profile, **{"journey.sla_s": 1.0, "journey.users": 1}))
    assert Kind.SLA_EXCEEDED in [f.kind for f in findings], findings


def test_probe__adk_user_in_the_path_is_the_tokens_subject():
    """A session created for another user is refused: the profile puts the token's subject in the path."""
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        config = {
            "journey": {
                "requests": [
                    {
                        "name": "create-session",
                        "path": "/apps/a/users/someone-else/sessions",
                        "body": "{}",
                        "extract": {"session_id": "id"},
                    }
                ]
            }
        }
        settings = build_settings(
            {**FAST, **config, "journey": {**FAST["journey"], **config["journey"], "profile": "adk"}},
            {"url": server.url},
        )
        _, findings = _run(settings)
    assert [f.kind for f in findings if f.step is results.Step.CONNECT] == [Kind.STREAM_AUTH_REJECTED]


def test_probe__a_websocket_config_pointed_at_an_sse_route_says_which_transport_it_looks_like():
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        settings = build_settings(
            {**FAST, "websocket": {"path": "/v1/chat/completions"}, "journey": {"users": 1}},
            {"url": server.url},
        )
        _, findings = _run(settings)
    connect = [f for f in findings if f.step is results.Step.CONNECT]
    assert connect and all("set `transport: sse`" in f.observed for f in connect), connect


@pytest.mark.parametrize(
    ("code", "content_type", "allow", "body", "expected"),
    [
        (200, "text/event-stream; charset=utf-8", "", "", "set `transport: sse`"),
        (
            400,
            "text/plain",
            "",
            "The client is using an unsupported version of the Socket.IO or Engine.IO protocols",
            "set `transport: socketio`",
        ),
        (405, "application/json", "POST", '{"detail":"Method Not Allowed"}', "accepts only POST"),
        (404, "application/json", "", '{"detail":"Not Found"}', ""),
    ],
)
def test_transport_hint__names_the_transport_an_endpoint_looks_like(
    code: int, content_type: str, allow: str, body: str, expected: str
):
    from bot.probe.websocket import transport_hint

    hint = transport_hint(code, content_type, allow, body)
    assert (expected in hint) if expected else hint == ""


# -- configuration --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        (
            {"transport": "grpc"},
            "transport",
            "unsupported transport 'grpc'; expected one of: websocket, sse, socketio",
        ),
        ({"transport": "socket.io"}, "transport", "(Socket.IO is `socketio`)"),
        (
            {"transport": "sse", "sse": {"body": '{"q": "{session}"}'}},
            "",
            'sse.body: \'{"q": "{session}"}\' is not a valid template: unknown placeholder {session}',
        ),
        (
            {"journey": {"requests": [{"path": "/s", "extract": {"user": "id"}}]}},
            "journey.requests.0.extract",
            "{user} is a built-in placeholder",
        ),
        ({"sse": {"headers": {"X-Key": "a\nb"}}}, "sse.headers", "expected one line of text"),
    ],
)
def test_build_settings__bad_transport_configuration_is_one_clear_line(
    data: dict[str, object], key: str, expected: str
):
    with pytest.raises(ConfigError) as caught:
        build_settings(data)
    assert caught.value.key == key
    assert expected in caught.value.reason


def test_build_settings__values_from_earlier_request_steps_are_placeholders_for_the_stream():
    settings = build_settings({"journey": {"profile": "adk", "values": {"app": "travel"}}})
    assert settings.journey.values == {"app": "travel"}
    assert settings.journey.requests[0].extract == {"session_id": "id"}


# -- the README's worked configs, as written ------------------------------------------------------------------

README_CONFIGS = {
    "openai-chat": "An OpenAI-compatible server (vLLM, LiteLLM, Ollama, ...)",
    "adk": "A Google ADK agent deployed with `adk deploy cloud_run`",
    "ai-sdk": "A Next.js app whose `app/api/chat/route.ts` returns",
}


@pytest.mark.parametrize("profile", sorted(README_CONFIGS))
def test_main__each_readme_sse_config_passes_against_its_backend(profile: str, tmp_path: Path):
    # a verdict is the subject, not the speed
    config = write_config(tmp_path, readme_yaml(README_CONFIGS[profile]) + QUIET_TARGETS_YAML)
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        code, _out, err = run_main(
            check_url_argv(server.url, config, tmp_path),
            env={"JWT_SECRET_KEY": SECRET, "GITHUB_SHA": VERSION},
        )
    saved = results_json(tmp_path)
    assert (saved["verdict"], code) == ("pass", 0), saved["findings"] or err
    checks = {(c["id"], c["user"]): c for c in saved["checks"]}
    assert checks[("auth-negative", None)]["status"] == "pass"
    assert all(checks[("isolation", user)]["status"] == "pass" for user in (1, 2, 3))
    # ADK's /health names no app version: the expected version is not verified, never passed.
    assert checks[("version", None)]["status"] == ("not verified" if profile == "adk" else "pass")


def test_no_cookies__a_client_shared_by_every_user_keeps_no_users_cookie():
    """Chainlit's /auth/header sets a user's cookie: the shared client must not send it with anyone's requests;
    the user keeps it from the answer (request steps carry it in that user's own Cookie header)."""
    import httpx

    from bot.probe.steps import no_cookies

    token = mint(AuthSettings(), key=SECRET, algorithm="HS256", subject="u-1")
    with (
        ReferenceServer(secret=SECRET, version=VERSION) as server,
        httpx.Client(trust_env=False, cookies=no_cookies()) as client,
    ):
        answer = client.post(f"{server.url}/auth/header", headers={"Authorization": f"Bearer {token}"})
        assert answer.cookies.get("access_token") == token
        assert not client.cookies


def test_probe__an_sse_stream_longer_than_the_event_timeout_passes_when_no_gap_is():
    # Four pauses of 0.7 s between the events of one openai-chat stream, with a 1 s event timeout: nearly 3 s of
    # stream. The deadline moves with each event (the httpx read in progress is never cancelled to move it).
    pauses = [
        f"delay:{name}=700"
        for name in ("agent_started", "tool_executing", "tool_completed", "agent_completed")
    ]
    tight = {"journey.event_timeout_s": 1.0, "journey.users": 1, "journey.sla_s": 30}
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(pauses)) as server:
        started = time.monotonic()
        _, findings = _run(_settings(server.url, "openai-chat", **tight))
        took = time.monotonic() - started
    assert findings == ()
    assert took > 2.8  # longer than the event timeout twice over, yet no gap went past it


def test_probe__seventy_sse_users_all_pass_with_isolation_verified():
    # 70 users run on three of the users' connection pools (POOL_USERS each), opened as their users need them and
    # closed after the phase: every journey still passes. The test does not observe the pools themselves.
    from bot.probe.journey import POOL_USERS

    assert 2 * POOL_USERS < 70
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        outcome, findings = _run(_settings(server.url, "openai-chat", **{"journey.users": 70}))
    assert findings == ()
    passed = {c.user for c in outcome.checks if c.id == "isolation" and c.status is Status.PASS}
    assert passed == set(range(1, 71))
