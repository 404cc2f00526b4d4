"""`golden-path init`, `validate` and `schema`: what a user runs first in their repository."""

import json
import subprocess
from pathlib import Path

from bot.config import json_schema
from tests.cli_support import run_main
from tests.e2e.test_action_metadata import BIN, ROOT, check_jsonschema


def test_init__writes_a_config_that_validates_and_a_workflow_github_accepts(tmp_path: Path):
    code, _, err = run_main(["init", "--directory", str(tmp_path)])
    assert code == 0, err
    config = tmp_path / ".github" / "golden-path.yml"
    workflow = tmp_path / ".github" / "workflows" / "golden-path.yml"
    assert f"wrote {config}" in err and f"wrote {workflow}" in err
    assert config.read_text().startswith("# yaml-language-server: $schema=")
    assert run_main(["validate", "--config", str(config)])[0] == 0
    assert check_jsonschema("vendor.github-workflows", workflow).returncode == 0
    lint = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", str(workflow)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout


def test_init__refuses_to_overwrite_and_changes_nothing(tmp_path: Path):
    mine = tmp_path / ".github" / "golden-path.yml"
    mine.parent.mkdir()
    mine.write_text("service: mine\n")
    code, out, err = run_main(["init", "--directory", str(tmp_path)])
    assert code == 2
    assert f"not overwriting {mine}" in err and "nothing was changed" in err
    assert mine.read_text() == "service: mine\n"
    assert not (tmp_path / ".github" / "workflows").exists()
    assert "Traceback" not in out + err


def test_validate__names_the_bad_key_and_exits_2_without_touching_the_network(tmp_path: Path):
    bad = tmp_path / "golden-path.yml"
    bad.write_text("url: http://10.255.255.1\njourney:\n  users: 0\n")  # unroutable: a probe would hang
    code, _, err = run_main(["validate", "--config", str(bad)])
    assert code == 2
    assert "config key 'journey.users'" in err


def test_validate__renders_the_templates_and_reports_a_broken_one(tmp_path: Path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.md.j2").write_text("{% if %}")
    config = tmp_path / "golden-path.yml"
    config.write_text(f"report:\n  templates_dir: {templates}\n")
    code, _, err = run_main(["validate", "--config", str(config)])
    assert code == 2 and "report.md.j2" in err
    ours = (ROOT / "templates" / "report.md.j2").read_text()
    (templates / "report.md.j2").write_text(ours + "\nReviewed by the chat team.\n")
    code, _, err = run_main(["validate", "--config", str(config)])
    assert code == 0, err
    assert "is valid" in err and "templates" in err


def test_schema__prints_the_committed_schema_which_is_up_to_date():
    code, out, _ = run_main(["schema"])
    assert code == 0
    committed = (ROOT / "schema" / "golden-path.schema.json").read_text()
    assert out == json_schema() == committed, "run `golden-path schema > schema/golden-path.schema.json`"
    schema = json.loads(out)
    assert schema["properties"]["gate"]["$ref"] == "#/$defs/GateSettings"
    assert set(schema["$defs"]["GateSettings"]["properties"]["fail_on"]["enum"]) == {
        "correctness",
        "any",
        "p0",
    }


def test_schema__every_key_at_every_depth_has_a_description():
    schema = json.loads(json_schema())
    undescribed: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, prop in (node.get("properties") or {}).items():
                if not (isinstance(prop, dict) and str(prop.get("description", "")).strip()):
                    undescribed.append(f"{where}.{key}")
                walk(prop, f"{where}.{key}")
            for key, value in node.items():
                if key != "properties":
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")

    walk(schema, "#")
    assert not undescribed, f"keys without a description (give the field a docstring): {undescribed}"
    assert len(schema["$defs"]) >= 20
    fail_on = schema["$defs"]["GateSettings"]["properties"]["fail_on"]["description"]
    assert "correctness" in fail_on and "p0" in fail_on
    assert "ISO 4217" in schema["$defs"]["ImpactSettings"]["properties"]["currency"]["description"]


def test_schema__the_config_init_writes_conforms_to_it(tmp_path: Path):
    run_main(["init", "--directory", str(tmp_path)])
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--schemafile", str(ROOT / "schema" / "golden-path.schema.json"),
         str(tmp_path / ".github" / "golden-path.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_init__profile_starts_the_config_from_that_protocol(tmp_path: Path):
    code, _, err = run_main(["init", "--directory", str(tmp_path), "--profile", "openai-realtime"])
    assert code == 0, err
    config = tmp_path / ".github" / "golden-path.yml"
    assert "  profile: openai-realtime" in config.read_text()
    assert "golden-path profile show openai-realtime" in config.read_text()
    assert run_main(["validate", "--config", str(config)])[0] == 0

    from bot.config import build_settings, read_config_file

    settings = build_settings(read_config_file(config))
    assert settings.websocket.path == "/v1/realtime" and settings.health.paths == ("/healthz",)


def test_init__unknown_profile_names_the_ones_there_are_and_writes_nothing(tmp_path: Path):
    code, _, err = run_main(["init", "--directory", str(tmp_path), "--profile", "grpc"])
    assert code == 2 and "unknown profile 'grpc'" in err and "openai-realtime" in err
    assert not (tmp_path / ".github").exists()
