"""Cloud Run settings for real-time: the revision's settings read by the real google-cloud-run client from the
Admin API stand-in, and each rule of bot.realtime firing and not firing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import cloudrun, diagnose, kinds, pipeline, realtime, results
from bot.errors import ExitCode
from bot.kinds import GateClass
from bot.results import Kind, RevisionSettings, Status
from bot.settings import CloudRunSettings, Settings, VersionSettings
from tests import samples
from tests.standins.cloudrun_api import CloudRunStandIn, Route, Sidecar

NEW = "chat-00002-new"
TAG_URL = "https://pr-7---chat-abc123xyz-ew.a.run.app"


def resolved(api: CloudRunStandIn, **revision: object) -> RevisionSettings | None:
    api.add_service("chat")
    api.add_revision("chat", NEW, **revision)  # type: ignore[arg-type]
    api.set_traffic("chat", [Route(NEW, 100, tag="pr-7", uri=TAG_URL)])
    clients = cloudrun.make_clients(endpoint=api.url)
    try:
        resolution = cloudrun.resolve(
            clients=clients,
            settings=CloudRunSettings(project="p", region="r", service="chat", tag="pr-7", retry_timeout_s=2),
            version=VersionSettings(),
            progress=lambda _line: None,
        )
    finally:
        clients.close()
    return resolution.target.settings


def test_revision_settings__the_real_client_reads_every_field_the_standin_serves(api: CloudRunStandIn):
    facts = resolved(
        api,
        timeout_s=300,
        session_affinity=True,
        concurrency=1,
        min_instances=2,
        max_instances=20,
        port_name="h2c",
        execution_environment="gen1",
        annotations={"run.googleapis.com/startup-cpu-boost": "true"},
        sidecars=(Sidecar("collector", "gcr.io/p/otel-collector:1"), Sidecar("proxy", "gcr.io/p/envoy:1")),
    )
    assert facts == RevisionSettings(
        timeout_s=300.0,
        session_affinity=True,
        max_concurrency=1,
        min_instances=2,
        max_instances=20,
        execution_environment="gen1",
        port_name="h2c",
        port=8080,
        cpu="1000m",
        memory="512Mi",
        cpu_idle=True,
        startup_cpu_boost=True,
        annotations={"run.googleapis.com/startup-cpu-boost": "true"},
    )
    served = next(r for r in api.requests if r.path.endswith(f"/revisions/{NEW}"))
    assert served.method == "GET"


def test_revision_settings__a_timeout_the_api_left_out_is_none_never_a_default(api: CloudRunStandIn):
    facts = resolved(api, timeout_s=None, max_instances=None, execution_environment=None)
    assert facts is not None
    assert (facts.timeout_s, facts.max_instances, facts.execution_environment) == (None, None, None)


def judge(facts: RevisionSettings, shape: realtime.Shape | None = None, **cloud_run: object):
    settings = Settings(cloud_run=CloudRunSettings(**cloud_run))  # type: ignore[arg-type]
    return realtime.judge(facts, settings=settings, service="chat", region="europe-west1", shape=shape)


def failures(checks: list[results.CheckResult]) -> dict[str, results.Failure]:
    return {c.id: c.failure for c in checks if c.failure is not None}


def test_judge__a_300_s_timeout_is_a_p1_finding_naming_the_gcloud_command_with_the_value():
    checks, _ = judge(RevisionSettings(timeout_s=300))
    failure = failures(checks)["request-timeout"]
    assert failure.kind is Kind.REQUEST_TIMEOUT_SHORT
    assert (
        failure.evidence["command"] == "gcloud run services update chat --region=europe-west1 --timeout=900"
    )
    (finding,) = diagnose.diagnose(checks, service="chat")
    assert finding.severity is results.Severity.P1
    assert "`gcloud run services update chat --region=europe-west1 --timeout=900`" in finding.remediation
    assert realtime.TIMEOUT_DOC in failure.evidence["source"]


def test_judge__a_timeout_at_the_expected_session_passes_and_min_session_0_turns_the_rule_off():
    checks, _ = judge(RevisionSettings(timeout_s=900))
    assert [(c.id, c.status) for c in checks] == [("request-timeout", Status.PASS)]
    checks, _ = judge(RevisionSettings(timeout_s=300), min_session_s=0)
    assert checks == []
    checks, _ = judge(RevisionSettings(timeout_s=1800), min_session_s=3600)
    assert failures(checks)["request-timeout"].evidence["command"].endswith("--timeout=3600")


def test_judge__a_setting_not_reported_is_not_judged():
    assert judge(RevisionSettings()) == ([], ())


def test_judge__an_h2c_port_on_a_websocket_journey_is_a_finding_with_googles_guidance():
    checks, _ = judge(RevisionSettings(port_name="h2c", port=8080))
    failure = failures(checks)["http2-end-to-end"]
    assert failure.kind is Kind.HTTP2_END_TO_END
    assert failure.evidence["command"].endswith("--no-use-http2")
    assert failure.evidence["source"] == realtime.WEBSOCKETS_DOC
    checks, _ = judge(RevisionSettings(port_name="http1", port=8080))
    assert [(c.id, c.status) for c in checks] == [("http2-end-to-end", Status.PASS)]
    checks, _ = judge(RevisionSettings(port_name="h2c", port=8080), realtime.Shape(websocket=False))
    assert checks == []


@pytest.mark.parametrize("shape", [realtime.Shape(reconnects=True), realtime.Shape(polling=True)])
def test_judge__affinity_off_across_instances_warns_for_journeys_that_reconnect_or_poll(
    shape: realtime.Shape,
):
    checks, _ = judge(RevisionSettings(session_affinity=False, max_instances=20), shape)
    failure = failures(checks)["session-affinity"]
    assert failure.kind is Kind.SESSION_AFFINITY_OFF
    assert failure.evidence["command"].endswith("--session-affinity")
    assert kinds.of(Kind.SESSION_AFFINITY_OFF).gate is GateClass.WARNING


@pytest.mark.parametrize(
    ("facts", "shape"),
    [
        (RevisionSettings(session_affinity=True, max_instances=20), realtime.Shape(reconnects=True)),
        (RevisionSettings(session_affinity=False, max_instances=1), realtime.Shape(reconnects=True)),
        (RevisionSettings(session_affinity=False, max_instances=20), realtime.Shape()),
    ],
)
def test_judge__affinity_does_not_warn_when_on_on_one_instance_or_without_reconnects(
    facts: RevisionSettings, shape: realtime.Shape
):
    checks, _ = judge(facts, shape)
    assert not failures(checks)


def test_judge__affinity_off_with_max_instances_not_set_warns_with_cloud_runs_default_of_100():
    checks, _ = judge(RevisionSettings(session_affinity=False), realtime.Shape(reconnects=True))
    assert "up to 100 (not set)" in failures(checks)["session-affinity"].message


def test_judge__concurrency_1_and_min_instances_0_are_facts_with_their_consequence_never_findings():
    checks, notes = judge(RevisionSettings(max_concurrency=1, min_instances=0, max_instances=10))
    assert checks == []
    by_rule = {n.rule: n for n in notes}
    assert "each open WebSocket holds a whole instance" in by_rule["concurrency-one"].text
    assert "at most 10 users" in by_rule["concurrency-one"].text
    assert by_rule["min-instances-zero"].source == realtime.MIN_INSTANCES_DOC
    _, notes = judge(RevisionSettings(max_concurrency=80, min_instances=1))
    assert notes == ()


def test_exit_code__a_settings_warning_never_fails_correctness_and_fails_any():
    checks, _ = judge(
        RevisionSettings(session_affinity=False, max_instances=5), realtime.Shape(reconnects=True)
    )
    findings = diagnose.diagnose(checks, service="chat")
    run = replace(samples.healthy(), findings=findings, verdict=results.verdict_for(findings))
    assert pipeline.exit_code(run, Settings()) is ExitCode.PASS
    assert pipeline.exit_code(run, Settings(gate={"fail_on": "any"})) is ExitCode.FAILED  # type: ignore[arg-type]


def test_exit_code__a_short_timeout_fails_correctness_but_not_p0():
    checks, _ = judge(RevisionSettings(timeout_s=300))
    findings = diagnose.diagnose(checks, service="chat")
    run = replace(samples.healthy(), findings=findings, verdict=results.verdict_for(findings))
    assert run.verdict is results.Verdict.DEGRADED
    assert pipeline.exit_code(run, Settings()) is ExitCode.FAILED
    assert pipeline.exit_code(run, Settings(gate={"fail_on": "p0"})) is ExitCode.PASS  # type: ignore[arg-type]


def test_shape_of__a_journey_whose_turn_reconnects_reconnects():
    assert realtime.shape_of(Settings()) == realtime.Shape()
    turns = [{"message": "hi"}, {"message": "again", "reconnect": True}]
    settings = Settings(journey={"turns": turns})  # type: ignore[arg-type]
    assert realtime.shape_of(settings).reconnects


def test_shape_of__an_sse_conversation_of_several_turns_comes_back_as_new_requests():
    """Each SSE turn is a request of its own: without affinity, turn 2 may reach another instance."""
    one = Settings(transport="sse", journey={"turns": [{"message": "hi"}]})  # type: ignore[arg-type]
    two = Settings(transport="sse", journey={"turns": [{"message": "hi"}, {"message": "again"}]})  # type: ignore[arg-type]
    assert not realtime.shape_of(one).reconnects
    assert realtime.shape_of(two).reconnects


def test_shape_of__socketio_polls_and_upgrades_sse_does_neither():
    socketio = realtime.shape_of(Settings(transport="socketio"))  # type: ignore[call-arg]
    assert socketio.polling and socketio.websocket
    sse = realtime.shape_of(Settings(transport="sse"))  # type: ignore[call-arg]
    assert not (sse.polling or sse.websocket)
