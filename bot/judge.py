"""Records -> checks: the events, isolation, answer, SLA, metrics and performance judgements. Pure.

The probe (``bot.probe.journey``) records what happened (``bot.probe.record``: the stream as it arrived, with
arrival stamps, and the timings); these functions turn records into CheckResults and Metrics without any I/O.
``shards.merge`` calls the same functions over every shard's samples, so a merged run keeps every kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from bot import expressions, protocol
from bot.probe.record import EVIDENCE_CHARS, Stream
from bot.results import CheckResult, Failure, JourneySample, Kind, Metric, Status, Step
from bot.settings import JourneySettings, TargetsSettings, TurnSettings
from bot.untrusted import Redactor

# id, label, target field of TargetsSettings (None: measured, no target). Each id is a field of JourneySample,
# except api_ms (the health latencies).
METRICS = (
    ("api_ms", "API (health) latency", "api_ms"),
    ("handshake_ms", "WebSocket handshake", "handshake_ms"),
    ("agent_startup_ms", "Agent startup (message to first event)", "agent_startup_ms"),
    ("event_gap_ms", "Longest gap between events", None),
    ("processing_ms", "Processing (first event to completion)", "processing_ms"),
    ("total_ms", "Whole journey (login to answer)", "total_ms"),
)

# The run's first request to the revision (a cold start when an instance had to start for it), and its first
# connection (upgrade, stream, Socket.IO connect): each measured once per run, never in a warm p95; ``merge`` keeps
# the earliest shard's.
COLD_START = "cold_start_ms"
COLD_CONNECT = "cold_connect_ms"
ONCE_METRICS = frozenset({COLD_START, COLD_CONNECT})

# Kinds ``performance`` derives from the metrics: ``merge`` recomputes them over every shard's samples (the
# shards' own are percentiles of a part) and keeps every other check the shards made.
METRIC_KINDS = frozenset({Kind.PERF_TARGET_MISSED})


def events(stream: Stream, cfg: JourneySettings, *, user: int) -> list[CheckResult]:
    """How the stream ended early, or each missing event and a wrong order, or one pass."""
    if stream.failure is not None:
        return [CheckResult("events", Step.AGENT, Status.FAIL, None, user, "", stream.failure)]
    checks = []
    missing = [e for e in cfg.expected_events if e not in stream.arrivals and e not in cfg.optional_events]
    until = (
        f"the server ended the stream with `{stream.ended}`" if stream.ended else f"`{cfg.completion_event}`"
    )
    for name in missing:
        failure = Failure(
            Kind.EVENT_MISSING,
            f"`{name}` was not received before {until}.",
            detail=name,
            evidence=stream.evidence(),
        )
        checks.append(CheckResult(f"event {name}", Step.AGENT, Status.FAIL, None, user, "", failure))
    expected_order = [e for e in cfg.expected_events if e in stream.arrivals]
    if stream.order != expected_order:
        failure = Failure(
            Kind.EVENT_ORDER,
            f"Events arrived as {stream.order}, expected {expected_order}.",
            evidence=stream.evidence(),
        )
        checks.append(CheckResult("event order", Step.AGENT, Status.FAIL, None, user, "", failure))
    if not missing and stream.order == expected_order:
        took = round((stream.arrivals[cfg.completion_event] - stream.sent) * 1000, 2)
        summary = f"{len(stream.order)} events in order"
        checks.append(CheckResult("events", Step.AGENT, Status.PASS, took, user, summary))
    return checks


def isolation(
    stream: Stream, cfg: JourneySettings, *, user: int, requests: Sequence[str] = ()
) -> CheckResult:
    """A leak fails; events naming this user as owner, or this user's nonce echoed alone, pass; else not
    verified, with the reason."""
    if stream.leaks:
        failure = Failure(
            Kind.ISOLATION_LEAK,
            f"User {user} received {stream.leak_count} frame(s) that belong to another user or run.",
            evidence={f"foreign frame {i + 1}": leak for i, leak in enumerate(stream.leaks)},
        )
        return CheckResult("isolation", Step.ISOLATION, Status.FAIL, None, user, "", failure)
    if stream.owned:
        summary = "every event named this user as its owner"
        return CheckResult("isolation", Step.ISOLATION, Status.PASS, None, user, summary)
    if stream.own_nonce_seen:
        summary = "verified by nonce: this user's nonce came back and no other user's did"
        return CheckResult("isolation", Step.ISOLATION, Status.PASS, None, user, summary)
    # ``requests``: the message templates other than frames (an SSE request body, request steps' bodies).
    uses_nonce = any("{nonce}" in template for template in (*(f.frame for f in cfg.send), *requests))
    why = (
        "the events name no owner (journey.owner) and the server never echoed this user's nonce"
        if uses_nonce
        else "the events name no owner (journey.owner) and no sent frame carries a {nonce}"
    )
    return CheckResult("isolation", Step.ISOLATION, Status.NOT_VERIFIED, None, user, f"not verified: {why}")


def answer_of(stream: Stream, cfg: JourneySettings) -> tuple[str, str]:
    """(the answer, '') of a completed stream, or ('', why there is none)."""
    if stream.completion is None:
        return "", f"no `{cfg.completion_event}`"
    if cfg.answer.stream_event is not None:
        parts = stream.answer_parts[-1:] if cfg.answer.combine == "last" else stream.answer_parts
        return protocol.answer_text(parts or None)
    return protocol.answer_text(expressions.search(cfg.answer.expression, stream.completion.body))


def _where(cfg: JourneySettings) -> str:
    if cfg.answer.stream_event is not None:
        which = "on the last of the" if cfg.answer.combine == "last" else "over"
        return f"`{cfg.answer.expression}` {which} `{cfg.answer.stream_event}` events"
    return f"`{cfg.answer.expression}` on `{cfg.completion_event}`"


def expectation(
    stream: Stream,
    turn: TurnSettings,
    cfg: JourneySettings,
    *,
    user: int,
    values: Mapping[str, str],
    previous: str | None,
    redactor: Redactor,
) -> CheckResult | None:
    """The turn's ``expect`` (a regular expression on the answer) and ``expect_expression`` (JMESPath, true on
    the completion frame); None when the turn expects nothing or has no answer to judge. Failing after a reconnect
    is ``session-lost``: the conversation did not survive the new connection."""
    if turn.expect is None and turn.expect_expression is None:
        return None
    text, problem = answer_of(stream, cfg)
    if problem or stream.completion is None:
        return None  # the answer check already says why
    wrong = []
    if turn.expect is not None:
        pattern = expressions.substitute(
            turn.expect, lambda name: re.escape(values[name]) if name in values else None
        )
        if re.search(pattern, text) is None:
            wrong.append(f"does not match `{turn.expect}`")
    if turn.expect_expression is not None:
        value = expressions.search(turn.expect_expression, stream.completion.body)
        if value in (None, False, "", [], {}):
            wrong.append(f"`{turn.expect_expression}` is not true on `{cfg.completion_event}`")
    if not wrong:
        summary = "as expected: " + ", ".join(
            x for x in (turn.expect and f"matches `{turn.expect}`", turn.expect_expression) if x
        )
        return CheckResult("expect", Step.ANSWER, Status.PASS, None, user, summary)
    evidence = {
        "answer": redactor.clip(text, EVIDENCE_CHARS),
        "expected": "; ".join(x for x in (turn.expect, turn.expect_expression) if x),
        "turn": f"{stream.turn}: {redactor.clip(turn.message, 300)}",
    }
    if previous is not None:
        evidence["previous answer"] = redactor.clip(previous, EVIDENCE_CHARS)
    if stream.reconnected:
        evidence["reconnected"] = f"as the same user to thread {values.get('thread_id', '?')}"
        failure = Failure(
            Kind.SESSION_LOST,
            f"After reconnecting as the same user to the same thread, turn {stream.turn}'s answer "
            + " and ".join(wrong)
            + ": the conversation was not kept.",
            detail=f"turn-{stream.turn}",
            evidence=evidence,
        )
    else:
        failure = Failure(
            Kind.ANSWER_UNEXPECTED,
            f"Turn {stream.turn}'s answer " + " and ".join(wrong) + ".",
            detail=f"turn-{stream.turn}",
            evidence=evidence,
        )
    return CheckResult("expect", Step.ANSWER, Status.FAIL, None, user, "", failure)


def answer(
    stream: Stream, cfg: JourneySettings, *, user: int, nonces: protocol.Nonces, redactor: Redactor
) -> CheckResult:
    """The answer on the completion event (or over the streamed events): empty, another user's, canned, or a
    pass; skipped without a completion event."""
    completion = stream.completion
    if completion is None:
        return CheckResult("answer", Step.ANSWER, Status.SKIP, None, user, f"no `{cfg.completion_event}`")
    text, problem = answer_of(stream, cfg)

    def evidence() -> dict[str, str]:  # only for a failure: a thousand passing answers need none
        return {
            "completion frame": redactor.clip(completion.raw, EVIDENCE_CHARS),
            "answer expression": _where(cfg),
        }

    if problem:
        failure = Failure(Kind.ANSWER_EMPTY, f"No answer: {problem} ({_where(cfg)}).", evidence=evidence())
        return CheckResult("answer", Step.ANSWER, Status.FAIL, None, user, "", failure)
    if (foreign := nonces.foreign_in(text)) is not None:
        failure = Failure(
            Kind.ISOLATION_LEAK,
            f"User {user}'s answer carries another user's nonce {foreign}.",
            evidence=evidence() | {"answer": redactor.clip(text, EVIDENCE_CHARS)},
        )
        return CheckResult("answer isolation", Step.ISOLATION, Status.FAIL, None, user, "", failure)
    if (pattern := protocol.canned_match(text, cfg.canned_patterns)) is not None:
        failure = Failure(
            Kind.ANSWER_CANNED,
            "The answer matches the canned-fallback pattern " + repr(pattern) + ".",
            evidence=evidence() | {"answer": redactor.clip(text, EVIDENCE_CHARS)},
        )
        return CheckResult("answer", Step.ANSWER, Status.FAIL, None, user, "", failure)
    summary = f"{len(text)} characters: {redactor.clip(text, 120)}"
    return CheckResult("answer", Step.ANSWER, Status.PASS, None, user, summary)


def sla(total_ms: float | None, cfg: JourneySettings, *, user: int) -> CheckResult | None:
    """A failed ``sla`` check when the whole journey (login to answer) took longer than ``journey.sla_s``."""
    if total_ms is None or total_ms <= cfg.sla_s * 1000:
        return None
    failure = Failure(
        Kind.SLA_EXCEEDED,
        f"The journey took {total_ms / 1000:.1f} s; the SLA is {cfg.sla_s:g} s.",
        evidence={"journey": f"{total_ms:.0f} ms", "sla": f"{cfg.sla_s:g} s"},
    )
    return CheckResult("sla", Step.ANSWER, Status.FAIL, total_ms, user, "", failure)


def targets(settings: TargetsSettings) -> dict[str, float | None]:
    """Each metric's target from the settings (None: measured only)."""
    return {metric_id: getattr(settings, field) if field else None for metric_id, _, field in METRICS}


# What the handshake metric measures on each transport.
CONNECT_LABELS = {
    "websocket": "WebSocket handshake",
    "sse": "Stream opened (request to response headers)",
    "socketio": "Socket.IO connect (Engine.IO and CONNECT)",
}


def labels(transport: str) -> dict[str, str]:
    """Each metric's label for a run over ``transport``."""
    return {metric_id: label for metric_id, label, _ in METRICS} | {"handshake_ms": CONNECT_LABELS[transport]}


def metrics(
    samples: Sequence[JourneySample],
    health: Sequence[float],
    targets: Mapping[str, float | None],
    names: Mapping[str, str] | None = None,
) -> tuple[Metric, ...]:
    """Each metric's percentiles over every journey's figure (and the health latencies for ``api_ms``);
    ``names``: labels that differ from the WebSocket run's (``labels(transport)``)."""
    out = []
    for metric_id, default_label, _ in METRICS:
        label = (names or {}).get(metric_id, default_label)
        if metric_id == "api_ms":
            values: list[float] = list(health)
        elif metric_id == "handshake_ms":  # warm: the run's first connection is cold_connect_ms
            values = [
                s.handshake_ms for s in samples if s.handshake_ms is not None and not s.first_connection
            ]
        else:
            values = [v for s in samples if (v := getattr(s, metric_id)) is not None]
        target = targets.get(metric_id)
        out.append(Metric.from_samples(id=metric_id, label=label, unit="ms", samples=values, target=target))
    return tuple(out)


def cold_start(ms: float | None, request: str) -> Metric:
    """The first request after deploy as its own metric (measured, no target): it may include an instance's
    start, or may not (Cloud Run may have kept the instance the deploy started)."""
    label = "Cold start: first request after deploy" + (f" ({request})" if request else "")
    samples = [ms] if ms is not None else []
    return Metric.from_samples(id=COLD_START, label=label, unit="ms", samples=samples, target=None)


def cold_connect(samples: Sequence[JourneySample], transport: str) -> Metric:
    """The run's first connection after deploy as its own metric (measured, no target): after the first request,
    it may still meet a cold path (the first upgrade, a connection pool, an import), or another instance."""
    label = f"Cold start: first connection after deploy ({CONNECT_LABELS[transport]})"
    values = [s.handshake_ms for s in samples if s.first_connection and s.handshake_ms is not None]
    return Metric.from_samples(id=COLD_CONNECT, label=label, unit="ms", samples=values[:1], target=None)


def performance(metrics: Sequence[Metric]) -> list[CheckResult]:
    """A ``perf-target-missed`` check for each metric whose p95 is above its target."""
    checks = []
    for metric in metrics:
        if metric.status is not Status.FAIL:
            continue
        checks.append(
            CheckResult(
                f"metric {metric.id}",
                Step.PERFORMANCE,
                Status.FAIL,
                metric.value,
                None,
                f"{metric.label}: p95 {metric.value} ms, target {metric.target:g} ms",
                Failure(
                    Kind.PERF_TARGET_MISSED,
                    f"{metric.label}: p95 {metric.p95:.0f} ms over {metric.samples} samples, "
                    f"target {metric.target:g} ms.",
                    detail=metric.id,
                    subject=metric.label,
                    evidence={
                        "p50": f"{metric.p50} ms",
                        "p95": f"{metric.p95} ms",
                        "max": f"{metric.max} ms",
                        "target": f"{metric.target:g} ms",
                        "samples": str(metric.samples),
                    },
                ),
            )
        )
    return checks
