"""Cloud Run settings that break WebSockets and streams: each rule judges the new revision's settings. Pure.

Google's guidance for WebSockets on Cloud Run ("Using WebSockets"): a WebSocket or a stream is one HTTP request,
so it ends at the service's request timeout (default 300 s, at most 3600 s) and clients must reconnect; session
affinity lets a reconnect reach the same instance (best effort); end-to-end HTTP/2 must stay off. Each rule below
names the page it comes from; a rule's finding kind (``bot.kinds``) decides its severity and what the gate does
with it. A setting the Admin API did not report is never judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.results import CheckResult, Failure, Kind, RevisionNote, RevisionSettings, Status, Step
from bot.settings import Settings

DOCS = "https://cloud.google.com/run/docs"
WEBSOCKETS_DOC = f"{DOCS}/triggering/websockets"
TIMEOUT_DOC = f"{DOCS}/configuring/request-timeout"
AFFINITY_DOC = f"{DOCS}/configuring/session-affinity"
CONCURRENCY_DOC = f"{DOCS}/about-concurrency"
MIN_INSTANCES_DOC = f"{DOCS}/configuring/min-instances"

MAX_TIMEOUT_S = 3600  # Cloud Run's largest request timeout
DEFAULT_MAX_INSTANCES = 100  # what Cloud Run allows when maxInstanceCount is not set


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of README's "Cloud Run settings for real-time" table (a test holds them equal)."""

    id: str
    when: str  # when it fires, in README's words
    outcome: str  # the finding kind (with its class) or "fact"
    source: str
    fix: str


RULES: tuple[Rule, ...] = (
    Rule(
        "request-timeout",
        "the request timeout is shorter than `cloud_run.min_session_s` (default 900 s; 0 turns the rule off): "
        "every WebSocket and stream is cut at the timeout",
        "`request-timeout-short`, P1: fails under `correctness` and `any`",
        TIMEOUT_DOC,
        "`gcloud run services update SERVICE --timeout=900` (the value golden-path names; at most 3600)",
    ),
    Rule(
        "http2-end-to-end",
        "the ingress container's port is named `h2c` (end-to-end HTTP/2) on a WebSocket journey",
        "`http2-end-to-end`, P1: fails under `correctness` and `any`",
        WEBSOCKETS_DOC,
        "`gcloud run services update SERVICE --no-use-http2` (Google: do not enable HTTP/2 end-to-end for "
        "WebSockets)",
    ),
    Rule(
        "session-affinity",
        "session affinity is off while more than one instance may serve (max instances > 1, or not set), for a "
        "journey that reconnects or uses Socket.IO long-polling",
        "`session-affinity-off`, P1 warning: fails only under `any`",
        AFFINITY_DOC,
        "`gcloud run services update SERVICE --session-affinity` (best effort: keep session state shared too)",
    ),
    Rule(
        "concurrency-one",
        "request concurrency is 1 on a WebSocket journey: each open connection holds a whole instance",
        "fact in the report's revision section",
        CONCURRENCY_DOC,
        "`gcloud run services update SERVICE --concurrency=80` when the server handles connections concurrently",
    ),
    Rule(
        "min-instances-zero",
        "min instances is 0: the first user after an idle period waits for a cold start",
        "fact in the report's revision section (the cold start is measured: `cold_start_ms`)",
        MIN_INSTANCES_DOC,
        "`gcloud run services update SERVICE --min-instances=1`",
    ),
)


@dataclass(frozen=True, slots=True)
class Shape:
    """What the journey does that the rules depend on."""

    websocket: bool = True  # it opens a WebSocket (also Socket.IO's upgrade)
    reconnects: bool = False  # a user connects again during the journey
    polling: bool = (
        False  # Socket.IO's long-polling: several requests per session that must meet one instance
    )


def shape_of(settings: Settings) -> Shape:
    """The journey's shape: a WebSocket (``transport: websocket``, or Socket.IO allowed to upgrade), Socket.IO's
    long-polling, and a reconnect when a turn says so (``journey.turns[].reconnect``) or when each turn is a request
    of its own (SSE with several turns: Cloud Run routes each request, not the client's connection)."""
    socketio = settings.transport == "socketio"
    requests = settings.transport == "sse" and len(settings.journey.turns) > 1
    return Shape(
        websocket=settings.transport == "websocket"
        or (socketio and "websocket" in settings.socketio.transports),
        reconnects=requests or any(turn.reconnect for turn in settings.journey.turns),
        polling=socketio and "polling" in settings.socketio.transports,
    )


def readme_rows() -> list[str]:
    return [f"| `{r.id}` | {r.when} | {r.outcome} | <{r.source}> | {r.fix} |" for r in RULES]


def judge(
    facts: RevisionSettings | None,
    *,
    settings: Settings,
    service: str,
    region: str | None,
    shape: Shape | None = None,
) -> tuple[list[CheckResult], tuple[RevisionNote, ...]]:
    """The checks (pass or fail) of every rule whose settings were reported, and the facts with consequences.
    ``shape`` defaults to the configured journey's."""
    if facts is None:
        return [], ()
    shape = shape or shape_of(settings)
    command = f"gcloud run services update {service}" + (f" --region={region}" if region else "")
    checks: list[CheckResult] = []
    timeout = _timeout(facts, settings.cloud_run.min_session_s, command)
    if timeout is not None:
        checks.append(timeout)
    if shape.websocket and (facts.port is not None or facts.port_name is not None):
        checks.append(_http2(facts, command))
    if (shape.reconnects or shape.polling) and facts.session_affinity is not None:
        checks.append(_affinity(facts, shape, command))
    return checks, _notes(facts, shape)


def _check(check_id: str, summary: str, failure: Failure | None = None) -> CheckResult:
    status = Status.FAIL if failure else Status.PASS
    return CheckResult(check_id, Step.REVISION, status, summary=summary, failure=failure)


def _timeout(facts: RevisionSettings, min_session_s: float, command: str) -> CheckResult | None:
    if facts.timeout_s is None or min_session_s <= 0:
        return None
    if facts.timeout_s >= min_session_s:
        summary = f"request timeout {facts.timeout_s:g} s ≥ the expected session of {min_session_s:g} s"
        return _check("request-timeout", summary)
    wanted = min(MAX_TIMEOUT_S, math.ceil(min_session_s))
    fix = f"{command} --timeout={wanted}"
    message = (
        f"The revision's request timeout is {facts.timeout_s:g} s: Cloud Run ends every WebSocket and stream "
        f"after {facts.timeout_s:g} s (a stream is one request; at the timeout the client's connection is cut "
        f"or answered 504), shorter than the {min_session_s:g} s session golden-path expects "
        "(cloud_run.min_session_s)."
    )
    failure = Failure(
        Kind.REQUEST_TIMEOUT_SHORT,
        message,
        detail="timeout",
        subject=f"request timeout {facts.timeout_s:g} s",
        evidence={
            "timeout": f"{facts.timeout_s:g} s",
            "expected session": f"{min_session_s:g} s (cloud_run.min_session_s)",
            "command": fix,
            "source": TIMEOUT_DOC,
        },
    )
    return _check("request-timeout", f"request timeout {facts.timeout_s:g} s < {min_session_s:g} s", failure)


def _http2(facts: RevisionSettings, command: str) -> CheckResult:
    if facts.port_name != "h2c":
        return _check("http2-end-to-end", f"port {facts.port_name or '(unnamed)'}: HTTP/1 to the container")
    message = (
        "The ingress container's port is named `h2c`: Cloud Run sends requests to the container over HTTP/2 "
        "end to end, and Google's WebSocket guidance says not to enable it for WebSockets (the upgrade is "
        "HTTP/1.1)."
    )
    failure = Failure(
        Kind.HTTP2_END_TO_END,
        message,
        detail="h2c",
        evidence={
            "port": f"{facts.port_name} {facts.port or ''}".strip(),
            "command": f"{command} --no-use-http2",
            "source": WEBSOCKETS_DOC,
        },
    )
    return _check("http2-end-to-end", "port h2c: HTTP/2 end to end", failure)


def _affinity(facts: RevisionSettings, shape: Shape, command: str) -> CheckResult:
    instances = facts.max_instances
    many = instances is None or instances > 1
    if facts.session_affinity or not many:
        why = "on" if facts.session_affinity else f"off, but at most {instances} instance"
        return _check("session-affinity", f"session affinity {why}")
    what = "reconnects" if shape.reconnects else "uses Socket.IO long-polling"
    limit = f"up to {instances}" if instances is not None else f"up to {DEFAULT_MAX_INSTANCES} (not set)"
    message = (
        f"Session affinity is off and {limit} instances may serve: the journey {what}, and each new request "
        "may reach another instance, where the session's in-memory state is missing."
    )
    failure = Failure(
        Kind.SESSION_AFFINITY_OFF,
        message,
        detail="off",
        evidence={
            "session affinity": "off",
            "max instances": str(instances) if instances is not None else "not set",
            "command": f"{command} --session-affinity",
            "source": AFFINITY_DOC,
        },
    )
    return _check("session-affinity", "session affinity off", failure)


def _notes(facts: RevisionSettings, shape: Shape) -> tuple[RevisionNote, ...]:
    notes = []
    if shape.websocket and facts.max_concurrency == 1:
        most = facts.max_instances or DEFAULT_MAX_INSTANCES
        notes.append(
            RevisionNote(
                "concurrency-one",
                f"Request concurrency is 1: each open WebSocket holds a whole instance, so at most {most} users "
                "can be connected at once and each new one may wait for an instance to start.",
                CONCURRENCY_DOC,
            )
        )
    if facts.min_instances == 0:
        notes.append(
            RevisionNote(
                "min-instances-zero",
                "Min instances is 0: after an idle period the first user waits for an instance to start (a "
                "cold start); `--min-instances=1` keeps one warm.",
                MIN_INSTANCES_DOC,
            )
        )
    return tuple(notes)
