"""bot.cloudrun against a local Cloud Run Admin API v2 stand-in, reached by the real client over REST."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import cloudrun, cloudrun_api, waits
from bot.errors import CloudRunError, ConfigError, ExitCode
from bot.results import Kind, Status, Step
from bot.settings import VersionSettings
from tests.cloudrun_support import (
    DIGEST_A,
    DIGEST_B,
    NEW,
    OLD,
    REPO,
    SERVICE_URL,
    TAG_URL,
    FakeTime,
    deploy_revisions,
    deploy_tagged,
    resolve,
    settings,
)
from tests.standins.cloudrun_api import CloudRunStandIn, Route, Sidecar


@pytest.fixture
def api(api: CloudRunStandIn) -> CloudRunStandIn:
    """The conftest's stand-in, with the service chat at SERVICE_URL."""
    api.add_service("chat", uri=SERVICE_URL)
    return api


# -- resolve: readiness ----------------------------------------------------------------------------------------


def test_resolve__ready(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api, labels={"commit-sha": "0123abc"})

    resolution = resolve(clients, fake_time, lines)

    assert resolution.ready
    assert fake_time.sleeps == []
    (check,) = resolution.checks
    assert (check.id, check.step, check.status) == ("revision-ready", Step.REVISION, Status.PASS)
    target = resolution.target
    assert target.service == "chat" and (target.project, target.region) == ("p", "r")
    assert target.revision == NEW
    assert target.image == f"{REPO}@{DIGEST_B}"
    assert target.digest == DIGEST_B
    assert target.created is not None and target.created.endswith("Z")
    assert target.labels["commit-sha"] == "0123abc"
    assert target.traffic_percent == 0
    assert target.previous_revision == OLD
    assert target.expected_version == "0123abc"


def test_resolve__becoming_ready(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api, pending_polls=4)

    resolution = resolve(clients, fake_time, lines)

    assert resolution.ready
    assert fake_time.sleeps == [1, 2, 4, 8]
    waits = [line for line in lines if line.startswith("waiting for revision")]
    assert len(waits) == 4
    assert waits[0] == f"waiting for revision {NEW} to become ready (reason: PENDING, 0 s elapsed)"
    assert waits[-1].endswith("(reason: PENDING, 7 s elapsed)")
    assert resolution.checks[0].status is Status.PASS
    assert resolution.checks[0].duration_ms == 15_000


def test_resolve__in_testing_mode_the_same_polls_end_at_the_same_deadline(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    deploy_tagged(api, pending_polls=1000)  # never ready

    with waits.recorded() as asked:  # the real sleep and clock, zeroed by the suite's testing mode
        resolution = cloudrun.resolve(
            clients=clients,
            settings=settings(ready_timeout_s=30),
            version=VersionSettings(expected="0123abc"),
            progress=lines.append,
        )

    assert not resolution.ready
    assert [w.seconds for w in asked] == pytest.approx([1, 2, 4, 8, 15], abs=0.5)
    assert resolution.checks[0].status is Status.FAIL


def test_resolve__backoff_is_capped(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api, pending_polls=6)

    resolve(clients, fake_time, lines, ready_timeout_s=300)

    assert fake_time.sleeps == [1, 2, 4, 8, 15, 15]


def test_resolve__failed_revision(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    message = (
        "The user-provided container failed to start and listen on the port defined provided by the "
        "PORT=8080 environment variable within the allocated timeout."
    )
    deploy_tagged(api, state="failed", reason="HEALTH_CHECK_CONTAINER_ERROR", message=message)

    resolution = resolve(clients, fake_time, lines)

    assert not resolution.ready
    assert fake_time.sleeps == []  # a failed Ready condition stops the wait at once
    (check,) = resolution.checks
    assert check.status is Status.FAIL and check.failure is not None
    assert check.failure.kind is Kind.REVISION_NOT_READY
    assert check.failure.detail == "HEALTH_CHECK_CONTAINER_ERROR"
    assert check.failure.evidence["reason"] == "HEALTH_CHECK_CONTAINER_ERROR"
    assert check.failure.evidence["message"] == message
    assert check.failure.evidence["revision"] == NEW
    assert check.failure.evidence["logs"].startswith("https://console.cloud.google.com/logs")
    assert message in check.failure.message
    assert resolution.target.revision == NEW  # the facts are still reported


def test_resolve__fails_while_waiting(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(
        api, pending_polls=2, state="failed", reason="CONTAINER_MISSING", message="Image not found."
    )

    resolution = resolve(clients, fake_time, lines)

    assert not resolution.ready
    assert fake_time.sleeps == [1, 2]
    failure = resolution.checks[0].failure
    assert failure is not None and failure.detail == "CONTAINER_MISSING"
    assert failure.evidence["message"] == "Image not found."


def test_resolve__timeout(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api, state="pending")

    resolution = resolve(clients, fake_time, lines, ready_timeout_s=10)

    assert not resolution.ready
    assert fake_time.sleeps == [1, 2, 4, 3]  # bounded by the remaining time
    failure = resolution.checks[0].failure
    assert failure is not None and failure.kind is Kind.REVISION_NOT_READY
    assert failure.detail == "PENDING"
    assert "did not become ready within 10 s" in failure.message
    assert failure.evidence["state"] == "CONDITION_RECONCILING"


# -- resolve: URL, revision and history ------------------------------------------------------------------------


def test_resolve__tagged_revision_uses_tag_url(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)

    target = resolve(clients, fake_time, lines).target

    assert target.url == TAG_URL
    assert target.revision_url == TAG_URL
    assert target.warnings == ()


def test_resolve__waits_for_the_tag_url(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    api.delay_tag_uri("chat", "pr-7", polls=2)  # the service is still reconciling the new tag

    target = resolve(clients, fake_time, lines).target

    assert target.url == TAG_URL
    assert fake_time.sleeps == [1, 2]
    assert lines[0] == f"waiting for the tag URL of {NEW} (tagged, 0 s elapsed)"


def test_resolve__tag_url_can_point_at_a_local_backend(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    api.add_revision("chat", NEW)
    api.set_traffic("chat", [Route(None, 100), Route(NEW, 0, tag="pr-7", uri="http://127.0.0.1:8765")])

    assert resolve(clients, fake_time, lines).target.url == "http://127.0.0.1:8765"


def test_resolve__untagged_revision_uses_service_url_with_warning(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_revisions(api, OLD, NEW, traffic=[Route(OLD, 100)])

    target = resolve(clients, fake_time, lines).target

    assert target.url == SERVICE_URL
    assert target.revision_url is None
    (warning,) = target.warnings
    assert "traffic may reach the previous revision" in warning and "0%" in warning


def test_resolve__untagged_revision_with_all_traffic_needs_no_warning(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    api.add_revision("chat", OLD)
    api.add_revision("chat", NEW)  # default traffic: 100% to LATEST

    target = resolve(clients, fake_time, lines).target

    assert (target.url, target.traffic_percent, target.warnings) == (SERVICE_URL, 100, ())


def test_resolve__explicit_revision(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)

    target = resolve(clients, fake_time, lines, revision=OLD).target

    assert target.revision == OLD
    assert target.traffic_percent == 100
    assert target.url == SERVICE_URL and target.warnings == ()
    assert f"/revisions/{OLD}" in [r.path for r in api.requests][1]


def test_resolve__previous_ready_revision_from_history(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    api.add_revision("chat", "chat-00001-first")
    api.add_revision("chat", OLD)
    api.add_revision("chat", "chat-00002-broken", state="failed", message="crash")
    api.add_revision("chat", NEW)  # serves 100% through LATEST: no other revision serves traffic

    target = resolve(clients, fake_time, lines).target

    assert target.traffic_percent == 100
    assert target.previous_revision == OLD


def test_resolve__no_previous_revision(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    api.add_revision("chat", NEW)

    assert resolve(clients, fake_time, lines).target.previous_revision is None


# -- resolve: image digest -------------------------------------------------------------------------------------


def test_resolve__image_digest_skew(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api, image=f"{REPO}@{DIGEST_A}")  # the stale image is what got deployed

    resolution = resolve(
        clients, fake_time, lines, version=VersionSettings(expected_image=f"{REPO}@{DIGEST_B}")
    )

    check = next(c for c in resolution.checks if c.id == "image-digest")
    assert check.step is Step.REVISION and check.status is Status.FAIL
    assert check.failure is not None
    assert (check.failure.kind, check.failure.detail) == (Kind.VERSION_SKEW, "image")
    assert check.failure.evidence["expected"] == f"{REPO}@{DIGEST_B}"
    assert DIGEST_A in check.failure.evidence["actual"]
    assert resolution.target.expected_image == f"{REPO}@{DIGEST_B}"
    assert resolution.ready  # skew is a finding, not a reason to skip the probes


def test_resolve__image_digest_match(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)

    resolution = resolve(clients, fake_time, lines, version=VersionSettings(expected_image=DIGEST_B))

    check = next(c for c in resolution.checks if c.id == "image-digest")
    assert check.status is Status.PASS and check.failure is None


def test_resolve__tag_only_image_has_no_known_digest(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    # The live API reports containerStatuses[].imageDigest, which google-cloud-run 0.16 drops.
    deploy_tagged(api, image=f"{REPO}:main", digest=DIGEST_B)

    resolution = resolve(clients, fake_time, lines, version=VersionSettings(expected_image=DIGEST_B))

    check = next(c for c in resolution.checks if c.id == "image-digest")
    assert check.status is Status.SKIP
    assert resolution.target.digest is None  # never guessed
    assert any("tag reference" in w for w in resolution.target.warnings)


# -- errors ----------------------------------------------------------------------------------------------------


def test_resolve__403_names_the_role(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    api.inject(403)

    with pytest.raises(CloudRunError) as caught:
        resolve(clients, fake_time, lines)

    message = str(caught.value)
    assert "the credentials lack run.services.get: grant roles/run.viewer" in message
    assert "projects/p/locations/r/services/chat" in message
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE


def test_resolve__404_service(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    with pytest.raises(CloudRunError) as caught:
        resolve(clients, fake_time, lines, service="nope")

    assert str(caught.value) == (
        "service projects/p/locations/r/services/nope not found: check project, region and service"
    )


def test_resolve__404_revision(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)

    with pytest.raises(CloudRunError, match=r"revision .*/revisions/chat-00009-typo not found"):
        resolve(clients, fake_time, lines, revision="chat-00009-typo")


def test_resolve__401_points_at_adc(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    api.inject(401)

    with pytest.raises(CloudRunError, match="google-github-actions/auth"):
        resolve(clients, fake_time, lines)


def test_resolve__503_twice_then_success(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    api.inject(503, times=2)

    resolution = resolve(clients, fake_time, lines)

    assert resolution.ready
    assert sum("Cloud Run API unavailable" in line and "retrying" in line for line in lines) == 2


def test_resolve__503_forever_gives_up_within_the_retry_budget(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    api.inject(503, times=None)
    started = time.monotonic()

    with pytest.raises(CloudRunError, match=r"unavailable .* after retrying for 1 s") as caught:
        resolve(clients, fake_time, lines, retry_timeout_s=1)

    assert time.monotonic() - started < 3
    assert "503" in str(caught.value)
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE


def test_resolve__unreachable_endpoint(fake_time: FakeTime, lines: list[str]) -> None:
    standin = CloudRunStandIn().start()
    url = standin.url
    standin.stop()  # nothing listens on the port any more
    made = cloudrun.make_clients(endpoint=url)
    try:
        with pytest.raises(CloudRunError, match="unavailable"):
            resolve(made, fake_time, lines, retry_timeout_s=0.5)
    finally:
        made.close()


# -- make_clients ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["http://run.example.com", "http://10.0.0.5:8080", "http://0.0.0.0:9"])
def test_make_clients__refuses_non_loopback_http(endpoint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cloudrun.make_clients(endpoint=endpoint)

    assert caught.value.key == "cloud_run.endpoint"
    assert "loopback" in str(caught.value)


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8123", "http://localhost:8123", "http://[::1]:8123"])
def test_make_clients__anonymous_on_loopback(endpoint: str) -> None:
    made = cloudrun.make_clients(endpoint=endpoint)
    try:
        assert type(made.services.transport._credentials).__name__ == "AnonymousCredentials"
    finally:
        made.close()


def test_make_clients__without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(**_: Any) -> Any:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)

    with pytest.raises(CloudRunError) as caught:
        cloudrun.make_clients(endpoint=None)

    assert "google-github-actions/auth" in str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(caught.value)


# -- resolve: by tag, and whether the revision was tested alone ------------------------------------------------


def test_resolve__by_tag_among_several_tagged_revisions(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    api.add_revision("chat", OLD)
    api.add_revision("chat", NEW)
    api.add_revision("chat", "chat-00003-other")  # the latest created belongs to another PR
    api.set_traffic(
        "chat",
        [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=TAG_URL), Route("chat-00003-other", 0, tag="pr-8")],
    )

    target = resolve(clients, fake_time, lines, tag="pr-7").target

    assert (target.revision, target.tag, target.url, target.tested_alone) == (NEW, "pr-7", TAG_URL, True)
    assert target.traffic == {OLD: 100} and target.service_url == SERVICE_URL


def test_resolve__tag_on_latest_is_the_latest_ready_revision(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_revisions(api, OLD, NEW, traffic=[Route(OLD, 100), Route(None, 0, tag="head", uri=TAG_URL)])

    target = resolve(clients, fake_time, lines, tag="head").target

    assert (target.revision, target.url, target.tag) == (NEW, TAG_URL, "head")


def test_resolve__unknown_tag_names_the_tags_that_exist(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    api.set_traffic("chat", [Route(OLD, 100, tag="stable"), Route(NEW, 0, tag="pr-7", uri=TAG_URL)])

    with pytest.raises(ConfigError) as caught:
        resolve(clients, fake_time, lines, tag="pr-9")

    assert caught.value.key == "cloud_run.tag"
    assert caught.value.exit_code is ExitCode.USAGE
    assert "tags that exist: pr-7, stable" in str(caught.value)


def test_resolve__service_url_with_partial_traffic_is_not_tested_alone(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_revisions(api, OLD, NEW, traffic=[Route(OLD, 90), Route(NEW, 10)])  # a canary without a tag

    resolution = resolve(clients, fake_time, lines)

    assert resolution.target.tested_alone is False
    check = next(c for c in resolution.checks if c.id == "revision-tested")
    assert check.failure is not None and check.failure.kind is Kind.REVISION_NOT_TESTED
    assert "10%" in check.failure.message


def test_settings__tag_and_revision_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        settings(tag="pr-7", revision=NEW)


def test_logs_url__query_and_window() -> None:
    url = cloudrun.logs_url(
        project="my-proj",
        service="chat",
        revision=NEW,
        start="2025-06-03T14:21:07Z",
        end="2025-06-03T14:22:00Z",
    )

    assert url.startswith("https://console.cloud.google.com/logs/query;query=")
    assert "resource.type%3D%22cloud_run_revision%22" in url
    assert f"resource.labels.revision_name%3D%22{NEW}%22" in url
    # The documented timeRange (an ISO 8601 interval), as the links under each finding use: one format.
    assert "timeRange=2025-06-03T14%3A21%3A07.000Z%2F2025-06-03T14%3A23%3A00.000Z" in url
    assert url.endswith("?project=my-proj")
    regional = cloudrun.logs_url(
        project="my-proj", service="chat", revision=NEW, start="2025-06-03T14:21:07Z", end="2025-06-03T14:22:00Z",
        region="europe-west1",
    )  # fmt: skip
    assert "resource.labels.location%3D%22europe-west1%22" in regional


# -- patient reads ---------------------------------------------------------------------------------------------


def test_resolve__429_is_retried_after_the_retry_after_it_asks_and_said_rate_limited(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    api.inject(429, times=2, retry_after="2")

    resolution = resolve(clients, fake_time, lines, retry_timeout_s=30)

    assert resolution.ready and resolution.target.revision == NEW
    assert fake_time.sleeps == [2, 2]
    retries = [line for line in lines if "retrying" in line]
    assert len(retries) == 2 and all(line.startswith("Cloud Run API rate limited (429 ") for line in retries)


def test_resolve__500_on_the_readiness_polls_is_retried(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api, pending_polls=2)
    api.inject(500, path_contains=f"/revisions/{NEW}", times=2)
    api.inject(503, path_contains="/services/chat", method="GET", times=1)

    resolution = resolve(clients, fake_time, lines)

    assert resolution.ready
    assert sum("Cloud Run API unavailable (500 " in line for line in lines) == 2


def test_resolve__a_retry_after_beyond_the_budget_gives_up_at_once_saying_rate_limited(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    api.inject(429, times=None, retry_after="120")

    with pytest.raises(CloudRunError) as caught:
        resolve(clients, fake_time, lines, retry_timeout_s=30)

    assert fake_time.sleeps == []
    assert "rate limited" in str(caught.value) and "asked to retry after 120 s" in str(caught.value)
    assert "cloud_run.retry_timeout_s" in str(caught.value)


def test_retry_after__seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert cloudrun_api.retry_after("7") == 7
    assert cloudrun_api.retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert cloudrun_api.retry_after("soon") is None and cloudrun_api.retry_after(None) is None


# -- the ingress container -------------------------------------------------------------------------------------


def test_resolve__the_ingress_container_is_the_app_not_the_sidecar_listed_first(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    collector = "otel/opentelemetry-collector-contrib@sha256:" + "c" * 64
    proxy = "envoyproxy/envoy:v1.31"
    deploy_tagged(api, sidecars=(Sidecar("otel", collector), Sidecar("proxy", proxy)), container_name="chat")

    resolution = resolve(
        clients, fake_time, lines, version=VersionSettings(expected_image=f"{REPO}@{DIGEST_B}")
    )

    target = resolution.target
    assert (target.image, target.digest) == (f"{REPO}@{DIGEST_B}", DIGEST_B)
    assert next(c for c in resolution.checks if c.id == "image-digest").status is Status.PASS
    assert [(c.name, c.image, c.ingress) for c in target.containers] == [
        ("otel", collector, False),
        ("proxy", proxy, False),
        ("chat", f"{REPO}@{DIGEST_B}", True),
    ]
    assert target.containers[0].digest == "sha256:" + "c" * 64 and target.containers[1].digest is None


def test_resolve__a_lone_container_without_ports_is_the_app(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    from google.cloud import run_v2

    revision = run_v2.Revision(containers=[run_v2.Container(image=f"{REPO}@{DIGEST_A}")])

    (only,) = cloudrun.containers_of(revision)

    assert (only.image, only.ingress, only.digest) == (f"{REPO}@{DIGEST_A}", True, DIGEST_A)


# -- why it died -----------------------------------------------------------------------------------------------


def test_recheck__a_revision_whose_ready_turned_false_reports_cloud_runs_reason(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api, dies_after_gets=1, reason="REVISION_FAILED", message="Container called exit(1).")
    target = resolve(clients, fake_time, lines).target  # ready when resolved

    check = cloudrun.recheck(clients=clients, target=target, settings=settings(), progress=lines.append)

    assert check is not None and (check.step, check.status) == (Step.REVISION, Status.FAIL)
    assert check.failure is not None and check.failure.kind is Kind.REVISION_NOT_READY
    assert check.failure.detail == "REVISION_FAILED"
    assert (
        check.failure.message
        == f"revision {NEW} is no longer ready after the probe: Container called exit(1)."
    )
    assert check.failure.evidence["state"] == "CONDITION_FAILED"
    assert check.failure.evidence["since"].endswith("Z")


def test_recheck__a_revision_still_ready_adds_nothing(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolve(clients, fake_time, lines).target

    assert (
        cloudrun.recheck(clients=clients, target=target, settings=settings(), progress=lines.append) is None
    )


def test_recheck__an_unreadable_revision_is_a_warning_not_a_finding(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolve(clients, fake_time, lines).target
    api.inject(403, times=None)

    assert (
        cloudrun.recheck(clients=clients, target=target, settings=settings(), progress=lines.append) is None
    )
    assert (
        lines[-1].startswith(f"warning: could not read revision {NEW} again")
        and "run.revisions.get" in lines[-1]
    )


# -- the stand-in speaks the v2 JSON the client parses ----------------------------------------------------------


def test_standin__every_body_it_served_parses_strictly_as_the_v2_messages(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    """The client ignores unknown fields (google-cloud-run 0.16 parses with ignore_unknown_fields=True), so
    a misspelt field would pass silently: every body served here is parsed again with unknown fields refused."""
    from google.cloud import run_v2
    from google.longrunning import operations_pb2
    from google.protobuf import json_format

    from bot import rollout

    api.add_revision("chat", OLD)
    api.add_revision(
        "chat", NEW, sidecars=(Sidecar("otel", "otel/collector:0.1"),), digest=DIGEST_B, dies_after_gets=2,
        reason="REVISION_FAILED", message="Container called exit(1).",
    )  # fmt: skip
    api.set_traffic("chat", [Route(None, 100, tag="head"), Route(OLD, 0, tag="stable")])
    target = resolve(clients, fake_time, lines).target
    api.operation_polls, api.fail_after_update = 1, [503]
    rollout.move_traffic(
        clients=clients, target=target, action="rollback", progress=lines.append, rollback_to="stable",
        sleep=fake_time.sleep, clock=fake_time.clock,
    )  # fmt: skip
    api.operation_polls = 2
    rollout.move_traffic(
        clients=clients, target=target, action="promote", progress=lines.append, sleep=fake_time.sleep,
        clock=fake_time.clock,
    )  # fmt: skip
    api.operation_polls = 0
    rollout.move_traffic(clients=clients, target=target, action="promote", progress=lines.append)
    rechecks = [cloudrun.recheck(clients=clients, target=target, settings=settings(), progress=lines.append)]
    rechecks += [cloudrun.recheck(clients=clients, target=target, settings=settings(), progress=lines.append)]
    assert rechecks[0] is None and rechecks[1] is not None  # ready for two reads in all, then Ready=False

    kinds = set()
    for method, path, body in api.responses:
        text = json.dumps(body)
        if "/operations/" in path or method == "PATCH":
            json_format.Parse(text, operations_pb2.Operation(), ignore_unknown_fields=False)
            kinds.add("operation")
        elif path.endswith("/revisions"):
            for listed in body.get("revisions", []):
                listed.pop("containerStatuses", None)  # live API field the 0.16 Revision type lacks
            run_v2.ListRevisionsResponse.from_json(json.dumps(body), ignore_unknown_fields=False)
            kinds.add("list")
        elif "/revisions/" in path:
            body.pop("containerStatuses", None)
            run_v2.Revision.from_json(json.dumps(body), ignore_unknown_fields=False)
            kinds.add("revision")
        else:
            run_v2.Service.from_json(text, ignore_unknown_fields=False)
            kinds.add("service")
    assert kinds == {"operation", "list", "revision", "service"}
