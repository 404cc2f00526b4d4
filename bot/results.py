"""The results contract: what one run found, as frozen dataclasses <-> ``results.json`` (schema 1) and JUnit XML.

``results.json`` is public: templates, users' scripts and the PR history depend on its field names. Add fields
with defaults; never rename or remove one without bumping ``SCHEMA``.

All text that came from the system under test (bodies, frames, close reasons, headers) is stored raw here and
escaped only when it is rendered (``bot.markdown``): the JSON keeps the evidence exact.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from bot.kinds import Kind as Kind  # the taxonomy's home is bot.kinds; re-exported for the contract's readers

SCHEMA = 1


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    # The check could not be performed (e.g. isolation when events name no owner): never counted as a pass.
    NOT_VERIFIED = "not verified"


class Severity(StrEnum):
    P0 = "P0"
    P1 = "P1"


class Verdict(StrEnum):
    PASS = "pass"
    DEGRADED = "degraded"  # only P1 findings (health, version, performance)
    FAIL = "fail"  # at least one P0 finding


class Step(StrEnum):
    """Where on the journey a check sits; the report draws the journey from these, in this order."""

    REVISION = "revision"
    HEALTH = "health"
    LOGIN = "login"
    CONNECT = "connect"
    MESSAGE = "message"
    AGENT = "agent"
    ANSWER = "answer"
    ISOLATION = "isolation"
    PERFORMANCE = "performance"


JOURNEY_STEPS: tuple[Step, ...] = (Step.LOGIN, Step.CONNECT, Step.MESSAGE, Step.AGENT, Step.ANSWER)


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong in one check. ``detail`` refines the fingerprint (a status code, an event name)."""

    kind: Kind
    message: str
    detail: str = ""
    evidence: dict[str, str] = field(default_factory=dict)
    subject: str = ""  # a short phrase for the finding's title ("HTTP 503", a metric's label); default detail


@dataclass(frozen=True, slots=True)
class CheckResult:
    id: str  # e.g. "health", "handshake", "events"; unique together with `user`
    step: Step
    status: Status
    duration_ms: float | None = None
    user: int | None = None  # 1-based simulated user, None for per-run checks
    summary: str = ""  # one line in our own words (may quote escaped-later values)
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    """A measured figure. ``value`` is what is compared with ``target``: the p95 across samples."""

    id: str  # e.g. "handshake_ms"
    label: str
    unit: str
    samples: int
    value: float | None
    p50: float | None
    p95: float | None
    max: float | None
    target: float | None
    status: Status

    @classmethod
    def from_samples(
        cls, *, id: str, label: str, unit: str, samples: Iterable[float], target: float | None
    ) -> Metric:
        values = sorted(samples)
        if not values:
            return cls(id, label, unit, 0, None, None, None, None, target, Status.SKIP)
        p95 = percentile(values, 95)
        status = Status.PASS if target is None or p95 <= target else Status.FAIL
        return cls(
            id=id,
            label=label,
            unit=unit,
            samples=len(values),
            value=round(p95, 2),
            p50=round(percentile(values, 50), 2),
            p95=round(p95, 2),
            max=round(values[-1], 2),
            target=target,
            status=status,
        )


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile: with 5 samples p95 is the largest, never an interpolated figure."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class Finding:
    """One distinct problem, grouped across users and checks by fingerprint ``service:kind[:detail]``."""

    fingerprint: str
    severity: Severity
    kind: Kind
    step: Step
    title: str
    cause: str  # the likely cause, in diagnose's words
    remediation: str
    occurrences: int = 1
    users: tuple[int, ...] = ()
    evidence: dict[str, str] = field(default_factory=dict)
    observed: str = ""  # what the probe saw, in its words (may quote the server: escape when rendering)


@dataclass(frozen=True, slots=True)
class Impact:
    journey: str
    blocked: bool
    summary: str  # one or two plain sentences for a manager
    arr_at_risk: float | None = None
    currency: str = "USD"
    capabilities_lost: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RevisionNote:
    """A revision setting that is not a finding but has a consequence for real-time users (``bot.realtime``)."""

    rule: str  # the rule's id, e.g. "concurrency-one"
    text: str  # the fact and its consequence, in our words
    source: str  # the Cloud Run documentation page the rule comes from


@dataclass(frozen=True, slots=True)
class RevisionSettings:
    """The new revision's settings that matter for WebSockets and streams, as the Admin API v2 reported them.
    None: the API did not report the value (never guessed)."""

    timeout_s: float | None = None  # the request timeout: a WebSocket or stream is one request
    session_affinity: bool | None = None
    max_concurrency: int | None = None  # maxInstanceRequestConcurrency
    min_instances: int | None = None  # scaling.minInstanceCount
    max_instances: int | None = None  # scaling.maxInstanceCount (None: not set, Cloud Run's default applies)
    execution_environment: str | None = None  # "gen1" | "gen2"; None when unspecified
    port_name: str | None = None  # the ingress container's port name: "h2c" is end-to-end HTTP/2
    port: int | None = None
    cpu: str | None = None  # the ingress container's limits
    memory: str | None = None
    cpu_idle: bool | None = None  # True: CPU only while requests are served
    startup_cpu_boost: bool | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    notes: tuple[RevisionNote, ...] = ()  # facts with their consequence (bot.realtime)


@dataclass(frozen=True, slots=True)
class ContainerImage:
    """One container of the revision. The ingress container (the one declaring ``ports``) is the app; the
    others are sidecars (a collector, a proxy)."""

    name: str
    image: str
    ingress: bool = False
    digest: str | None = None  # pinned in the reference (@sha256:...) or reported by the API; never guessed


@dataclass(frozen=True, slots=True)
class Target:
    """What was tested. Cloud Run facts are None when unknown (``--url``): never invented."""

    url: str
    service: str
    project: str | None = None
    region: str | None = None
    revision: str | None = None
    revision_url: str | None = None  # the tag URL when the revision is tagged
    image: str | None = None
    digest: str | None = None
    created: str | None = None  # RFC 3339
    traffic_percent: int | None = None
    previous_revision: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    expected_version: str | None = None
    expected_image: str | None = None
    serving_version: str | None = None  # read from the health body
    warnings: tuple[str, ...] = ()
    tag: str | None = None  # the traffic tag whose URL was tested (or that selected the revision)
    service_url: str | None = None  # the service's main URL (every revision behind it, by traffic split)
    traffic: dict[str, int] = field(default_factory=dict)  # revision -> percent serving when resolved
    # True: the tested URL serves this revision alone (its tag URL, or the service URL at 100%); False: the
    # URL may have reached another revision, so the revision itself was not tested; None: not Cloud Run.
    tested_alone: bool | None = None
    logs_url: str | None = None  # Cloud Logging query for the revision over the run's time window
    # Every container of the revision; `image`/`digest` above are the ingress container's (the app's).
    containers: tuple[ContainerImage, ...] = ()
    settings: RevisionSettings | None = None  # what matters for real-time; None when not read (``--url``)


@dataclass(frozen=True, slots=True)
class TrafficAction:
    """A traffic change made (or refused) by the gate through the Cloud Run API."""

    action: str  # "promote" | "rollback"
    revision: str
    percent: int
    applied: bool
    message: str
    error: bool = False  # the Cloud Run API refused or failed: traffic may not be where the gate wanted it
    before: dict[str, int] = field(default_factory=dict)  # revision -> percent before the change
    after: dict[str, int] = field(default_factory=dict)  # revision -> percent as Cloud Run reported after it
    refused: bool = False  # golden-path refused to move traffic (untested revision, version skew)
    # The split the service's spec (`traffic`) asks for after the gate, as Cloud Run reported it: beside `after`
    # (what serves, `trafficStatuses`), it tells a change Cloud Run accepted but had not applied yet.
    requested: dict[str, int] = field(default_factory=dict)
    noop: bool = (
        False  # nothing to act on (a rollback of a revision that served no traffic): traffic untouched
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric of the new revision next to the serving revision's, measured in the same run."""

    id: str
    label: str
    unit: str
    p95: float | None  # the new revision
    baseline_p95: float | None
    ratio: float | None  # p95 / baseline_p95
    regression: bool = False


@dataclass(frozen=True, slots=True)
class Baseline:
    """The same journey, for the same users, against the revision serving users now."""

    url: str
    status: str  # "measured" | "failed" (the baseline itself failed: the new revision is judged alone)
    revision: str | None = None
    summary: str = ""
    metrics: tuple[Metric, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    max_ratio: float = 1.5
    min_delta_ms: float = 50.0


@dataclass(frozen=True, slots=True)
class UserTrace:
    """The trace id one simulated user's requests carried (``traceparent``, ``X-Cloud-Trace-Context``)."""

    user: int  # 1-based simulated user; 0 for the run's own requests (health, the negative auth check)
    trace_id: str  # 32 hex digits, derived from the run id and the user
    first_request_at: str | None = None  # RFC 3339 UTC with milliseconds; None when no request was sent


@dataclass(frozen=True, slots=True)
class LogGroup:
    """Server log entries whose messages differ only in numbers, ids and timestamps. Text is untrusted (already
    redacted; escaped when rendered)."""

    pattern: str  # the message with numbers, ids and timestamps replaced by <n>, <id>, <time>
    severity: str  # the highest severity in the group (Cloud Logging's names: WARNING, ERROR, ...)
    count: int
    first_at: str  # RFC 3339 UTC
    example: str  # one message, first line
    details: str = ""  # the rest of that message when it spans lines (a traceback)
    trace_ids: tuple[str, ...] = ()  # the run's trace ids seen in the group
    matched_by: str = ""  # "trace" or "time": how the group was tied to a finding


@dataclass(frozen=True, slots=True)
class RequestLog:
    """Cloud Run's request log for one of the run's requests: the server's view beside the client's."""

    trace_id: str
    user: int | None
    method: str
    url: str
    status: int | None
    latency_ms: float | None
    at: str  # RFC 3339 UTC
    client_view: str = ""  # what the probe saw for the same request, e.g. "HTTP 502 Bad Gateway"


@dataclass(frozen=True, slots=True)
class FindingLogs:
    """What the revision logged while one finding's journeys ran."""

    fingerprint: str
    explorer_url: str  # Logs Explorer: this revision, the run's window, the finding's trace ids
    groups: tuple[LogGroup, ...] = ()
    requests: tuple[RequestLog, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerLogs:
    """The revision's own logs for this run (Cloud Logging), or why they were not read."""

    status: str  # "read" | "not-read" (no Cloud Run coordinates, or mode never) | "denied" | "unavailable"
    message: str  # one line in our words: what was read, or why not and what to do
    window_start: str | None = None
    window_end: str | None = None
    explorer_url: str | None = None
    api_calls: int = 0
    entries: int = 0
    truncated: bool = False  # a page cap or the time budget cut the answer short
    groups: tuple[LogGroup, ...] = ()  # the top groups of the whole run
    findings: tuple[FindingLogs, ...] = ()
    # Cloud Run's "Starting new instance" entries of the revision in the run's window; None when not read.
    instance_starts: int | None = None

    def for_finding(self, fingerprint: str) -> FindingLogs | None:
        return next((f for f in self.findings if f.fingerprint == fingerprint), None)


@dataclass(frozen=True, slots=True)
class JourneySample:
    """One user's raw figures in milliseconds (None: step not reached), named like the metrics they feed.

    Kept for every journey so ``merge`` recomputes each percentile over the union of shards' samples.
    """

    user: int
    handshake_ms: float | None = None
    agent_startup_ms: float | None = None
    event_gap_ms: float | None = None
    processing_ms: float | None = None
    total_ms: float | None = None
    # Event type -> arrival after the message was sent (ms); recorded for the first ARRIVALS_CAP users of a run.
    events: dict[str, float] = field(default_factory=dict)
    # When the message was sent, in CLOCK_MONOTONIC seconds (system-wide on Linux): lines ``events`` up with
    # stamps a server on the same host took with its own clock. None where no message was sent.
    message_sent_at: float | None = None
    # The run's (or shard's) first connection after deploy: its handshake is ``cold_connect_ms``, never in the warm
    # ``handshake_ms`` percentiles (also when ``merge`` recomputes them).
    first_connection: bool = False


ARRIVALS_CAP = 1000  # journeys per run whose per-event arrival times are kept


@dataclass(frozen=True, slots=True)
class ConnectionHold:
    """One user's connection kept open after its journey (``journey.hold_s``): whether, when and by whom it was
    closed. Times in seconds; the close reason is the server's (redacted; escaped when rendered)."""

    user: int
    requested_s: float
    held_s: float  # how long it stayed open after the journey
    age_s: float  # the connection's age (since the upgrade) when the hold ended
    # "server" (a close frame, a Socket.IO DISCONNECT, the body ended), "network" (dropped), "golden-path" (no
    # pong, or no Engine.IO ping), "" (still open at the end), "not held" (``close_reason`` says why)
    closed_by: str
    close_code: int | None = None
    close_reason: str = ""
    # The keepalive: WebSocket pings golden-path sent and their pongs; Socket.IO: Engine.IO PINGs the server sent
    # and the PONGs the client answered.
    pings: int = 0
    pongs: int = 0
    frames: int = 0  # messages (SSE and Socket.IO: events) the server sent while the connection was held
    transport: str = "websocket"  # "websocket", "sse" or "socketio"
    comments: int = 0  # SSE: `:` comment lines (the stream's keepalive) received while held


@dataclass(frozen=True, slots=True)
class Shard:
    """This run's share of a sharded run (``check --shard K/N``): users ``first_user..last_user`` of them all."""

    index: int  # K, 1-based
    count: int  # N
    first_user: int
    last_user: int  # first_user - 1 when the share is empty (more shards than users)
    total_users: int  # the users of all shards together


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    started_at: str  # RFC 3339 UTC
    finished_at: str
    duration_ms: float
    verdict: Verdict
    target: Target
    checks: tuple[CheckResult, ...]
    metrics: tuple[Metric, ...]
    findings: tuple[Finding, ...]
    impact: Impact
    users: int = 1
    commit: str | None = None
    run_url: str | None = None
    tool_version: str = ""
    traffic_actions: tuple[TrafficAction, ...] = ()
    schema: int = SCHEMA
    traces: tuple[UserTrace, ...] = ()  # per simulated user, the trace id its requests carried
    logs: ServerLogs | None = None  # the revision's own logs; None when not looked at (a passing run)
    baseline: Baseline | None = None
    samples: tuple[JourneySample, ...] = ()  # raw per-journey figures (absent in documents before shards)
    health_samples: tuple[float, ...] = ()  # raw health latencies (ms) behind the api_ms metric
    shard: Shard | None = None  # set on a shard's result; None on a whole or merged run
    merged_from: tuple[str, ...] = ()  # run ids of the shards a merged run was made from
    hold: ConnectionHold | None = None  # journey.hold_s: one user's connection lifetime; None when not asked

    @property
    def p0_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.P0)

    @property
    def p1_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.P1)

    def metric(self, id: str) -> Metric | None:
        return next((m for m in self.metrics if m.id == id), None)

    def trace_id(self, user: int) -> str | None:
        return next((t.trace_id for t in self.traces if t.user == user), None)


def verdict_for(findings: Iterable[Finding]) -> Verdict:
    """`pass` and `degraded` speak for every journey: a run in which some did not run is `fail`."""
    found = list(findings)
    severities = {f.severity for f in found}
    if Severity.P0 in severities or any(f.kind is Kind.JOURNEYS_INCOMPLETE for f in found):
        return Verdict.FAIL
    if severities:
        return Verdict.DEGRADED
    return Verdict.PASS


@functools.cache
def _schema() -> TypeAdapter[Run]:
    """Built on first read (~90 ms): writing results needs no validation, so a check never pays for it."""
    return TypeAdapter(Run)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names, decided once per type; None for any other type (a dataclass type itself too:
    its type is ``type``)."""
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None


def _plain(value: Any) -> Any:
    """JSON-ready data, as pydantic's ``dump_python(mode="json")`` makes it, without building a schema."""
    kind: type = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # most values: kept as they are
        return value
    names = _field_names(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_dict(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = _plain(run)
    # Derived counts are part of the contract so shell steps can read them without arithmetic.
    data["p0_count"] = run.p0_count
    data["p1_count"] = run.p1_count
    return data


def to_json(run: Run) -> str:
    """``json.dumps(to_dict(run), indent=2) + "\\n"``, written by orjson: the standard library's encoder with an
    indent is pure Python and yields every token (a 1,000-user run's results.json took 46 ms, orjson 8 ms, a
    twentieth of each journey's CPU). The text is ASCII as ``json.dumps`` writes it (``\\u`` escapes, so no
    control or bidirectional character reaches a terminal that shows the file). orjson spells floats below
    1e-4 in full (``0.00001`` for ``1e-05``): the same number. What orjson refuses (a lone surrogate, a key that
    is not a string, an integer over 64 bits) is left to ``json.dumps``."""
    data = {name: getattr(run, name) for name in _field_names(Run) or ()}
    data["p0_count"] = run.p0_count
    data["p1_count"] = run.p1_count
    try:
        written = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(to_dict(run), indent=2) + "\n"
    if not written.isascii() or b"\x7f" in written:
        # Escaped in the UTF-8 bytes, so the text is only ever built as ASCII: decoded first, one "…" made all of a
        # 1,000-user document a two-byte-per-character string (an emoji, four); this call's peak fell from 10.1 to
        # 6.4 MB (tracemalloc, 1,000 Socket.IO users).
        written = _NOT_PRINTABLE_ASCII.sub(_json_escape, written)
    return written.decode("ascii")


# What json.dumps(ensure_ascii=True) escapes beyond C0: DEL and every non-ASCII character. orjson writes valid
# UTF-8, whose multi-byte sequences are all bytes of 0x80 and above, so a run of these is whole characters.
_NOT_PRINTABLE_ASCII = re.compile(b"[\x7f-\xff]+")


def _json_escape(match: re.Match[bytes]) -> bytes:
    return "".join(map(_json_escape_char, match.group().decode("utf-8"))).encode("ascii")


def _json_escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as json.dumps writes it
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def from_dict(data: object) -> Run:
    """Read a results document back; raises ``ValueError`` naming the offending field on a bad document."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise ValueError(f"results schema {schema!r} is not supported (expected {SCHEMA})")
    body = {k: v for k, v in data.items() if k not in ("p0_count", "p1_count")}
    try:
        return _schema().validate_python(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        raise ValueError(f"field '{where}': {error['msg']} ({exc.error_count()} problem(s) in all)") from None


def load(path: Path) -> Run:
    return from_dict(json.loads(path.read_text(encoding="utf-8")))


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Characters XML 1.0 forbids (a server's control bytes, lone surrogates) shown as \\xNN instead."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def to_junit(run: Run) -> str:
    """JUnit XML: one testcase per check, so CI dashboards show the journey next to unit tests.

    Written as text: the bytes ``ElementTree.indent`` and ``tostring(..., xml_declaration=True)`` write (a test
    holds them equal), in a quarter of the time (6,000 checks took 26 ms through ElementTree)."""
    failures = sum(1 for c in run.checks if c.status is Status.FAIL)
    skipped = sum(1 for c in run.checks if c.status in (Status.SKIP, Status.NOT_VERIFIED))
    out = [
        "<?xml version='1.0' encoding='utf-8'?>\n<testsuites>\n  <testsuite",
        f' name="{_xml_attribute(f"golden-path {run.target.service}")}" tests="{len(run.checks)}"',
        f' failures="{failures}" skipped="{skipped}" time="{run.duration_ms / 1000:.3f}"',
        f' timestamp="{_xml_attribute(run.started_at)}"',
    ]
    if not run.checks:
        out.append(" />\n</testsuites>\n")
        return "".join(out)
    out.append(">")
    # A check's opening tag up to its name, per (step, id): a 1,000-user run repeats a handful of them 1,000 times
    # (the user's number, an int, needs no escaping).
    openings: dict[tuple[Step, str], str] = {}
    for check in run.checks:
        key = (check.step, check.id)
        opening = openings.get(key)
        if opening is None:
            opening = openings[key] = (
                f'\n    <testcase classname="golden-path.{_xml_attribute(check.step.value)}"'
                f' name="{_xml_attribute(check.id)}'
            )
        user = "" if check.user is None else f" (user {check.user})"
        out.append(f'{opening}{user}" time="{(check.duration_ms or 0) / 1000:.3f}"')
        if check.status is Status.FAIL and check.failure is not None:
            failure = check.failure
            text = _xml_text("\n".join(f"{k}: {v}" for k, v in failure.evidence.items()))
            out.append(
                f'>\n      <failure type="{_xml_attribute(failure.kind.value)}"'
                f' message="{_xml_attribute(_xml_text(failure.message))}"'
                + (f">{_xml_cdata(text)}</failure>" if text else " />")
                + "\n    </testcase>"
            )
        elif check.status in (Status.SKIP, Status.NOT_VERIFIED):
            out.append(
                f'>\n      <skipped message="{_xml_attribute(_xml_text(check.summary))}" />\n    </testcase>'
            )
        else:
            out.append(" />")
    out.append("\n  </testsuite>\n</testsuites>\n")
    return "".join(out)


def _xml_cdata(text: str) -> str:
    """Element text escaped as ElementTree escapes it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_XML_ATTRIBUTE_SPECIAL = re.compile('[&<>"\r\n\t]')


def _xml_attribute(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it (line breaks and tabs as character references)."""
    if _XML_ATTRIBUTE_SPECIAL.search(text) is None:
        return text  # most values (check ids, steps, times): one scan instead of seven replaces
    return (
        _xml_cdata(text)
        .replace('"', "&quot;")
        .replace("\r", "&#13;")
        .replace("\n", "&#10;")
        .replace("\t", "&#09;")
    )
