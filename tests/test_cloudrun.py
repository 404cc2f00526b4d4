"""bot.cloudrun against a local Cloud Run Admin API v2 stand-in, reached by the real client over REST."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot import cloudrun
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
    deploy_tagged,
    resolve,
    settings,
)
from tests.standins.cloudrun_api import CloudRunStandIn, Route


@pytest.fixture
def api() -> Iterator[CloudRunStandIn]:
    with CloudRunStandIn(project="p", region="r") as standin:
        standin.add_service("chat", uri=SERVICE_URL)
        yield standin


@pytest.fixture
def clients(api: CloudRunStandIn) -> Iterator[cloudrun.CloudRunClients]:
    made = cloudrun.make_clients(endpoint=api.url)
    yield made
    made.close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def lines() -> list[str]:
    return []


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
    api.add_revision("chat", OLD)
    api.add_revision("chat", NEW)
    api.set_traffic("chat", [Route(OLD, 100)])

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
    api.add_revision("chat", OLD)
    api.add_revision("chat", NEW)
    api.set_traffic("chat", [Route(OLD, 100), Route(None, 0, tag="head", uri=TAG_URL)])

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
    api.add_revision("chat", OLD)
    api.add_revision("chat", NEW)
    api.set_traffic("chat", [Route(OLD, 90), Route(NEW, 10)])  # a canary without a tag

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
