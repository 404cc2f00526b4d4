"""The Action as GitHub runs it: the installed `golden-path action` in a subprocess, with the environment a
container action gets (every input of action.yml as INPUT_<NAME>, its default or empty, GITHUB_* variables,
an event file), against the reference backend and the GitHub and Cloud Run stand-ins."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.reference.server import ReferenceServer
from tests.configs import QUIET_TARGETS_YAML
from tests.conftest import NO_METADATA_SERVER
from tests.standins.cloudrun_api import CloudRunStandIn
from tests.standins.github_api import GitHubStandIn

ROOT = Path(__file__).resolve().parent.parent.parent
ENTRY_POINT = Path(sys.executable).parent / "golden-path"
SECRET = "action-test-secret-0123456789abcdefghijklm"
SHA = "abc1234def5678"
OUTPUTS = set(yaml.safe_load((ROOT / "action.yml").read_text())["outputs"])
# Verdicts are the subject, not the machine's speed.
FAST = "journey:\n  event_timeout_s: 5\n  users: 2\nwebsocket:\n  open_timeout_s: 5\n" + QUIET_TARGETS_YAML


def github_env(workspace: Path, github: GitHubStandIn, pr: int, with_: dict[str, str]) -> dict[str, str]:
    """What the runner gives a container action's process, and nothing else from this machine."""
    inputs = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
    defaults = {"${{ github.token }}": github.token}  # the runner evaluates the expression
    env = {
        f"INPUT_{name.upper()}": defaults.get(spec.get("default", ""), "") for name, spec in inputs.items()
    }
    with_ = {"service": "chat-backend"} | with_  # publishing needs a stable service name (#11)
    env |= {f"INPUT_{name.upper()}": value for name, value in with_.items()}
    event = workspace / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": pr, "pull_request": {"number": pr}}))
    return (
        env
        | NO_METADATA_SERVER
        | {
            "HOME": str(workspace),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_REPOSITORY": "acme/chat-backend",
            "GITHUB_API_URL": github.api_url,
            "GITHUB_SERVER_URL": github.server_url,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_SHA": SHA,
            "GITHUB_REF": f"refs/pull/{pr}/merge",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_ACTION": "golden-path",
            "GITHUB_OUTPUT": str(workspace / "github_output"),
            "GITHUB_STEP_SUMMARY": str(workspace / "step_summary.md"),
        }
    )


def run_action(workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRY_POINT), "action"], cwd=workspace, env=env, capture_output=True, text=True, timeout=120
    )


def read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIMITER` blocks; the last wins."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            outputs[name] = "\n".join(value)
        else:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "golden-path.yml").write_text(FAST)
    return tmp_path


@pytest.fixture
def backend() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version=SHA) as server:
        yield server


def test_action__end_to_end_as_github_runs_it_comments_and_writes_every_output(
    workspace: Path, backend: ReferenceServer
):
    with GitHubStandIn(repo="acme/chat-backend") as github:
        pr = github.add_pull(head_sha=SHA)
        env = github_env(workspace, github, pr, {"url": backend.url, "jwt-secret": SECRET})
        result = run_action(workspace, env)
        comments = github.comments(pr)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = read_outputs(workspace / "github_output")
    assert set(outputs) == OUTPUTS
    assert (outputs["verdict"], outputs["p0-count"], outputs["error"]) == ("pass", "0", "")
    assert (outputs["url"], outputs["traffic-action"], outputs["revision"]) == (backend.url, "none", "")
    assert outputs["comment-url"].startswith(github.server_url)
    assert len(comments) == 1 and "PASS" in comments[0].body
    assert (workspace / "golden-path-out" / "results.json").is_file()
    assert "golden-path: PASS" in (workspace / "step_summary.md").read_text()
    assert f"::add-mask::{SECRET}" in result.stdout
    assert SECRET not in result.stderr + comments[0].body + (workspace / "step_summary.md").read_text()
    assert "phase probe: started" in result.stderr and "phase publish: done" in result.stderr


def test_action__an_input_left_empty_never_overrides_the_config_file(
    workspace: Path, backend: ReferenceServer
):
    (workspace / ".github" / "golden-path.yml").write_text(FAST + "github:\n  publish: false\n")
    with GitHubStandIn(repo="acme/chat-backend") as github:
        pr = github.add_pull(head_sha=SHA)
        env = github_env(workspace, github, pr, {"url": backend.url, "jwt-secret": SECRET})
        assert env["INPUT_PUBLISH"] == ""  # as GitHub passes an input without a default
        result = run_action(workspace, env)
        comments = github.comments(pr)
    assert result.returncode == 0, result.stderr
    assert comments == [] and github.count("POST", r".*") == 0
    assert read_outputs(workspace / "github_output")["comment-url"] == ""


def test_action__cloud_run_refusing_the_api_still_writes_every_output(workspace: Path):
    with GitHubStandIn(repo="acme/chat-backend") as github, CloudRunStandIn(project="p", region="r") as api:
        api.add_service("chat", uri="https://chat-abc-ew.a.run.app")
        api.inject(403)
        pr = github.add_pull(head_sha=SHA)
        with_ = {"project": "p", "region": "r", "service": "chat", "cloud-run-endpoint": api.url,
                 "tag": "pr-7", "jwt-secret": SECRET}  # fmt: skip
        result = run_action(workspace, github_env(workspace, github, pr, with_))
    assert result.returncode == 3, result.stdout + result.stderr
    outputs = read_outputs(workspace / "github_output")
    assert set(outputs) == OUTPUTS
    assert outputs["verdict"] == "error"
    assert "roles/run.viewer" in outputs["error"] and "\n" not in outputs["error"]
    assert [line for line in result.stdout.splitlines() if line.startswith("::error")] != []
    assert "Traceback" not in result.stderr
    assert "phase resolve: failed after" in result.stderr
    assert "golden-path could not run" in (workspace / "step_summary.md").read_text()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("users", "0", "input 'users': Input should be greater than or equal to 1"),
        ("users", "five", "input 'users': expected a whole number, got 'five'"),
        ("fail-on", "sometimes", "input 'fail-on': Input should be 'correctness', 'any' or 'p0'"),
        ("publish", "maybe", "input 'publish': expected true or false, got 'maybe'"),
        ("ready-timeout", "-1", "input 'ready-timeout': Input should be greater than 0"),
        ("run-timeout", "0", "input 'run-timeout': Input should be greater than 0"),
        ("close-after-passes", "0", "input 'close-after-passes': Input should be greater than or equal to 1"),
    ],
)
def test_action__a_bad_input_is_one_error_line_naming_the_input_and_exit_2(
    workspace: Path, name: str, value: str, expected: str
):
    with GitHubStandIn(repo="acme/chat-backend") as github:
        with_ = {"url": "http://127.0.0.1:9", "jwt-secret": SECRET, name: value}
        if name == "ready-timeout":
            with_ |= {
                "url": "",
                "project": "p",
                "region": "r",
                "service": "chat",
                "cloud-run-endpoint": "http://127.0.0.1:9",
            }
        result = run_action(workspace, github_env(workspace, github, 1, with_))
        assert github.requests == [], "nothing reached GitHub"
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and expected in errors[0], errors
    assert "config key" not in errors[0]
    outputs = read_outputs(workspace / "github_output")
    assert outputs["verdict"] == "error" and expected in outputs["error"]
    assert "Traceback" not in result.stderr


def test_action__comment_and_issue_switches_are_separate_and_assignees_reach_the_issue(workspace: Path):
    from bot.reference.faults import parse_faults

    with (
        GitHubStandIn(repo="acme/chat-backend") as github,
        ReferenceServer(secret=SECRET, version=SHA, faults=parse_faults(["ws-502"])) as broken,
    ):
        pr = github.add_pull(head_sha=SHA)
        with_ = {"url": broken.url, "jwt-secret": SECRET, "comment": "false", "assignees": "octocat",
                 "labels": "P0,canary"}  # fmt: skip
        result = run_action(workspace, github_env(workspace, github, pr, with_))
        comments, issues = github.comments(pr), github.issues()
    assert result.returncode == 1, result.stderr
    assert comments == [], "comment: false"
    assert len(issues) == 1 and set(issues[0].labels) == {"P0", "canary"}
    assert issues[0].assignees == ["octocat"]
    outputs = read_outputs(workspace / "github_output")
    assert (outputs["verdict"], outputs["p0-count"], outputs["comment-url"]) == ("fail", "1", "")
    assert outputs["issue-urls"].startswith(github.server_url)
