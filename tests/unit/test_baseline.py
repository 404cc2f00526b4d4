"""bot.baseline: which URL is the baseline, and the new revision's metrics against it (pure)."""

from __future__ import annotations

from bot import baseline, results
from bot.results import CheckResult, Failure, Kind, Metric, Status, Step, Target
from bot.settings import BaselineSettings

TAG_URL = "https://pr-7---chat-abc-ew.a.run.app"
SERVICE_URL = "https://chat-abc-ew.a.run.app"


def target(**overrides: object) -> Target:
    values: dict = {
        "url": TAG_URL,
        "service": "chat",
        "revision": "chat-2",
        "revision_url": TAG_URL,
        "service_url": SERVICE_URL,
        "traffic_percent": 0,
        "traffic": {"chat-1": 100},
    }
    return Target(**{**values, **overrides})


def metric(id: str, *samples: float) -> Metric:
    return Metric.from_samples(id=id, label=id, unit="ms", samples=samples, target=None)


def test_url_for__the_service_url_while_the_new_revision_has_no_traffic() -> None:
    assert baseline.url_for(BaselineSettings(), target()) == SERVICE_URL
    assert baseline.serving_revision(target()) == "chat-1"


def test_url_for__none_when_the_service_url_mixes_in_the_new_revision_or_it_was_not_tested_at_its_tag() -> (
    None
):
    assert baseline.url_for(BaselineSettings(), target(traffic_percent=10)) is None
    assert baseline.url_for(BaselineSettings(), target(url=SERVICE_URL, revision_url=None)) is None
    assert baseline.url_for(BaselineSettings(enabled=False), target()) is None


def test_url_for__an_explicit_baseline_url_wins() -> None:
    chosen = BaselineSettings(url="https://chat.example.com/")
    assert (
        baseline.url_for(chosen, Target(url="http://127.0.0.1:1", service="x")) == "https://chat.example.com"
    )


def test_judge__a_regression_needs_both_the_factor_and_the_delta() -> None:
    record, regressions = baseline.judge(
        url=SERVICE_URL,
        revision="chat-1",
        checks=[],
        baseline_metrics=[metric("handshake_ms", 5), metric("total_ms", 100), metric("api_ms", 10)],
        new_metrics=[metric("handshake_ms", 30), metric("total_ms", 400), metric("api_ms", 14)],
        settings=BaselineSettings(),
    )

    by_id = {c.id: c for c in record.comparisons}
    assert (by_id["handshake_ms"].ratio, by_id["handshake_ms"].regression) == (
        6.0,
        False,
    )  # only 25 ms slower
    assert (by_id["total_ms"].ratio, by_id["total_ms"].regression) == (4.0, True)
    assert by_id["api_ms"].regression is False
    (check,) = regressions
    assert check.failure is not None and check.failure.kind is Kind.PERF_REGRESSION
    assert check.failure.detail == "total_ms" and "4.00x" in check.failure.message


def test_judge__a_failing_baseline_is_said_and_compares_nothing() -> None:
    broken = CheckResult(
        "handshake", Step.CONNECT, Status.FAIL, user=1,
        failure=Failure(Kind.WS_UPGRADE_STATUS, "The upgrade was answered with HTTP 502 instead of 101.", "502"),
    )  # fmt: skip
    record, regressions = baseline.judge(
        url=SERVICE_URL,
        revision="chat-1",
        checks=[broken],
        baseline_metrics=[],
        new_metrics=[metric("total_ms", 400)],
        settings=BaselineSettings(),
    )

    assert (record.status, record.comparisons, regressions) == ("failed", (), [])
    assert "the baseline itself failed at the connect step" in record.summary
    assert "judged on its own" in record.summary


def test_baseline__survives_the_results_round_trip() -> None:
    record, _ = baseline.judge(
        url=SERVICE_URL, revision="chat-1", checks=[], baseline_metrics=[metric("total_ms", 100)],
        new_metrics=[metric("total_ms", 400)], settings=BaselineSettings(),
    )  # fmt: skip
    run = results.Run(
        run_id="r", started_at="2025-01-01T00:00:00Z", finished_at="2025-01-01T00:00:01Z", duration_ms=1,
        verdict=results.Verdict.PASS, target=target(), checks=(), metrics=(), findings=(),
        impact=results.Impact(journey="AI chat", blocked=False, summary=""), baseline=record,
    )  # fmt: skip

    assert results.from_dict(results.to_dict(run)) == run
