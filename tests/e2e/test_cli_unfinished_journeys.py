"""No verdict without its journeys (#19 item 1), as a user meets it: `check --on-pass promote` through the CLI
against the Cloud Run Admin API stand-in and a backend whose health is slow but healthy and whose upgrade
without a token never answers. A journey that did not run is never promoted."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bot import cloudrun, pipeline, results
from bot.cli import main
from bot.config import build_settings
from tests import samples
from tests.cloudrun_support import cloud_run_flags
from tests.standins.cloudrun_api import CloudRunStandIn, Route
from tests.standins.hostile_ws import EVENTS, event, read_message

SECRET = "unfinished-journeys-secret-0123456789abcdef"
OLD, NEW = "chat-00001-old", "chat-00002-new"
IMAGE = "europe-docker.pkg.dev/p/repo/chat@sha256:" + "b" * 64


class SlowBackend:
    """A websockets server written the way such a backend is: health answers 200 after ``health_s``; an upgrade
    without ``Authorization`` is never answered (a handler awaiting an auth service that hangs); with a token,
    the agent sends its events ``event_gap_s`` apart (slow, each within the event deadline)."""

    def __init__(self, *, health_s: float, event_gap_s: float) -> None:
        self.health_s = health_s
        self.event_gap_s = event_gap_s
        self.anonymous_upgrades = 0
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._release: asyncio.Event | None = None  # set on exit: the unanswered upgrade ends with the test
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="slow-backend")

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{next(iter(self._server.sockets)).getsockname()[1]}"

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/health"):
            await asyncio.sleep(self.health_s)
            body = json.dumps({"status": "healthy", "service": "chat"}).encode()
            headers = Headers(
                {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close"}
            )
            return Response(200, HTTPStatus.OK.phrase, headers, body)
        if "Authorization" not in request.headers:
            self.anonymous_upgrades += 1
            assert self._release is not None
            await self._release.wait()  # never answered while the test runs
        return None

    async def _session(self, connection: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            thread_id = str((await read_message(connection)).get("thread_id", ""))
            for name in EVENTS:
                await asyncio.sleep(self.event_gap_s)
                await connection.send(event(name, thread_id))
            await connection.wait_closed()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._release = asyncio.Event()
            self._server = await serve(
                self._session,
                "127.0.0.1",
                0,
                process_request=self._process_request,
                subprotocols=["jwt-auth"],  # type: ignore[list-item]
                ping_interval=None,
            )
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def __enter__(self) -> SlowBackend:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None and self._release is not None
            self._release.set()
            self._server.close(close_connections=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def _deploy(api: CloudRunStandIn, *, tag_url: str) -> None:
    api.add_service("chat", uri="http://127.0.0.1:9")  # the service URL is never probed: the tag URL is
    api.add_revision("chat", OLD, image=IMAGE)
    api.add_revision("chat", NEW, image=IMAGE)
    api.set_traffic("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=tag_url)])


def _check(api: CloudRunStandIn, tmp_path: Path, config: str, *flags: str) -> tuple[int, str, dict]:
    path = tmp_path / "golden-path.yml"
    path.write_text(config)
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "check",
        *cloud_run_flags(api),
        *("--config", str(path), "--output-dir", str(tmp_path / "out"), "--quiet", *flags),
    ]
    code = main(argv, env={"JWT_SECRET_KEY": SECRET}, stdout=out, stderr=err)
    assert "Traceback" not in err.getvalue()
    return code, err.getvalue(), json.loads((tmp_path / "out" / "results.json").read_text())


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
    from tests.standins.hostile_http import RawHTTPServer, respond, silent

    config = tmp_path / "golden-path.yml"
    config.write_text(
        "journey: {users: 2, sla_s: 1, event_timeout_s: 1}\nwebsocket: {open_timeout_s: 10}\n"
        "health: {latency_samples: 1}\ntimeouts: {run_s: 3}\n"
    )
    with RawHTTPServer({"/health": respond(200, b'{"status": "ok"}'), "/ws": silent()}) as server:
        out, err = io.StringIO(), io.StringIO()
        argv = ["check", "--url", server.url, "--config", str(config), "--output-dir", str(tmp_path / "out")]
        code = main([*argv, "--quiet"], env={"JWT_SECRET_KEY": SECRET}, stdout=out, stderr=err)

    assert code == 1, err.getvalue()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    (finding,) = [f for f in saved["findings"] if f["kind"] == "journeys-incomplete"]
    assert (finding["severity"], finding["fingerprint"]) == ("P0", "127.0.0.1:journeys-incomplete:connect")
    assert "the revision did not answer at the connect step" in finding["observed"]
    assert saved["verdict"] == "fail"
