"""Sharded runs: every user runs in exactly one shard, and merge counts every journey once, percentiles over the
union of the shards' raw samples."""

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot import judge, results, shards
from bot.config import build_settings
from bot.errors import UsageError
from bot.reference.server import ReferenceServer
from bot.results import (
    CheckResult,
    Impact,
    JourneySample,
    Metric,
    Run,
    Shard,
    Status,
    Step,
    Target,
    Verdict,
)
from tests.cli_support import run_main, write_config
from tests.configs import QUIET_TARGETS_YAML

SECRET = "shard-test-secret-0123456789abcdefghijklmnop"
# The merged run's verdict is this file's subject, not the backend's speed.
FAST = "journey:\n  event_timeout_s: 5\nwebsocket:\n  open_timeout_s: 5\n" + QUIET_TARGETS_YAML


@pytest.fixture
def backend() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version="v1") as server:
        yield server


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, FAST)


@pytest.mark.parametrize("users,count", [(7, 3), (3, 5), (1000, 7), (10, 10)])
def test_share__every_user_runs_in_exactly_one_shard(users: int, count: int):
    settings = build_settings({"journey": {"users": users}})
    ran = [u for k in range(1, count + 1) for u in range(*_bounds(shards.share(settings, k, count)))]
    assert ran == list(range(1, users + 1))


def _bounds(shard: Shard) -> tuple[int, int]:
    return shard.first_user, shard.last_user + 1


@pytest.mark.parametrize("spec", ["0/3", "4/3", "3", "a/b", "1/0", ""])
def test_parse__a_bad_spec_names_the_value(spec: str):
    with pytest.raises(UsageError, match="--shard"):
        shards.parse(spec)


def test_from_cloud_run_task__the_0_based_task_index_is_shard_k_of_n():
    assert shards.from_cloud_run_task({"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "4"}) == (1, 4)
    assert shards.from_cloud_run_task({"CLOUD_RUN_TASK_INDEX": "3", "CLOUD_RUN_TASK_COUNT": "4"}) == (4, 4)
    assert shards.from_cloud_run_task({}) is None
    with pytest.raises(UsageError, match="CLOUD_RUN_TASK_INDEX"):
        shards.from_cloud_run_task({"CLOUD_RUN_TASK_INDEX": "x", "CLOUD_RUN_TASK_COUNT": "4"})


def _shard_run(index: int, count: int, totals: list[float], first_user: int) -> Run:
    samples = tuple(JourneySample(first_user + i, total_ms=t) for i, t in enumerate(totals))
    metric = Metric.from_samples(id="total_ms", label="Whole journey", unit="ms", samples=totals, target=150)
    checks = tuple(CheckResult("answer", Step.ANSWER, Status.PASS, None, s.user) for s in samples)
    return Run(
        run_id=f"shard{index}", started_at=f"2026-01-01T00:00:0{index}Z", finished_at="2026-01-01T00:00:09Z",
        duration_ms=100.0 * index, verdict=Verdict.PASS, target=Target(url="http://x", service="svc"),
        checks=checks, metrics=(metric,), findings=(), impact=Impact(journey="AI chat", blocked=False, summary=""),
        users=len(totals), samples=samples,
        shard=Shard(index, count, first_user, first_user + len(totals) - 1, total_users=5),
    )  # fmt: skip


def test_merge__percentiles_come_from_the_union_of_samples_not_from_the_shards_percentiles():
    fast = _shard_run(1, 2, [10, 20, 30], first_user=1)
    slow = _shard_run(2, 2, [100, 200], first_user=4)
    assert fast.metrics[0].p95 == 30 and slow.metrics[0].p95 == 200  # each shard alone is under/over target

    merged = shards.merge([slow, fast], settings=build_settings({}), run_id="m")

    union = sorted([10, 20, 30, 100, 200])
    total = merged.metric("total_ms")
    assert total is not None
    assert (total.samples, total.p50, total.p95, total.max) == (
        5,
        results.percentile(union, 50),
        results.percentile(union, 95),
        200,
    )
    assert total.p50 == 30  # the average of the shards' medians would be 87.5
    assert [s.user for s in merged.samples] == [1, 2, 3, 4, 5]
    assert merged.users == 5 and merged.shard is None and merged.merged_from == ("shard1", "shard2")
    # The merged p95 misses the 150 ms target: one performance finding for the whole run.
    assert total.status is Status.FAIL
    assert [f.kind.value for f in merged.findings] == ["perf-target-missed"]
    assert merged.verdict is Verdict.DEGRADED


@pytest.mark.parametrize(("fail_on", "code"), [(None, 0), ("correctness", 0), ("any", 1), ("p0", 0)])
def test_main__merge_takes_the_same_fail_on_as_check(tmp_path: Path, fail_on: str | None, code: int):
    """A merged p95 over its target is a performance finding only: `check`'s default gate lets it through, and
    `merge` must accept every `--fail-on` that `check` accepts (a sharded workflow passes the same inputs)."""
    paths = []
    for run in (_shard_run(1, 2, [10, 20, 30], first_user=1), _shard_run(2, 2, [100, 200], first_user=4)):
        path = tmp_path / f"{run.run_id}.json"
        path.write_text(results.to_json(run))
        paths.append(str(path))
    flag = [] if fail_on is None else ["--fail-on", fail_on]
    got, _, err = run_main(["merge", *paths, "--output-dir", str(tmp_path / "m"), "--quiet", *flag])
    assert (got, "usage:" in err) == (code, False), err
    assert json.loads((tmp_path / "m" / "results.json").read_text())["verdict"] == "degraded"


def test_merge__a_missing_repeated_or_unsharded_result_is_refused():
    one, two = _shard_run(1, 3, [1.0], 1), _shard_run(2, 3, [1.0], 2)
    settings = build_settings({})
    with pytest.raises(UsageError, match=r"shard 3/3 missing"):
        shards.merge([one, two], settings=settings, run_id="m")
    with pytest.raises(UsageError, match=r"shard 2/3 given more than once"):
        shards.merge([one, two, two], settings=settings, run_id="m")
    with pytest.raises(UsageError, match="not a shard result"):
        shards.merge([one, replace(two, shard=None)], settings=settings, run_id="m")


def test_main__three_shards_then_merge_count_every_journey_once(
    backend: ReferenceServer, config: Path, tmp_path: Path
):
    env = {"JWT_SECRET_KEY": SECRET}
    paths = []
    for k in (1, 2, 3):
        out_dir = tmp_path / f"shard-{k}"
        argv = ["check", "--url", backend.url, "--config", str(config), "--users", "8", "--shard", f"{k}/3"]
        code, _, err = run_main([*argv, "--output-dir", str(out_dir), "--quiet"], env)
        assert code == 0, err
        assert f"(shard {k}/3)" in err
        paths.append(out_dir / "results.json")
    shard_docs = [json.loads(p.read_text()) for p in paths]
    assert [d["shard"]["index"] for d in shard_docs] == [1, 2, 3]
    assert [len(d["samples"]) for d in shard_docs] == [3, 3, 2]

    code, out, err = run_main(
        ["merge", *map(str, paths), "--config", str(config), "--output-dir", str(tmp_path / "merged")]
    )
    assert code == 0, err
    merged = results.load(tmp_path / "merged" / "results.json")
    assert merged.users == 8 and [s.user for s in merged.samples] == list(range(1, 9))
    answered = sorted(c.user for c in merged.checks if c.id == "answer" and c.status is Status.PASS)
    assert answered == list(range(1, 9))
    assert all(len(s.events) == 5 for s in merged.samples)  # each of the five events' arrival, per user
    # Each shard's first connection is its cold one: kept out of the warm figure the merge recomputes.
    assert [sum(s["first_connection"] for s in d["samples"]) for d in shard_docs] == [1, 1, 1]
    union = sorted(s["handshake_ms"] for d in shard_docs for s in d["samples"] if not s["first_connection"])
    handshake = merged.metric("handshake_ms")
    assert handshake is not None
    assert (handshake.samples, handshake.p95) == (5, round(results.percentile(union, 95), 2))
    earliest = min(shard_docs, key=lambda d: d["started_at"])
    cold = merged.metric("cold_connect_ms")
    assert cold is not None and cold.samples == 1
    assert cold.p95 == next(m for m in earliest["metrics"] if m["id"] == "cold_connect_ms")["p95"]
    assert "for 8 users" in out and (tmp_path / "merged" / "junit.xml").is_file()
    assert len([c for c in merged.checks if c.id == "health"]) == 1  # one health check, not one per shard


def test_main__cloud_run_task_variables_make_the_run_a_shard(
    backend: ReferenceServer, config: Path, tmp_path: Path
):
    env = {"JWT_SECRET_KEY": SECRET, "CLOUD_RUN_TASK_INDEX": "1", "CLOUD_RUN_TASK_COUNT": "2"}
    argv = ["check", "--url", backend.url, "--config", str(config), "--users", "5", "--quiet"]
    code, _, err = run_main([*argv, "--output-dir", str(tmp_path / "shard-{shard}")], env)
    assert code == 0, err
    saved = json.loads((tmp_path / "shard-2" / "results.json").read_text())  # tasks on one volume write apart
    assert saved["shard"] == {"index": 2, "count": 2, "first_user": 4, "last_user": 5, "total_users": 5}
    assert [s["user"] for s in saved["samples"]] == [4, 5]


def test_main__a_shard_refuses_to_publish_and_merge_names_a_missing_shard(
    backend: ReferenceServer, config: Path, tmp_path: Path
):
    env = {"JWT_SECRET_KEY": SECRET}
    base = ["check", "--url", backend.url, "--config", str(config), "--quiet", "--output-dir", str(tmp_path)]
    code, _, err = run_main([*base, "--shard", "1/2", "--publish"], env)
    assert code == 2 and "merge` publishes once" in err
    code, _, err = run_main([*base, "--shard", "1/2"], env)
    assert code == 0, err
    code, _, err = run_main(["merge", str(tmp_path / "results.json"), "--output-dir", str(tmp_path / "m")])
    assert code == 2 and "shard 2/2 missing" in err


def test_user_phases__load_users_run_after_the_journey_users_or_with_them():
    after = build_settings({"journey": {"users": 2}, "load": {"users": 3}})
    assert shards.user_phases(after) == [[1, 2], [3, 4, 5]]
    together = build_settings({"journey": {"users": 2}, "load": {"users": 3, "concurrent": True}})
    assert shards.user_phases(together) == [[1, 2, 3, 4, 5]]
    assert shards.user_phases(together, range(2, 4)) == [[2, 3]]  # a shard's share keeps the global numbers
    assert shards.user_phases(after, range(4, 6)) == [[4, 5]]


def test_merge__a_failure_in_one_shard_fails_the_whole_run_once():
    from bot.results import Failure, Kind

    one = _shard_run(1, 2, [10, 20], first_user=1)
    two = _shard_run(2, 2, [10, 20, 30], first_user=3)
    closed = Failure(Kind.WS_CLOSED_EARLY, "closed", detail="agent_completed")
    failing = CheckResult("events", Step.AGENT, Status.FAIL, None, 4, "", closed)
    two = replace(two, checks=(*two.checks, failing), verdict=Verdict.FAIL)

    merged = shards.merge([one, two], settings=build_settings({}), run_id="m")

    assert merged.verdict is Verdict.FAIL and merged.p0_count == 1
    (finding,) = merged.findings
    assert finding.kind is Kind.WS_CLOSED_EARLY and finding.users == (4,)
    assert merged.impact.blocked  # the impact is assessed again, over the merged findings


def test_merge__keeps_every_kind_a_shard_found_and_recomputes_only_the_missed_targets():
    from bot.results import Failure, Kind

    fast = _shard_run(1, 2, [10, 20, 30], first_user=1)
    slow = _shard_run(2, 2, [100, 200], first_user=4)
    # The slow shard's own missed target is a percentile of a part, and its probe found a slower revision.
    stale = CheckResult(
        "metric total_ms",
        Step.PERFORMANCE,
        Status.FAIL,
        200.0,
        None,
        "",
        Failure(Kind.PERF_TARGET_MISSED, "p95 200 ms", detail="total_ms"),
    )
    slower = CheckResult(
        "regression total_ms", Step.PERFORMANCE, Status.FAIL, 200.0, None, "",
        Failure(Kind.PERF_REGRESSION, "2.0x the serving revision", detail="total_ms"),
    )  # fmt: skip
    slow = replace(slow, checks=(*slow.checks, stale, slower))

    merged = shards.merge([fast, slow], settings=build_settings({}), run_id="m")

    assert sorted(f.kind.value for f in merged.findings) == ["perf-regression", "perf-target-missed"]
    (missed,) = [c for c in merged.checks if c.failure and c.failure.kind is Kind.PERF_TARGET_MISSED]
    assert missed.duration_ms == merged.metric("total_ms").value != 999.0  # the merged p95, not the shard's
    assert missed.failure is not None and "over 5 samples" in missed.failure.message


def test_merge__the_cold_start_is_the_earliest_shards_first_request_never_a_union():
    first = _shard_run(1, 2, [10, 20], first_user=1)
    second = _shard_run(2, 2, [30], first_user=3)
    first = replace(first, metrics=(*first.metrics, judge.cold_start(900.0, "GET /health")))
    second = replace(second, metrics=(*second.metrics, judge.cold_start(40.0, "GET /health")))
    merged = shards.merge([second, first], settings=build_settings({}), run_id="m")
    cold = merged.metric("cold_start_ms")
    assert cold is not None and (cold.samples, cold.value) == (1, 900.0)
