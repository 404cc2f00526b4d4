"""Cloud Run Admin API v2: resolve the revision under test, wait until it is ready, read its facts.

Every call goes through ``bot.cloudrun_api.Api`` (patient reads, errors translated once into ``CloudRunError``,
exit code 3, with a fix). Traffic changes are ``bot.rollout``'s. ``google.cloud.run_v2`` is imported lazily:
importing it costs ~0.4 s, and ``--url`` runs never need it.

Facts this module relies on (google-cloud-run 0.16, REST transport):
- ``Service.latest_created_revision``/``latest_ready_revision`` are full resource names; traffic entries name
  revisions by their short name. Both are compared by short name here.
- A revision's readiness is its ``Ready`` condition; failure reasons sit in the ``reasons`` oneof
  (``revision_reason`` or the common ``reason``).
- The live API reports the resolved image digest as ``Revision.containerStatuses[].imageDigest``; the 0.16
  client's ``Revision`` type has no such field and drops it, so the digest is known only from an image
  reference pinned with ``@sha256:`` (or from a newer client, read defensively).
- ``Revision.containers`` may hold sidecars; the ingress container, the app, is the one declaring ``ports``
  (Cloud Run requires exactly one in a multi-container revision; a lone container may omit them).
- A revision's Ready condition can turn False after it served (a container that exits): its reason and message
  are what ``recheck`` reports after a failing probe.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from bot import hosts, server_logs, timestamps, traffic, waits
from bot.cloudrun_api import ADC_HINT, Api, CloudRunClients, Waiter, last_segment, service_path
from bot.errors import CloudRunError, ConfigError
from bot.results import (
    CheckResult,
    ContainerImage,
    Failure,
    Kind,
    RevisionSettings,
    Status,
    Step,
    Target,
)
from bot.settings import CloudRunSettings, VersionSettings

if TYPE_CHECKING:
    from google.cloud import run_v2

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(frozen=True)
class Resolution:
    target: Target  # every Cloud Run fact found; `url` is the URL to test
    checks: tuple[CheckResult, ...]  # revision-ready, and image-digest when an expected image is given
    ready: bool  # False: do not probe (the URL would reach another revision, or nothing)


# -- clients -------------------------------------------------------------------------------------------------


def make_clients(*, endpoint: str | None) -> CloudRunClients:
    """Clients for run.googleapis.com (ADC), a custom https:// endpoint (ADC) or a loopback http:// stand-in.

    Always the REST transport: the same code path the tests exercise against the stand-in.

    Raises:
        ConfigError: a plain http:// endpoint that is not loopback (credentials would travel in clear text,
            so anonymous credentials are only used on loopback).
        CloudRunError: no Application Default Credentials.
    """
    from google.api_core.client_options import ClientOptions
    from google.cloud import run_v2

    options = None
    if endpoint is None:
        credentials = _default_credentials()
    else:
        parts = urlsplit(endpoint)
        options = ClientOptions(api_endpoint=endpoint.rstrip("/"))
        if parts.scheme == "http":
            if not hosts.is_local_http(endpoint):
                raise ConfigError(
                    "cloud_run.endpoint",
                    f"plain http:// is only allowed for a local stand-in on loopback (127.0.0.1, localhost, "
                    f"[::1]); use https:// for {endpoint!r}",
                )
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        elif parts.scheme == "https":
            credentials = _default_credentials()
        else:
            raise ConfigError("cloud_run.endpoint", f"expected an http:// or https:// URL, got {endpoint!r}")
    return CloudRunClients(
        services=run_v2.ServicesClient(credentials=credentials, transport="rest", client_options=options),
        revisions=run_v2.RevisionsClient(credentials=credentials, transport="rest", client_options=options),
    )


def _default_credentials() -> Any:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except DefaultCredentialsError as exc:
        raise CloudRunError(f"no Google Cloud credentials found: {ADC_HINT}") from exc
    return credentials


# -- resolve -------------------------------------------------------------------------------------------------


def resolve(
    *,
    clients: CloudRunClients,
    settings: CloudRunSettings,
    version: VersionSettings,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = waits.sleep,
    clock: Callable[[], float] = waits.clock,
) -> Resolution:
    """Find the revision under test, wait (bounded) until it is ready, and gather its facts.

    A revision that fails or does not become ready in ``settings.ready_timeout_s`` is a finding
    (``revision-not-ready``), not an error; API failures are ``CloudRunError``.
    """
    if not (settings.project and settings.region and settings.service):
        raise ConfigError("cloud_run.service", "project, region and service are needed to find the revision")
    api = Api(
        clients=clients, retry_timeout_s=settings.retry_timeout_s, progress=progress, sleep=sleep, clock=clock
    )
    service_name = service_path(settings.project, settings.region, settings.service)
    service = api.get_service(service_name)

    if settings.tag:
        wanted = _revision_for_tag(service, settings.tag)
    else:
        wanted = settings.revision or service.latest_created_revision
    if not wanted:
        raise CloudRunError(f"service {service_name} has no revision yet: deploy it before checking it")
    short = last_segment(wanted)
    revision_name = f"{service_name}/revisions/{short}"

    waiter = Waiter(timeout_s=settings.ready_timeout_s, sleep=sleep, clock=clock, progress=progress)
    revision = api.get_revision(revision_name)
    readiness = _readiness(revision)
    while readiness.state == "pending" and waiter.pause(
        f"revision {short} to become ready", f"reason: {readiness.reason or readiness.condition_state}"
    ):
        revision = api.get_revision(revision_name)
        readiness = _readiness(revision)

    if waiter.polls:
        service = api.get_service(service_name)  # traffic statuses move while the revision comes up
    routing = _routing(service, short, settings.tag)
    # A tag set on the service appears in traffic_statuses (with its URL) once the service has reconciled.
    while (
        readiness.state == "ready"
        and routing.tag_pending
        and waiter.pause(f"the tag URL of {short}", "tagged")
    ):
        service = api.get_service(service_name)
        routing = _routing(service, short, settings.tag)

    warnings: list[str] = []
    checks = [_ready_check(short, revision, readiness, waiter)]
    service_url = service.uri or next(iter(service.urls), "")
    if routing.tag_url:
        url = routing.tag_url
    elif service_url:
        url = service_url
        if routing.percent < 100:
            warnings.append(
                f"revision {short} has no tag URL: testing the service URL, where traffic may reach the "
                f"previous revision ({short} receives {routing.percent}% of traffic): the new revision itself "
                "is not tested and traffic will not be moved; deploy with `--no-traffic --tag` to test it alone"
            )
            if readiness.state == "ready":  # a revision that is not ready is not probed at all
                checks.append(_not_tested_check(short, routing.percent, service_url))
    else:
        raise CloudRunError(
            f"service {service_name} has no URL (default URL disabled?) and revision {short} no tag URL: "
            "pass the URL to test with --url"
        )

    containers = containers_of(revision)
    ingress = next((c for c in containers if c.ingress), None)
    image = ingress.image if ingress else None
    digest = ingress.digest if ingress else None
    if revision.containers and ingress is None:
        warnings.append(
            f"revision {short} has {len(revision.containers)} containers and none declares a port: the app's "
            "image is unknown"
        )
    image_check = _image_check(version.expected_image, image=image, digest=digest, warnings=warnings)
    if image_check is not None:
        checks.append(image_check)

    target = Target(
        url=url.rstrip("/"),
        service=settings.service,
        project=settings.project,
        region=settings.region,
        revision=short,
        revision_url=routing.tag_url,
        image=image,
        digest=digest,
        created=_created(revision.create_time),
        traffic_percent=routing.percent,
        previous_revision=_previous_revision(api, service, short, revision),
        labels=dict(revision.labels),
        expected_version=version.expected,
        expected_image=version.expected_image,
        warnings=tuple(warnings),
        tag=routing.tag or settings.tag,
        service_url=service_url.rstrip("/") or None,
        traffic=serving(service),
        tested_alone=bool(routing.tag_url) or routing.percent == 100,
        containers=containers,
        settings=revision_settings(revision),
    )
    return Resolution(target=target, checks=tuple(checks), ready=readiness.state == "ready")


@dataclass(frozen=True)
class _Readiness:
    state: Literal["ready", "failed", "pending"]
    condition_state: str  # e.g. CONDITION_RECONCILING
    reason: str  # revisionReason or common reason name, "" if none
    message: str
    since: str | None = None  # when the Ready condition last changed (RFC 3339)


def _readiness(revision: run_v2.Revision) -> _Readiness:
    from google.cloud import run_v2

    states = run_v2.Condition.State
    ready = next((c for c in revision.conditions if c.type_ == "Ready"), None)
    if ready is None:
        return _Readiness("pending", "no Ready condition yet", "", "")
    reason, message = _reason(ready), ready.message
    since = _created(ready.last_transition_time)
    if ready.state == states.CONDITION_SUCCEEDED:
        return _Readiness("ready", ready.state.name, reason, message)
    if ready.state == states.CONDITION_FAILED:
        # The Ready condition may be generic; another failed condition can carry the precise reason.
        for other in revision.conditions:
            if other.type_ != "Ready" and other.state == states.CONDITION_FAILED:
                reason = reason or _reason(other)
                message = message or other.message
        return _Readiness("failed", ready.state.name, reason, message, since)
    return _Readiness("pending", ready.state.name, reason, message, since)


def _reason(condition: run_v2.Condition) -> str:
    which = type(condition).pb(condition).WhichOneof("reasons")
    if which is None:
        return ""
    value = getattr(condition, which)
    return str(getattr(value, "name", value))


def _readiness_evidence(
    short: str, revision: run_v2.Revision, readiness: _Readiness, **more: str
) -> dict[str, str]:
    """A not-ready revision's evidence, in Cloud Run's words: its Ready condition, ``more``, its logs' link."""
    evidence = {
        "revision": short,
        "state": readiness.condition_state,
        "reason": readiness.reason,
        "message": readiness.message,
        **more,
    }
    if revision.log_uri:
        evidence["logs"] = revision.log_uri
    return evidence


def _ready_check(short: str, revision: run_v2.Revision, readiness: _Readiness, waiter: Waiter) -> CheckResult:
    waited_ms = round(waiter.elapsed * 1000, 1)
    if readiness.state == "ready":
        return CheckResult(
            "revision-ready",
            Step.REVISION,
            Status.PASS,
            duration_ms=waited_ms,
            summary=f"revision {short} is ready",
        )
    if readiness.state == "failed":
        message = f"revision {short} failed to become ready: {readiness.message or readiness.reason}"
    else:
        message = (
            f"revision {short} did not become ready within {waiter.timeout_s:g} s "
            f"(last reason: {readiness.reason or readiness.condition_state})"
        )
    evidence = _readiness_evidence(short, revision, readiness, waited_s=f"{waiter.elapsed:.0f}")
    return CheckResult(
        "revision-ready",
        Step.REVISION,
        Status.FAIL,
        duration_ms=waited_ms,
        summary=message,
        failure=Failure(
            kind=Kind.REVISION_NOT_READY,
            message=message,
            detail=readiness.reason or ("timeout" if readiness.state == "pending" else "failed"),
            evidence=evidence,
        ),
    )


def recheck(
    *,
    clients: CloudRunClients,
    target: Target,
    settings: CloudRunSettings,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = waits.sleep,
    clock: Callable[[], float] = waits.clock,
) -> CheckResult | None:
    """Read the revision again after a probe with P0 findings: why it died, in Cloud Run's own words.

    A Ready condition that is no longer true (a container that exited, a failed health check) is a
    ``revision-not-ready`` check with Cloud Run's reason and message. None while the revision is still ready
    (the findings are the app's own), or when it cannot be read (said as a warning: the findings stand).
    """
    if not (target.project and target.region and target.revision and settings.service):
        return None
    api = Api(
        clients=clients, retry_timeout_s=settings.retry_timeout_s, progress=progress, sleep=sleep, clock=clock
    )
    name = f"{service_path(target.project, target.region, settings.service)}/revisions/{target.revision}"
    try:
        revision = api.get_revision(name)
    except CloudRunError as exc:
        progress(f"warning: could not read revision {target.revision} again after the failing probe: {exc}")
        return None
    readiness = _readiness(revision)
    if readiness.state == "ready":
        return None
    why = readiness.message or readiness.reason or readiness.condition_state
    message = f"revision {target.revision} is no longer ready after the probe: {why}"
    progress(message)
    since = {"since": readiness.since} if readiness.since else {}
    evidence = _readiness_evidence(target.revision, revision, readiness, **since)
    return CheckResult(
        "revision-still-ready",
        Step.REVISION,
        Status.FAIL,
        summary=message,
        failure=Failure(
            kind=Kind.REVISION_NOT_READY,
            message=message,
            detail=readiness.reason or "not-ready",
            evidence=evidence,
        ),
    )


@dataclass(frozen=True)
class _Routing:
    percent: int  # share of the service's traffic now reaching the revision
    tag_url: str | None
    tag_pending: bool  # tagged in the spec, but no URL reported yet
    tag: str | None = None  # the tag whose URL this is


def _routing(service: run_v2.Service, short: str, tag: str | None = None) -> _Routing:
    from google.cloud import run_v2

    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    latest_ready = last_segment(service.latest_ready_revision)
    percent, tag_url, tag_name = 0, None, None
    for status in service.traffic_statuses:
        by_revision = last_segment(status.revision)
        resolved = by_revision or (latest_ready if status.type_ == latest else "")
        if resolved != short:
            continue
        percent += status.percent
        # Only a tag bound to this revision by name is a stable URL for it; a LATEST tag follows new deploys,
        # so it is used only when the user selected the revision by that very tag.
        usable = status.tag == tag if tag else bool(by_revision and status.tag)
        if usable and status.uri and tag_url is None:
            tag_url, tag_name = status.uri, status.tag
    tagged = any(
        t.tag and (t.tag == tag if tag else last_segment(t.revision) == short) for t in service.traffic
    )
    return _Routing(percent=percent, tag_url=tag_url, tag_pending=tagged and tag_url is None, tag=tag_name)


def _revision_for_tag(service: run_v2.Service, tag: str) -> str:
    """The revision a traffic tag points at; a tag no revision carries is a usage error naming the tags."""
    from google.cloud import run_v2

    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    for entry in service.traffic:
        if entry.tag == tag:
            if entry.type_ == latest:
                return service.latest_ready_revision or service.latest_created_revision
            return entry.revision
    tags = sorted({t.tag for t in service.traffic if t.tag})
    existing = ", ".join(tags) if tags else "none (deploy with `--tag`)"
    raise ConfigError(
        "cloud_run.tag",
        f"no revision of service {last_segment(service.name)} carries tag {tag!r}; tags that exist: {existing}",
    )


def _not_tested_check(short: str, percent: int, service_url: str) -> CheckResult:
    message = (
        f"revision {short} was not tested: it has no tag URL and receives {percent}% of traffic, so the "
        f"service URL {service_url} may have been answered by another revision"
    )
    return CheckResult(
        "revision-tested",
        Step.REVISION,
        Status.FAIL,
        summary=message,
        failure=Failure(
            kind=Kind.REVISION_NOT_TESTED,
            message=message,
            evidence={"revision": short, "traffic": f"{percent}%", "tested URL": service_url},
        ),
    )


def serving(service: run_v2.Service) -> dict[str, int]:
    """Revision short name -> percent of traffic it receives now (``trafficStatuses``; LATEST resolved to the
    latest ready revision, summed as ``traffic.shares`` sums a plan)."""
    statuses = (traffic.Entry(last_segment(s.revision) or None, s.percent) for s in service.traffic_statuses)
    return traffic.shares(statuses, last_segment(service.latest_ready_revision))


def _previous_revision(
    api: Api, service: run_v2.Service, short: str, revision: run_v2.Revision
) -> str | None:
    """The revision to fall back to: the one serving most traffic now, else the newest older ready one."""
    others = {name: pct for name, pct in serving(service).items() if name != short}
    if others:
        return max(others, key=lambda name: others[name])
    created = revision.create_time
    best: run_v2.Revision | None = None
    for candidate in api.list_revisions(service.name):
        if last_segment(candidate.name) == short or _readiness(candidate).state != "ready":
            continue
        if created and candidate.create_time and candidate.create_time >= created:
            continue
        if best is None or (candidate.create_time and candidate.create_time > best.create_time):
            best = candidate
    return last_segment(best.name) if best is not None else None


# -- settings that matter for real-time ------------------------------------------------------------------------

MAX_ANNOTATIONS = 20
ANNOTATION_CHARS = 200


def revision_settings(revision: run_v2.Revision) -> RevisionSettings:
    """The revision's request timeout, affinity, concurrency, scaling, environment, and its ingress container's
    port and resources, as reported; a field the API left out stays None (``bot.realtime`` judges them)."""
    listed = list(revision.containers)  # the ingress container as containers_of marks it
    ingress = next((c for c in listed if c.ports), None) or (listed[0] if len(listed) == 1 else None)
    port = ingress.ports[0] if ingress is not None and ingress.ports else None
    resources = ingress.resources if ingress is not None and "resources" in ingress else None
    limits = dict(resources.limits) if resources is not None else {}
    scaling = revision.scaling if "scaling" in revision else None
    environment = revision.execution_environment.name.removeprefix("EXECUTION_ENVIRONMENT_").lower()
    annotations = dict(sorted(revision.annotations.items())[:MAX_ANNOTATIONS])
    return RevisionSettings(
        timeout_s=revision.timeout.total_seconds() if "timeout" in revision else None,
        session_affinity=bool(revision.session_affinity),
        max_concurrency=revision.max_instance_request_concurrency or None,
        min_instances=scaling.min_instance_count if scaling is not None else None,
        max_instances=(scaling.max_instance_count or None) if scaling is not None else None,
        execution_environment=None if environment == "unspecified" else environment,
        port_name=(port.name or None) if port is not None else None,
        port=(port.container_port or None) if port is not None else None,
        cpu=limits.get("cpu"),
        memory=limits.get("memory"),
        cpu_idle=resources.cpu_idle if resources is not None else None,
        startup_cpu_boost=resources.startup_cpu_boost if resources is not None else None,
        annotations={k[:ANNOTATION_CHARS]: v[:ANNOTATION_CHARS] for k, v in annotations.items()},
    )


# -- image digest --------------------------------------------------------------------------------------------

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _digest_in(image: str | None) -> str | None:
    """The digest pinned in an image reference (``repo@sha256:...``), never guessed from a tag."""
    if not image or "@" not in image:
        return None
    digest = image.rsplit("@", 1)[1].lower()
    return digest if _DIGEST.fullmatch(digest) else None


def _reported_digest(revision: run_v2.Revision, container: str) -> str | None:
    # `containerStatuses[].imageDigest` exists in the live API; google-cloud-run 0.16 drops it (see module doc).
    statuses = getattr(revision, "container_statuses", None) or ()
    for status in statuses:
        digest = str(getattr(status, "image_digest", "") or "").lower()
        if str(getattr(status, "name", "") or "") == container and _DIGEST.fullmatch(digest):
            return digest
    return None


def containers_of(revision: run_v2.Revision) -> tuple[ContainerImage, ...]:
    """Every container's image, the ingress one marked: the one declaring ``ports``, or the only container."""
    listed = list(revision.containers)
    with_ports = [i for i, c in enumerate(listed) if c.ports]
    ingress = with_ports[0] if with_ports else (0 if len(listed) == 1 else None)
    return tuple(
        ContainerImage(
            name=c.name,
            image=c.image,
            ingress=i == ingress,
            digest=_digest_in(c.image) or _reported_digest(revision, c.name),
        )
        for i, c in enumerate(listed)
    )


def _expected_digest(expected: str) -> str | None:
    value = expected.strip().lower()
    if "@" in value:
        value = value.rsplit("@", 1)[1]
    if re.fullmatch(r"[0-9a-f]{64}", value):
        value = f"sha256:{value}"
    return value if _DIGEST.fullmatch(value) else None


def _image_check(
    expected: str | None, *, image: str | None, digest: str | None, warnings: list[str]
) -> CheckResult | None:
    """``version-skew`` (detail ``image``) when the revision does not run the expected image."""
    if not expected:
        return None
    want = _expected_digest(expected)
    actual = f"{image or '?'}" + (f" ({digest})" if digest and digest not in (image or "") else "")
    if want is None:
        # A tag reference: names can be compared, content cannot (tags move).
        matches = image == expected.strip()
        warnings.append(f"expected image {expected} has no digest: compared by name only (tags can move)")
    elif digest is None:
        warnings.append(
            f"cannot compare the expected image digest: revision image {image or '?'} is a tag reference and "
            "the Cloud Run API client reported no digest; deploy by digest (image@sha256:...) to compare"
        )
        return CheckResult(
            "image-digest",
            Step.REVISION,
            Status.SKIP,
            summary=f"digest of {image or '?'} unknown: not compared",
        )
    else:
        matches = digest == want
    if matches:
        return CheckResult(
            "image-digest", Step.REVISION, Status.PASS, summary=f"runs the expected image {actual}"
        )
    message = f"deploy succeeded but the revision runs another image: expected {expected}, serving {actual}"
    return CheckResult(
        "image-digest",
        Step.REVISION,
        Status.FAIL,
        summary=message,
        failure=Failure(
            kind=Kind.VERSION_SKEW,
            message=message,
            detail="image",
            evidence={"expected": expected, "actual": actual, "image": image or "", "digest": digest or ""},
        ),
    )


# -- logs ----------------------------------------------------------------------------------------------------


def logs_url(
    *, project: str, service: str, revision: str, start: str, end: str, region: str | None = None
) -> str:
    """A Logs Explorer link: the revision's logs over the run's window (start to end + 1 min, as log entries
    arrive late). The same query and link format as the logs under each finding (``bot.server_logs``)."""
    where = server_logs.Where(project=project, region=region, service=service, revision=revision)
    since = timestamps.parse(start)
    until = timestamps.parse(end) + timedelta(minutes=1)
    return server_logs.explorer_url(project, server_logs.revision_filter(where), since, until)


# -- small helpers -------------------------------------------------------------------------------------------


def _created(value: Any) -> str | None:
    """The API's time (a datetime; nanoseconds are not kept) as RFC 3339 at its own precision."""
    if not value:
        return None
    return timestamps.rfc3339(value, "auto") if isinstance(value, datetime) else str(value)
