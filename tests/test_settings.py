from pathlib import Path

import pytest

from bot.errors import ConfigError, ExitCode
from bot.settings import DeprecatedKey, build_settings, read_config_file


def test_build_settings__defaults_match_the_design():
    settings = build_settings({"url": "https://chat.example.com/"})
    assert settings.url == "https://chat.example.com"
    assert settings.journey.users == 5
    assert settings.journey.sla_s == 45
    assert settings.journey.profile == "reference"
    assert '"type": "start_agent"' in settings.journey.send[0].frame
    assert settings.websocket.token.subprotocols == ("jwt-auth", "jwt.{token_b64}")
    assert (settings.targets.api_ms, settings.targets.handshake_ms) == (100, 50)
    assert (settings.targets.agent_startup_ms, settings.targets.processing_ms, settings.targets.total_ms) == (
        500,
        200,
        1000,
    )
    assert settings.service_name == "chat.example.com"


def test_build_settings__profile_sets_message_shape_and_explicit_keys_win():
    settings = build_settings({"journey": {"profile": "user-message"}})
    assert '{"type": "user_message", "payload": {"content": "{message}"' in settings.journey.send[0].frame
    with pytest.warns(DeprecatedKey, match="journey.send"):
        settings = build_settings({"journey": {"profile": "user-message", "text_field": "text"}})
    assert '"payload": {"text": "{message}"' in settings.journey.send[0].frame
    assert '"type": "user_message"' in settings.journey.send[0].frame


def test_build_settings__kebab_case_keys_and_overrides():
    settings = build_settings(
        {"journey": {"event-timeout-s": 3}, "websocket": {"token": {"header": None}}},
        {"journey.users": 2, "cloud_run.project": None},
    )
    assert settings.journey.event_timeout_s == 3
    assert settings.journey.users == 2
    assert settings.websocket.token.header is None


@pytest.mark.parametrize(
    ("data", "key", "expectation"),
    [
        ({"journey": {"users": 0}}, "journey.users", "greater than or equal to 1 (got 0)"),
        ({"websocket": {"pth": "/ws"}}, "websocket.pth", "unknown key; expected one of:"),
        ({"websocket": {"path": "ws"}}, "websocket.path", "expected a path starting with '/', got 'ws'"),
        ({"url": "ftp://x"}, "url", "expected an http:// or https:// URL"),
        ({"cloud_run": {"project": "p"}}, "cloud_run", "missing cloud_run.region, cloud_run.service"),
        (
            {"journey": {"canned_patterns": ["("]}},
            "journey.canned_patterns",
            "not a valid regular expression",
        ),
        ({"auth": {"mode": "hs512"}}, "auth.mode", "'hs256', 'rs256', 'token', 'login' or 'none'"),
        ({"journey": {"completion_event": "done"}}, "journey", "must be one of expected_events"),
        ({"impact": {"currency": "dollars"}}, "impact.currency", "dollars"),
    ],
)
def test_build_settings__bad_values_name_key_value_and_expectation(data, key, expectation):
    with pytest.raises(ConfigError) as caught:
        build_settings(data)
    assert caught.value.key == key
    assert expectation in str(caught.value)
    assert str(caught.value).startswith(f"config key '{key}'")
    assert caught.value.exit_code is ExitCode.USAGE


def test_read_config_file__reports_missing_malformed_and_non_mapping(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("journey:\n  users: [1\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        read_config_file(bad)
    listing = tmp_path / "list.yml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_config_file(listing)
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert read_config_file(empty) == {}
