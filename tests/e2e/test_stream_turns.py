"""Conversations over SSE and Socket.IO: `journey.turns` and `reconnect: true` against the bundled wires of ADK,
OpenAI-compatible servers and the AI SDK (sse-starlette/Starlette) and Chainlit (python-socketio's server).

Each backend remembers what the user said in the conversation (ADK in its session, Chainlit in the session its
`sessionId` restores, the stateless OpenAI and AI SDK routes from the messages the client sends) and names it in
a later answer. Under the `forget-sessions` fault ADK's sessions live in one connection's memory, Chainlit's in
the Socket.IO connection's, and the OpenAI and AI SDK routes read only the last message. The configs are the
README's worked examples, read from the README. A FastAPI/sse-starlette OpenAI-compatible server shows, from the
server's side, which connection carried each turn.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot import diagnose
from bot.auth import Credentials
from bot.config import build_settings
from bot.errors import ConfigError
from bot.probe.journey import ProbeOutcome, probe
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.results import CheckResult, Kind, Severity, Status
from bot.settings import Settings
from tests.cli_support import check_url_argv, results_json, run_main, write_config
from tests.configs import QUIET_TARGETS, QUIET_TARGETS_YAML, merged, readme_example, readme_yaml
from tests.standins import openai_sse
from tests.standins.asgi import AsgiServer

SECRET = "reference-secret-for-tests-0123456789abcdef"
VERSION = "1111111aaaaaaa"
FAST = {
    "journey": {"event_timeout_s": 1.5, "users": 3},
    "sse": {"open_timeout_s": 2},
    "socketio": {"open_timeout_s": 3},
    "timeouts": {"connect_s": 2, "request_s": 2, "run_s": 25},
    "targets": QUIET_TARGETS,
}
TURNS = [
    {"message": "Remember the word marmalade."},
    {"message": "Which word did I ask you to remember?", "expect": "marmalade"},
    {"message": "Once more, which word was it?", "reconnect": True, "expect": "marmalade"},
]
README = {
    "adk": "A Google ADK agent asked to remember a word",
    "openai-chat": "An OpenAI-compatible server, stateless",
    "chainlit": "A Chainlit app asked the same over Socket.IO",
}


def profile_example(profile: str) -> dict[str, Any]:
    data = readme_example(README[profile])
    assert data["journey"]["profile"] == profile
    return data


def settings(url: str, profile: str, **journey: Any) -> Settings:
    config = merged(FAST, {"journey": {"profile": profile, "turns": TURNS, **journey}})
    return build_settings(config, {"url": url})


def run(settings: Settings) -> tuple[ProbeOutcome, list[str]]:
    outcome = asyncio.run(
        probe(settings, base_url=settings.url or "", credentials=Credentials(secret=SECRET))
    )
    return outcome, [f.fingerprint for f in diagnose.diagnose(outcome.checks, service="ref")]


def checks(outcome: ProbeOutcome, check_id: str) -> list[CheckResult]:
    return [c for c in outcome.checks if c.id == check_id]


@pytest.mark.parametrize("profile", ["openai-chat", "adk", "ai-sdk", "chainlit"])
def test_probe__three_turns_with_a_reconnect_pass_on_a_backend_that_keeps_the_conversation(profile: str):
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        outcome, findings = run(settings(server.url, profile))
    assert findings == []
    for check_id in ("reconnect (turn 3)", "expect (turn 2)", "expect (turn 3)", "isolation (turn 3)"):
        assert [c.status for c in checks(outcome, check_id)] == [Status.PASS] * 3, check_id
    assert not checks(outcome, "reconnect (turn 2)")  # turn 2 went on the same session
    # Each turn's answer is its own (the run of this message, not the one before), naming what came earlier.
    for turn, asked in ((2, "Which word did I ask"), (3, "Once more, which word")):
        answers = [c.summary for c in checks(outcome, f"answer (turn {turn})")]
        assert len(answers) == 3 and all(asked in a for a in answers), answers
    for turn in (1, 2, 3):  # latency per turn
        events = checks(outcome, "events" if turn == 1 else f"events (turn {turn})")
        assert len(events) == 3 and all(c.duration_ms is not None and c.duration_ms > 0 for c in events)


def test_probe__socketio_emits_a_connection_emit_once_per_connection():
    """Chainlit's `connection_successful` runs on_chat_start: sent again on the same connection it would greet
    the user again. A later turn emits only its message; after a reconnect the connection's emit goes first."""
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        outcome, findings = run(settings(server.url, "chainlit", users=1))
    assert findings == []
    summaries = [
        checks(outcome, check_id)[0].summary
        for check_id in ("message", "message (turn 2)", "message (turn 3)")
    ]
    assert summaries == [
        "emitted connection_successful, client_message",
        "emitted client_message",
        "emitted connection_successful, client_message",
    ]


@pytest.mark.parametrize(
    ("profile", "where"), [("adk", "reconnect (turn 3)"), ("chainlit", "expect (turn 3)")]
)
def test_probe__a_reconnect_to_a_backend_that_keeps_sessions_in_one_connection_is_session_lost(
    profile: str, where: str
):
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["forget-sessions"])) as server:
        outcome, findings = run(settings(server.url, profile))
    assert findings == ["ref:session-lost:turn-3"], findings
    # Turn 2, on the same connection, still had the conversation: only the reconnect lost it.
    assert [c.status for c in checks(outcome, "expect (turn 2)")] == [Status.PASS] * 3
    failed = checks(outcome, where)
    assert [c.status for c in failed] == [Status.FAIL] * 3
    failure = failed[0].failure
    assert failure is not None and failure.kind is Kind.SESSION_LOST and failure.evidence["reconnected"]
    if profile == "adk":  # ADK's in-memory sessions: the new connection's request is refused
        assert "Session not found" in failure.evidence["body"]
    else:  # Chainlit starts a new session: the answer merely forgot
        assert "marmalade" in failure.evidence["previous answer"]
        assert "marmalade" not in failure.evidence["answer"]
    finding = diagnose.diagnose(outcome.checks, service="ref")[0]
    assert finding.severity is Severity.P0 and finding.occurrences == 3


@pytest.mark.parametrize("profile", ["openai-chat", "ai-sdk"])
def test_probe__a_wrong_answer_on_turn_2_is_answer_unexpected_naming_turn_2(profile: str):
    """The stateless routes under forget-sessions read only the last message: turn 2's answer has forgotten."""
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["forget-sessions"])) as server:
        outcome, findings = run(settings(server.url, profile, turns=TURNS[:2]))
    assert findings == ["ref:answer-unexpected:turn-2"], findings
    failure = checks(outcome, "expect (turn 2)")[0].failure
    assert failure is not None and failure.message == "Turn 2's answer does not match `marmalade`."
    assert failure.evidence["turn"] == "2: Which word did I ask you to remember?"
    assert (
        "marmalade" in failure.evidence["previous answer"] and "marmalade" not in failure.evidence["answer"]
    )


def test_probe__a_turn_that_does_not_complete_skips_the_later_turns_with_the_reason():
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["never-complete"])) as server:
        outcome, findings = run(settings(server.url, "openai-chat", users=1, event_timeout_s=0.5))
    assert findings == ["ref:timeout:[DONE]"], findings
    later = [c for c in outcome.checks if c.id.endswith(("(turn 2)", "(turn 3)"))]
    assert later and all(c.status is Status.SKIP and c.summary == "turn 1 did not complete" for c in later)


# -- the README's worked configs, through the CLI ------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(README))
def test_main__each_readme_conversation_passes_with_latency_per_turn_in_results_json(
    profile: str, tmp_path: Path
):
    # a verdict is the subject, not the speed (timing targets live in benchmarks/)
    config = write_config(tmp_path, readme_yaml(README[profile]) + QUIET_TARGETS_YAML)
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        argv = check_url_argv(server.url, config, tmp_path)
        code, _out, err = run_main(argv, {"JWT_SECRET_KEY": SECRET, "GITHUB_SHA": VERSION})
    saved = results_json(tmp_path)
    assert (saved["verdict"], code) == ("pass", 0), saved["findings"] or err
    turns = len(profile_example(profile)["journey"]["turns"])
    for turn in range(2, turns + 1):
        latencies = [c["duration_ms"] for c in saved["checks"] if c["id"] == f"events (turn {turn})"]
        assert len(latencies) == 3 and all(ms > 0 for ms in latencies), (turn, latencies)
        expected = [c["status"] for c in saved["checks"] if c["id"] == f"expect (turn {turn})"]
        assert expected == ["pass"] * 3


@pytest.mark.parametrize(
    ("profile", "fault", "fingerprint"),
    [
        ("adk", "forget-sessions", "ref:session-lost:turn-3"),
        ("openai-chat", "forget-sessions", "ref:answer-unexpected:turn-2"),
        ("chainlit", "forget-sessions", "ref:session-lost:turn-3"),
    ],
)
def test_probe__each_readme_conversation_catches_a_backend_that_forgets(
    profile: str, fault: str, fingerprint: str
):
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults([fault])) as server:
        config = merged(profile_example(profile), FAST | {"journey": {"event_timeout_s": 1.5}})
        config.pop("service")
        _, findings = run(build_settings(config, {"url": server.url}))
    assert findings == [fingerprint]


# -- configuration -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ({"turn": '{"role": "user"}'}, "sse.history.turn: "),
        ({"turn": '[{"text": "{answr}"}]'}, "unknown placeholder {answr}"),
        ({"at": "input", "turn": "[]"}, "sse.history.at: 'input' is not a list in sse.body"),
        ({"at": "messages[0]", "turn": "[]"}, "expected a dotted path of keys"),
    ],
)
def test_build_settings__a_history_that_cannot_be_used_is_refused_by_name(
    history: dict[str, str], expected: str
):
    with pytest.raises(ConfigError) as caught:
        build_settings({"journey": {"profile": "openai-chat"}, "sse": {"history": history}})
    assert expected in str(caught.value)


def test_build_settings__a_history_without_a_body_is_refused():
    with pytest.raises(
        ConfigError, match=r"sse\.history: the earlier turns go into sse\.body, which is null"
    ):
        build_settings({"journey": {"profile": "openai-chat"}, "sse": {"body": None, "method": "GET"}})


def test_build_settings__an_emit_each_must_be_turn_or_connection():
    with pytest.raises(ConfigError) as caught:
        build_settings(
            {"journey": {"profile": "chainlit"}, "socketio": {"emit": [{"event": "x", "each": "run"}]}}
        )
    assert caught.value.key == "socketio.emit.0.each"


def test_probe__a_users_turns_share_its_own_connection_and_a_reconnect_opens_a_new_one():
    """Seen by the server: each user's turns 1 and 2 came on one TCP connection of that user's own (the body read
    to its end after `[DONE]`, as a browser does, so the connection is reused), turn 3's reconnect on another."""
    app = openai_sse.create_app(secret=SECRET)
    with AsgiServer(app) as server:
        outcome, findings = run(settings(server.url, "openai-chat", users=2, event_timeout_s=3))
    assert findings == []
    ports: dict[str, list[int]] = {}
    tokens: set[str] = set()
    for user, port, jti in app.state.requests:
        ports.setdefault(user, []).append(port)
        tokens.add(jti)
    assert len(ports) == 2 and all(len(p) == 3 for p in ports.values()), ports
    for first, second, reconnected in ports.values():
        assert first == second != reconnected
    one, two = ports.values()
    assert not set(one) & set(two)  # never another user's connection
    assert len(tokens) == 2  # a token far from its expiry is offered again on the reconnect
    answers = [c.summary for c in checks(outcome, "answer (turn 3)")]
    assert all("Earlier:" in a and "marmalade" in a for a in answers), answers  # the history went along


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {
                "journey": {
                    "profile": "adk",
                    "turns": [{"message": "a"}, {"message": "b", "expect_expression": "x"}],
                }
            },
            "journey.turns.1.expect_expression: the completion event 'end_of_body' is the stream's end "
            "(sse.body_end_event) and carries no data to judge",
        ),
        (
            {"journey": {"profile": "openai-chat", "turns": [{"message": "a", "expect_expression": "x"}]}},
            "the completion event '[DONE]' is the stream's end (sse.sentinel)",
        ),
        (
            {
                "journey": {
                    "profile": "chainlit",
                    "send": [{"frame": '{"type": "hello"}', "each": "connection"}],
                }
            },
            "journey.send: frames are sent only over a WebSocket; with transport socketio the message travels in "
            "socketio.emit",
        ),
        (
            {"transport": "sse", "journey": {"send": [{"frame": '{"type": "hello"}'}]}},
            "with transport sse the message travels in sse.body",
        ),
    ],
)
def test_build_settings__what_a_stream_transport_cannot_do_is_refused_by_name(
    config: dict[str, Any], expected: str
):
    with pytest.raises(ConfigError) as caught:
        build_settings(config)
    assert expected in str(caught.value)


def test_build_settings__an_expect_expression_on_a_json_completion_is_kept():
    """Chainlit's task_end is a Socket.IO event with data: an expression on it can hold."""
    turns = [{"message": "a", "expect_expression": "event == 'task_end'"}]
    settings = build_settings({"journey": {"profile": "chainlit", "turns": turns}})
    assert settings.journey.turns[0].expect_expression == "event == 'task_end'"


def test_probe__a_reconnect_renews_a_token_about_to_expire_for_the_same_user():
    """A minted token of 30 s is within the 30 s margin at the reconnect: turn 3 carries a new token of the same
    subject, turns 1 and 2 the first one."""
    app = openai_sse.create_app(secret=SECRET)
    with AsgiServer(app) as server:
        journey = {"profile": "openai-chat", "turns": TURNS, "users": 1, "event_timeout_s": 3}
        config = merged(FAST, {"auth": {"ttl_s": 30}, "journey": journey})
        _, findings = run(build_settings(config, {"url": server.url}))
    assert findings == []
    (subject, _, first), (same, _, second), (again, _, renewed) = app.state.requests
    assert subject == same == again and first == second != renewed
