import json
from collections.abc import Callable
from dataclasses import replace
from xml.etree import ElementTree

import pytest
from pydantic import TypeAdapter

from bot import results
from bot.results import (
    CheckResult,
    Failure,
    Impact,
    JourneySample,
    Kind,
    Metric,
    Run,
    Status,
    Step,
    Target,
    Verdict,
)
from tests import samples

SAMPLES = [*samples.NAMES, "server_logs", "hostile_logs"]


def _sample(name: str) -> Callable[[], Run]:
    """One of tests.samples' runs by name (``*_logs``: a run with server logs)."""
    built: Callable[[], Run] = getattr(samples, name) if name.endswith("_logs") else lambda: samples.run(name)
    return built


def _run(*checks: CheckResult) -> Run:
    return Run(
        run_id="r1", started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:00:01Z", duration_ms=1000.0,
        verdict=Verdict.FAIL, target=Target(url="https://x.run.app", service="svc"), checks=checks, metrics=(),
        findings=(), impact=Impact(journey="AI chat", blocked=True, summary="s"),
    )  # fmt: skip


def test_to_json__round_trips_and_carries_counts():
    check = CheckResult(
        "health", Step.HEALTH, Status.FAIL, 3.0, None, "", Failure(Kind.HTTP_STATUS, "m", "503")
    )
    run = _run(check)
    data = results.to_dict(run)
    assert data["schema"] == 1 and data["p0_count"] == 0
    assert results.from_dict(data) == run


def test_to_junit__server_control_characters_still_make_valid_xml():
    hostile = Failure(
        Kind.HTTP_STATUS, "body \x1b[31mdown\x00\x07", "503", {"body": "\x1b[31mdown\x00\x07\ud800"}
    )
    xml = results.to_junit(_run(CheckResult("health", Step.HEALTH, Status.FAIL, failure=hostile)))
    root = ElementTree.fromstring(xml.encode("utf-8", errors="surrogatepass"))
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("type") == "http-status"
    assert "\\x1b[31mdown\\x00\\x07" in (failure.text or "")


def _junit_by_elementtree(run: Run) -> str:
    """to_junit as ElementTree writes it: the reference its text writer must match byte for byte."""
    suite = ElementTree.Element(
        "testsuite",
        name=f"golden-path {run.target.service}",
        tests=str(len(run.checks)),
        failures=str(sum(1 for c in run.checks if c.status is Status.FAIL)),
        skipped=str(sum(1 for c in run.checks if c.status in (Status.SKIP, Status.NOT_VERIFIED))),
        time=f"{run.duration_ms / 1000:.3f}",
        timestamp=run.started_at,
    )
    for check in run.checks:
        name = check.id if check.user is None else f"{check.id} (user {check.user})"
        time = f"{(check.duration_ms or 0) / 1000:.3f}"
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"golden-path.{check.step.value}", name=name, time=time
        )
        if check.status is Status.FAIL and check.failure is not None:
            message = results._xml_text(check.failure.message)
            node = ElementTree.SubElement(case, "failure", type=check.failure.kind.value, message=message)
            evidence = check.failure.evidence.items()
            node.text = results._xml_text("\n".join(f"{k}: {v}" for k, v in evidence))
        elif check.status in (Status.SKIP, Status.NOT_VERIFIED):
            ElementTree.SubElement(case, "skipped", message=results._xml_text(check.summary))
    suites = ElementTree.Element("testsuites")
    suites.append(suite)
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


@pytest.mark.parametrize("name", SAMPLES)
def test_to_junit__writes_the_bytes_elementtree_writes(name: str):
    build = _sample(name)
    hostile = Failure(
        Kind.HTTP_STATUS,
        "a \"quoted\" <tag> & 'single'\r\n\tnext \x1b[31m ü",
        "503",
        {"body": "<&>\"'\n\t\x00"},
    )
    odd = (
        CheckResult("hostile", Step.HEALTH, Status.FAIL, 1.5, 3, "", hostile),
        CheckResult("bare", Step.AGENT, Status.FAIL, None, 4, "", Failure(Kind.TIMEOUT, "", "")),
        CheckResult("skipped <&>", Step.ANSWER, Status.NOT_VERIFIED, None, None, 'why "not"\n<&>\t'),
    )
    base = build()
    run = replace(base, checks=(*base.checks, *odd), target=replace(base.target, service='s<&>"\n'))
    assert results.to_junit(run) == _junit_by_elementtree(run)
    empty = replace(run, checks=())
    assert results.to_junit(empty) == _junit_by_elementtree(empty)
    ElementTree.fromstring(results.to_junit(run))  # well-formed


def test_from_dict__bad_documents_name_the_problem():
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        results.from_dict([])
    with pytest.raises(ValueError, match="schema 2 is not supported"):
        results.from_dict({"schema": 2})
    with pytest.raises(ValueError, match=r"field 'run_id': Field required \(\d+ problem\(s\) in all\)"):
        results.from_dict({"schema": 1})


def test_metric_from_samples__p95_is_nearest_rank_and_no_samples_is_skip():
    metric = Metric.from_samples(id="m", label="M", unit="ms", samples=[5, 1, 3, 2, 4], target=4)
    assert (metric.p50, metric.p95, metric.max, metric.status) == (3, 5, 5, Status.FAIL)
    assert Metric.from_samples(id="m", label="M", unit="ms", samples=[], target=4).status is Status.SKIP


def test_from_dict__a_schema_1_document_from_before_shards_still_loads():
    data = results.to_dict(_run())
    for newer in ("samples", "health_samples", "shard", "merged_from"):
        del data[newer]
    run = results.from_dict(data)
    assert run.samples == () and run.shard is None


@pytest.mark.parametrize("name", SAMPLES)
def test_to_dict__writes_exactly_what_the_schema_reads_back(name: str):
    build = _sample(name)
    run = replace(
        build(), samples=(JourneySample(1, 2.5, events={"agent_started": 3.25}),), health_samples=(1.5,)
    )
    data = results.to_dict(run)
    expected = TypeAdapter(Run).dump_python(run, mode="json")
    # Equal as JSON values (a whole-number float may be written as 100 rather than 100.0).
    assert json.loads(json.dumps(data)) == expected | {"p0_count": run.p0_count, "p1_count": run.p1_count}
    assert results.from_dict(json.loads(results.to_json(run))) == run


@pytest.mark.parametrize("name", SAMPLES)
def test_to_json__writes_the_bytes_json_dumps_writes(name: str):
    build = _sample(name)
    hostile = Failure(
        Kind.HTTP_STATUS,
        'ünïcode \x1b[31m \x9b\x7f \u202e\U0001f600 "quoted" \\',
        "503",
        {"nested": "\u2028", "": "empty key", "ключ": "\x00"},
    )
    run = replace(
        build(),
        checks=(*build().checks, CheckResult("odd", Step.HEALTH, Status.FAIL, float("nan"), 0, "", hostile)),
        samples=(JourneySample(1, 2.5, events={"agent_started": 3.25, "x": float("inf")}),),
        health_samples=(1.5, 0.000123, 12345678901234567890.0, -0.0, 1e300),
    )
    written = results.to_json(run)
    assert written == json.dumps(results.to_dict(run), indent=2) + "\n"
    assert written.isascii() and "\x7f" not in written  # no control or bidi character reaches a terminal


def test_to_json__a_lone_surrogate_and_a_tiny_float_are_still_the_same_json():
    lone = Failure(Kind.HTTP_STATUS, "half a pair \ud800", "503")
    run = _run(CheckResult("health", Step.HEALTH, Status.FAIL, failure=lone))
    assert results.to_json(run) == json.dumps(results.to_dict(run), indent=2) + "\n"
    tiny = replace(_run(CheckResult("health", Step.HEALTH, Status.PASS)), health_samples=(1e-07, 2.5e-05))
    assert json.loads(results.to_json(tiny)) == json.loads(json.dumps(results.to_dict(tiny)))
    assert results.from_dict(json.loads(results.to_json(tiny))).health_samples == (1e-07, 2.5e-05)


def test_to_json__a_value_it_does_not_know_is_left_to_json_dumps():
    odd = Failure(Kind.HTTP_STATUS, "m", "503", {1: "an int key"})  # type: ignore[dict-item]
    run = _run(CheckResult("health", Step.HEALTH, Status.FAIL, failure=odd))
    assert results.to_json(run) == json.dumps(results.to_dict(run), indent=2) + "\n"
    assert '"1": "an int key"' in results.to_json(run)
