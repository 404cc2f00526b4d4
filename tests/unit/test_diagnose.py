from bot.diagnose import (
    EXPLANATIONS,
    diagnose,
    fingerprint,
    fingerprint_service_key,
    service_key,
    severity_for,
)
from bot.impact import assess
from bot.results import CheckResult, Failure, Kind, Severity, Status, Step, Verdict, verdict_for
from bot.settings import ImpactSettings


def _fail(kind: Kind, step: Step, *, user: int | None = None, detail: str = "") -> CheckResult:
    return CheckResult(
        "c", step, Status.FAIL, user=user, failure=Failure(kind, "It broke.", detail, {"k": "v"})
    )


def test_explanations__every_kind_has_cause_and_remediation():
    assert set(EXPLANATIONS) == set(Kind)
    for explanation in EXPLANATIONS.values():
        assert explanation.cause and explanation.remediation


def test_severity_for__websocket_layer_is_p0_health_version_perf_are_p1():
    assert severity_for(Kind.WS_UPGRADE_STATUS, Step.CONNECT) is Severity.P0
    assert severity_for(Kind.TIMEOUT, Step.AGENT) is Severity.P0
    assert severity_for(Kind.HTTP_STATUS, Step.HEALTH) is Severity.P1
    assert severity_for(Kind.VERSION_SKEW, Step.REVISION) is Severity.P1
    assert severity_for(Kind.PERF_TARGET_MISSED, Step.PERFORMANCE) is Severity.P1
    assert severity_for(Kind.REVISION_NOT_READY, Step.REVISION) is Severity.P0


def test_diagnose__groups_users_by_fingerprint_and_orders_p0_first():
    checks = [
        _fail(Kind.HTTP_STATUS, Step.HEALTH, detail="503"),
        _fail(Kind.EVENT_MISSING, Step.AGENT, user=2, detail="tool_executing"),
        _fail(Kind.EVENT_MISSING, Step.AGENT, user=1, detail="tool_executing"),
        CheckResult("ok", Step.CONNECT, Status.PASS),
    ]
    findings = diagnose(checks, service="svc")
    assert [f.fingerprint for f in findings] == ["svc:event-missing:tool_executing", "svc:http-status:503"]
    first = findings[0]
    assert (first.severity, first.occurrences, first.users) == (Severity.P0, 2, (1, 2))
    assert first.title == "Event `tool_executing` never arrived"
    assert verdict_for(findings) is Verdict.FAIL
    assert verdict_for(findings[1:]) is Verdict.DEGRADED
    assert verdict_for(()) is Verdict.PASS


def test_assess__blocked_journey_names_capability_and_revenue():
    findings = diagnose([_fail(Kind.WS_AUTH_REJECTED, Step.CONNECT, detail="403")], service="svc")
    impact = assess(findings, settings=ImpactSettings(arr_at_risk=1_200_000), journey_name="AI chat")
    assert impact.blocked
    assert impact.summary == (
        "The AI chat journey is broken: users cannot open a live chat connection. "
        "$1,200,000 ARR depends on this journey."
    )


def test_assess__no_findings_is_no_impact():
    impact = assess((), settings=ImpactSettings(), journey_name="AI chat")
    assert not impact.blocked
    assert impact.summary.startswith("No impact")


def test_assess__a_broken_journey_leads_with_what_blocks_users_not_the_security_finding():
    findings = diagnose(
        [_fail(Kind.WS_UNAUTHENTICATED_ACCEPTED, Step.CONNECT), _fail(Kind.WS_CLOSED_EARLY, Step.AGENT)],
        service="svc",
    )
    impact = assess(findings, settings=ImpactSettings(), journey_name="AI chat")
    assert (
        impact.summary == "The AI chat journey is broken: users cannot see the agent work on their request."
    )


def test_diagnose__titles_use_the_failure_subject():
    unhealthy = CheckResult(
        "health", Step.HEALTH, Status.FAIL,
        failure=Failure(Kind.HTTP_STATUS, "m", "unhealthy", subject="HTTP 200 but reports itself unhealthy"),
    )  # fmt: skip
    assert (
        diagnose([unhealthy], service="s")[0].title == "health answered HTTP 200 but reports itself unhealthy"
    )


def test_fingerprint__service_names_cannot_claim_each_others_fingerprints():
    canary = fingerprint("chat:canary", Kind.WS_UPGRADE_STATUS, "502")
    plain = fingerprint("chat", Kind.WS_UPGRADE_STATUS, "502")
    assert canary == "chat%3Acanary:ws-upgrade-status:502"
    assert fingerprint_service_key(canary) == service_key("chat:canary") != service_key("chat")
    assert fingerprint_service_key(plain) == "chat"
    assert fingerprint("chat-backend", Kind.TIMEOUT) == "chat-backend:timeout"  # plain names are unchanged
