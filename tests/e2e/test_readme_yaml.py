"""What users copy from README works: every YAML block loads strictly (a key given twice is refused, as GitHub
refuses it), every workflow block passes actionlint once set in a workflow, every config block is valid."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from bot import config
from tests.e2e.test_action_metadata import BIN

ROOT = Path(__file__).resolve().parent.parent.parent
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^( *)```ya?ml\n(.*?)^\1```", re.M | re.S)
WORKFLOW_KEYS = {"on", "jobs", "steps", "permissions", "concurrency", "env", "runs-on"}


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line, text) of every ```yaml block, its indentation (inside a list item) removed."""
    found = []
    for match in FENCE.finditer(text):
        indent = len(match[1])
        body = "".join(line[indent:] for line in match[2].splitlines(keepends=True))
        found.append((text[: match.start()].count("\n") + 1, body))
    return found


BLOCKS = yaml_blocks(README)


def is_workflow(data: object) -> bool:
    """A workflow, or a part of one a user pastes into theirs: its steps, or its top-level keys."""
    if isinstance(data, list):
        return all(isinstance(step, dict) and ("uses" in step or "run" in step) for step in data)
    return isinstance(data, dict) and bool(set(data) & WORKFLOW_KEYS)


def as_workflow(data: object) -> dict:
    """The block set in a minimal workflow, where a user would paste it."""
    if isinstance(data, list):
        return {"on": "push", "jobs": {"check": {"runs-on": "ubuntu-latest", "steps": data}}}
    assert isinstance(data, dict)
    if "jobs" in data:
        return {"on": "push", **data}
    top = {k: v for k, v in data.items() if k in ("permissions", "concurrency", "env")}
    job = {k: v for k, v in data.items() if k not in top}
    job.setdefault("steps", [{"run": "true"}])
    return {"on": "push", **top, "jobs": {"check": {"runs-on": "ubuntu-latest", **job}}}


def test_yaml_blocks__finds_every_block_of_readme():
    assert len(BLOCKS) == README.count("```yaml") + README.count("```yml")
    assert sum(is_workflow(config.load_yaml(text)) for _, text in BLOCKS) >= 3


@pytest.mark.parametrize(("line", "text"), BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_readme__yaml_block_loads_strictly(line: int, text: str):
    config.load_yaml(text)  # a key given twice raises


def test_load_yaml__refuses_a_key_given_twice_as_github_does():
    with pytest.raises(yaml.constructor.ConstructorError, match="given twice"):
        config.load_yaml("with:\n  tag: pr-1\n  jwt-secret: x\n  tag: pr-2\n")


WORKFLOWS = [(line, text) for line, text in BLOCKS if is_workflow(config.load_yaml(text))]
CONFIGS = [
    (line, text)
    for line, text in BLOCKS
    if isinstance(config.load_yaml(text), dict) and (line, text) not in WORKFLOWS
]


def test_readme__workflow_blocks_pass_actionlint(tmp_path: Path):
    paths = []
    for line, text in WORKFLOWS:
        path = tmp_path / f"readme-line-{line}.yml"
        path.write_text(yaml.safe_dump(as_workflow(config.load_yaml(text)), sort_keys=False))
        paths.append(str(path))
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", *paths], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("line", "text"), CONFIGS, ids=[f"line-{line}" for line, _ in CONFIGS])
def test_readme__config_blocks_are_valid_settings(line: int, text: str):
    config.build_settings(config.load_yaml(text))
