"""bot.rollout: the gate's traffic changes against the Cloud Run Admin API stand-in, through the real client.

Every rollback test asserts the service's exact traffic spec (revisions, percents, tags) after the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import pytest

from bot import cloudrun, rollout
from bot.errors import CloudRunError
from bot.results import Target, TrafficAction
from tests.cloudrun_support import (
    NEW,
    OLD,
    SERVICE_URL,
    TAG_URL,
    FakeTime,
    deploy_revisions,
    deploy_tagged,
    resolve,
    resolved,
)
from tests.standins.cloudrun_api import CloudRunStandIn, Route

PREVIEW = "chat-00003-pr8"  # another PR's preview: tagged, never served
CANARY = "chat-00004-canary"  # someone else's canary, beside the tested revision


@pytest.fixture
def api(api: CloudRunStandIn) -> CloudRunStandIn:
    """The conftest's stand-in, with the service chat at SERVICE_URL."""
    api.add_service("chat", uri=SERVICE_URL)
    return api


@pytest.fixture
def target(api: CloudRunStandIn, clients: cloudrun.CloudRunClients) -> Target:
    """The usual preview deploy (old 100%, new 0% behind pr-7), as resolve finds it."""
    deploy_tagged(api)
    return resolved(api, clients)


Move = Callable[..., TrafficAction]


@pytest.fixture
def move(clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]) -> Move:
    """``move(action, target, **options)``: ``rollout.move_traffic`` on the fake clock, its progress in ``lines``."""

    def moving(action: Literal["promote", "rollback"], target: Target, **options: Any) -> TrafficAction:
        return rollout.move_traffic(
            clients=clients,
            target=target,
            action=action,
            progress=lines.append,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            **options,
        )

    return moving


# -- promote ---------------------------------------------------------------------------------------------------


def test_move_traffic__promote(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    deploy_revisions(
        api,
        OLD,
        NEW,
        traffic=[
            Route(OLD, 100, tag="stable"),
            Route(NEW, 0, tag="pr-7", uri=TAG_URL),
            Route(None, 0, tag="head"),
        ],
    )
    target = resolved(api, clients)

    action = rollout.move_traffic(clients=clients, target=target, action="promote", progress=lines.append)

    assert (action.action, action.revision, action.percent, action.applied) == ("promote", NEW, 100, True)
    (update,) = api.updates()
    assert update.query["updateMask"] == "traffic"
    assert set(update.body) == {"traffic", "etag"}  # the template is never sent back
    assert update.body["traffic"] == [
        {"type": 2, "revision": NEW, "percent": 100, "tag": "pr-7"},
        {"type": 2, "revision": OLD, "tag": "stable"},  # 0% is the proto3 default: not on the wire
        {"type": 1, "tag": "head"},
    ]
    assert any(line.startswith("promote: sending 100% of traffic") for line in lines)
    # The tag URL stays valid after the promotion.
    assert resolve(clients, FakeTime(), []).target.url == TAG_URL


def test_move_traffic__promote_waits_for_the_operation(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, target: Target, lines: list[str]
) -> None:
    api.operation_polls = 1

    action = rollout.move_traffic(clients=clients, target=target, action="promote", progress=lines.append)

    assert action.applied
    assert any("/operations/" in r.path for r in api.requests)
    assert [(t.revision, t.percent) for t in api.traffic("chat") if t.percent] == [(NEW, 100)]


def test_move_traffic__service_name_given_apart_from_the_display_name(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, target: Target, lines: list[str]
) -> None:
    displayed = replace(target, service="Chat backend (prod)")

    action = rollout.move_traffic(
        clients=clients, target=displayed, action="promote", progress=lines.append, service="chat"
    )

    assert action.applied
    assert api.updates()[0].path == "/v2/projects/p/locations/r/services/chat"


def test_move_traffic__403_names_the_developer_role(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, target: Target, lines: list[str]
) -> None:
    api.inject(403, method="PATCH")

    with pytest.raises(CloudRunError) as caught:
        rollout.move_traffic(clients=clients, target=target, action="promote", progress=lines.append)

    assert "run.services.update" in str(caught.value) and "roles/run.developer" in str(caught.value)


def test_move_traffic__operation_unfinished_for_many_polls_reports_progress_at_least_every_5_s(
    api: CloudRunStandIn, target: Target, move: Move, fake_time: FakeTime, lines: list[str]
) -> None:
    api.operation_polls = 8

    action = move("promote", target)

    assert action.applied and not action.error
    assert fake_time.sleeps == [1, 2, 4, 5, 5, 5, 5, 5]
    waits = [line for line in lines if line.startswith("waiting for Cloud Run to apply the traffic change")]
    assert len(waits) == 8
    assert waits[-1].endswith("(not done yet, 27 s elapsed)")
    assert (action.before, action.after) == ({OLD: 100}, {NEW: 100})


def test_move_traffic__failed_operation_is_a_recorded_error_with_the_traffic_cloud_run_left(
    api: CloudRunStandIn, target: Target, move: Move
) -> None:
    api.operation_polls = 2
    api.operation_error = (9, "Revision is not ready and cannot serve traffic.")

    action = move("promote", target)

    assert (action.applied, action.error) == (False, True)
    assert "failed in Cloud Run" in action.message and "cannot serve traffic" in action.message
    assert action.after == {OLD: 100} and f"{OLD} 100%" in action.message
    assert [(t.revision, t.percent) for t in api.traffic("chat") if t.percent] == [(OLD, 100)]


def test_move_traffic__operation_past_its_deadline_records_what_the_spec_asks_and_what_serves(
    api: CloudRunStandIn, target: Target, move: Move, fake_time: FakeTime
) -> None:
    api.operation_polls = 1000

    action = move("promote", target, operation_timeout_s=20)

    assert (action.applied, action.error) == (False, True)
    assert sum(fake_time.sleeps) == 20 and max(fake_time.sleeps) <= 5
    assert "not done after 20 s" in action.message and "Cloud Run accepted the change" in action.message
    # Accepted, not applied: the spec asks for the new split while the old one still serves. Both are recorded.
    assert (action.requested, action.after) == ({NEW: 100}, {OLD: 100})


# -- lost answers, failing polls, conflicts --------------------------------------------------------------------


def test_move_traffic__a_write_applied_then_answered_503_is_found_applied_by_reading_the_service(
    api: CloudRunStandIn, target: Target, move: Move, lines: list[str]
) -> None:
    api.fail_after_update = [
        503
    ]  # applied (the operation runs), then "unavailable": the operation's name is lost
    api.operation_polls = 3  # Cloud Run needs three more reads to finish applying it

    action = move("promote", target)

    assert (action.applied, action.error) == (True, False)
    assert "answered the update with an error (503" in action.message and "but applied it" in action.message
    assert len(api.updates()) == 1  # never sent twice
    assert (action.after, action.requested) == ({NEW: 100}, {NEW: 100})
    assert api.routes("chat") == [Route(NEW, 100, tag="pr-7")]
    assert any("reading the service until Cloud Run has applied it" in line for line in lines)


def test_move_traffic__a_write_answered_500_that_did_not_apply_is_sent_again(
    api: CloudRunStandIn, target: Target, move: Move
) -> None:
    api.inject(500, method="PATCH")  # refused before applying: the service's etag does not move

    action = move("promote", target)

    assert (action.applied, action.error) == (True, False)
    assert [u.body["etag"] for u in api.updates()] == ['"1"', '"1"']  # the same etag: it can apply only once
    assert api.routes("chat") == [Route(NEW, 100, tag="pr-7")]


def test_move_traffic__a_write_refused_until_the_budget_ends_is_an_error_saying_nothing_changed(
    api: CloudRunStandIn, target: Target, move: Move
) -> None:
    api.inject(500, method="PATCH", times=None)

    with pytest.raises(
        CloudRunError, match=r"after retrying for 30 s: 500 .*; the service's traffic is unchanged"
    ):
        move("promote", target)

    assert api.routes("chat") == [Route(OLD, 100), Route(NEW, 0, tag="pr-7")]


def test_move_traffic__operation_polls_answered_429_and_500_are_retried_honouring_retry_after(
    api: CloudRunStandIn, target: Target, move: Move, fake_time: FakeTime, lines: list[str]
) -> None:
    api.operation_polls = 2
    api.inject(429, path_contains="/operations/", retry_after="3")
    api.inject(500, path_contains="/operations/")

    action = move("promote", target)

    assert (action.applied, action.error) == (True, False)
    assert 3 in fake_time.sleeps  # the Retry-After, not the library's backoff
    assert any("Cloud Run API rate limited (429" in line and "as Retry-After asks" in line for line in lines)
    assert any("Cloud Run API unavailable (500" in line for line in lines)
    assert api.routes("chat") == [Route(NEW, 100, tag="pr-7")]


def test_move_traffic__operation_polls_failing_for_good_fall_back_to_reading_the_service(
    api: CloudRunStandIn, target: Target, move: Move, lines: list[str]
) -> None:
    api.operation_polls = 3
    api.inject(503, path_contains="/operations/", times=None)

    action = move("promote", target)

    assert (action.applied, action.error) == (True, False)
    assert any("cannot read operation" in line and "reading the service" in line for line in lines)
    assert action.after == {NEW: 100}


def test_move_traffic__etag_conflict_with_the_tested_revision_unchanged_is_retried_once(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, move: Move, lines: list[str]
) -> None:
    deploy_revisions(
        api, OLD, PREVIEW, NEW, traffic=[Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=TAG_URL)]
    )
    target = resolved(api, clients)
    # Another PR's deploy tags its preview between our read and our write.
    api.race_next_update("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7"), Route(PREVIEW, 0, tag="pr-8")])

    action = move("promote", target)

    assert (action.applied, action.error) == (True, False)
    assert len(api.updates()) == 2
    assert api.routes("chat") == [Route(NEW, 100, tag="pr-7"), Route(PREVIEW, 0, tag="pr-8")]
    assert any("etag conflict" in line and "retrying once" in line for line in lines)


def test_move_traffic__etag_conflict_that_changed_the_tested_revision_is_left_alone(
    api: CloudRunStandIn, target: Target, move: Move
) -> None:
    api.race_next_update("chat", [Route(OLD, 50), Route(NEW, 50, tag="pr-7")])  # someone started a canary

    with pytest.raises(CloudRunError, match=f"another writer changed the traffic or tags of {NEW}"):
        move("promote", target)

    assert len(api.updates()) == 1
    assert api.routes("chat") == [Route(OLD, 50), Route(NEW, 50, tag="pr-7")]


# -- rollback: only to what served users -----------------------------------------------------------------------


def test_move_traffic__rollback_of_a_preview_that_served_no_traffic_changes_nothing(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, move: Move
) -> None:
    routes = [
        Route(OLD, 90, tag="stable"),
        Route(CANARY, 10),
        Route(PREVIEW, 0, tag="pr-8"),
        Route(NEW, 0, tag="pr-7", uri=TAG_URL),
    ]
    deploy_revisions(api, OLD, CANARY, PREVIEW, NEW, traffic=routes)
    target = resolved(api, clients)

    action = move("rollback", target)

    assert action.noop and not action.applied and not action.error
    assert action.message == "nothing to roll back: the tested revision served no traffic"
    assert api.updates() == []
    assert api.routes("chat") == [Route(r.revision, r.percent, r.tag) for r in routes]  # the canary stays


def test_move_traffic__rollback_with_latest_routing_and_no_known_good_revision_is_refused(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, move: Move
) -> None:
    # PREVIEW is newer than OLD, ready, tagged: it must never receive the traffic. NEW was deployed with traffic.
    deploy_revisions(api, OLD, PREVIEW, NEW, traffic=[Route(None, 100), Route(PREVIEW, 0, tag="pr-8")])
    target = resolved(api, clients)

    action = move("rollback", target)

    assert (action.applied, action.error, action.refused) == (False, True, True)
    assert "\n" not in action.message and "cloud_run.rollback_to" in action.message
    assert action.message.startswith(
        f"refused to roll back {NEW}: no revision other than {NEW} served traffic"
    )
    assert api.updates() == []
    assert api.routes("chat") == [Route(None, 100), Route(PREVIEW, 0, tag="pr-8")]


def test_move_traffic__rollback_of_latest_routing_to_the_known_good_tag(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, move: Move, lines: list[str]
) -> None:
    deploy_revisions(
        api,
        OLD,
        PREVIEW,
        NEW,
        traffic=[
            Route(None, 100),
            Route(OLD, 0, tag="stable"),
            Route(PREVIEW, 0, tag="pr-8"),
            Route(None, 0, tag="head"),
        ],
    )
    target = resolved(api, clients)

    action = move("rollback", target, rollback_to="stable")

    assert (action.revision, action.percent, action.applied) == (OLD, 100, True)
    assert api.routes("chat") == [
        Route(OLD, 100, tag="stable"),
        Route(PREVIEW, 0, tag="pr-8"),
        Route(None, 0, tag="head"),
    ]
    assert any("carries the known-good tag stable" in line for line in lines)


def test_move_traffic__rollback_of_a_canary_moves_only_its_share(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, move: Move
) -> None:
    deploy_revisions(
        api,
        OLD,
        CANARY,
        NEW,
        traffic=[Route(OLD, 80), Route(CANARY, 10, tag="canary"), Route(NEW, 10, tag="pr-7", uri=TAG_URL)],
    )
    target = resolved(api, clients)
    assert target.traffic == {OLD: 80, CANARY: 10, NEW: 10}

    action = move("rollback", target)

    assert (action.revision, action.percent, action.applied) == (OLD, 90, True)
    assert api.routes("chat") == [Route(OLD, 90), Route(CANARY, 10, tag="canary"), Route(NEW, 0, tag="pr-7")]
    assert action.after == {OLD: 90, CANARY: 10}


def test_move_traffic__rollback_after_a_promotion_goes_back_to_the_revision_that_served_before(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, move: Move
) -> None:
    deploy_revisions(api, OLD, NEW, traffic=[Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=TAG_URL)])
    before = resolved(api, clients)  # traffic-before: OLD 100%
    api.set_traffic("chat", [Route(NEW, 100, tag="pr-7", uri=TAG_URL)])  # a promotion happened since

    action = move("rollback", replace(before, traffic={OLD: 90, NEW: 10}))

    assert (action.revision, action.applied) == (OLD, True)
    assert api.routes("chat") == [Route(OLD, 100), Route(NEW, 0, tag="pr-7")]


@pytest.mark.parametrize(
    ("routes", "reason"),
    [
        (
            [Route(None, 100), Route(PREVIEW, 0, tag="pr-8")],
            "no revision carries the known-good tag 'stable'",
        ),
        ([Route(None, 100, tag="stable")], "follows LATEST"),
        ([Route(NEW, 100, tag="stable")], f"names the tested revision {NEW} itself"),
    ],
)
def test_move_traffic__a_known_good_tag_that_names_no_other_fixed_revision_is_refused(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, move: Move, routes: list[Route], reason: str
) -> None:
    deploy_revisions(api, OLD, PREVIEW, NEW, traffic=routes)
    target = replace(resolved(api, clients), traffic={OLD: 50, NEW: 50})

    action = move("rollback", target, rollback_to="stable")

    assert (action.error, action.refused) == (True, True) and reason in action.message
    assert api.updates() == []
