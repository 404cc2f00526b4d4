"""The gate's policy: which findings fail the job under each fail-on value (README's table), and promotion; and
``pipeline.run`` with the clients handed in."""

import io
from dataclasses import replace

import pytest

from bot import diagnose, pipeline, publish, results
from bot.actions import ActionsContext
from bot.auth import Credentials
from bot.config import build_settings
from bot.console import Console
from bot.errors import ExitCode
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.results import Kind, Step
from bot.untrusted import Redactor
from tests import samples
from tests.github_support import REPO, SHA
from tests.standins.github_api import GitHubStandIn

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


def test_run__with_the_clients_handed_in_it_probes_writes_publishes_and_returns_the_exit_code(tmp_path):
    """``pipeline.run(settings, clients)`` owns the order: what a test (or another entry point) hands in is
    all it talks through; here the reference backend with a broken upgrade and the GitHub stand-in."""
    secret = "pipeline-run-secret-0123456789abcdefghijkl"
    with (
        ReferenceServer(secret=secret, faults=parse_faults(["ws-502"])) as backend,
        GitHubStandIn(repo=REPO) as standin,
    ):
        pr = standin.add_pull(head_sha=SHA)
        settings = build_settings(
            {"journey": {"users": 1}, "github": {"settle_s": 0}},
            {"url": backend.url, "service": "chat", "github.publish": True, "github.pr": pr,
             "output_dir": tmp_path},
        )  # fmt: skip
        ctx = ActionsContext(repository=REPO, api_url=standin.api_url, server_url=standin.server_url, sha=SHA)
        clients = pipeline.Clients(github=publish.Session.open(token=standin.token, ctx=ctx, retries=1))
        out, err = io.StringIO(), io.StringIO()
        console = Console(out=out, err=err, redactor=Redactor([secret]))

        code = pipeline.run(
            settings,
            clients,
            credentials=Credentials(secret=secret),
            context=pipeline.RunContext(commit=SHA, actions=ctx),
            console=console,
            quiet=True,
        )

    assert code == 1, err.getvalue()
    saved = results.load(tmp_path / "results.json")
    assert saved.verdict is results.Verdict.FAIL
    assert [f.kind for f in saved.findings] == [Kind.WS_UPGRADE_STATUS]
    (comment,) = standin.comments(pr)
    assert "ws-upgrade-status" in comment.body
    assert [i.state for i in standin.issues()] == ["open"]
    assert err.getvalue().rstrip().endswith("exit code 1")
    assert out.getvalue().startswith("::error title=golden-path P0")  # quiet: the annotation, not the report
