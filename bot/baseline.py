"""The serving revision as the baseline: which URL serves it, and the new revision's metrics against it. Pure.

On shared CI runners absolute targets mostly measure the runner's network; a ratio taken in the same run, with
the same users and the same runner, does not. So a p95 beyond ``max_ratio`` times the serving revision's (and
at least ``min_delta_ms`` slower) is a finding of its own, ``perf-regression``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot import kinds
from bot.judge import ONCE_METRICS
from bot.results import Baseline, CheckResult, Comparison, Failure, Kind, Metric, Status, Step, Target
from bot.settings import BaselineSettings, Settings, VersionSettings


def url_for(settings: BaselineSettings, target: Target) -> str | None:
    """``baseline.url`` when given; else the service URL, but only while the new revision was tested alone at
    its tag URL and receives no traffic (then the service URL serves only the revisions users see now)."""
    if not settings.enabled:
        return None
    if settings.url:
        return settings.url
    tested_at_tag = target.revision_url is not None and target.url == target.revision_url.rstrip("/")
    if tested_at_tag and target.traffic_percent == 0 and target.service_url:
        return target.service_url
    return None


def serving_revision(target: Target) -> str | None:
    others = {name: pct for name, pct in target.traffic.items() if name != target.revision}
    return max(others, key=lambda name: others[name]) if others else None


def probe_settings(settings: Settings) -> Settings:
    """The same journey and users, without what only the new revision must satisfy (its version, the
    negative auth check that the new revision already answered, a held connection)."""
    version = VersionSettings(field=settings.version.field)
    websocket = settings.websocket.model_copy(update={"negative_auth_check": False})
    journey = settings.journey.model_copy(update={"hold_s": 0})
    return settings.model_copy(update={"version": version, "websocket": websocket, "journey": journey})


def judge(
    *,
    url: str,
    revision: str | None,
    checks: Sequence[CheckResult],
    baseline_metrics: Sequence[Metric],
    new_metrics: Sequence[Metric],
    settings: BaselineSettings,
) -> tuple[Baseline, list[CheckResult]]:
    """The Baseline record and a ``perf-regression`` check for each metric beyond the allowed factor."""
    broken = [
        c
        for c in checks
        if c.status is Status.FAIL and c.failure and kinds.of(c.failure.kind).breaks_baseline
    ]
    if broken:
        first = broken[0]
        assert first.failure is not None
        summary = (
            f"the baseline itself failed at the {first.step.value} step ({first.failure.kind.value}: "
            f"{first.failure.message}): the new revision is judged on its own"
        )
        record = Baseline(
            status="failed",
            summary=summary,
            metrics=tuple(baseline_metrics),
            url=url,
            revision=revision,
            max_ratio=settings.max_ratio,
            min_delta_ms=settings.min_delta_ms,
        )
        return record, []
    by_id = {m.id: m for m in baseline_metrics}
    comparisons, regressions = [], []
    for metric in new_metrics:
        base = by_id.get(metric.id)
        base_p95 = base.p95 if base is not None else None
        ratio = round(metric.p95 / base_p95, 2) if metric.p95 is not None and base_p95 else None
        slower = (
            metric.id not in ONCE_METRICS  # a cold start beside a warm serving revision is expected
            and ratio is not None
            and metric.p95 is not None
            and base_p95 is not None
            and ratio > settings.max_ratio
            and metric.p95 - base_p95 >= settings.min_delta_ms
        )
        comparisons.append(
            Comparison(metric.id, metric.label, metric.unit, metric.p95, base_p95, ratio, slower)
        )
        if slower:
            assert metric.p95 is not None and base_p95 is not None
            regressions.append(_regression(metric, base_p95, ratio or 0.0, settings, revision))
    summary = f"same journey, same users, against {revision or url}"
    record = Baseline(
        status="measured",
        summary=summary,
        metrics=tuple(baseline_metrics),
        comparisons=tuple(comparisons),
        url=url,
        revision=revision,
        max_ratio=settings.max_ratio,
        min_delta_ms=settings.min_delta_ms,
    )
    return record, regressions


def _regression(
    metric: Metric, base_p95: float, ratio: float, settings: BaselineSettings, revision: str | None
) -> CheckResult:
    assert metric.p95 is not None
    message = (
        f"{metric.label}: p95 {metric.p95:.0f} ms against {base_p95:.0f} ms on the serving revision"
        f"{f' {revision}' if revision else ''} ({ratio:.2f}x; allowed {settings.max_ratio:g}x and "
        f"{settings.min_delta_ms:g} ms)."
    )
    return CheckResult(
        f"regression {metric.id}",
        Step.PERFORMANCE,
        Status.FAIL,
        metric.p95,
        None,
        f"{metric.label}: {ratio:.2f}x the serving revision",
        Failure(
            Kind.PERF_REGRESSION,
            message,
            detail=metric.id,
            subject=metric.label,
            evidence={
                "p95": f"{metric.p95} ms",
                "baseline p95": f"{base_p95} ms",
                "ratio": f"{ratio:.2f}x",
                "allowed": f"{settings.max_ratio:g}x and at least {settings.min_delta_ms:g} ms",
            },
        ),
    )
