"""examples/: every workflow passes GitHub's workflow schema and actionlint, and uses only what action.yml has."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_action_metadata import BIN, check_jsonschema

ROOT = Path(__file__).resolve().parent.parent.parent
WORKFLOWS = sorted((ROOT / "examples").glob("*.yml"))
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
OUTPUT_READ = re.compile(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")


def golden_path_steps(workflow: dict) -> list[dict]:
    return [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "golden-path" in str(step.get("uses", ""))
    ]


def test_examples__cover_deploy_preview_canary_release_and_a_pinned_image():
    assert {path.stem for path in WORKFLOWS} >= {"deploy", "pr-preview", "canary", "release", "pinned-image"}


def test_examples__pass_the_github_workflows_schema():
    result = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples__pass_actionlint():
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples__actionlint_catches_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        (ROOT / "examples" / "deploy.yml").read_text().replace("steps.golden-path", "step.golden-path")
    )
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", str(broken)], capture_output=True, text=True
    )
    assert result.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_examples__every_with_key_of_a_golden_path_step_is_an_input(path: Path):
    workflow = yaml.safe_load(path.read_text())
    for step in golden_path_steps(workflow):
        unknown = set(step.get("with", {})) - set(ACTION["inputs"])
        assert not unknown, f"{path.name}: inputs not in action.yml: {sorted(unknown)}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_examples__every_output_read_from_golden_path_is_declared(path: Path):
    text = path.read_text()
    ids = {step["id"] for step in golden_path_steps(yaml.safe_load(text)) if "id" in step}
    read = {(step_id, name) for step_id, name in OUTPUT_READ.findall(text) if step_id in ids}
    unknown = {name for _, name in read} - set(ACTION["outputs"])
    assert not unknown, f"{path.name}: outputs not in action.yml: {sorted(unknown)}"


def test_examples__deploy_tags_without_traffic_then_promotes_on_pass():
    workflow = yaml.safe_load((ROOT / "examples" / "deploy.yml").read_text())
    steps = next(iter(workflow["jobs"].values()))["steps"]
    uses = [str(step.get("uses", "")) for step in steps]
    deploy = steps[
        next(i for i, u in enumerate(uses) if u.startswith("google-github-actions/deploy-cloudrun"))
    ]
    check = golden_path_steps(workflow)[0]
    assert any(u.startswith("google-github-actions/auth") for u in uses)
    assert deploy["with"]["no_traffic"] is True
    assert deploy["with"]["tag"] == check["with"]["tag"] == "pr-${{ github.event.pull_request.number }}"
    assert check["with"]["on-pass"] == "promote"
    assert uses.index(deploy["uses"]) < uses.index(check["uses"])
    assert workflow["concurrency"]["group"] == "golden-path-chat-backend"


def test_examples__canary_runs_on_a_schedule_and_manages_p0_issues():
    workflow = yaml.safe_load((ROOT / "examples" / "canary.yml").read_text())
    assert workflow[True]["schedule"][0]["cron"]  # PyYAML reads the `on:` key as True
    check = golden_path_steps(workflow)[0]
    assert (check["with"]["issues"], check["with"]["comment"]) == ("true", "false")


def test_examples__the_pinned_image_is_the_one_release_pushes():
    pinned = golden_path_steps(yaml.safe_load((ROOT / "examples" / "pinned-image.yml").read_text()))[0]
    assert pinned["uses"].startswith("docker://ghcr.io/")
    release = (ROOT / "examples" / "release.yml").read_text()
    assert "docker/build-push-action" in release and "push: true" in release
