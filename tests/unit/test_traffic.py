"""bot.traffic: the gate's traffic plans, pure (the same rules run through the stand-in in test_rollout.py)."""

from __future__ import annotations

import pytest

from bot import traffic
from bot.traffic import Destination, Entry

OLD, NEW, PREVIEW, CANARY = "chat-00001-old", "chat-00002-new", "chat-00003-pr8", "chat-00004-canary"


def test_promote__keeps_every_tag_at_zero_and_the_tested_revisions_tag_on_its_entry() -> None:
    spec = [Entry(OLD, 90, "stable"), Entry(CANARY, 10), Entry(NEW, 0, "pr-7"), Entry(None, 0, "head")]

    assert traffic.promote(spec, NEW) == (
        Entry(NEW, 100, "pr-7"),
        Entry(OLD, 0, "stable"),
        Entry(None, 0, "head"),
    )


def test_rollback__moves_only_the_tested_share_onto_the_destination() -> None:
    spec = [Entry(OLD, 80), Entry(CANARY, 10, "canary"), Entry(NEW, 10, "pr-7")]

    planned = traffic.rollback(spec, tested=NEW, latest_ready=NEW, destination=OLD)

    assert planned == (Entry(OLD, 90), Entry(CANARY, 10, "canary"), Entry(NEW, 0, "pr-7"))


def test_rollback__latest_routing_to_the_tested_revision_is_pinned_on_the_destination() -> None:
    spec = [Entry(None, 100), Entry(OLD, 0, "stable"), Entry(None, 0, "head")]

    planned = traffic.rollback(spec, tested=NEW, latest_ready=NEW, destination=OLD)

    assert planned == (Entry(OLD, 100, "stable"), Entry(None, 0, "head"))
    assert traffic.shares(planned, NEW) == {OLD: 100}


def test_rollback__a_revision_with_no_traffic_leaves_the_spec_as_it_is() -> None:
    spec = (Entry(OLD, 90), Entry(CANARY, 10), Entry(NEW, 0, "pr-7"))

    assert traffic.rollback(spec, tested=NEW, latest_ready=CANARY, destination=OLD) == spec


def test_rollback_destination__the_largest_other_share_before_the_run() -> None:
    found = traffic.rollback_destination(tested=NEW, before={OLD: 60, CANARY: 30, NEW: 10}, known_good=None)

    assert found == Destination(OLD, "served 60% before this run")


def test_rollback_destination__a_known_good_tag_wins() -> None:
    tagged = Destination(PREVIEW, "carries the known-good tag stable")

    assert traffic.rollback_destination(tested=NEW, before={OLD: 100}, known_good=tagged) is tagged


@pytest.mark.parametrize("before", [{NEW: 100}, {}, {NEW: 100, OLD: 0}])
def test_rollback_destination__none_known_is_refused_in_one_line(before: dict[str, int]) -> None:
    with pytest.raises(traffic.NoRollbackTarget) as caught:
        traffic.rollback_destination(tested=NEW, before=before, known_good=None)

    assert "\n" not in str(caught.value) and "cloud_run.rollback_to" in str(caught.value)
