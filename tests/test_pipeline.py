"""The gate's policy: which findings fail the job under each fail-on value (README's table), and promotion."""

from dataclasses import replace

import pytest

from bot import diagnose, pipeline, results
from bot.config import build_settings
from bot.errors import ExitCode
from bot.results import Kind, Step
from tests import samples

FINDINGS = {
    "none": [],
    "perf-target-missed": [(Kind.PERF_TARGET_MISSED, Step.PERFORMANCE)],
    "http-status (health)": [(Kind.HTTP_STATUS, Step.HEALTH)],
    "version-skew": [(Kind.VERSION_SKEW, Step.HEALTH)],
    "version-skew + perf": [(Kind.VERSION_SKEW, Step.HEALTH), (Kind.PERF_TARGET_MISSED, Step.PERFORMANCE)],
    "ws-auth-rejected (P0)": [(Kind.WS_AUTH_REJECTED, Step.CONNECT)],
    "journeys-incomplete (run_s too short)": [(Kind.JOURNEYS_INCOMPLETE, Step.AGENT, "run-s")],
    "journeys-incomplete (revision hung)": [(Kind.JOURNEYS_INCOMPLETE, Step.CONNECT, "connect")],
    "journeys-incomplete + perf": [
        (Kind.JOURNEYS_INCOMPLETE, Step.LOGIN, "run-s"),
        (Kind.PERF_TARGET_MISSED, Step.PERFORMANCE),
    ],
}
# README "Severity and exit codes": exit code under fail-on correctness (default) / any / p0.
POLICY = {
    "none": (0, 0, 0),
    "perf-target-missed": (0, 1, 0),
    "http-status (health)": (1, 1, 0),
    "version-skew": (1, 1, 1),
    "version-skew + perf": (1, 1, 1),
    "ws-auth-rejected (P0)": (1, 1, 1),
    "journeys-incomplete (run_s too short)": (1, 1, 1),
    "journeys-incomplete (revision hung)": (1, 1, 1),
    "journeys-incomplete + perf": (1, 1, 1),
}


def run_with(case: str) -> results.Run:
    findings = tuple(
        results.Finding(
            fingerprint=diagnose.fingerprint("chat", kind, *detail),
            severity=diagnose.severity_for(kind, step, *detail),
            kind=kind,
            step=step,
            title=kind.value,
            cause="",
            remediation="",
        )
        for kind, step, *detail in FINDINGS[case]
    )
    return replace(
        samples.healthy(), findings=findings, verdict=results.verdict_for(findings), traffic_actions=()
    )


@pytest.mark.parametrize("case", POLICY)
def test_exit_code__follows_the_documented_table(case: str):
    codes = tuple(
        int(pipeline.exit_code(run_with(case), build_settings({"gate": {"fail_on": fail_on}})))
        for fail_on in ("correctness", "any", "p0")
    )
    assert codes == POLICY[case]


def test_exit_code__default_is_correctness_a_missed_target_warns():
    run = run_with("perf-target-missed")
    assert run.verdict is results.Verdict.DEGRADED
    assert pipeline.exit_code(run, build_settings({})) is ExitCode.PASS


def test_apply_gate__version_skew_never_promotes_whatever_fail_on_says():
    settings = build_settings(
        {
            "cloud_run": {"project": "p", "region": "r", "service": "chat"},
            "gate": {"fail_on": "p0", "on_pass": "promote"},
        }
    )
    run = run_with("version-skew")
    # cloud_run=None: any attempt to move traffic would fail loudly; the gate must not even try.
    assert pipeline.apply_gate(run, settings, cloud_run=None, log=lambda _m: None) is run


def test_verdict_for__journeys_that_did_not_all_run_are_never_pass_or_degraded():
    for case in ("journeys-incomplete (run_s too short)", "journeys-incomplete + perf"):
        run = run_with(case)
        assert run.findings[0].severity is results.Severity.P1  # a configuration problem: no P0 issue
        assert run.verdict is results.Verdict.FAIL
    assert run_with("journeys-incomplete (revision hung)").findings[0].severity is results.Severity.P0
