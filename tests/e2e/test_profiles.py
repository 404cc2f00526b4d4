"""Built-in protocol profiles, and a backend of another protocol configured from a YAML file alone."""

import json
from pathlib import Path

import pytest
import yaml

from bot import profiles
from bot.config import build_settings
from bot.errors import ConfigError
from tests.cli_support import check_url_argv, results_json, run_main, write_config
from tests.configs import QUIET_TARGETS_YAML, readme_yaml
from tests.standins import realtime_ws

SECRET = "realtime-test-secret-0123456789abcdefghij"

# The README's example, read from the README so the two never drift apart: a team whose backend speaks an
# OpenAI-Realtime-like protocol writes down only what differs from the built-in openai-realtime profile.
REALTIME_CONFIG = readme_yaml("Example: a backend in the OpenAI-Realtime shape")


def test_names__every_built_in_profile_is_a_data_file_the_default_first():
    assert profiles.names()[0] == "reference"
    assert {"reference", "user-message", "openai-realtime"} <= set(profiles.names())
    for name in profiles.names():
        data = yaml.safe_load(profiles.text(name))
        transport = data.get("transport", "websocket")
        assert set(data) == {"health", transport, "journey"} | (
            {"transport"} if "transport" in data else set()
        ), name
        build_settings({"journey": {"profile": name}})  # every profile is valid configuration


def test_load__reference_profile_is_exactly_the_defaults():
    """The default behaves as before: the reference file and the models' defaults must not drift apart."""
    assert build_settings(profiles.load("reference")) == build_settings({})
    assert build_settings(profiles.load("reference")) != build_settings(profiles.load("user-message"))


def test_build_settings__a_config_overrides_only_what_differs():
    settings = build_settings(
        {"journey": {"profile": "openai-realtime", "users": 2}, "websocket": {"path": "/rt"}}
    )
    assert settings.websocket.path == "/rt"
    assert settings.websocket.token.subprotocols == ()  # still from the profile
    assert settings.journey.completion_event == "response.done"
    assert settings.health.paths == ("/healthz",)


def test_build_settings__own_expected_events_keep_only_the_profiles_optional_ones_that_exist():
    journey = {"profile": "openai-realtime", "expected_events": ["response.created", "response.done"]}
    settings = build_settings({"journey": journey})
    assert (settings.journey.optional_events, settings.journey.repeating_events) == ((), ())


@pytest.mark.parametrize(
    ("journey", "key", "expected"),
    [
        ({"event_name": "event.[name"}, "journey.event_name", "not a valid JMESPath expression"),
        ({"answer": {"expression": "response.output[0"}}, "journey.answer.expression", "at position"),
        (
            {"send": [{"frame": '{"text": "{msg}"}'}]},
            "journey.send.0.frame",
            "unknown placeholder {msg} at position 10",
        ),
        (
            {"send": [{"frame": '{"text": {message}}'}]},
            "journey.send.0.frame",
            "not valid JSON after substitution",
        ),
        ({"profile": "grpc"}, "journey.profile", "expected one of: reference"),
    ],
)
def test_build_settings__bad_protocol_is_a_config_error_with_key_text_and_position(journey, key, expected):
    with pytest.raises(ConfigError) as caught:
        build_settings({"journey": journey})
    assert caught.value.key == key
    assert expected in str(caught.value)


def test_main__bad_expression_exits_2_before_probing(tmp_path: Path):
    config = tmp_path / "gp.yml"
    config.write_text("journey:\n  owner:\n    user: 'data.[user'\n")
    code, _out, err = run_main(["check", "--url", "http://127.0.0.1:9", "--config", str(config)], {})
    assert code == 2
    assert "config key 'journey.owner.user'" in err and "'data.[user'" in err and "at position" in err
    assert "probing" not in err and "Traceback" not in err


def test_main__profile_show_prints_a_profile_a_user_can_start_from(tmp_path: Path):
    code, out, _ = run_main(["profile", "show", "openai-realtime"], {})
    assert code == 0
    (tmp_path / "gp.yml").write_text(out)
    settings = build_settings(yaml.safe_load(out))
    assert settings.journey.completion_event == "response.done"
    code, out, _ = run_main(["profile", "show"], {})
    assert out.split() == list(profiles.names())
    code, _, err = run_main(["profile", "show", "nope"], {})
    assert code == 2 and "unknown profile 'nope'" in err


def test_main__legacy_keys_keep_working_with_a_warning_naming_the_new_spelling(tmp_path: Path):
    config = tmp_path / "gp.yml"
    config.write_text("journey:\n  message_type: user_message\n  text_field: content\n  users: 1\n")
    code, _, err = run_main(
        ["demo", "--config", str(config), "--output-dir", str(tmp_path / "out"), "--quiet"], {}
    )
    assert code == 0, err
    assert "warning: config key journey.message_type/text_field is deprecated: write journey.send" in err


def _check_realtime(
    tmp_path: Path, config: str, *, fault: str | None = None, sha: bool = True, quiet: bool = True
) -> dict:
    """`check --url` against the OpenAI-Realtime-like stand-in (``fault``) with ``config``; ``sha``: GITHUB_SHA
    names the stand-in's version. results.json, with the exit code, stdout and stderr added."""
    path = write_config(tmp_path, config)
    env = {"JWT_SECRET_KEY": SECRET} | ({"GITHUB_SHA": realtime_ws.VERSION} if sha else {})
    with realtime_ws.running(secret=SECRET, fault=fault) as backend:
        code, out, err = run_main(check_url_argv(backend.url, path, tmp_path, quiet=quiet), env)
    found = results_json(tmp_path)
    found["exit_code"], found["stdout"], found["stderr"] = code, out, err
    return found


def test_main__a_realtime_backend_configured_from_yaml_alone_passes(tmp_path: Path):
    assert "\ntargets:" not in REALTIME_CONFIG
    saved = _check_realtime(tmp_path, REALTIME_CONFIG + QUIET_TARGETS_YAML)
    assert (saved["verdict"], saved["exit_code"]) == ("pass", 0), saved["findings"] or saved["stderr"]
    answers = [c for c in saved["checks"] if c["id"] == "answer"]
    assert len(answers) == 3 and all("The answer is 4" in c["summary"] for c in answers)
    isolation = [c for c in saved["checks"] if c["id"] == "isolation"]
    assert [c["status"] for c in isolation] == ["pass"] * 3
    assert all("verified by nonce" in c["summary"] for c in isolation)
    assert next(c for c in saved["checks"] if c["id"] == "version")["status"] == "pass"
    assert next(c for c in saved["checks"] if c["id"] == "auth-negative")["status"] == "pass"


@pytest.mark.parametrize(
    ("fault", "kind", "says"),
    [
        ("canned", "answer-canned", "canned-fallback pattern"),
        ("empty", "answer-empty", "the configured path matched nothing"),
        ("cross-talk", "isolation-leak", "another user"),
    ],
)
def test_main__a_realtime_backend_fault_is_found(tmp_path: Path, fault: str, kind: str, says: str):
    saved = _check_realtime(tmp_path, REALTIME_CONFIG + QUIET_TARGETS_YAML, fault=fault)
    assert saved["verdict"] == "fail" and saved["exit_code"] == 1
    finding = next((f for f in saved["findings"] if f["kind"] == kind), None)
    assert finding is not None, saved["findings"]
    assert says in finding["observed"]
    assert finding["evidence"]


def test_main__isolation_without_owner_or_nonce_is_not_verified_and_counted_apart(tmp_path: Path):
    config = REALTIME_CONFIG.replace("[{nonce}] {message}", "{message}") + QUIET_TARGETS_YAML
    saved = _check_realtime(tmp_path, config, sha=False, quiet=False)
    isolation = [c for c in saved["checks"] if c["id"] == "isolation"]
    assert [c["status"] for c in isolation] == ["not verified"] * 3
    assert "no sent frame carries a {nonce}" in isolation[0]["summary"]
    assert saved["verdict"] == "pass" and saved["exit_code"] == 0
    headline = saved["stdout"].splitlines()[0]
    assert headline.endswith("(3 not verified)"), headline
    assert "could not be verified" in saved["stdout"] and "Nothing to do" not in saved["stdout"]


def test_main__demo_openai_realtime_cross_talk_fails_with_isolation_leak(tmp_path: Path):
    argv = ["demo", "--profile", "openai-realtime", "--fault", "cross-talk", "--users", "3"]
    code, _out, err = run_main([*argv, "--output-dir", str(tmp_path), "--quiet"], {})
    assert code == 1, err
    saved = json.loads((tmp_path / "results.json").read_text())
    assert "isolation-leak" in [f["kind"] for f in saved["findings"]]


def test_main__no_health_paths_leaves_the_version_not_verified_not_passed(tmp_path: Path):
    saved = _check_realtime(tmp_path, REALTIME_CONFIG.replace("  paths: [/healthz]", "  paths: []"))
    version = next(c for c in saved["checks"] if c["id"] == "version")
    assert version["status"] == "not verified", version
    assert "no health body named a version" in version["summary"]
    assert saved["exit_code"] == 0, saved["stderr"]


def test_main__health_expression_that_is_false_is_an_unhealthy_finding(tmp_path: Path):
    healthy = "  paths: [/healthz]\n  healthy: \"version == 'other'\""
    saved = _check_realtime(tmp_path, REALTIME_CONFIG.replace("  paths: [/healthz]", healthy), sha=False)
    assert saved["exit_code"] == 1, saved["stderr"]
    finding = next(f for f in saved["findings"] if f["kind"] == "http-status")
    assert finding["fingerprint"] == "realtime-chat:http-status:unhealthy"
    assert "`version == 'other'` (health.healthy) is not true of its body" in finding["observed"]
