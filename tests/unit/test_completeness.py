"""Which journeys ran, and what stopped the rest (bot.probe.completeness): the cause decides the severity."""

from bot import diagnose
from bot.probe import completeness
from bot.probe.completeness import End, JourneyEnd
from bot.results import CheckResult, Failure, Kind, Severity, Status, Step


def test_judge__every_journey_that_ran_to_its_end_needs_no_check():
    ends = [JourneyEnd(1, End.RAN, Step.ANSWER), JourneyEnd(2, End.RAN, Step.CONNECT)]
    assert completeness.judge(ends, run_s=300, sla_s=45, phases=1, before_users_s=1) is None


def test_judge__a_run_s_shorter_than_health_and_the_sla_is_a_configuration_problem():
    ends = [JourneyEnd(1, End.RAN, Step.ANSWER), JourneyEnd(2, End.NOT_STARTED, Step.LOGIN)]
    check = completeness.judge(ends, run_s=30, sla_s=45, phases=2, before_users_s=2.5)
    assert check is not None and check.failure is not None
    assert check.status is Status.FAIL and check.step is Step.LOGIN
    assert check.failure.detail == "run-s"
    assert check.failure.message.startswith("1 of 2 journeys ran to the end; 1 was never started")
    assert check.failure.evidence["run_s needed"] == "at least 93 s"  # 2.5 s of health + 2 phases x 45 s
    (finding,) = diagnose.diagnose([check], service="chat")
    assert finding.severity is Severity.P1
    assert finding.title == "Not every journey ran (1 of 2 journeys ran): timeouts.run_s is too short"


def test_judge__journeys_cut_although_run_s_left_them_their_sla_mean_the_revision_hung():
    ends = [JourneyEnd(1, End.CUT, Step.CONNECT), JourneyEnd(2, End.CUT, Step.AGENT)]
    check = completeness.judge(ends, run_s=300, sla_s=45, phases=1, before_users_s=1)
    assert check is not None and check.failure is not None
    assert check.step is Step.CONNECT and check.failure.detail == "connect"
    assert "the revision did not answer at the connect step" in check.failure.message
    (finding,) = diagnose.diagnose([check], service="chat")
    assert finding.severity is Severity.P0
    assert finding.fingerprint == "chat:journeys-incomplete:connect"


def test_spared__only_a_configuration_cut_turns_the_deadline_failures_into_not_verified():
    cut = Failure(Kind.TIMEOUT, "cut", evidence=completeness.run_deadline_evidence(3))
    own = Failure(Kind.TIMEOUT, "its own event deadline")
    checks = [
        CheckResult("events", Step.AGENT, Status.FAIL, None, 1, "", cut),
        CheckResult("events", Step.AGENT, Status.FAIL, None, 2, "", own),
    ]
    config = completeness.judge(
        [JourneyEnd(1, End.CUT, Step.AGENT)], run_s=3, sla_s=45, phases=1, before_users_s=1
    )
    hung = completeness.judge(
        [JourneyEnd(1, End.CUT, Step.AGENT)], run_s=300, sla_s=45, phases=1, before_users_s=1
    )
    assert [c.status for c in completeness.spared(checks, config)] == [Status.NOT_VERIFIED, Status.FAIL]
    assert [c.status for c in completeness.spared(checks, hung)] == [Status.FAIL, Status.FAIL]


def test_completed__every_configured_user_must_have_reached_its_completion_event():
    assert completeness.completed([812.0, 790.5], 2)
    assert not completeness.completed([812.0, None], 2)
    assert not completeness.completed([812.0], 2)
    assert not completeness.completed([], 0)
