"""No verdict without its journeys (#19 item 1), as a user meets it: `check --on-pass promote` through the CLI
against the Cloud Run Admin API stand-in and a backend whose health is slow but healthy and whose upgrade
without a token never answers. A journey that did not run is never promoted."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bot import cloudrun, pipeline, results
from bot.config import build_settings
from tests import samples
from tests.cli_support import check_url_argv, results_json, run_main, write_config
from tests.cloudrun_support import cloud_run_flags
from tests.standins.cloudrun_api import CloudRunStandIn, Route
from tests.standins.hostile_http import RawHTTPServer, WebSocketServerThread, respond, silent
from tests.standins.hostile_ws import EVENTS, event, read_message

SECRET = "unfinished-journeys-secret-0123456789abcdef"
OLD, NEW = "chat-00001-old", "chat-00002-new"
IMAGE = "europe-docker.pkg.dev/p/repo/chat@sha256:" + "b" * 64


class SlowBackend(WebSocketServerThread):
    """A websockets server written the way such a backend is: health answers 200 after ``health_s``; an upgrade
    without ``Authorization`` is never answered (a handler awaiting an auth service that hangs); with a token,
    the agent sends its events ``event_gap_s`` apart (slow, each within the event deadline)."""

    def __init__(self, *, health_s: float, event_gap_s: float) -> None:
        super().__init__(name="slow-backend")
        self.health_s = health_s
        self.event_gap_s = event_gap_s
        self.anonymous_upgrades = 0
        self._release = asyncio.Event()  # set on exit: the unanswered upgrade ends with the test

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/health"):
            await asyncio.sleep(self.health_s)
            body = json.dumps({"status": "healthy", "service": "chat"}).encode()
            headers = Headers(
                {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close"}
            )
            return Response(200, HTTPStatus.OK.phrase, headers, body)
        if "Authorization" not in request.headers:
            self.anonymous_upgrades += 1
            await self._release.wait()  # never answered while the test runs
        return None

    async def handler(self, connection: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            thread_id = str((await read_message(connection)).get("thread_id", ""))
            for name in EVENTS:
                await asyncio.sleep(self.event_gap_s)
                await connection.send(event(name, thread_id))
            await connection.wait_closed()

    async def closing(self) -> None:
        self._release.set()


def _deploy(api: CloudRunStandIn, *, tag_url: str) -> None:
    api.add_service("chat", uri="http://127.0.0.1:9")  # the service URL is never probed: the tag URL is
    api.add_revision("chat", OLD, image=IMAGE)
    api.add_revision("chat", NEW, image=IMAGE)
    api.set_traffic("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=tag_url)])


def _check(api: CloudRunStandIn, tmp_path: Path, config: str, *flags: str) -> tuple[int, str, dict]:
    path = write_config(tmp_path, config)
    argv = [
        "check",
        *cloud_run_flags(api),
        "--config",
        str(path),
        "--output-dir",
        str(tmp_path / "out"),
        "--quiet",
    ]
    code, _out, err = run_main([*argv, *flags], {"JWT_SECRET_KEY": SECRET})
    assert "Traceback" not in err
    return code, err, results_json(tmp_path / "out")


def _traffic(api: CloudRunStandIn) -> list[tuple[str, int, str]]:
    return [(t.revision, t.percent, t.tag) for t in api.traffic("chat")]


# Health takes 4 × 0.4 s (one check and three latency samples), the agent's five events 0.5 s apart: the journeys
# cannot finish inside a 3 s run, whatever the check without a token does.
SLOW_RUN = """\
health:
  latency_samples: 3
journey:
  users: 2
  event_timeout_s: 2
websocket:
  open_timeout_s: 5
timeouts:
  run_s: 3
"""


@pytest.mark.parametrize("fail_on", ["correctness", "p0", "any"])
def test_main__journeys_cut_by_the_run_deadline_fail_the_gate_and_promote_nothing(
    api: CloudRunStandIn, tmp_path: Path, fail_on: str
):
    with SlowBackend(health_s=0.4, event_gap_s=0.5) as backend:
        _deploy(api, tag_url=backend.url)
        before = _traffic(api)

        code, err, saved = _check(api, tmp_path, SLOW_RUN, "--on-pass", "promote", "--fail-on", fail_on)

    assert code == 1, err
    assert saved["verdict"] == "fail"
    assert _traffic(api) == before
    assert api.updates() == []
    incomplete = [f for f in saved["findings"] if f["kind"] == "journeys-incomplete"]
    assert len(incomplete) == 1
    assert "0 of 2 journeys" in incomplete[0]["observed"]
    assert "works end to end" not in saved["impact"]["summary"]
    assert "not tested" in saved["impact"]["summary"]
    assert saved["traffic_actions"] == []
    # The check without a token hung on its own short deadline beside the users: every user started (and logged
    # in), and what cut them was the run's deadline, not the check.
    assert [c["status"] for c in saved["checks"] if c["id"] == "login"] == ["pass", "pass"]
    assert next(c for c in saved["checks"] if c["id"] == "auth-negative")["status"] == "not verified"
    assert backend.anonymous_upgrades == 1


def _run_with_journeys(totals: list[float | None]) -> results.Run:
    """A passing run of the new revision (reached at its tag URL) whose journeys ended with ``totals``."""
    target = results.Target(
        url="http://127.0.0.1:9", service="chat", project="p", region="r", revision=NEW, previous_revision=OLD
    )
    journeys = tuple(results.JourneySample(user=i + 1, total_ms=t) for i, t in enumerate(totals))
    run = samples.healthy()
    return replace(run, target=target, traffic_actions=(), samples=journeys, users=len(totals))


@pytest.mark.parametrize(
    ("totals", "promoted"), [([812.0, 790.5], True), ([812.0, None], False), ([812.0], False)]
)
def test_apply_gate__promotes_only_when_every_journey_completed_whatever_the_verdict(
    api: CloudRunStandIn, totals: list[float | None], promoted: bool
):
    """Enforced at the gate itself: a run whose verdict says pass (here a hand-made one) but whose records show a
    journey that never reached its completion event moves no traffic."""
    _deploy(api, tag_url="http://127.0.0.1:9")
    before = _traffic(api)
    run = _run_with_journeys(totals)
    if len(totals) == 1:
        run = replace(run, users=2)  # a configured user has no record at all
    assert run.verdict is results.Verdict.PASS
    settings = build_settings({"cloud_run": {"project": "p", "region": "r", "service": "chat"},
                               "gate": {"on_pass": "promote"}})  # fmt: skip
    clients = cloudrun.make_clients(endpoint=api.url)
    try:
        gated = pipeline.apply_gate(run, settings, cloud_run=clients, log=lambda _m: None)
    finally:
        clients.close()

    (action,) = gated.traffic_actions
    if promoted:
        assert action.applied and _traffic(api)[0][:2] == (NEW, 100)
    else:
        assert action.refused and not action.applied
        assert "journeys ran to the end" in action.message
        assert _traffic(api) == before and api.updates() == []


def test_main__an_upgrade_that_hangs_past_a_run_that_left_the_sla_is_a_p0_at_connect(tmp_path: Path):
    """run_s (3 s) leaves the journeys their SLA (1 s), yet the upgrade never answers (open_timeout_s 10 s): the
    revision hung at the connect step, a P0 (its issue is filed), not a configuration problem."""
    config = write_config(
        tmp_path,
        "journey: {users: 2, sla_s: 1, event_timeout_s: 1}\nwebsocket: {open_timeout_s: 10}\n"
        "health: {latency_samples: 1}\ntimeouts: {run_s: 3}\n",
    )
    with RawHTTPServer({"/health": respond(200, b'{"status": "ok"}'), "/ws": silent()}) as server:
        argv = check_url_argv(server.url, config, tmp_path / "out")
        code, _out, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})

    assert code == 1, err
    saved = results_json(tmp_path / "out")
    (finding,) = [f for f in saved["findings"] if f["kind"] == "journeys-incomplete"]
    assert (finding["severity"], finding["fingerprint"]) == ("P0", "127.0.0.1:journeys-incomplete:connect")
    assert "the revision did not answer at the connect step" in finding["observed"]
    assert saved["verdict"] == "fail"
