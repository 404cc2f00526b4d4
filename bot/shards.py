"""Sharded runs: which users shard K of N runs, and merging shard results into one Run.

A shard's ``results.json`` carries every journey's raw figures (``samples``), so ``merge`` recomputes each
percentile over the union of all shards' samples (a p95 of p95s, or an average of them, is not a p95).
The same shard format serves an Actions matrix (``--shard K/N``) and Cloud Run Jobs tasks
(``CLOUD_RUN_TASK_INDEX``/``CLOUD_RUN_TASK_COUNT``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from bot import diagnose, impact, judge
from bot.errors import UsageError
from bot.results import CheckResult, Run, Shard, Status, verdict_for
from bot.settings import Settings

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse(spec: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N. Raises ``UsageError`` naming the value."""
    match = _SPEC.match(spec)
    if match is None:
        raise UsageError(f"--shard: expected K/N such as 2/4, got {spec!r}")
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise UsageError(f"--shard: K must be from 1 to N, got {spec!r}")
    return index, count


def from_cloud_run_task(env: Mapping[str, str]) -> tuple[int, int] | None:
    """The shard a Cloud Run Jobs task is (its index is 0-based), or None outside one."""
    index, count = env.get("CLOUD_RUN_TASK_INDEX"), env.get("CLOUD_RUN_TASK_COUNT")
    if index is None or count is None:
        return None
    try:
        return parse(f"{int(index) + 1}/{int(count)}")
    except ValueError:
        raise UsageError(
            f"CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT: expected whole numbers, got {index!r}/{count!r}"
        ) from None


def share(settings: Settings, index: int, count: int) -> Shard:
    """Shard ``index`` of ``count`` runs a contiguous block of the user numbers 1..total: numbers stay unique
    across shards, and the first ``total % count`` shards take one user more."""
    total = settings.journey.users + settings.load.users
    size, extra = divmod(total, count)
    first = (index - 1) * size + min(index - 1, extra) + 1
    last = first + size + (1 if index <= extra else 0) - 1
    return Shard(index=index, count=count, first_user=first, last_user=last, total_users=total)


def settings_for(settings: Settings, shard: Shard) -> Settings:
    """A shard's own settings: it never publishes nor moves traffic (``merge`` does both once, over every shard's
    journeys), and ``{shard}`` in the output directory is K, so tasks sharing one volume (Cloud Run Jobs) write
    apart."""
    return settings.model_copy(
        update={
            "output_dir": Path(str(settings.output_dir).replace("{shard}", str(shard.index))),
            "github": settings.github.model_copy(update={"publish": False}),
            "gate": settings.gate.model_copy(update={"on_pass": "none", "on_fail": "none"}),
        }
    )


def for_check(
    settings: Settings, flag: str | None, env: Mapping[str, str], *, publish: bool | None
) -> tuple[Settings, Shard | None]:
    """The shard a check runs (``--shard K/N``, else the Cloud Run Jobs task's) with its own settings; ``None``
    when the check is not sharded. Raises ``UsageError`` for a bad spec, or for ``--publish`` with a shard."""
    spec = parse(flag) if flag else from_cloud_run_task(env)
    if spec is None:
        return settings, None
    if publish:
        raise UsageError(
            "--shard with --publish: a shard never publishes; `golden-path merge` publishes once for all"
        )
    shard = share(settings, *spec)
    return settings_for(settings, shard), shard


def user_phases(settings: Settings, users: Sequence[int] | None = None) -> list[list[int]]:
    """Journey users, then load users (one phase with them when ``load.concurrent``); ``users`` picks a share."""
    journey_users = list(range(1, settings.journey.users + 1))
    load_users = list(range(settings.journey.users + 1, settings.journey.users + settings.load.users + 1))
    if users is not None:
        share = set(users)
        journey_users = [u for u in journey_users if u in share]
        load_users = [u for u in load_users if u in share]
    if settings.load.concurrent:
        return [journey_users + load_users]
    return [phase for phase in (journey_users, load_users) if phase]


def merge(runs: Sequence[Run], *, settings: Settings, run_id: str) -> Run:
    """One Run from every shard of a sharded run: all checks and journeys, percentiles over the union.

    Raises:
        UsageError: a document is not a shard, or shards are missing, repeated or from different runs.
    """
    shards = _complete(runs)
    first = shards[0]
    checks: list[CheckResult] = []
    seen_run_checks: set[str] = set()
    for run in shards:
        for check in run.checks:
            if check.failure is not None and check.failure.kind in judge.METRIC_KINDS:
                continue  # recomputed below from the merged metrics
            if check.user is None:
                # Health, version and the negative check ran once per shard: keep one, and every failure.
                if check.id in seen_run_checks and check.status is not Status.FAIL:
                    continue
                seen_run_checks.add(check.id)
            checks.append(check)
    samples = tuple(sorted((s for run in shards for s in run.samples), key=lambda s: s.user))
    health = tuple(h for run in shards for h in run.health_samples)
    metrics = judge.metrics(
        samples,
        health,
        {metric.id: metric.target for metric in first.metrics},
        {metric.id: metric.label for metric in first.metrics},
    )
    earliest = min(shards, key=lambda run: run.started_at)  # its first request came first after the deploy
    metrics += tuple(m for m in earliest.metrics if m.id in judge.ONCE_METRICS)
    checks.extend(judge.performance(metrics))
    service = first.target.service
    findings = diagnose.diagnose(checks, service=service)
    serving = next((run.target.serving_version for run in shards if run.target.serving_version), None)
    return replace(
        first,
        run_id=run_id,
        started_at=min(run.started_at for run in shards),
        finished_at=max(run.finished_at for run in shards),
        duration_ms=max(run.duration_ms for run in shards),
        verdict=verdict_for(findings),
        target=replace(first.target, serving_version=serving),
        checks=tuple(checks),
        metrics=metrics,
        findings=findings,
        impact=impact.assess(findings, settings=settings.impact, journey_name=settings.journey.name),
        users=first.shard.total_users if first.shard else sum(run.users for run in shards),
        traces=tuple(
            sorted({t.user: t for run in shards for t in run.traces}.values(), key=lambda t: t.user)
        ),
        logs=next((run.logs for run in shards if run.logs is not None), None),
        samples=samples,
        health_samples=health,
        shard=None,
        merged_from=tuple(run.run_id for run in shards),
        hold=next((run.hold for run in shards if run.hold is not None), None),  # one user held it
        traffic_actions=(),
    )


def _complete(runs: Sequence[Run]) -> list[Run]:
    if not runs:
        raise UsageError("merge: give the shards' results.json files")
    for run in runs:
        if run.shard is None:
            raise UsageError(
                f"merge: run {run.run_id} is not a shard result (it was not run with --shard K/N)"
            )
    shards = sorted(runs, key=lambda r: r.shard.index if r.shard else 0)
    count = {r.shard.count for r in shards if r.shard}
    if len(count) > 1:
        raise UsageError(f"merge: the shards come from runs split differently (N = {sorted(count)})")
    (n,) = count
    indexes = [r.shard.index for r in shards if r.shard]
    repeated = sorted({i for i in indexes if indexes.count(i) > 1})
    if repeated:
        raise UsageError(f"merge: shard {', '.join(f'{i}/{n}' for i in repeated)} given more than once")
    missing = [i for i in range(1, n + 1) if i not in indexes]
    if missing:
        raise UsageError(
            f"merge: shard {', '.join(f'{i}/{n}' for i in missing)} missing; every journey must be counted "
            "(did a matrix job fail before uploading its results?)"
        )
    targets = {(r.target.url, r.target.service) for r in shards}
    if len(targets) > 1:
        raise UsageError(f"merge: the shards tested different targets: {sorted(targets)}")
    return shards
