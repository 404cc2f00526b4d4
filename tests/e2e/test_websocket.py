"""The probe's WebSocket session against real misbehaving servers (tests/standins/hostile_ws.py): each one ends in
its own specific finding within the configured deadlines, and the run still writes its results."""

import asyncio
import io
import json
import time
from pathlib import Path

import pytest

from bot import diagnose
from bot.auth import Credentials
from bot.cli import main
from bot.config import build_settings
from bot.probe.journey import probe
from bot.results import CheckResult, Finding, Kind, Status
from tests.configs import QUIET_TARGETS
from tests.standins import hostile_ws

SECRET = "hostile-test-secret-0123456789abcdefghijk"
EVENT_TIMEOUT_S = 1.0
CONFIG = {
    "health": {"paths": []},
    "auth": {"mode": "hs256"},
    "websocket": {"open_timeout_s": 2, "negative_auth_check": False},
    "journey": {"event_timeout_s": EVENT_TIMEOUT_S, "sla_s": 20, "users": 2},
    "timeouts": {"connect_s": 2, "request_s": 2, "run_s": 30},
    "targets": QUIET_TARGETS,
}


def _probe(url: str, **overrides: object) -> tuple[tuple[CheckResult, ...], tuple[Finding, ...], float]:
    settings = build_settings(CONFIG, {"url": url, **overrides})
    started = time.monotonic()
    outcome = asyncio.run(probe(settings, base_url=url, credentials=Credentials(secret=SECRET)))
    return outcome.checks, diagnose.diagnose(outcome.checks, service="hostile"), time.monotonic() - started


def _only(findings: tuple[Finding, ...], kind: Kind) -> Finding:
    assert [f.kind for f in findings] == [kind], [(f.kind, f.observed) for f in findings]
    return findings[0]


def test_probe__101_then_silence_is_a_timeout_that_says_nothing_arrived():
    with hostile_ws.running(hostile_ws.silence) as url:
        _, findings, took = _probe(url)
    finding = _only(findings, Kind.TIMEOUT)
    assert "No `agent_started` within 1 s of the message was sent" in finding.observed
    assert "nothing else arrived" in finding.observed
    assert took < 10


def test_probe__heartbeats_do_not_keep_a_stalled_agent_alive():
    with hostile_ws.running(hostile_ws.heartbeats) as url:
        checks, findings, took = _probe(url)
    finding = _only(findings, Kind.TIMEOUT)
    assert finding.fingerprint == "hostile:timeout:agent_thinking"
    assert "No `agent_thinking` within 1 s of `agent_started`" in finding.observed
    assert "only heartbeat arrived" in finding.observed
    assert "heartbeat ×" in finding.evidence["other frames"]
    assert "(unexpected)" not in finding.evidence["other frames"]  # heartbeats are in journey.ignored_events
    assert took < 10, "the event deadline restarted on every heartbeat"
    isolation = [c for c in checks if c.id == "isolation"]
    assert len(isolation) == 2 and all(c.status is Status.PASS for c in isolation)


@pytest.mark.parametrize(
    ("behaviour", "says"),
    [
        ("not-json", "frame is not JSON"),
        ("binary", "frame is not UTF-8"),
        ("nested", "nested deeper than 64 levels"),
        ("wrong-type-name", "no string event name at `type` (found int 42)"),
    ],
)
def test_probe__frames_that_do_not_match_the_protocol_are_findings_with_the_frame(behaviour: str, says: str):
    with hostile_ws.running(hostile_ws.BEHAVIOURS[behaviour]) as url:
        _, findings, _ = _probe(url)
    finding = _only(findings, Kind.WS_PROTOCOL)
    assert says in finding.observed
    assert finding.evidence["frame"]


def test_probe__invalid_utf8_is_the_clients_own_close_not_the_servers():
    with hostile_ws.running(hostile_ws.invalid_utf8) as url:
        _, findings, _ = _probe(url)
    finding = _only(findings, Kind.WS_PROTOCOL)
    assert "not valid UTF-8, so the client closed the connection (code 1007)" in finding.observed
    assert "agent_started" in finding.evidence["frames"]


def test_probe__a_50_mb_frame_is_the_clients_own_close():
    # The event deadline is not what this test is about: building and sending 2 x 50 MB on a loaded machine can
    # take longer than a second before the first byte of the frame leaves.
    with hostile_ws.running(hostile_ws.huge_frame) as url:
        _, findings, took = _probe(url, **{"journey.event_timeout_s": 20})
    finding = _only(findings, Kind.WS_PROTOCOL)
    assert (
        "over the client's 4 MiB limit, so the client closed the connection (code 1009)" in finding.observed
    )
    assert finding.evidence["client close code"] == "1009"
    assert took < 15


def test_probe__a_frame_over_the_limit_stays_the_clients_own_close_when_the_server_closes_after_the_deadline():
    # The client closes with 1009 at once, then waits for the server's TCP close, which comes after the 1 s
    # event deadline: the finding is still the server's protocol break, not a timeout.
    with hostile_ws.running(hostile_ws.huge_frame_busy) as url:
        _, findings, took = _probe(url)
    finding = _only(findings, Kind.WS_PROTOCOL)
    assert (
        "over the client's 4 MiB limit, so the client closed the connection (code 1009) while waiting for "
        "`agent_thinking`" in finding.observed
    )
    assert finding.evidence["client close code"] == "1009"
    assert took < 15


def test_probe__100000_small_frames_then_the_journey_passes():
    with hostile_ws.running(hostile_ws.BEHAVIOURS["small-frames"]) as url:
        checks, findings, _ = _probe(url, **{"journey.users": 1, "journey.event_timeout_s": 20})
    assert findings == (), [(f.kind, f.observed) for f in findings]
    events = next(c for c in checks if c.id == "events")
    assert events.status is Status.PASS


def test_probe__a_flood_of_another_users_events_keeps_the_isolation_finding():
    with hostile_ws.running(hostile_ws.small_frames(20_000, foreign=True)) as url:
        _, findings, _ = _probe(url, **{"journey.users": 1, "journey.event_timeout_s": 20})
    leak = next(f for f in findings if f.kind is Kind.ISOLATION_LEAK)
    assert "received 20000 frame(s) that belong to another user" in leak.observed
    assert len(leak.evidence) == 5  # evidence is bounded however large the flood


def test_probe__wrong_types_in_every_field_are_findings_not_crashes():
    with hostile_ws.running(hostile_ws.wrong_types) as url:
        _, findings, _ = _probe(url)
    finding = _only(findings, Kind.ANSWER_EMPTY)
    assert "matched an object, not text" in finding.observed


def test_probe__another_users_events_are_an_isolation_leak():
    with hostile_ws.running(hostile_ws.other_users_events) as url:
        _, findings, _ = _probe(url)
    finding = _only(findings, Kind.ISOLATION_LEAK)
    assert "thread=golden-path-other-user-thread" in finding.observed or any(
        "golden-path-other-user-thread" in v for v in finding.evidence.values()
    )


def test_probe__a_subprotocol_not_offered_and_none_echoed_are_subprotocol_findings():
    with hostile_ws.running(hostile_ws.complete, echo="not-offered") as url:
        _, findings, _ = _probe(url)
    assert _only(findings, Kind.WS_SUBPROTOCOL).fingerprint == "hostile:ws-subprotocol:negotiation"
    with hostile_ws.running(hostile_ws.complete, echo="none") as url:
        _, findings, _ = _probe(url)
    assert _only(findings, Kind.WS_SUBPROTOCOL).fingerprint == "hostile:ws-subprotocol:no-echo"


def test_probe__auth_refused_after_the_upgrade_is_ws_auth_rejected_with_code_and_frame():
    with hostile_ws.running(hostile_ws.auth_failed_after_upgrade) as url:
        _, findings, _ = _probe(url)
    finding = _only(findings, Kind.WS_AUTH_REJECTED)
    assert finding.fingerprint == "hostile:ws-auth-rejected:4001"
    assert finding.evidence["close code"] == "4001"
    assert "AUTH_FAILED" in finding.evidence["error frame"]


def test_probe__negative_check_counts_only_a_real_refusal():
    with hostile_ws.running(hostile_ws.restart_without_token) as url:
        checks, findings, _ = _probe(url, **{"websocket.negative_auth_check": True})
    negative = next(c for c in checks if c.id == "auth-negative")
    assert negative.status is Status.NOT_VERIFIED
    assert "closed with 1012" in negative.summary and "not an authentication refusal" in negative.summary
    assert findings == ()


@pytest.mark.parametrize("step", ["connect", "message", "events"])
@pytest.mark.parametrize("code", [1000, 1001, 1006, 1008, 1011, 1012])
def test_probe__each_close_code_at_each_step_is_named(step: str, code: int):
    with hostile_ws.running(hostile_ws.close_at(step, code)) as url:
        checks, findings, took = _probe(url)
    kind = Kind.WS_AUTH_REJECTED if code == 1008 else Kind.WS_CLOSED_EARLY
    finding = _only(findings, kind)
    assert finding.evidence["close code"] == str(code)
    assert took < 10
    if step == "events":
        assert "agent_started, agent_thinking" in finding.evidence["events received"]
    answers = [c for c in checks if c.id == "answer"]
    assert answers and all(c.status is Status.SKIP for c in answers)  # never blamed: it never ran


def test_probe__the_run_deadline_keeps_the_evidence_and_the_isolation_finding():
    async def leak_then_stall(connection) -> None:
        thread_id = str((await hostile_ws.read_message(connection)).get("thread_id", ""))
        await connection.send(hostile_ws.event("agent_started", thread_id))
        await connection.send(hostile_ws.event("agent_thinking", "another-thread", user_id="someone-else"))
        await hostile_ws.heartbeats_forever(connection)

    with hostile_ws.running(leak_then_stall) as url:
        checks, findings, took = _probe(url, **{"journey.event_timeout_s": 60, "timeouts.run_s": 2})
    kinds = {f.kind for f in findings}
    assert Kind.ISOLATION_LEAK in kinds and Kind.JOURNEYS_INCOMPLETE in kinds
    # run_s (2 s) is shorter than the SLA: the cut is the configuration's, not the revision's, yet what the stream
    # showed stays in the evidence.
    cut = next(f for f in findings if f.kind is Kind.JOURNEYS_INCOMPLETE)
    assert "agent_started" in cut.evidence["user 1: events received"]
    assert [c.status for c in checks if c.id == "events"] == [Status.NOT_VERIFIED, Status.NOT_VERIFIED]
    assert not any(c.status is Status.FAIL for c in checks if c.id in ("login", "handshake", "message"))
    assert [c.status for c in checks if c.id == "answer"] == [Status.SKIP, Status.SKIP]
    assert took < 6


@pytest.mark.parametrize("behaviour", ["huge-frame", "nested", "heartbeats"])
def test_main__a_hostile_server_still_gets_results_a_report_and_exit_1(tmp_path: Path, behaviour: str):
    config = tmp_path / "gp.yml"
    config.write_text(json.dumps(CONFIG))  # JSON is YAML
    with hostile_ws.running(hostile_ws.BEHAVIOURS[behaviour]) as url:
        out, err = io.StringIO(), io.StringIO()
        argv = [
            "check",
            "--url",
            url,
            "--config",
            str(config),
            "--output-dir",
            str(tmp_path / "out"),
            "--quiet",
        ]
        code = main(argv, env={"JWT_SECRET_KEY": SECRET}, stdout=out, stderr=err)
    assert code == 1, err.getvalue()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["verdict"] == "fail" and saved["findings"]
    assert (tmp_path / "out" / "report.md").read_text().startswith("## ❌ golden-path: FAIL")
    assert "Traceback" not in err.getvalue()


def test_stamped_connection__arrival_is_when_the_frame_was_read_not_when_the_task_got_to_it():
    """A thousand users keep the loop busy: a message can wait for this user's task long after its bytes came in.
    The arrival recorded is the read, so a busy probe does not make the server look slow."""
    from websockets.asyncio.server import serve

    from bot.probe.websocket import open_connection
    from bot.protocol import Offer

    async def echo_twice(ws):  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(f"first {message}")
            await ws.send(f"second {message}")

    async def scenario() -> tuple[float, float, float, float]:
        async with serve(echo_twice, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            handshake = await open_connection(Offer(f"ws://127.0.0.1:{port}/", (), ()), timeout_s=5)
            connection = handshake.connection
            assert connection is not None
            loop = asyncio.get_running_loop()
            await connection.send("go")
            await asyncio.sleep(0.2)  # both frames come in and are read while the task waits
            time.sleep(0.3)  # then the loop is busy with other work before the task runs again
            first = await connection.recv()
            returned = loop.time()
            at_first = connection.arrival()
            second = await connection.recv()
            at_second = connection.arrival()
            await connection.close()
            assert (first, second) == ("first go", "second go")
            return returned, at_first, at_second, loop.time()

    returned, at_first, at_second, end = asyncio.run(scenario())
    assert returned - at_first >= 0.3  # the read, not the task's turn
    assert at_first <= at_second < returned and end >= returned
