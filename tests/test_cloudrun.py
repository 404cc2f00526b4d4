"""bot.cloudrun against a local Cloud Run Admin API v2 stand-in, reached by the real client over REST."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from bot import cloudrun, waits
from bot.errors import CloudRunError, ConfigError, ExitCode
from bot.results import Kind, Status, Step, Target
from bot.settings import CloudRunSettings, VersionSettings
from tests.standins.cloudrun_api import CloudRunStandIn, Route

OLD = "chat-00001-old"
NEW = "chat-00002-new"
SERVICE_URL = "https://chat-abc123xyz-ew.a.run.app"
TAG_URL = "https://pr-7---chat-abc123xyz-ew.a.run.app"
REPO = "europe-docker.pkg.dev/p/repo/chat"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


class FakeTime:
    """A clock that only moves when the code under test sleeps; records the backoff sequence."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


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


def settings(**overrides: Any) -> CloudRunSettings:
    values: dict[str, Any] = {
        "project": "p",
        "region": "r",
        "service": "chat",
        "ready_timeout_s": 60,
        "retry_timeout_s": 2,
    }
    return CloudRunSettings(**{**values, **overrides})


def resolve(
    clients: cloudrun.CloudRunClients,
    fake_time: FakeTime,
    lines: list[str],
    *,
    version: VersionSettings | None = None,
    **overrides: Any,
) -> cloudrun.Resolution:
    return cloudrun.resolve(
        clients=clients,
        settings=settings(**overrides),
        version=version or VersionSettings(expected="0123abc"),
        progress=lines.append,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


def deploy_tagged(api: CloudRunStandIn, **new: Any) -> None:
    """The usual preview deploy: the old revision serves 100%, the new one 0% behind tag pr-7."""
    api.add_revision("chat", OLD, image=f"{REPO}@{DIGEST_A}")
    api.add_revision("chat", NEW, **{"image": f"{REPO}@{DIGEST_B}", **new})
    api.set_traffic("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=TAG_URL)])


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


# -- move_traffic ------------------------------------------------------------------------------------------------


def resolved(api: CloudRunStandIn, clients: cloudrun.CloudRunClients) -> Target:
    return resolve(clients, FakeTime(), []).target


def test_move_traffic__promote(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    api.add_revision("chat", OLD)
    api.add_revision("chat", NEW)
    api.set_traffic(
        "chat",
        [Route(OLD, 100, tag="stable"), Route(NEW, 0, tag="pr-7", uri=TAG_URL), Route(None, 0, tag="head")],
    )
    target = resolved(api, clients)

    action = cloudrun.move_traffic(clients=clients, target=target, action="promote", progress=lines.append)

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
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)
    api.operation_polls = 1

    action = cloudrun.move_traffic(clients=clients, target=target, action="promote", progress=lines.append)

    assert action.applied
    assert any("/operations/" in r.path for r in api.requests)
    assert [(t.revision, t.percent) for t in api.traffic("chat") if t.percent] == [(NEW, 100)]


def test_move_traffic__rollback(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    api.add_revision("chat", OLD)
    api.add_revision("chat", NEW)  # deployed with traffic: it serves 100% through LATEST
    target = resolved(api, clients)
    assert target.previous_revision == OLD

    action = cloudrun.move_traffic(clients=clients, target=target, action="rollback", progress=lines.append)

    assert (action.action, action.revision, action.percent, action.applied) == ("rollback", OLD, 100, True)
    (update,) = api.updates()
    assert update.body["traffic"] == [{"type": 2, "revision": OLD, "percent": 100}]
    assert f"{NEW} 100%" in action.message


def test_move_traffic__service_name_given_apart_from_the_display_name(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = replace(resolved(api, clients), service="Chat backend (prod)")

    action = cloudrun.move_traffic(
        clients=clients, target=target, action="promote", progress=lines.append, service="chat"
    )

    assert action.applied
    assert api.updates()[0].path == "/v2/projects/p/locations/r/services/chat"


def test_move_traffic__rollback_keeps_traffic_already_on_previous(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)

    action = cloudrun.move_traffic(clients=clients, target=target, action="rollback", progress=lines.append)

    assert (action.revision, action.applied) == (OLD, True)
    assert "no change" in action.message
    assert api.updates() == []


def test_move_traffic__rollback_with_no_previous(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    api.add_revision("chat", NEW)
    target = resolved(api, clients)

    action = cloudrun.move_traffic(clients=clients, target=target, action="rollback", progress=lines.append)

    assert not action.applied
    assert "no previous ready revision" in action.message
    assert api.updates() == []


def test_move_traffic__403_names_the_developer_role(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)
    api.inject(403, method="PATCH")

    with pytest.raises(CloudRunError) as caught:
        cloudrun.move_traffic(clients=clients, target=target, action="promote", progress=lines.append)

    assert "run.services.update" in str(caught.value) and "roles/run.developer" in str(caught.value)


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


# -- move_traffic: the long-running operation --------------------------------------------------------------------


def gate(
    clients: cloudrun.CloudRunClients, target: Target, fake_time: FakeTime, lines: list[str], **kwargs: Any
) -> Any:
    return cloudrun.move_traffic(
        clients=clients,
        target=target,
        action="promote",
        progress=lines.append,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **kwargs,
    )


def test_move_traffic__operation_unfinished_for_many_polls_reports_progress_at_least_every_5_s(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)
    api.operation_polls = 8

    action = gate(clients, target, fake_time, lines)

    assert action.applied and not action.error
    assert fake_time.sleeps == [1, 2, 4, 5, 5, 5, 5, 5]
    waits = [line for line in lines if line.startswith("waiting for Cloud Run to apply the traffic change")]
    assert len(waits) == 8
    assert waits[-1].endswith("(not done yet, 27 s elapsed)")
    assert (action.before, action.after) == ({OLD: 100}, {NEW: 100})


def test_move_traffic__failed_operation_is_a_recorded_error_with_the_traffic_cloud_run_left(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)
    api.operation_polls = 2
    api.operation_error = (9, "Revision is not ready and cannot serve traffic.")

    action = gate(clients, target, fake_time, lines)

    assert (action.applied, action.error) == (False, True)
    assert "failed in Cloud Run" in action.message and "cannot serve traffic" in action.message
    assert action.after == {OLD: 100} and f"{OLD} 100%" in action.message
    assert [(t.revision, t.percent) for t in api.traffic("chat") if t.percent] == [(OLD, 100)]


def test_move_traffic__operation_past_its_deadline_is_a_recorded_error(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)
    api.operation_polls = 1000

    action = gate(clients, target, fake_time, lines, operation_timeout_s=20)

    assert (action.applied, action.error) == (False, True)
    assert sum(fake_time.sleeps) == 20 and max(fake_time.sleeps) <= 5
    assert "not done after 20 s" in action.message
    assert action.after == {
        NEW: 100
    }  # applied but unconfirmed: the message says what the service reports now


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


def test_move_traffic__a_write_applied_then_answered_503_is_recognised_as_applied(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)
    api.fail_after_update = [503]  # applied, then "unavailable": the retry meets a changed etag (409)

    action = gate(clients, target, fake_time, lines)

    assert (action.applied, action.error) == (True, False)
    assert "answered the update with an error" in action.message
    assert len(api.updates()) == 2
    assert [(t.revision, t.percent) for t in api.traffic("chat") if t.percent] == [(NEW, 100)]


def test_move_traffic__a_refused_write_that_did_not_apply_is_still_an_error(
    api: CloudRunStandIn, clients: cloudrun.CloudRunClients, fake_time: FakeTime, lines: list[str]
) -> None:
    deploy_tagged(api)
    target = resolved(api, clients)
    api.inject(500, method="PATCH")

    with pytest.raises(CloudRunError, match="refused update traffic"):
        gate(clients, target, fake_time, lines)
