"""Connection lifetime (`journey.hold_s`) over every transport, the first connection's cold start, and Cloud Run's
request timeout measured through its front end's stand-in: against the reference backend (WebSocket, Socket.IO
with python-socketio's server), a FastAPI + sse-starlette stream that stays open, the Admin API stand-in and
tests/standins/cloud_run_front_end.py, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import jwt
import pytest
from websockets.asyncio.client import connect

from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from tests.cli_support import run_check
from tests.cloudrun_support import cloud_run_flags
from tests.standins.asgi import AsgiServer
from tests.standins.cloud_run_front_end import CloudRunFrontEnd
from tests.standins.cloudrun_api import CloudRunStandIn, Route
from tests.standins.sse_channel import create_app as sse_channel

SECRET = "lifetime-test-secret-0123456789abcdefghijklm"
CHAINLIT = "journey:\n  profile: chainlit\n  users: 1\n  event_timeout_s: 3\n  hold_s: {hold}\n"
SSE = "transport: sse\njourney:\n  users: 1\n  event_timeout_s: 3\n  hold_s: {hold}\n"
WEBSOCKET = "journey:\n  users: 1\n  event_timeout_s: 3\n  hold_s: {hold}\nwebsocket:\n  open_timeout_s: 5\n"


def _check(url: str, tmp_path: Path, config: str, *extra: str) -> tuple[int, dict, str]:
    """`check --url url`, or `check` with ``extra`` (the Cloud Run flags) when there are any."""
    return run_check(tmp_path, config, *(extra or ("--url", url)), env={"JWT_SECRET_KEY": SECRET})


# -- Socket.IO ---------------------------------------------------------------------------------------------------


def test_check__a_socketio_connection_is_held_with_engineio_pings_counted(tmp_path: Path):
    with ReferenceServer(secret=SECRET, socketio_ping_s=0.2) as backend:
        code, saved, report = _check(backend.url, tmp_path, CHAINLIT.format(hold=1.2))
    assert code == 0, saved["findings"]
    hold = saved["hold"]
    assert (hold["user"], hold["transport"], hold["closed_by"], hold["close_code"]) == (
        1,
        "socketio",
        "",
        None,
    )
    assert hold["held_s"] >= 1.2 and hold["age_s"] > hold["held_s"]
    assert hold["pings"] >= 3 and hold["pongs"] >= hold["pings"] - 1  # the last PONG may still be queued
    assert "User 1's Socket.IO connection stayed open for the 1.2 s asked" in report
    assert f"{hold['pings']} Engine.IO pings from the server" in report


def test_check__a_socketio_server_that_disconnects_at_a_fixed_age_is_reported_with_when(tmp_path: Path):
    with ReferenceServer(secret=SECRET, faults=parse_faults(["max-age:1500"])) as backend:
        code, saved, report = _check(backend.url, tmp_path, CHAINLIT.format(hold=10))
    assert code == 0, saved["findings"]  # the journey finished before the session's age ran out
    hold = saved["hold"]
    assert (hold["closed_by"], hold["transport"]) == ("server", "socketio")
    assert "Socket.IO DISCONNECT" in hold["close_reason"]
    assert 1.5 <= hold["age_s"] < 10 and hold["held_s"] < hold["age_s"]
    assert "The server closed user 1's Socket.IO connection" in report


def test_check__a_socketio_server_gone_silent_is_given_up_by_golden_path_after_its_ping_interval_and_timeout(
    tmp_path: Path,
):
    # From 3 s after the upgrade's arrival nothing passes either way (a frozen instance, a black-holed path): no
    # DISCONNECT, no close, no PING. The client gives the connection up after the OPEN packet's ping interval plus
    # timeout: 0 + 1 s (python-engineio's server sends the interval in whole seconds: 0.3 s goes out as 0).
    with (
        ReferenceServer(secret=SECRET, socketio_ping_s=0.3, socketio_ping_timeout_s=1.0) as backend,
        CloudRunFrontEnd(backend.url, timeout_s=60, silent_after_s=3) as front,
    ):
        code, saved, report = _check(front.url, tmp_path, CHAINLIT.format(hold=20))
    assert code == 0, saved["findings"]
    hold = saved["hold"]
    assert (hold["transport"], hold["closed_by"]) == ("socketio", "golden-path")
    assert hold["close_reason"] == (
        "no Engine.IO packet from the server within its ping interval and timeout (1 s)"
    )
    assert 3 <= hold["age_s"] < 15 and hold["pings"] >= 1
    assert not front.cuts  # nothing was cut: the connection went quiet
    assert "golden-path gave up on user 1's Socket.IO connection" in report


# -- SSE ---------------------------------------------------------------------------------------------------------


def test_check__an_sse_stream_left_open_after_the_answer_is_held_counting_its_keepalive_comments(
    tmp_path: Path,
):
    with AsgiServer(sse_channel(secret=SECRET, ping_s=0.2)) as backend:
        code, saved, report = _check(backend.url, tmp_path, SSE.format(hold=1.2))
    assert code == 0, saved["findings"]
    hold = saved["hold"]
    assert (hold["transport"], hold["closed_by"], hold["frames"]) == ("sse", "", 0)
    assert hold["comments"] >= 3 and hold["held_s"] >= 1.2
    assert "User 1's event stream stayed open for the 1.2 s asked" in report
    assert f"{hold['comments']} `:` comments and 0 events from the server while held" in report


def test_check__an_sse_stream_the_server_ends_at_a_fixed_age_is_reported_as_ended_by_the_server(
    tmp_path: Path,
):
    with AsgiServer(sse_channel(secret=SECRET, ping_s=0.2, max_age_s=1.0)) as backend:
        code, saved, report = _check(backend.url, tmp_path, SSE.format(hold=10))
    assert code == 0, saved["findings"]
    hold = saved["hold"]
    assert (hold["closed_by"], hold["close_reason"]) == ("server", "the server ended the response body")
    assert 1.0 <= hold["age_s"] < 10
    assert "The server closed user 1's event stream" in report


def test_check__an_sse_stream_that_floods_while_held_is_closed_by_golden_path_with_why(tmp_path: Path):
    with AsgiServer(sse_channel(secret=SECRET, ping_s=0.2, flood_after_s=0.5)) as backend:
        code, saved, report = _check(backend.url, tmp_path, SSE.format(hold=10))
    assert code == 0, saved["findings"]  # the journey had finished: what came after it is the hold's
    hold = saved["hold"]
    assert (hold["transport"], hold["closed_by"]) == ("sse", "golden-path")
    assert hold["close_reason"] == "the stream sent a line longer than 4 MiB without a line end"
    assert hold["held_s"] < 10
    assert "golden-path gave up on user 1's event stream" in report


# -- the first connection after deploy -----------------------------------------------------------------------------

COLD_MS = 1200.0


def test_reference__the_cold_start_fault_delays_the_first_upgrade_when_it_arrives_first():
    async def upgrade_ms() -> float:
        started = time.perf_counter()
        async with connect(backend.url.replace("http", "ws") + "/ws", subprotocols=["jwt-auth"], proxy=None,
                           additional_headers=[("Authorization", f"Bearer {token}")]):  # fmt: skip
            return (time.perf_counter() - started) * 1000

    with ReferenceServer(secret=SECRET, faults=parse_faults([f"cold-start:{COLD_MS:g}"])) as backend:
        token = jwt.encode({"sub": "u1", "exp": 4_000_000_000}, SECRET, algorithm="HS256")
        first, second = asyncio.run(upgrade_ms()), asyncio.run(upgrade_ms())
    assert first >= COLD_MS > second


def test_check__the_first_connection_is_its_own_cold_metric_never_in_the_warm_handshake_figure(
    tmp_path: Path,
):
    # No health request: the first upgrade is what arrives first at the cold instance. The load user connects
    # after the journey user, on a warm instance.
    config = (
        "health:\n  paths: []\njourney:\n  users: 1\n  event_timeout_s: 3\nload:\n  users: 2\n"
        "websocket:\n  open_timeout_s: 5\n  negative_auth_check: false\n"
    )
    with ReferenceServer(secret=SECRET, faults=parse_faults([f"cold-start:{COLD_MS:g}"])) as backend:
        code, saved, report = _check(backend.url, tmp_path, config)
    assert code == 0, saved["findings"]
    metrics = {m["id"]: m for m in saved["metrics"]}
    cold = metrics["cold_connect_ms"]
    assert cold["samples"] == 1 and cold["value"] >= COLD_MS and cold["target"] is None
    assert cold["label"] == "Cold start: first connection after deploy (WebSocket handshake)"
    warm = metrics["handshake_ms"]
    assert warm["samples"] == 2 and warm["max"] < COLD_MS
    assert [s["first_connection"] for s in saved["samples"]] == [True, False, False]
    assert "| Cold start: first connection after deploy (WebSocket handshake) | 1 |" in report


# -- Cloud Run's request timeout, through its front end ------------------------------------------------------------

TIMEOUT_S = 2


def _through_cloud_run(api: CloudRunStandIn, front: CloudRunFrontEnd, tmp_path: Path, config: str) -> tuple:
    api.add_service("chat")
    api.add_revision("chat", "chat-00002-new", timeout_s=TIMEOUT_S, min_instances=1)
    api.set_traffic("chat", [Route("chat-00002-new", 100, tag="pr-7", uri=front.url)])
    config += "cloud_run:\n  min_session_s: 0\nbaseline:\n  enabled: false\n"
    return _check(front.url, tmp_path, config, *cloud_run_flags(api), "--tag", "pr-7")


@pytest.mark.parametrize("transport", ["websocket", "sse", "socketio"])
def test_check__cloud_runs_request_timeout_cuts_the_held_connection_and_the_report_says_so(
    api: CloudRunStandIn, tmp_path: Path, transport: str
):
    if transport == "sse":
        backend: AsgiServer | ReferenceServer = AsgiServer(sse_channel(secret=SECRET, ping_s=0.2))
        config = SSE.format(hold=10)
    else:
        backend = ReferenceServer(secret=SECRET, socketio_ping_s=0.3)
        config = (WEBSOCKET if transport == "websocket" else CHAINLIT).format(hold=10)
    with backend, CloudRunFrontEnd(backend.url, timeout_s=TIMEOUT_S) as front:
        code, saved, report = _through_cloud_run(api, front, tmp_path, config)
    assert code == 0, saved["findings"]
    hold = saved["hold"]
    assert (hold["transport"], hold["closed_by"]) == (transport, "network")
    # Cut at the timeout, counted from the upgrade's arrival (age), long before the 10 s asked for (held).
    assert TIMEOUT_S <= hold["age_s"] < TIMEOUT_S + 1.5 and hold["held_s"] < min(hold["age_s"], 10)
    assert [c.what for c in front.cuts] == ["cut"]  # the held connection, and nothing else
    assert "the close came at the timeout, so Cloud Run ended the connection as the request it is" in report


@pytest.mark.parametrize(
    ("profile", "fault", "kind"),
    [
        (
            "reference",
            "slow-handshake:4000",
            "ws-upgrade-status",
        ),  # the upgrade's answer never started in time
        ("openai-chat", "slow-handshake:4000", "stream-status"),  # the stream's answer never started in time
        ("reference", "cold-start:4000", "http-status"),  # the first request (health) waits for the instance
    ],
)
def test_check__a_response_that_has_not_started_at_the_timeout_is_cloud_runs_504(
    api: CloudRunStandIn, tmp_path: Path, profile: str, fault: str, kind: str
):
    config = f"journey:\n  profile: {profile}\n  users: 1\n  event_timeout_s: 3\n"
    with (
        ReferenceServer(secret=SECRET, faults=parse_faults([fault])) as backend,
        CloudRunFrontEnd(backend.url, timeout_s=TIMEOUT_S) as front,
    ):
        code, saved, _report = _through_cloud_run(api, front, tmp_path, config)
    finding = next(f for f in saved["findings"] if f["kind"] == kind)
    assert "504" in finding["evidence"]["status"] and "upstream request timeout" in json.dumps(
        finding["evidence"]
    )
    assert front.cuts[0].what == "504" and front.cuts[0].after_s >= TIMEOUT_S
    assert code == 1


def test_check__a_journey_that_never_opened_its_connection_says_nothing_was_held(tmp_path: Path):
    with ReferenceServer(secret=SECRET, faults=parse_faults(["ws-403"])) as backend:
        code, saved, report = _check(backend.url, tmp_path, WEBSOCKET.format(hold=5))
    assert code == 1
    hold = saved["hold"]
    assert (hold["closed_by"], hold["held_s"], hold["transport"]) == ("not held", 0.0, "websocket")
    assert (
        "User 1's WebSocket was not held (5.0 s asked, `journey.hold_s`): the journey did not complete"
        in report
    )
