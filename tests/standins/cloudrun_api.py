"""A local stand-in for the Cloud Run Admin API v2 (REST/JSON), reached by the real ``google-cloud-run`` client.

Bodies are built with ``run_v2.Service``/``run_v2.Revision`` and serialised with ``to_json`` (integer enums, as the
client asks with ``$alt=json;enum-encoding=int``), so the shapes are the library's own. Tests mutate the state:
add services and revisions, make a revision become ready (or fail) after K polls, inject HTTP errors, and read
the recorded requests.

The unpleasant behaviour of the live API is modelled, because the gate must survive it:

- an update is a long-running operation, unfinished for ``operation_polls`` reads (of the operation or of the
  service): meanwhile the service's ``traffic`` (the spec) already asks for the new split, ``reconciling`` is
  true and ``trafficStatuses`` still report the old one; a failed operation puts the old traffic back;
- a write applied and then answered 5xx (``fail_after_update``): the operation exists and runs, its name is lost;
- another writer changing the service between our read and our write (``race_next_update``): an etag conflict;
- 429/500/503 on any read or operation poll, with ``Retry-After`` (``inject(..., retry_after=...)``);
- LATEST routing (possibly tagged), other PRs' tagged previews and canary splits (``set_traffic``);
- sidecars beside the ingress container (the one declaring ``ports``), listed first as they often are;
- a revision whose Ready condition flips to False with a reason after it became ready (``dies_after_gets``).

::

    with CloudRunStandIn() as api:
        api.add_service("chat", uri=backend_url)
        api.add_revision("chat", "chat-00001-old", image="europe-docker.pkg.dev/p/r/chat@sha256:...")
        api.add_revision("chat", "chat-00002-new", pending_polls=2)
        api.set_traffic("chat", [Route("chat-00001-old", 100), Route("chat-00002-new", 0, tag="pr-7", uri=url)])
        clients = cloudrun.make_clients(endpoint=api.url)
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from google.cloud import run_v2
from google.protobuf import timestamp_pb2

from tests.standins.loopback import LoopbackServer

Condition = run_v2.Condition
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
BY_REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
SERVICE_TYPE_URL = "type.googleapis.com/google.cloud.run.v2.Service"

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class Route:
    """One traffic entry: ``revision=None`` means LATEST. ``uri`` sets the tag URL the stand-in reports."""

    revision: str | None
    percent: int = 0
    tag: str = ""
    uri: str = ""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Injection:
    status: int
    remaining: int | None  # None: forever
    method: str | None
    path_contains: str | None
    message: str | None
    retry_after: str | None = None  # the Retry-After header sent with the error


@dataclass(frozen=True)
class Sidecar:
    """A container without ports beside the ingress container (a collector, a proxy)."""

    name: str
    image: str


@dataclass
class _RevisionState:
    revision: run_v2.Revision
    final: Literal["ready", "failed", "pending"]
    pending_polls: int
    reason: str
    message: str
    digest: str | None
    # Ready until this many more GETs of the revision were answered, then Ready=False with reason/message:
    # a container that started, served, and then died (Cloud Run: "Container called exit(1).").
    dies_after_gets: int | None = None
    sidecar_digests: dict[str, str] = field(default_factory=dict)


@dataclass
class _ServiceState:
    service: run_v2.Service
    tag_uris: dict[str, str] = field(default_factory=dict)
    tag_delays: dict[str, int] = field(default_factory=dict)  # tag -> service GETs still without its URL
    revisions: dict[str, _RevisionState] = field(default_factory=dict)  # by short name, in creation order
    pending: _Operation | None = None  # the update Cloud Run is still applying
    race: list[run_v2.TrafficTarget] | None = None  # another writer's traffic, landing before our next update


@dataclass
class _Operation:
    name: str
    service: str
    polls_left: int
    error: tuple[int, str] | None = None  # google.rpc.Code and message once done: the update failed
    undo: list[run_v2.TrafficTarget] = field(default_factory=list)  # traffic serving until it is done

    @property
    def done(self) -> bool:
        return self.polls_left <= 0


class CloudRunStandIn(LoopbackServer):
    """A threaded HTTP server on 127.0.0.1 speaking the v2 REST paths ``ServicesClient``/``RevisionsClient`` use."""

    def __init__(self, *, project: str = "p", region: str = "r") -> None:
        self.project = project
        self.region = region
        self.requests: list[RecordedRequest] = []
        self.operation_polls = 0  # GETs of an update's operation answered `done: false` before it is done
        # When set, an update's operation ends (after `operation_polls`) with this google.rpc error
        # (code, message) and the service's traffic goes back to what it was, as Cloud Run does.
        self.operation_error: tuple[int, str] | None = None
        # HTTP statuses answered to the next updates *after* applying them (a write applied, then a 5xx).
        self.fail_after_update: list[int] = []
        self._services: dict[str, _ServiceState] = {}
        self._operations: dict[str, _Operation] = {}
        self._injections: list[_Injection] = []
        self._lock = threading.RLock()
        self._clock = datetime(2025, 1, 1, tzinfo=UTC)
        self.responses: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, body) of every 200
        super().__init__(_handler_for(self))

    # -- lifecycle -------------------------------------------------------------------------------------------

    thread_name = "cloudrun-standin"

    @property
    def url(self) -> str:
        return self.origin

    # -- state -----------------------------------------------------------------------------------------------

    def service_name(self, service: str) -> str:
        return f"projects/{self.project}/locations/{self.region}/services/{service}"

    def revision_name(self, service: str, revision: str) -> str:
        return f"{self.service_name(service)}/revisions/{revision}"

    def add_service(
        self, service: str = "s", *, uri: str | None = None, labels: dict[str, str] | None = None
    ) -> None:
        """A service with no revisions yet; ``uri`` is its main URL (default a realistic ``*.run.app`` one)."""
        with self._lock:
            self._services[service] = _ServiceState(
                run_v2.Service(
                    name=self.service_name(service),
                    uid=str(uuid.uuid4()),
                    generation=1,
                    labels=labels or {},
                    uri=uri or f"https://{service}-abc123xyz-ew.a.run.app",
                    urls=[uri or f"https://{service}-abc123xyz-ew.a.run.app"],
                    traffic=[run_v2.TrafficTarget(type_=LATEST, percent=100)],
                    etag='"1"',
                )
            )

    def add_revision(
        self,
        service: str,
        revision: str,
        *,
        image: str = "europe-docker.pkg.dev/p/repo/chat:latest",
        digest: str | None = None,
        state: Literal["ready", "failed", "pending"] = "ready",
        pending_polls: int = 0,
        reason: str = "HEALTH_CHECK_CONTAINER_ERROR",
        message: str = "",
        labels: dict[str, str] | None = None,
        created: datetime | None = None,
        timeout_s: int | None = 3600,
        session_affinity: bool = False,
        concurrency: int = 80,
        min_instances: int = 0,
        max_instances: int | None = 100,
        port_name: str = "http1",
        execution_environment: str | None = "gen2",
        annotations: dict[str, str] | None = None,
        sidecars: tuple[Sidecar, ...] = (),
        container_name: str | None = None,
        dies_after_gets: int | None = None,
    ) -> str:
        """Add a revision (the service's latest created one) and return its full name.

        The real-time settings default to a well-configured WebSocket service (timeout 3600 s); Cloud Run's own
        defaults are timeout 300 s, concurrency 80, min 0 and max 100 instances, affinity off, port ``http1``.
        ``timeout_s=None`` leaves the field out.

        ``state`` is where it ends up; it is reported as reconciling for the first ``pending_polls`` GETs of
        the revision. ``reason`` is a ``Condition.RevisionReason`` (or ``CommonReason``) name for a failure.
        ``digest`` is reported as the ingress container's ``containerStatuses[].imageDigest``, as the live API
        does. ``sidecars`` come first in ``containers`` (without ports); the ingress container, the one with
        ``ports``, is named ``container_name`` (Cloud Run names every container of a multi-container revision).
        ``dies_after_gets``: Ready for that many GETs of the revision, then Ready=False with ``reason`` and
        ``message`` (``reason`` a ``RevisionReason`` or ``CommonReason`` name).
        """
        with self._lock:
            state_ = self._services[service]
            self._clock += timedelta(minutes=1)
            when = created or self._clock
            rev = run_v2.Revision(
                name=self.revision_name(service, revision),
                uid=str(uuid.uuid4()),
                generation=1,
                service=self.service_name(service),
                labels={"cloud.googleapis.com/location": self.region, **(labels or {})},
                create_time=timestamp_pb2.Timestamp(seconds=int(when.timestamp())),
                containers=[
                    *(run_v2.Container(name=s.name, image=s.image) for s in sidecars),
                    run_v2.Container(
                        name=container_name or ("app" if sidecars else ""),
                        image=image,
                        ports=[run_v2.ContainerPort(name=port_name, container_port=8080)],
                        resources=run_v2.ResourceRequirements(
                            limits={"cpu": "1000m", "memory": "512Mi"}, cpu_idle=True, startup_cpu_boost=True
                        ),
                    ),
                ],
                session_affinity=session_affinity,
                max_instance_request_concurrency=concurrency,
                scaling=run_v2.RevisionScaling(
                    min_instance_count=min_instances, max_instance_count=max_instances or 0
                ),
                execution_environment=run_v2.ExecutionEnvironment[
                    f"EXECUTION_ENVIRONMENT_{(execution_environment or 'unspecified').upper()}"
                ],
                annotations=annotations or {},
                log_uri=f"https://console.cloud.google.com/logs/viewer?project={self.project}&revision={revision}",
                etag=f'"{revision}"',
            )
            if timeout_s is not None:
                rev.timeout = timedelta(seconds=timeout_s)
            state_.revisions[revision] = _RevisionState(
                rev, state, pending_polls, reason, message, digest, dies_after_gets
            )
            state_.service.latest_created_revision = rev.name
            self._settle(state_.revisions[revision])
            return rev.name

    def fail_revision(self, service: str, revision: str, *, reason: str, message: str) -> None:
        with self._lock:
            rev = self._services[service].revisions[revision]
            rev.final, rev.pending_polls, rev.reason, rev.message = "failed", 0, reason, message
            self._settle(rev)

    def set_traffic(self, service: str, routes: list[Route]) -> None:
        with self._lock:
            state_ = self._services[service]
            state_.service.traffic = [_target(r) for r in routes]
            for r in routes:
                if r.tag and r.uri:
                    state_.tag_uris[r.tag] = r.uri

    def delay_tag_uri(self, service: str, tag: str, *, polls: int) -> None:
        """Report ``tag`` without its URL (service reconciling) for the next ``polls`` GETs of the service."""
        with self._lock:
            self._services[service].tag_delays[tag] = polls

    def inject(
        self,
        status: int,
        *,
        times: int | None = 1,
        method: str | None = None,
        path_contains: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests (``None``: all of them) with an error of ``status``
        (with a ``Retry-After`` header when given: seconds, or an HTTP date)."""
        with self._lock:
            self._injections.append(_Injection(status, times, method, path_contains, message, retry_after))

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()

    def race_next_update(self, service: str, routes: list[Route]) -> None:
        """Another writer (a deploy, a person in the console) sets ``routes`` just before our next update
        arrives: the service's etag moves, so an update carrying the etag it read meets a conflict (409)."""
        with self._lock:
            self._services[service].race = [_target(r) for r in routes]

    def traffic(self, service: str) -> list[run_v2.TrafficTarget]:
        with self._lock:
            return list(self._services[service].service.traffic)

    def routes(self, service: str) -> list[Route]:
        """The service's traffic spec as ``Route``s (LATEST as ``None``), to compare exactly after a run."""
        with self._lock:
            return [
                Route(t.revision.rsplit("/", 1)[-1] if t.type_ == BY_REVISION else None, t.percent, t.tag)
                for t in self._services[service].service.traffic
            ]

    def updates(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "PATCH"]

    # -- answers ---------------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers) for one request."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        parsed: Any = json.loads(body) if body else None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, parsed))
            for inj in self._injections:
                if self._matches(inj, method, path):
                    message = inj.message or _default_message(inj.status, method, path)
                    status, payload = _error(inj.status, message)
                    return status, payload, {"Retry-After": inj.retry_after} if inj.retry_after else {}
            status, payload = self._answer(method, path, query, parsed)
            if status == 200:
                self.responses.append((method, path, payload))
            return status, payload, {}

    def _answer(
        self, method: str, path: str, query: dict[str, str], parsed: Any
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            segments = path.strip("/").split("/")
            # v2 / projects / P / locations / R / (services / S (/ revisions (/ REV)) | operations / ID)
            if len(segments) < 7 or segments[:2] != ["v2", "projects"] or segments[3] != "locations":
                return _error(404, f"unknown path {path}")
            if (segments[2], segments[4]) != (self.project, self.region):
                return _error(
                    404, f"Resource of project {segments[2]!r} in region {segments[4]!r} does not exist."
                )
            if segments[5] == "operations" and len(segments) == 7 and method == "GET":
                return self._get_operation(segments[6])
            if segments[5] != "services":
                return _error(404, f"unknown path {path}")
            service = self._services.get(segments[6])
            if service is None:
                return _error(
                    404,
                    f"Resource '{segments[6]}' of kind 'SERVICE' in region '{self.region}' "
                    f"in project '{self.project}' does not exist.",
                )
            if len(segments) == 7 and method == "GET":
                answer = self._service_json(service)
                for tag, polls in service.tag_delays.items():
                    service.tag_delays[tag] = max(0, polls - 1)
                if service.pending is not None:
                    self._tick(service.pending)  # Cloud Run keeps applying while we read the service
                return 200, answer
            if len(segments) == 7 and method == "PATCH":
                return self._update(service, query, parsed)
            if len(segments) == 8 and segments[7] == "revisions" and method == "GET":
                return self._list(service, query)
            if len(segments) == 9 and segments[7] == "revisions" and method == "GET":
                rev = service.revisions.get(segments[8])
                if rev is None:
                    return _error(
                        404,
                        f"Resource '{segments[8]}' of kind 'REVISION' in region '{self.region}' "
                        f"in project '{self.project}' does not exist.",
                    )
                answer = _revision_json(rev)
                if rev.pending_polls > 0:
                    rev.pending_polls -= 1
                    self._settle(rev)
                elif rev.dies_after_gets is not None:
                    rev.dies_after_gets -= 1
                    if rev.dies_after_gets <= 0:
                        rev.final, rev.dies_after_gets = "failed", None
                        self._clock += timedelta(minutes=1)
                        self._settle(rev)
                return 200, answer
            return _error(400, f"{method} {path} is not supported by the stand-in")

    @staticmethod
    def _matches(inj: _Injection, method: str, path: str) -> bool:
        if inj.method is not None and inj.method != method:
            return False
        if inj.path_contains is not None and inj.path_contains not in path:
            return False
        if inj.remaining is not None:
            if inj.remaining <= 0:
                return False
            inj.remaining -= 1
        return True

    def _settle(self, rev: _RevisionState) -> None:
        """Write the Ready condition for the revision's current state (and the service's latest ready)."""
        pending = rev.final == "pending" or rev.pending_polls > 0
        if pending:
            ready = Condition(
                type_="Ready",
                state=Condition.State.CONDITION_RECONCILING,
                revision_reason=Condition.RevisionReason.PENDING,
                message="Deploying revision.",
            )
        elif rev.final == "ready":
            ready = Condition(type_="Ready", state=Condition.State.CONDITION_SUCCEEDED)
        else:
            ready = Condition(type_="Ready", state=Condition.State.CONDITION_FAILED, message=rev.message)
            if rev.reason in Condition.RevisionReason.__members__:
                ready.revision_reason = Condition.RevisionReason[rev.reason]
            else:
                ready.reason = Condition.CommonReason[rev.reason]
        stamp = timestamp_pb2.Timestamp(seconds=int(self._clock.timestamp()))
        ready.last_transition_time = stamp
        rev.revision.conditions = [ready]
        rev.revision.reconciling = pending
        rev.revision.observed_generation = 0 if pending else 1
        owner = self._owner(rev)
        ready_ones = [r for r in owner.revisions.values() if r.final == "ready" and r.pending_polls == 0]
        owner.service.latest_ready_revision = ready_ones[-1].revision.name if ready_ones else ""

    def _owner(self, rev: _RevisionState) -> _ServiceState:
        return self._services[rev.revision.service.rsplit("/", 1)[-1]]

    def _service_json(self, state_: _ServiceState) -> dict[str, Any]:
        service = run_v2.Service(state_.service)
        statuses = []
        # While an update is applied, the spec (`traffic`) already asks for it; the statuses say what serves.
        serving = state_.pending.undo if state_.pending is not None else list(service.traffic)
        for t in serving:
            statuses.append(
                run_v2.TrafficTargetStatus(
                    type_=t.type_,
                    revision=t.revision if t.type_ == BY_REVISION else "",
                    percent=t.percent,
                    tag=t.tag,
                    uri=""
                    if not t.tag or state_.tag_delays.get(t.tag)
                    else state_.tag_uris.get(t.tag) or _tag_uri(t.tag, service.uri),
                )
            )
        service.reconciling = any(state_.tag_delays.values()) or state_.pending is not None
        service.traffic_statuses = statuses
        service.observed_generation = service.generation
        service.observed_generation = service.generation - (1 if state_.pending is not None else 0)
        service.terminal_condition = Condition(
            type_="Ready",
            state=Condition.State.CONDITION_RECONCILING
            if state_.pending is not None
            else Condition.State.CONDITION_SUCCEEDED,
        )
        return _to_dict(service)

    def _list(self, state_: _ServiceState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        newest_first = list(reversed(state_.revisions.values()))
        start = int(query.get("pageToken") or 0)
        size = int(query.get("pageSize") or 0) or len(newest_first) or 1
        page = newest_first[start : start + size]
        body: dict[str, Any] = {"revisions": [_revision_json(r) for r in page]}
        if start + size < len(newest_first):
            body["nextPageToken"] = str(start + size)
        return 200, body

    def _update(self, state_: _ServiceState, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        incoming = run_v2.Service.from_json(json.dumps(body or {}), ignore_unknown_fields=True)
        mask = [p for p in query.get("updateMask", "").split(",") if p]
        current = state_.service
        if state_.race is not None:  # another writer's update lands first
            current.traffic, state_.race = state_.race, None
            current.generation += 1
            current.etag = f'"{current.generation}"'
        if incoming.etag and incoming.etag != current.etag:
            return _error(409, "The service was modified concurrently (etag mismatch).")
        if mask and mask != ["traffic"]:
            return _error(400, f"the stand-in only updates traffic, got updateMask={mask}")
        if not mask and not incoming.template.containers:
            # Without a mask the body replaces the service: a body with no template is invalid.
            return _error(400, "template.containers: must contain exactly one container.")
        if sum(t.percent for t in incoming.traffic) != 100:
            return _error(400, "spec.traffic: percentages must add up to 100.")
        for t in incoming.traffic:
            if t.type_ == BY_REVISION and t.revision.rsplit("/", 1)[-1] not in state_.revisions:
                return _error(400, f"Revision '{t.revision}' referenced in traffic not found.")
        for t in incoming.traffic:
            if t.tag and t.tag not in state_.tag_uris:
                state_.tag_uris[t.tag] = _tag_uri(t.tag, current.uri)
        if state_.pending is not None:  # an earlier update still applying: it is overtaken
            state_.pending.polls_left, state_.pending = 0, None
        undo = list(current.traffic)
        current.traffic = list(incoming.traffic)
        current.generation += 1
        current.etag = f'"{current.generation}"'
        op = _Operation(
            f"projects/{self.project}/locations/{self.region}/operations/{uuid.uuid4()}",
            current.name.rsplit("/", 1)[-1],
            self.operation_polls,
            self.operation_error,
            undo,
        )
        self._operations[op.name.rsplit("/", 1)[-1]] = op
        state_.pending = op
        self._finish_if_done(op)
        if self.fail_after_update:  # applied (the operation runs), but the answer is lost
            status = self.fail_after_update.pop(0)
            return _error(status, _default_message(status, "PATCH", current.name))
        return 200, self._operation_json(op)

    def _get_operation(self, op_id: str) -> tuple[int, dict[str, Any]]:
        op = self._operations.get(op_id)
        if op is None:
            return _error(404, f"Operation {op_id} not found.")
        answer = self._operation_json(op)
        self._tick(op)  # this GET still answered "not done"; a later one may not
        return 200, answer

    def _tick(self, op: _Operation) -> None:
        if op.polls_left > 0:
            op.polls_left -= 1
            self._finish_if_done(op)

    def operation_gets(self) -> int:
        return sum(1 for r in self.requests if r.method == "GET" and "/operations/" in r.path)

    def _finish_if_done(self, op: _Operation) -> None:
        if not op.done:
            return
        owner = self._services[op.service]
        if owner.pending is op:
            owner.pending = None
            if op.error is not None:  # Cloud Run puts the traffic that served back
                owner.service.traffic = list(op.undo)

    def _operation_json(self, op: _Operation) -> dict[str, Any]:
        service = {"@type": SERVICE_TYPE_URL, **self._service_json(self._services[op.service])}
        body: dict[str, Any] = {"name": op.name, "metadata": service, "done": op.done}
        if op.done and op.error is not None:
            body["error"] = {"code": op.error[0], "message": op.error[1]}
        elif op.done:
            body["response"] = service
        return body


# -- helpers ---------------------------------------------------------------------------------------------------


def _handler_for(standin: CloudRunStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload, headers = standin.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _target(route: Route) -> run_v2.TrafficTarget:
    if route.revision is None:
        return run_v2.TrafficTarget(type_=LATEST, percent=route.percent, tag=route.tag)
    return run_v2.TrafficTarget(
        type_=BY_REVISION, revision=route.revision, percent=route.percent, tag=route.tag
    )


def _tag_uri(tag: str, service_uri: str) -> str:
    """Cloud Run's tag URL form: ``https://TAG---SERVICE-HASH-REGION.a.run.app``."""
    scheme, _, host = service_uri.partition("://")
    return f"{scheme}://{tag}---{host}"


def _to_dict(message: Any) -> dict[str, Any]:
    # Like the live API: camelCase, integer enums (the client asks for them), defaults omitted.
    text = type(message).to_json(message, always_print_fields_with_no_presence=False)
    result: dict[str, Any] = json.loads(text)
    return result


def _revision_json(rev: _RevisionState) -> dict[str, Any]:
    body = _to_dict(rev.revision)
    if rev.digest:
        # The live v2 API reports the resolved digest here; google-cloud-run 0.16's Revision type lacks the
        # field, so the client drops it (`ignore_unknown_fields`): kept for realism and for newer clients.
        ingress = next((c for c in rev.revision.containers if c.ports), rev.revision.containers[-1])
        body["containerStatuses"] = [{"name": ingress.name, "imageDigest": rev.digest}]
    return body


def _default_message(status: int, method: str, path: str) -> str:
    resource = path.removeprefix("/v2/")
    if status == 403:
        permission = "run.services.update" if method == "PATCH" else "run.services.get"
        if "/revisions" in path:
            permission = "run.revisions.list" if path.endswith("/revisions") else "run.revisions.get"
        return f"Permission '{permission}' denied on resource '{resource}' (or resource may not exist)."
    if status == 401:
        return "Request had invalid authentication credentials."
    if status == 404:
        return f"Resource '{resource}' does not exist."
    if status == 503:
        return "The service is currently unavailable."
    if status == 429:
        return (
            "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per region' "
            "of service 'run.googleapis.com'."
        )
    if status == 500:
        return "Internal error encountered."
    return f"HTTP {status}"


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    }
