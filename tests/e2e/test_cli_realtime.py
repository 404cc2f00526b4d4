"""Real-time on Cloud Run as a user meets it through `check`: the revision's settings judged, the cold start
measured, and a held connection's lifetime, against the Admin API stand-in and reference backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect

from bot.probe import hold as holding
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.untrusted import Redactor
from tests.cli_support import run_check, run_main
from tests.cloudrun_support import cloud_run_flags
from tests.configs import QUIET_TARGETS_YAML
from tests.standins.cloudrun_api import CloudRunStandIn, Route
from tests.standins.logging_api import LoggingStandIn

SECRET = "realtime-test-secret-0123456789abcdefghijklm"
# The findings a revision's settings give are the subject, not the machine's speed.
FAST = (
    "journey:\n  event_timeout_s: 2\n  users: 2\nwebsocket:\n  open_timeout_s: 2\nbaseline:\n  enabled: false\n"
    + QUIET_TARGETS_YAML
)
OLD, NEW = "chat-00001-old", "chat-00002-new"


@pytest.fixture
def backend() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version="abc1234def") as server:
        yield server


def check(api: CloudRunStandIn, tmp_path: Path, config: str = FAST) -> tuple[int, dict, str]:
    return run_check(tmp_path, config, *cloud_run_flags(api), "--tag", "pr-7", env={"JWT_SECRET_KEY": SECRET})


def deploy(api: CloudRunStandIn, backend: ReferenceServer, **revision: object) -> None:
    api.add_service("chat")
    api.add_revision("chat", NEW, **revision)  # type: ignore[arg-type]
    api.set_traffic("chat", [Route(NEW, 100, tag="pr-7", uri=backend.url)])


def test_check__cloud_runs_default_timeout_and_h2c_are_findings_and_the_settings_are_shown(
    api: CloudRunStandIn, backend: ReferenceServer, tmp_path: Path
):
    deploy(api, backend, timeout_s=300, port_name="h2c", concurrency=1, min_instances=0, max_instances=20)
    code, saved, report = check(api, tmp_path)
    assert code == 1  # P1 correctness findings fail the default `fail-on: correctness`
    kinds = {f["kind"]: f for f in saved["findings"]}
    assert set(kinds) == {"request-timeout-short", "http2-end-to-end"}
    assert (
        "gcloud run services update chat --region=r --timeout=900"
        in kinds["request-timeout-short"]["remediation"]
    )
    settings = saved["target"]["settings"]
    assert (settings["timeout_s"], settings["port_name"], settings["max_concurrency"]) == (300.0, "h2c", 1)
    assert {n["rule"] for n in settings["notes"]} == {"concurrency-one", "min-instances-zero"}
    assert "request timeout 5 min" in report and "`h2c` (HTTP/2 end to end)" in report
    assert "each open WebSocket holds a whole instance" in report


def test_check__affinity_off_for_a_reconnecting_journey_warns_without_failing_the_default_gate(
    api: CloudRunStandIn, backend: ReferenceServer, tmp_path: Path
):
    deploy(api, backend, session_affinity=False, max_instances=20, min_instances=1)
    turns = "  turns:\n    - message: hello\n    - message: again\n      reconnect: true\n"
    code, saved, _report = check(api, tmp_path, FAST.replace("journey:\n", "journey:\n" + turns, 1))
    assert [f["kind"] for f in saved["findings"]] == ["session-affinity-off"]
    assert saved["verdict"] == "degraded" and code == 0  # a warning never fails `fail-on: correctness`
    assert "--session-affinity" in saved["findings"][0]["remediation"]


def test_check__a_well_configured_revision_passes_with_its_settings_checked(
    api: CloudRunStandIn, backend: ReferenceServer, tmp_path: Path
):
    deploy(api, backend, timeout_s=3600, min_instances=1)
    code, saved, _report = check(api, tmp_path)
    assert code == 0, saved["findings"]
    checks = {c["id"]: c["status"] for c in saved["checks"] if c["step"] == "revision"}
    assert checks["request-timeout"] == "pass" and checks["http2-end-to-end"] == "pass"
    assert saved["target"]["settings"]["notes"] == []


# -- cold start --------------------------------------------------------------------------------------------------

COLD_MS = 1200.0


def test_check__the_first_request_is_the_cold_start_beside_the_serving_revisions_warm_figure(tmp_path: Path):
    with (
        LoggingStandIn(project="p", region="r") as logging_api,
        CloudRunStandIn(project="p", region="r") as run_api,
        ReferenceServer(secret=SECRET, version="0ld0ld0ld") as serving,
        ReferenceServer(secret=SECRET, faults=parse_faults([f"cold-start:{COLD_MS:g}"])) as new,
    ):
        run_api.add_service("chat", uri=serving.url)
        run_api.add_revision("chat", OLD)
        run_api.add_revision("chat", NEW)
        run_api.set_traffic("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=new.url)])
        logging_api.instance_start("chat", NEW, reason="DEPLOYMENT")
        logging_api.instance_start("chat", NEW)
        logging_api.instance_start("chat", OLD)  # another revision's start is not this one's
        config = (
            "journey:\n  event_timeout_s: 2\n  users: 2\nwebsocket:\n  open_timeout_s: 2\n"
            f"logs:\n  mode: always\n  endpoint: {logging_api.url}\n  settle_s: 0\n"
            "baseline:\n  max_ratio: 1.5\n  min_delta_ms: 50\n"
        )
        code, saved, report = check(run_api, tmp_path, config)
    metrics = {m["id"]: m for m in saved["metrics"]}
    cold = metrics["cold_start_ms"]
    assert cold["samples"] == 1 and cold["value"] >= COLD_MS and cold["target"] is None
    assert cold["label"] == "Cold start: first request after deploy (GET /health)"
    assert metrics["api_ms"]["max"] < COLD_MS  # the warm health figure never holds the first request
    comparison = next(c for c in saved["baseline"]["comparisons"] if c["id"] == "cold_start_ms")
    assert comparison["baseline_p95"] < COLD_MS and comparison["regression"] is False
    assert not [f for f in saved["findings"] if f["kind"] == "perf-regression" and "cold" in f["fingerprint"]]
    # The first connection is measured apart too, with the serving revision's own first connection beside it.
    connect = next(c for c in saved["baseline"]["comparisons"] if c["id"] == "cold_connect_ms")
    assert (
        connect["p95"] is not None and connect["baseline_p95"] is not None and connect["regression"] is False
    )
    assert saved["logs"]["instance_starts"] == 2
    assert 'Cloud Run logged 2 "Starting new instance" entries for the revision' in report
    assert "| Cold start: first request after deploy (GET /health) | 1 |" in report
    assert code == 0, saved["findings"]


def test_reference__the_cold_start_fault_delays_only_the_first_request():
    with ReferenceServer(secret=SECRET, faults=parse_faults(["cold-start:800"])) as backend:
        timings = []
        for _ in range(2):
            answer = httpx.get(backend.url + "/health", timeout=5, trust_env=False)
            timings.append(answer.elapsed.total_seconds() * 1000)
            assert answer.status_code == 200
    assert timings[0] >= 800 > timings[1]


# -- connection lifetime -----------------------------------------------------------------------------------------

HOLD = "journey:\n  event_timeout_s: 2\n  users: 2\n  hold_s: {hold}\nwebsocket:\n  open_timeout_s: 2\n"


def check_url(backend: ReferenceServer, tmp_path: Path, config: str, *extra: str) -> tuple[int, dict, str]:
    return run_check(tmp_path, config, "--url", backend.url, *extra, env={"JWT_SECRET_KEY": SECRET})


def test_check__a_server_closing_at_a_fixed_age_is_reported_with_when_and_the_close_code(tmp_path: Path):
    with ReferenceServer(secret=SECRET, faults=parse_faults(["max-age:1500"])) as backend:
        code, saved, report = check_url(backend, tmp_path, HOLD.format(hold=10))
    assert code == 0, saved["findings"]  # the journey itself finished before the connection's age ran out
    hold = saved["hold"]
    assert (hold["user"], hold["closed_by"], hold["close_code"], hold["close_reason"]) == (
        1,
        "server",
        1001,
        "max connection age",
    )
    assert 1.5 <= hold["age_s"] < 10 and hold["held_s"] < hold["age_s"] and hold["requested_s"] == 10
    assert "The server closed user 1's WebSocket" in report and "close code 1001" in report


def test_check__a_connection_that_stays_open_is_held_the_whole_time_and_closed_by_golden_path(tmp_path: Path):
    with ReferenceServer(secret=SECRET) as backend:
        code, saved, report = check_url(backend, tmp_path, HOLD.format(hold=1))
    assert code == 0
    hold = saved["hold"]
    assert hold["closed_by"] == "" and hold["close_code"] is None and hold["held_s"] >= 1
    assert "User 1's WebSocket stayed open for the 1.0 s asked" in report and "WebSocket ping" in report


@pytest.mark.parametrize("profile", ["openai-chat", "adk", "ai-sdk"])
def test_check__an_sse_stream_that_closed_with_its_answer_is_not_held_and_says_why(
    tmp_path: Path, profile: str
):
    config = f"journey:\n  profile: {profile}\n  users: 1\n  hold_s: 1\n  event_timeout_s: 2\n"
    with ReferenceServer(secret=SECRET) as backend:
        code, saved, report = check_url(backend, tmp_path, config)
    assert code == 0, saved["findings"]
    hold = saved["hold"]
    assert (hold["closed_by"], hold["held_s"], hold["transport"]) == ("not held", 0.0, "sse")
    assert hold["close_reason"] == holding.CLOSED_WITH_ANSWER
    assert (
        "User 1's event stream was not held (1.0 s asked, `journey.hold_s`): the stream closed with the answer; "
        "each answer is one request bounded by the request timeout." in report
    )


def test_check__a_sharded_run_holds_one_users_connection_in_the_shard_that_runs_user_1(tmp_path: Path):
    with ReferenceServer(secret=SECRET) as backend:
        _, first, _ = check_url(backend, tmp_path / "1", HOLD.format(hold=0.5), "--shard", "1/2")
        _, second, _ = check_url(backend, tmp_path / "2", HOLD.format(hold=0.5), "--shard", "2/2")
    assert first["hold"]["user"] == 1 and second["hold"] is None
    output = tmp_path / "merged"
    code, _out, err = run_main(
        ["merge", str(tmp_path / "1/out/results.json"), str(tmp_path / "2/out/results.json"),
         "--output-dir", str(output), "--quiet"],
        {},
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((output / "results.json").read_text())["hold"]["user"] == 1


def test_check__a_hold_longer_than_the_run_deadline_is_refused_naming_the_keys(tmp_path: Path):
    path = tmp_path / "golden-path.yml"
    path.write_text("journey:\n  hold_s: 900\n")
    code, _out, err = run_main(["check", "--url", "http://127.0.0.1:9", "--config", str(path)], {})
    assert code == 2
    assert "journey.hold_s (900 s)" in err and "raise timeouts.run_s to at least 945" in err


def test_hold__pings_keep_the_connection_alive_and_pongs_are_counted():
    async def held() -> object:
        async with connect(backend.url.replace("http", "ws") + "/ws", subprotocols=["jwt-auth"], proxy=None,
                           additional_headers=[("Authorization", f"Bearer {token}")]) as connection:  # fmt: skip
            opened = asyncio.get_running_loop().time()
            return await holding.hold(
                connection, user=1, seconds=0.6, opened_at=opened, redactor=Redactor(), ping_every_s=0.1
            )

    with ReferenceServer(secret=SECRET) as backend:
        token = jwt.encode({"sub": "u1", "exp": 4_000_000_000}, SECRET, algorithm="HS256")
        record = asyncio.run(held())
    assert record.closed_by == "" and record.pings >= 3 and record.pongs == record.pings
    assert record.frames >= 1  # the welcome frame read while held
