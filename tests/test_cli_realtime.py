"""Real-time on Cloud Run as a user meets it through `check`: the revision's settings judged, the cold start
measured, and a held connection's lifetime, against the Admin API stand-in and reference backends on 127.0.0.1."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.reference.server import ReferenceServer
from tests.standins.cloudrun_api import CloudRunStandIn, Route

SECRET = "realtime-test-secret-0123456789abcdefghijklm"
FAST = "journey:\n  event_timeout_s: 2\n  users: 2\nwebsocket:\n  open_timeout_s: 2\nbaseline:\n  enabled: false\n"
NEW = "chat-00002-new"


def _main(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def backend() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version="abc1234def") as server:
        yield server


@pytest.fixture
def api() -> Iterator[CloudRunStandIn]:
    with CloudRunStandIn(project="p", region="r") as standin:
        yield standin


def check(api: CloudRunStandIn, tmp_path: Path, config: str = FAST) -> tuple[int, dict, str]:
    path = tmp_path / "golden-path.yml"
    path.write_text(config)
    output = tmp_path / "out"
    coordinates = ["--project", "p", "--region", "r", "--service", "chat", "--cloud-run-endpoint", api.url]
    argv = [
        "check",
        *coordinates,
        "--tag",
        "pr-7",
        "--config",
        str(path),
        "--output-dir",
        str(output),
        "--quiet",
    ]
    code, _out, err = _main(argv, {"JWT_SECRET_KEY": SECRET})
    saved = json.loads((output / "results.json").read_text())
    return code, saved, (output / "report.md").read_text() + err


def deploy(api: CloudRunStandIn, backend: ReferenceServer, **revision: object) -> None:
    api.add_service("chat")
    api.add_revision("chat", NEW, **revision)  # type: ignore[arg-type]
    api.set_traffic("chat", [Route(NEW, 100, tag="pr-7", uri=backend.url)])


def test_check__cloud_runs_default_timeout_and_h2c_are_findings_and_the_settings_are_shown(
    api: CloudRunStandIn, backend: ReferenceServer, tmp_path: Path
):
    deploy(api, backend, timeout_s=300, port_name="h2c", concurrency=1, min_instances=0, max_instances=20)
    code, saved, report = check(api, tmp_path)
    assert code == 1  # P1 correctness findings fail the default `fail-on: correctness`
    kinds = {f["kind"]: f for f in saved["findings"]}
    assert set(kinds) == {"request-timeout-short", "http2-end-to-end"}
    assert (
        "gcloud run services update chat --region=r --timeout=900"
        in kinds["request-timeout-short"]["remediation"]
    )
    settings = saved["target"]["settings"]
    assert (settings["timeout_s"], settings["port_name"], settings["max_concurrency"]) == (300.0, "h2c", 1)
    assert {n["rule"] for n in settings["notes"]} == {"concurrency-one", "min-instances-zero"}
    assert "request timeout 5 min" in report and "`h2c` (HTTP/2 end to end)" in report
    assert "each open WebSocket holds a whole instance" in report


def test_check__a_well_configured_revision_passes_with_its_settings_checked(
    api: CloudRunStandIn, backend: ReferenceServer, tmp_path: Path
):
    deploy(api, backend, timeout_s=3600, min_instances=1)
    code, saved, _report = check(api, tmp_path)
    assert code == 0, saved["findings"]
    checks = {c["id"]: c["status"] for c in saved["checks"] if c["step"] == "revision"}
    assert checks["request-timeout"] == "pass" and checks["http2-end-to-end"] == "pass"
    assert saved["target"]["settings"]["notes"] == []
