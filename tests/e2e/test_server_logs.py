"""The revision's own logs: the real google-cloud-logging client (HTTP transport) against a stand-in of
Logging API v2 ``entries:list``; end to end through the CLI with the reference backend and the Cloud Run stand-in."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import server_logs, waits
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.results import Finding, Impact, Kind, Run, Severity, Step, Target, UserTrace, Verdict
from bot.settings import LogsSettings
from bot.untrusted import Redactor
from tests.cli_support import run_main
from tests.standins.cloudrun_api import CloudRunStandIn, Route
from tests.standins.logging_api import LoggingStandIn

SECRET = "logs-test-secret-0123456789abcdefghijklmno"
SERVICE, REVISION, OLD = "chat", "chat-00002-new", "chat-00001-old"
HOST = "pr-7---chat-abc-ew.a.run.app"
# Generous deadlines: they are not what these tests are about, and the machine is shared.
GENEROUS = "journey:\n  event_timeout_s: 20\n  users: 2\nwebsocket:\n  open_timeout_s: 20\n"
TRACE_1, TRACE_2 = "1" * 31 + "a", "2" * 31 + "b"


# -- grouping ----------------------------------------------------------------------------------------------------


def test_pattern__numbers_ids_and_timestamps_collapse_to_one_shape():
    a = "2026-11-24T14:05:01.123Z redis pool 3f2a9c1d7e at 92% (46/50), request 6f1c2a44-1b2c-4d5e-8f90-1234567890ab"
    b = "2026-11-24 14:07:59,001 redis pool 77aa00bb11 at 97% (49/50), request 0a1b2c3d-1b2c-4d5e-8f90-aaaaaaaaaaaa"
    assert (
        server_logs.pattern(a)
        == server_logs.pattern(b)
        == "<time> redis pool <id> at <n>% (<n>/<n>), request <id>"
    )
    assert server_logs.pattern("user logged in") != server_logs.pattern("user logged out")


def test_pattern__a_hex_id_that_happens_to_be_all_digits_or_all_letters_is_still_an_id():
    shapes = {server_logs.pattern(f"agent pool {pool} exhausted after 1501 ms") for pool in
              ("3f2a9c1d7e", "1234567890", "abcdefabcd", "ABCDEF0123")}  # fmt: skip
    assert shapes == {"agent pool <id> exhausted after <n> ms"}


def test_pattern__a_traceback_is_its_first_line_and_its_exception():
    tb = 'Exception in ASGI application\nTraceback (most recent call last):\n  File "/app/x.py", line 3\nKeyError: 17'
    assert server_logs.pattern(tb) == "Exception in ASGI application … KeyError: <n>"


# -- collect against the stand-in ---------------------------------------------------------------------------------


def _run(*, findings: bool = True, at: datetime | None = None) -> Run:
    now = at or datetime.now(UTC)
    finding = Finding(
        fingerprint="chat:ws-upgrade-status:502", severity=Severity.P0, kind=Kind.WS_UPGRADE_STATUS,
        step=Step.CONNECT, title="WebSocket upgrade answered HTTP 502", cause=".", remediation=".",
        users=(1,), evidence={"status": "502 Bad Gateway"},
    )  # fmt: skip
    return Run(
        run_id="r1", started_at=_second(now - timedelta(seconds=2)), finished_at=_second(now), duration_ms=2000,
        verdict=Verdict.FAIL if findings else Verdict.PASS,
        target=Target(url=f"https://{HOST}", service=SERVICE, project="p", region="europe-west1", revision=REVISION),
        checks=(), metrics=(), findings=(finding,) if findings else (),
        impact=Impact(journey="AI chat", blocked=findings, summary="."),
        traces=(UserTrace(0, "0" * 31 + "c"), UserTrace(1, TRACE_1), UserTrace(2, TRACE_2)),
    )  # fmt: skip


def _second(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


WHERE = server_logs.Where("p", "europe-west1", SERVICE, REVISION)


def _collect(
    api: LoggingStandIn, run: Run, **settings: object
) -> tuple[server_logs.ServerLogs | None, server_logs.CloudLogging]:
    reader = server_logs.CloudLogging(
        project="p", endpoint=api.url, budget_s=float(settings.pop("budget_s", 10))
    )  # type: ignore[arg-type]
    settings.setdefault("settle_s", 0)
    found = server_logs.collect(
        run, where=WHERE, reader=reader, settings=LogsSettings(**settings), redactor=Redactor([SECRET])
    )
    return found, reader


def test_collect__groups_traced_and_timed_entries_under_the_finding_with_the_request_log():
    with LoggingStandIn() as api:
        api.request_log(SERVICE, REVISION, method="GET", url=f"https://{HOST}/ws", status=502, latency_s=1.5123,
                        trace_id=TRACE_1)  # fmt: skip
        api.request_log(SERVICE, REVISION, method="GET", url=f"https://{HOST}/health", status=200, latency_s=0.01,
                        trace_id=TRACE_1)  # fmt: skip
        for pool in ("3f2a9c1d7e", "9b8a7c6d5e"):
            api.structured(SERVICE, REVISION, {"message": f"agent pool {pool} exhausted after 1501 ms"},
                           severity="ERROR", trace_id=TRACE_1)  # fmt: skip
        api.text(
            SERVICE, REVISION, f"WARNING redis slow (token={SECRET})", severity="WARNING", stream="stderr"
        )
        api.text(SERVICE, REVISION, "INFO: Uvicorn running on http://0.0.0.0:8080", severity="INFO")
        api.text(SERVICE, OLD, "ERROR from the old revision", severity="ERROR")
        found, reader = _collect(api, _run())
    assert found is not None and found.status == "read", found
    assert reader.calls == len(api.calls) == 2
    section = found.for_finding("chat:ws-upgrade-status:502")
    assert section is not None
    by_pattern = {g.pattern: g for g in section.groups}
    pool = by_pattern["agent pool <id> exhausted after <n> ms"]
    assert (pool.count, pool.severity, pool.matched_by, pool.trace_ids) == (2, "ERROR", "trace", (TRACE_1,))
    timed = next(g for g in section.groups if g.matched_by == "time")
    assert "[redacted]" in timed.example and SECRET not in json.dumps(str(found))
    assert all("old revision" not in g.example and "Uvicorn" not in g.example for g in section.groups)
    (request,) = section.requests
    assert (request.method, request.status, request.latency_ms, request.user) == ("GET", 502, 1512.3, 1)
    assert request.client_view == "HTTP 502 Bad Gateway"
    assert "cloud_run_revision" in section.explorer_url and TRACE_1 in section.explorer_url
    # The queries themselves: the revision's warnings, and the run's trace ids.
    first, second = (call.body["filter"] for call in api.calls)
    assert f'resource.labels.revision_name="{REVISION}"' in first and "severity>=WARNING" in first
    assert all(f"projects/p/traces/{t}" in second for t in (TRACE_1, TRACE_2))


def test_collect__a_403_names_the_role_after_one_call():
    with LoggingStandIn() as api:
        api.inject(403)
        found, reader = _collect(api, _run())
    assert found is not None and found.status == "denied"
    assert "roles/logging.viewer" in found.message and "project p" in found.message
    assert reader.calls == len(api.calls) == 1


@pytest.mark.parametrize("users", [1, 40])
def test_collect__never_more_than_two_calls_even_when_the_api_pages_on(users: int):
    with LoggingStandIn() as api:
        api.sparse_first_page = True  # a slow search: an empty page with a token, again and again
        for n in range(30):
            api.text(SERVICE, REVISION, f"WARNING retry {n}", severity="WARNING")
        run = replace(_run(), traces=tuple(UserTrace(u, f"{u:032x}") for u in range(1, users + 1)))
        found, reader = _collect(api, run, page_size=5)
    assert found is not None and found.status == "read"
    assert len(api.calls) == reader.calls == 2 and found.api_calls == 2
    assert found.truncated and "more were available" in found.message
    assert {c.body["pageSize"] for c in api.calls} == {5}


def test_collect__a_slow_logging_api_is_cut_at_the_budget():
    with LoggingStandIn() as api:
        api.delay_s = 3
        started = time.monotonic()
        found, _ = _collect(api, _run(), budget_s=0.5)
        took = time.monotonic() - started
    assert found is not None and found.status == "unavailable"
    assert "0.5 s budget" in found.message
    assert took < 2.5


def test_collect__only_on_runs_with_findings_unless_always():
    with LoggingStandIn() as api:
        api.text(SERVICE, REVISION, "WARNING something", severity="WARNING")
        assert _collect(api, _run(findings=False))[0] is None
        assert _collect(api, _run(), mode="never")[0] is None
        assert len(api.calls) == 0
        found, _ = _collect(api, _run(findings=False), mode="always")
    assert (
        found is not None
        and found.status == "read"
        and [g.example for g in found.groups] == ["WARNING something"]
    )


def test_collect__without_cloud_run_nothing_is_read_and_the_report_says_so():
    found = server_logs.collect(_run(), where=None, reader=None, settings=LogsSettings(), redactor=Redactor())
    assert found is not None and found.status == "not-read"
    assert "without Cloud Run coordinates" in found.message


# -- end to end: the CLI, the reference backend behind Cloud Run's front end, both APIs ---------------------------


def _check(tmp_path: Path, *, faults: list[str], prepare=lambda api: None, logs_yaml: str = ""):  # type: ignore[no-untyped-def]
    """A tagged no-traffic revision served by the reference backend; returns the CLI's answer and what the
    front end and the Logging stand-in saw."""
    with (
        LoggingStandIn(project="p", region="r") as logging_api,
        CloudRunStandIn(project="p", region="r") as run_api,
    ):
        backend = ReferenceServer(secret=SECRET, faults=parse_faults(faults))
        backend.app = logging_api.front(backend.app, service=SERVICE, revision=REVISION, host=HOST)
        with backend:
            run_api.add_service(SERVICE, uri="https://chat-abc-ew.a.run.app")
            run_api.add_revision(SERVICE, OLD)
            run_api.add_revision(SERVICE, REVISION)
            run_api.set_traffic(SERVICE, [Route(OLD, 100), Route(REVISION, 0, tag="pr-7", uri=backend.url)])
            # What the revision logged around the run without one of our traces: noise, and a real warning.
            for used in (46, 48, 49):
                logging_api.text(SERVICE, REVISION, f"WARNING redis pool at {used * 2}% ({used}/50)",
                                 severity="WARNING", stream="stderr")  # fmt: skip
            logging_api.text(
                SERVICE, REVISION, "INFO: Uvicorn running on http://0.0.0.0:8080", severity="INFO"
            )
            logging_api.text(SERVICE, OLD, "ERROR the old revision is unhappy", severity="ERROR")
            prepare(logging_api)
            tmp_path.mkdir(parents=True, exist_ok=True)
            config = tmp_path / "golden-path.yml"
            config.write_text(f"{GENEROUS}logs:\n  endpoint: {logging_api.url}\n  settle_s: 0\n{logs_yaml}")
            argv = ["check", "--project", "p", "--region", "r", "--service", SERVICE,
                    "--cloud-run-endpoint", run_api.url, "--config", str(config), "--output-dir", str(tmp_path)]  # fmt: skip
            code, out, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})
    return code, out, err, logging_api


def _finding_section(report: str, title: str) -> str:
    start = re.search(rf"^#### \d+\. .*{re.escape(title)}", report, re.MULTILINE).start()  # type: ignore[union-attr]
    end = min(
        i for i in (report.find("\n#### ", start), report.find("\n### ", start), len(report)) if i != -1
    )
    return report[start:end]


def test_main__a_failing_revision_shows_its_grouped_server_errors_under_the_finding(tmp_path: Path):
    code, out, err, logging_api = _check(tmp_path, faults=["ws-502"])
    assert code == 1, err
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["verdict"] == "fail"
    traces = {t["user"]: t["trace_id"] for t in saved["traces"]}
    assert set(traces) == {0, 1, 2}
    # Trace ids match between results.json, the headers the backend received and the Logging query.
    received = {}
    for request in logging_api.received:
        received.setdefault(request["path"], set()).add(request["traceparent"].split("-")[1])
    assert received["/ws"] == set(traces.values())
    assert received["/health"] == {traces[0]}
    assert len(logging_api.calls) == 2
    trace_query = logging_api.calls[1].body["filter"]
    assert all(f'trace="projects/p/traces/{t}"' in trace_query for t in traces.values())
    # The report: the two users' identical tracebacks are one group under the 502 finding, with the request log.
    report = (tmp_path / "report.md").read_text()
    assert report == out
    section = _finding_section(report, "WebSocket upgrade answered HTTP 502")
    assert f"`{traces[1]}`" in section  # the finding's evidence names the trace
    row = next(line for line in section.splitlines() if "Exception in ASGI application" in line)
    assert re.match(r"^\| 2 \| ERROR \| .* \| trace id \|$", row), row
    assert "TimeoutError: agent pool" in section  # the traceback, folded
    assert re.search(r"<details><summary>ERROR × 2: Exception in ASGI application</summary>", section)
    warning = next(line for line in section.splitlines() if "redis pool" in line)
    assert re.match(r"^\| 3 \| WARNING \| .* \| time \|$", warning), warning
    assert "old revision" not in report and "Uvicorn" not in report
    requests = [line for line in section.splitlines() if line.startswith("| `GET wss://")]
    assert len(requests) == 2 and all(
        "| HTTP 502 at " in r and "| HTTP 502 Bad Gateway |" in r for r in requests
    )
    assert "https://console.cloud.google.com/logs/query;query=" in section
    assert "### Server logs" in report and "in 2 calls" in report
    assert saved["logs"]["status"] == "read" and saved["logs"]["api_calls"] == 2


def test_main__logging_refusing_with_403_leaves_the_verdict_and_names_the_role(tmp_path: Path):
    code, out, err, logging_api = _check(tmp_path, faults=["ws-502"], prepare=lambda api: api.inject(403))
    assert code == 1, err
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["verdict"] == "fail" and saved["p0_count"] == 1
    assert saved["logs"]["status"] == "denied" and len(logging_api.calls) == 1
    assert "roles/logging.viewer" in out and "The verdict does not depend on logs." in out
    assert "warning: Server logs were not read" in err and "Traceback" not in err


def test_main__a_passing_run_reads_no_logs_unless_always(tmp_path: Path):
    code, out, err, logging_api = _check(tmp_path / "auto", faults=[])
    assert code == 0, err
    assert logging_api.calls == [] and "Server logs" not in out
    code, out, err, logging_api = _check(tmp_path / "always", faults=[], logs_yaml="  mode: always\n")
    assert code == 0, err
    assert len(logging_api.calls) == 2 and "### Server logs" in out and "redis pool" in out


def test_main__url_mode_reads_no_logs_and_says_so(tmp_path: Path):
    with (
        LoggingStandIn() as logging_api,
        ReferenceServer(secret=SECRET, faults=parse_faults(["ws-502"])) as backend,
    ):
        config = tmp_path / "golden-path.yml"
        config.write_text(f"{GENEROUS}logs:\n  endpoint: {logging_api.url}\n  settle_s: 0\n")
        argv = ["check", "--url", backend.url, "--config", str(config), "--output-dir", str(tmp_path)]
        code, out, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})
    assert code == 1, err
    assert logging_api.calls == []
    assert "Server logs were not read: the target was given as a URL" in out


def test_collect__hundreds_of_users_keep_the_filter_under_the_apis_limit_with_the_findings_traces_first():
    with LoggingStandIn() as api:
        run = _run()
        many = tuple(UserTrace(u, f"{u:032x}") for u in range(2, 600))
        run = replace(run, traces=(UserTrace(1, TRACE_1), *many))
        found, _ = _collect(api, run)
    assert found is not None and found.status == "read", found
    trace_query = api.calls[1].body["filter"]
    assert len(trace_query) <= 20_000 and f"projects/p/traces/{TRACE_1}" in trace_query
    assert found.truncated and "were not queried" in found.message


def test_collect__gives_logging_its_settle_time_before_the_first_read():
    with LoggingStandIn() as api, waits.recorded() as asked:
        api.text(SERVICE, REVISION, "ERROR database unreachable", severity="ERROR")
        found, _ = _collect(api, _run(), settle_s=3)
    assert asked == [waits.Wait(3, "logs settle")]  # the last entries reach Cloud Logging seconds late
    assert found is not None and found.status == "read"


def test_collect__a_second_call_failing_keeps_what_the_first_read():
    with LoggingStandIn() as api:
        api.text(SERVICE, REVISION, "ERROR database unreachable (attempt 3)", severity="ERROR")
        api.inject(503, after=1, times=1)
        found, reader = _collect(api, _run())
    assert found is not None and found.status == "read", found
    assert reader.calls == 2 and found.truncated
    assert "HTTP 503" in found.message
    assert [g.example for g in found.groups] == ["ERROR database unreachable (attempt 3)"]


def test_collect__without_google_credentials_the_report_says_what_to_set_up(tmp_path: Path, monkeypatch):
    # google-auth reads GOOGLE_APPLICATION_CREDENTIALS first: a missing file fails at once, with no network.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    reader = server_logs.CloudLogging(project="p", endpoint=None, budget_s=1)
    found = server_logs.collect(
        _run(), where=WHERE, reader=reader, settings=LogsSettings(settle_s=0), redactor=Redactor()
    )
    assert found is not None and found.status == "unavailable" and reader.calls == 0
    assert "no Google Cloud credentials" in found.message and "roles/logging.viewer" in found.message
