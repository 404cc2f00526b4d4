"""Trace headers: derived per run and user, well-formed, and sent by the real probe on every request."""

import asyncio
import re
from collections.abc import Iterator

import pytest

from bot import tracing
from bot.auth import Credentials
from bot.config import build_settings
from bot.probe.journey import probe
from bot.reference.server import ReferenceServer
from tests.standins.logging_api import LoggingStandIn

SECRET = "trace-test-secret-0123456789abcdefghijkl"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
CLOUD_TRACE = re.compile(r"^([0-9a-f]{32})/(\d+);o=1$")


def test_trace_id_for__stable_per_run_and_user_distinct_otherwise():
    assert tracing.trace_id_for("run-a", 1) == tracing.trace_id_for("run-a", 1)
    ids = {tracing.trace_id_for(run, user) for run in ("run-a", "run-b") for user in range(0, 50)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) and i.strip("0") for i in ids)


def test_headers__w3c_and_cloud_trace_carry_the_same_trace_with_a_new_span_each_time():
    run = tracing.RunTrace("run-a")
    first, second = run.headers(3), run.headers(3)
    parent = TRACEPARENT.match(first["traceparent"])
    cloud = CLOUD_TRACE.match(first["X-Cloud-Trace-Context"])
    assert parent and cloud
    assert parent.group(1) == cloud.group(1) == run.trace_id(3)
    assert int(parent.group(2), 16) == int(cloud.group(2)) != 0
    assert first["traceparent"] != second["traceparent"]  # one span per request
    assert [(t.user, t.trace_id) for t in run.users()] == [(3, run.trace_id(3))]


@pytest.fixture
def traced_backend() -> Iterator[tuple[ReferenceServer, LoggingStandIn]]:
    """The reference backend behind a stand-in of Cloud Run's front end, which records every request."""
    with LoggingStandIn() as logging_api:
        server = ReferenceServer(secret=SECRET, login_password="pw-for-trace-tests")
        server.app = logging_api.front(server.app, service="chat", revision="chat-1", host="chat.a.run.app")
        with server:
            yield server, logging_api


def test_probe__every_request_and_upgrade_carries_its_users_trace(traced_backend):
    server, front = traced_backend
    settings = build_settings(
        {"auth": {"mode": "login"}, "journey": {"users": 3, "event_timeout_s": 2}},
        {"url": server.url},
    )
    run = tracing.RunTrace("run-under-test")
    asyncio.run(
        probe(
            settings, base_url=server.url, credentials=Credentials(password="pw-for-trace-tests"), trace=run
        )
    )
    by_user = {t.trace_id: t.user for t in run.users()}
    seen: dict[str, set[int]] = {}
    for request in front.received:
        parent = TRACEPARENT.match(request["traceparent"])
        cloud = CLOUD_TRACE.match(request["x-cloud-trace-context"])
        assert parent and cloud and parent.group(1) == cloud.group(1), request
        seen.setdefault(request["path"], set()).add(by_user[parent.group(1)])
    # Health and the unauthenticated check are the run's own (user 0); login and upgrade are each user's.
    assert seen == {"/health": {0}, "/auth/login": {1, 2, 3}, "/ws": {0, 1, 2, 3}}
    assert set(by_user.values()) == {0, 1, 2, 3}
    assert all(t.first_request_at and t.first_request_at.endswith("Z") for t in run.users())
