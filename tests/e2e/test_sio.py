"""The Socket.IO transport (python-socketio's client) against the reference's Chainlit wire (python-socketio's
server, written from Chainlit's source): the chainlit profile healthy and under each fault, CONNECT_ERROR as a
refusal, the completion qualified by the message's own run, and a WebSocket config pointed at Socket.IO."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import diagnose, results
from bot.auth import Credentials
from bot.config import build_settings
from bot.errors import ConfigError
from bot.probe.journey import probe
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.results import Kind, Severity, Status, Verdict
from bot.settings import Settings
from tests.cli_support import check_url_argv, results_json, run_main, write_config
from tests.configs import QUIET_TARGETS, QUIET_TARGETS_YAML, readme_yaml

SECRET = "reference-secret-for-tests-0123456789abcdef"
VERSION = "1111111aaaaaaa"
FAST = {
    "journey": {"profile": "chainlit", "event_timeout_s": 1.5, "users": 3},
    "socketio": {"open_timeout_s": 3},
    "timeouts": {"connect_s": 1.5, "request_s": 1.5, "run_s": 20},
    # Performance is measured in benchmarks/: here a busy 2-core machine must not add a finding.
    "targets": QUIET_TARGETS,
}


def _settings(url: str, **journey: object) -> Settings:
    return build_settings({**FAST, "journey": {**FAST["journey"], **journey}}, {"url": url})


def _run(settings: Settings):
    outcome = asyncio.run(
        probe(settings, base_url=settings.url or "", credentials=Credentials(secret=SECRET))
    )
    return outcome, diagnose.diagnose(outcome.checks, service="ref")


def test_probe__healthy_chainlit_app_passes_with_isolation_verified_and_the_negative_check_refused():
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        outcome, findings = _run(_settings(server.url))
    assert findings == ()
    by_id = {(c.id, c.user): c for c in outcome.checks}
    for user in (1, 2, 3):
        for check in ("login", "handshake", "message", "events", "answer"):
            assert by_id[(check, user)].status is Status.PASS, (check, user)
        assert "verified by nonce" in by_id[("isolation", user)].summary
        assert by_id[("answer", user)].summary.startswith(
            "126 characters"
        )  # the last assistant_message, whole
    assert by_id[("auth-negative", None)].status is Status.PASS


EXPECTED = {
    "ws-403": (Kind.STREAM_AUTH_REJECTED, "401"),  # /auth/header refuses the token: no cookie
    "ws-502": (Kind.STREAM_STATUS, "502"),
    "rate-limited": (Kind.RATE_LIMITED, "429"),
    "close-early": (Kind.STREAM_CLOSED_EARLY, "task_end"),  # a DISCONNECT before the run's task_end
    "end-at-once": (Kind.STREAM_CLOSED_EARLY, "task_end"),
    "never-complete": (Kind.TIMEOUT, "task_end"),
    "error-event": (Kind.EVENT_ERROR, "error"),  # an assistant_message with isError
    "canned-answer": (Kind.ANSWER_CANNED, ""),
    "empty-answer": (Kind.ANSWER_EMPTY, ""),
    "cross-talk": (Kind.ISOLATION_LEAK, ""),  # sio.emit without `to=`: every client gets every token
    "accept-unauthenticated": (Kind.STREAM_UNAUTHENTICATED_ACCEPTED, ""),
}


@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_probe__each_fault_yields_its_kind_on_the_chainlit_wire(fault: str):
    kind, detail = EXPECTED[fault]
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults([fault])) as server:
        _, findings = _run(_settings(server.url))
    fingerprint = diagnose.fingerprint("ref", kind, detail)
    assert fingerprint in [f.fingerprint for f in findings], findings
    finding = next(f for f in findings if f.fingerprint == fingerprint)
    assert finding.severity is Severity.P0 and finding.evidence
    assert results.verdict_for(findings) is Verdict.FAIL


def test_probe__a_socket_that_ends_at_once_is_closed_early_without_waiting_for_the_event_timeout():
    with ReferenceServer(secret=SECRET, version=VERSION, faults=parse_faults(["end-at-once"])) as server:
        started = time.monotonic()
        _, findings = _run(_settings(server.url, event_timeout_s=30, users=1))
        took = time.monotonic() - started
    assert [f.kind for f in findings] == [Kind.STREAM_CLOSED_EARLY]
    assert took < 15, "waited out the event timeout"


def test_probe__a_connect_error_is_a_refusal_and_the_engine_io_open_is_not_acceptance():
    """Without the header-auth step there is no cookie: Chainlit refuses the CONNECT. The user's journey says
    so, and the negative check passes on the CONNECT_ERROR (the Engine.IO open before it accepted nothing)."""
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        outcome, findings = _run(_settings(server.url, requests=[]))
    assert [f.fingerprint for f in findings] == ["ref:stream-auth-rejected:connect-error"]
    assert "CONNECT_ERROR" in findings[0].observed
    negative = next(c for c in outcome.checks if c.id == "auth-negative")
    assert negative.status is Status.PASS and "CONNECT_ERROR" in negative.summary


def test_probe__without_the_run_qualification_the_connections_own_task_end_ends_the_run():
    """The connection's task_end (and welcome message) arrive before the message's task_start: only
    `run_starts_with` keeps them from ending the run, so dropping it must break the journey."""
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        settings = _settings(server.url, users=1)
        loose = settings.model_copy(
            update={"socketio": settings.socketio.model_copy(update={"run_starts_with": None})}
        )
        _, findings = _run(loose)
    assert findings, (
        "the connection's own task_end was taken for this message's completion and nothing noticed"
    )


def test_probe__a_websocket_config_pointed_at_socketio_says_so_and_is_not_unauthenticated_accepted():
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        bare = build_settings(
            {"websocket": {"path": "/ws/socket.io/"}, "journey": {"users": 1}, "timeouts": FAST["timeouts"]},
            {"url": server.url},
        )
        _, findings = _run(bare)
        assert all(
            "set `transport: socketio`" in f.observed for f in findings if f.step is results.Step.CONNECT
        )
        raw = build_settings(
            {"websocket": {"path": "/ws/socket.io/?EIO=4&transport=websocket"}, "journey": {"users": 1}},
            {"url": server.url},
        )
        outcome, findings = _run(raw)
    assert Kind.WS_UNAUTHENTICATED_ACCEPTED not in [f.kind for f in findings]
    negative = next(c for c in outcome.checks if c.id == "auth-negative")
    assert negative.status is Status.NOT_VERIFIED  # the Engine.IO open packet accepted no one


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        (
            {"transport": "socketio", "socketio": {"emit": [{"event": "m", "data": '{"x": "{msg}"}'}]}},
            "",
            "socketio.emit.0.data",
        ),
        ({"transport": "socketio", "socketio": {"auth": '"{token}"'}}, "", "a frame must be a JSON object"),
        ({"socketio": {"transports": []}}, "socketio.transports", "name at least one of polling, websocket"),
    ],
)
def test_build_settings__bad_socketio_configuration_is_one_clear_line(
    data: dict[str, object], key: str, expected: str
):
    with pytest.raises(ConfigError) as caught:
        build_settings(data)
    assert caught.value.key == key
    assert expected in str(caught.value)


def test_main__the_readme_chainlit_config_passes_against_its_backend(tmp_path: Path):
    opening = "A Chainlit app whose `@cl.header_auth_callback`"
    # a verdict is the subject, not the speed
    config = write_config(tmp_path, readme_yaml(opening) + QUIET_TARGETS_YAML)
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        code, _out, err = run_main(
            check_url_argv(server.url, config, tmp_path),
            env={"JWT_SECRET_KEY": SECRET, "GITHUB_SHA": VERSION},
        )
    saved = results_json(tmp_path)
    assert (saved["verdict"], code) == ("pass", 0), saved["findings"] or err
    guarded = [c for c in saved["checks"] if c["id"] in ("isolation", "auth-negative")]
    assert {c["id"] for c in guarded} == {"isolation", "auth-negative"}, saved["checks"]  # both ran
    assert all(c["status"] == "pass" for c in guarded)


def test_start_up__a_websocket_run_does_not_import_python_socketio():
    # python-socketio and aiohttp cost ~120 ms to import: only a Socket.IO journey may load them.
    code = "import sys, bot.pipeline; print(sorted(m for m in ('socketio', 'aiohttp') if m in sys.modules))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


def test_main__a_socketio_run_does_not_load_requests_and_leaves_nothing_unclosed(tmp_path: Path):
    # python-socketio's package imports its synchronous client, and that client requests (with urllib3: 5 MB and
    # 30 ms), which a run never uses; requests stays importable afterwards (PyGithub needs it to publish). 40 users
    # (two pools) in development mode: no socket or session is reported unclosed. (The pools' connectors hold no
    # idle connection by the end of a run, the polling one having become the WebSocket, so an unreleased
    # connector would not show here.)
    config = write_config(
        tmp_path,
        "journey: {profile: chainlit, users: 40, event_timeout_s: 10}\nsocketio: {open_timeout_s: 10}\n"
        + QUIET_TARGETS_YAML,
    )
    argv = check_url_argv("URL", config, tmp_path, "--no-publish")
    code = (
        "import sys; from bot.cli import main; "
        f"main([sys.argv[1] if a == 'URL' else a for a in {argv!r}]); "
        "loaded = sorted(m for m in ('socketio', 'aiohttp', 'requests', 'urllib3') if m in sys.modules); "
        "import requests; print(loaded)"
    )
    with ReferenceServer(secret=SECRET, version=VERSION) as server:
        shown = subprocess.run(
            [sys.executable, "-X", "dev", "-c", code, server.url],
            capture_output=True,
            text=True,
            timeout=120,
            env={"JWT_SECRET_KEY": SECRET, "GITHUB_SHA": VERSION, "PATH": "/usr/bin:/bin"},
        )
    saved = results_json(tmp_path)
    assert saved["verdict"] == "pass", saved["findings"] or shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "['aiohttp', 'socketio']", shown.stderr
    assert "Unclosed" not in shown.stderr
    assert "ResourceWarning" not in shown.stderr


def test_socketio_import__a_python_socketio_that_needs_requests_still_loads(tmp_path: Path):
    # requests is hidden only as an economy: were a later python-engineio to import it unconditionally, Socket.IO
    # still loads (with requests), never fails to. A stand-in package named socketio, first on the path, does that.
    (tmp_path / "socketio").mkdir()
    (tmp_path / "socketio" / "__init__.py").write_text("import requests\nNEEDS = requests.__name__\n")
    code = "import sys; from bot.probe import sio; print(sio._socketio().NEEDS, 'requests' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}", "PATH": "/usr/bin:/bin"},
    )
    assert shown.stdout.split() == ["requests", "True"], shown.stderr
