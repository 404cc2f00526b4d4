"""action.yml as GitHub loads it: valid YAML, valid against SchemaStore's action schema, consistent with the CLI."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.action import OutputLedger
from bot.config import OVERRIDES

ROOT = Path(__file__).resolve().parent.parent.parent
ACTION = ROOT / "action.yml"
BIN = Path(sys.executable).parent


def check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def test_action_yml__loads_with_pyyaml_and_passes_the_github_actions_schema():
    assert action()["runs"] == {"using": "docker", "image": "Dockerfile", "args": []}
    result = check_jsonschema("vendor.github-actions", ACTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_yml__the_checks_reject_an_unquoted_colon_in_a_description(tmp_path: Path):
    # The defect action.yml shipped with: `description: Revision to test. Default: the latest`.
    broken = tmp_path / "action.yml"
    broken.write_text(
        ACTION.read_text().replace(
            '"Revision to test. Default: the service\'s latest created revision."',
            "Revision to test. Default: the service's latest created revision.",
        )
    )
    assert broken.read_text() != ACTION.read_text()
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(broken.read_text())
    result = check_jsonschema("vendor.github-actions", broken)
    assert result.returncode != 0
    assert "mapping values are not allowed here" in result.stdout + result.stderr


def test_action_yml__only_github_token_has_a_default():
    # GitHub passes a default exactly as if the user had typed it: it would beat the config file.
    with_default = {name for name, spec in action()["inputs"].items() if "default" in spec}
    assert with_default == {"github-token"}


def test_action_yml__every_input_is_read_by_the_action_entry_point():
    read = {name.replace("_", "-") for name in OVERRIDES} | {
        "config", "service", "github-token", "jwt-secret", "jwt-private-key", "token", "login-password", "id-token",
    }  # fmt: skip
    assert set(action()["inputs"]) == read


def test_action_yml__declares_every_output_the_entry_point_writes():
    assert set(action()["outputs"]) == set(OutputLedger.NAMES)
