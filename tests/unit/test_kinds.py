"""The table of finding kinds decides every rule by kind: severity, the gate, the baseline, the capability lost."""

import pytest

from bot import kinds
from bot.diagnose import P0_KINDS, P0_STEPS, severity_for
from bot.kinds import GateClass, SeverityRule
from bot.results import Kind, Severity, Step


def test_kinds__every_kind_has_one_record_naming_it():
    assert set(kinds.KINDS) == set(Kind)
    assert all(info.kind is kind for kind, info in kinds.KINDS.items())
    assert len(kinds.troubleshooting_rows()) == len(Kind)


@pytest.mark.parametrize("kind", sorted(kinds.having(gate=GateClass.PERFORMANCE)))
def test_severity_for__a_performance_kind_is_p1_at_every_step_even_connect(kind: Kind):
    assert {severity_for(kind, step) for step in Step} == {Severity.P1}


def test_severity_for__a_kind_going_by_step_is_p0_on_the_golden_path_and_p1_before_it():
    for kind in kinds.having(severity=SeverityRule.BY_STEP):
        for step in Step:
            expected = Severity.P0 if step in P0_STEPS else Severity.P1
            assert severity_for(kind, step) is expected, (kind, step)


def test_p0_kinds__are_the_kinds_whose_rule_is_p0_wherever_seen():
    assert {
        Kind.REVISION_NOT_READY,
        Kind.ISOLATION_LEAK,
        Kind.WS_UNAUTHENTICATED_ACCEPTED,
        Kind.STREAM_UNAUTHENTICATED_ACCEPTED,
        Kind.IAM_DENIED,
        Kind.SESSION_LOST,
    } == P0_KINDS
    assert all(severity_for(kind, Step.HEALTH) is Severity.P0 for kind in P0_KINDS)


def test_kinds__a_performance_kind_never_says_the_serving_revision_is_broken():
    for kind in kinds.having(gate=GateClass.PERFORMANCE):
        assert kinds.of(kind).breaks_baseline is False
    assert kinds.of(Kind.TIMEOUT).breaks_baseline is True


def test_kinds__only_always_fail_kinds_fail_under_every_fail_on():
    assert kinds.having(gate=GateClass.ALWAYS_FAIL) == {
        Kind.VERSION_SKEW,
        Kind.REVISION_NOT_TESTED,
        Kind.JOURNEYS_INCOMPLETE,
    }
