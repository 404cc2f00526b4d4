"""The judge turns what the probe recorded into checks, from plain data: no socket, no server, no clock."""

import json

from bot import judge, protocol
from bot.config import build_settings
from bot.probe.record import Stream
from bot.results import JourneySample, Kind, Status, Step
from bot.untrusted import Redactor

CFG = build_settings({}).journey
EVENTS = list(CFG.expected_events)
OWN, OTHER = "gpn00000000000a", "gpn00000000000b"
NONCES = protocol.Nonces(OWN, frozenset({OWN, OTHER}))


def _stream(events: list[str], *, answer: object = "The capital of France is Paris.") -> Stream:
    stream = Stream(sent=100.0)
    for i, name in enumerate(events):
        stream.arrivals[name] = 100.0 + 0.01 * (i + 1)
        stream.order.append(name)
    if CFG.completion_event in events:
        raw = json.dumps({"type": CFG.completion_event, "data": {"result": answer}})
        stream.completion = protocol.parse_frame(raw)
    return stream


def test_events__every_event_in_order_passes_with_the_time_to_completion():
    (check,) = judge.events(_stream(EVENTS), CFG, user=3)
    assert (check.id, check.status, check.user) == ("events", Status.PASS, 3)
    assert check.duration_ms == 50.0


def test_events__a_missing_event_and_a_wrong_order_are_each_named():
    order = [EVENTS[1], EVENTS[0], *EVENTS[3:]]
    checks = judge.events(_stream(order), CFG, user=1)
    failures = {c.id: c.failure for c in checks}
    assert set(failures) == {f"event {EVENTS[2]}", "event order"}
    assert failures[f"event {EVENTS[2]}"].kind is Kind.EVENT_MISSING
    assert failures["event order"].kind is Kind.EVENT_ORDER


def test_isolation__a_leak_fails_an_owner_or_an_echoed_nonce_passes_else_not_verified():
    leaked = _stream(EVENTS)
    leaked.leaks, leaked.leak_count = ["a frame carrying another user's nonce"], 4
    check = judge.isolation(leaked, CFG, user=2)
    assert check.failure is not None and check.failure.kind is Kind.ISOLATION_LEAK
    assert "4 frame(s)" in check.failure.message

    echoed = _stream(EVENTS)
    echoed.own_nonce_seen = True
    assert judge.isolation(echoed, CFG, user=2).status is Status.PASS
    unknown = judge.isolation(_stream(EVENTS), CFG, user=2)
    assert unknown.status is Status.NOT_VERIFIED and "name no owner" in unknown.summary


def test_answer__empty_canned_or_another_users_nonce_fails_a_real_answer_passes():
    def judged(answer: object) -> tuple[Status, Kind | None]:
        check = judge.answer(_stream(EVENTS, answer=answer), CFG, user=1, nonces=NONCES, redactor=Redactor())
        return check.status, check.failure.kind if check.failure else None

    assert judged("The capital of France is Paris.") == (Status.PASS, None)
    assert judged("") == (Status.FAIL, Kind.ANSWER_EMPTY)
    assert judged("Agent response for: hello") == (Status.FAIL, Kind.ANSWER_CANNED)
    assert judged(f"hello {OTHER}") == (Status.FAIL, Kind.ISOLATION_LEAK)


def test_answer__no_completion_event_is_skipped_never_blamed():
    check = judge.answer(_stream(EVENTS[:2]), CFG, user=1, nonces=NONCES, redactor=Redactor())
    assert check.status is Status.SKIP and check.failure is None


def test_answer__a_secret_in_the_answer_is_redacted_from_the_evidence():
    stream = _stream(EVENTS, answer=f"Agent response for: token s3cr3t-value {OTHER}")
    check = judge.answer(stream, CFG, user=1, nonces=NONCES, redactor=Redactor(["s3cr3t-value"]))
    assert check.failure is not None
    assert "s3cr3t-value" not in json.dumps(check.failure.evidence)


def test_sla__only_a_journey_longer_than_the_sla_fails():
    assert judge.sla(CFG.sla_s * 1000, CFG, user=1) is None
    assert judge.sla(None, CFG, user=1) is None
    check = judge.sla(CFG.sla_s * 1000 + 1, CFG, user=1)
    assert check is not None and check.failure is not None and check.failure.kind is Kind.SLA_EXCEEDED


def test_metrics_and_performance__a_p95_over_its_target_is_one_missed_target_at_the_performance_step():
    samples = [JourneySample(u, handshake_ms=10.0 * u, total_ms=100.0) for u in range(1, 21)]
    targets = judge.targets(build_settings({"targets": {"handshake_ms": 150}}).targets)
    metrics = judge.metrics(samples, [5.0, 6.0], targets)
    by_id = {m.id: m for m in metrics}
    assert [m.id for m in metrics] == [metric_id for metric_id, _, _ in judge.METRICS]
    assert by_id["handshake_ms"].status is Status.FAIL and by_id["api_ms"].samples == 2
    assert by_id["event_gap_ms"].target is None
    (check,) = judge.performance(metrics)
    assert check.step is Step.PERFORMANCE and check.failure is not None
    assert (check.failure.kind, check.failure.detail) == (Kind.PERF_TARGET_MISSED, "handshake_ms")


def test_expectation__placeholders_are_filled_escaped_and_a_match_passes():
    turn = build_settings(
        {"journey": {"turns": [{"message": "a"}, {"message": "b", "expect": "code {nonce}"}]}}
    )
    spec = turn.journey.conversation[1]
    stream = _stream(EVENTS, answer=f"The code {OWN}.")
    check = judge.expectation(
        stream, spec, CFG, user=1, values={"nonce": OWN}, previous=None, redactor=Redactor()
    )
    assert check is not None and check.status is Status.PASS
    assert (
        judge.expectation(
            _stream(EVENTS),
            turn.journey.conversation[0],
            CFG,
            user=1,
            values={},
            previous=None,
            redactor=Redactor(),
        )
        is None
    )  # a turn that expects nothing has no expectation check


def test_expectation__a_miss_is_answer_unexpected_and_after_a_reconnect_session_lost():
    spec = build_settings(
        {"journey": {"turns": [{"message": "remember x"}, {"message": "?", "expect": "x"}]}}
    )
    turn = spec.journey.conversation[1]
    stream = _stream(EVENTS, answer="I do not know.")
    stream.turn = 2
    check = judge.expectation(stream, turn, CFG, user=1, values={}, previous="noted: x", redactor=Redactor())
    assert check is not None and check.failure is not None
    assert (check.failure.kind, check.failure.detail) == (Kind.ANSWER_UNEXPECTED, "turn-2")
    stream.reconnected = True
    check = judge.expectation(stream, turn, CFG, user=1, values={}, previous="noted: x", redactor=Redactor())
    assert check is not None and check.failure is not None
    assert check.failure.kind is Kind.SESSION_LOST
    assert check.failure.evidence["previous answer"] == "noted: x"


def test_expectation__a_jmespath_condition_on_the_completion_frame():
    turn = build_settings(
        {
            "journey": {
                "turns": [
                    {"message": "m", "expect_expression": "data.result == 'The capital of France is Paris.'"}
                ]
            }
        }
    ).journey.conversation[0]
    ok = judge.expectation(_stream(EVENTS), turn, CFG, user=1, values={}, previous=None, redactor=Redactor())
    bad = judge.expectation(
        _stream(EVENTS, answer="Lyon"), turn, CFG, user=1, values={}, previous=None, redactor=Redactor()
    )
    assert ok is not None and ok.status is Status.PASS
    assert bad is not None and bad.failure is not None and bad.failure.kind is Kind.ANSWER_UNEXPECTED


def test_events__a_stream_ended_by_an_end_event_names_it():
    stream = _stream(EVENTS[:2])
    stream.ended = "complete"
    checks = judge.events(stream, CFG, user=1)
    missing = {c.id: c.failure for c in checks}[f"event {CFG.completion_event}"]
    assert missing is not None and missing.kind is Kind.EVENT_MISSING
    assert (
        missing.message
        == f"`{CFG.completion_event}` was not received before the server ended the stream with `complete`."
    )
