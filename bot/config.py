"""Settings as the entry point builds them: the config file, then the flags (or the Action's inputs) over it, then
the defaults under both; and the credentials named by the settings, read from the environment it is given.

Each deprecated key is printed once as a warning naming its new spelling.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.auth import Credentials, parse_users
from bot.errors import UsageError
from bot.settings import DeprecatedKey, Settings, build_settings, normalise_keys, read_config_file

# Flags and action inputs -> dotted config keys (the input name is the flag without leading dashes).
OVERRIDES: dict[str, str] = {
    "url": "url",
    "project": "cloud_run.project",
    "region": "cloud_run.region",
    "revision": "cloud_run.revision",
    "tag": "cloud_run.tag",
    "ready_timeout": "cloud_run.ready_timeout_s",
    "run_timeout": "timeouts.run_s",
    "cloud_run_endpoint": "cloud_run.endpoint",
    "users": "journey.users",
    "load_users": "load.users",
    "expected_version": "version.expected",
    "expected_image": "version.expected_image",
    "output_dir": "output_dir",
    "templates_dir": "report.templates_dir",
    "publish": "github.publish",
    "pr": "github.pr",
    "fail_on": "gate.fail_on",
    "on_pass": "gate.on_pass",
    "on_fail": "gate.on_fail",
    "ws_path": "websocket.path",
    "auth_mode": "auth.mode",
    "arr_at_risk": "impact.arr_at_risk",
    "labels": "github.labels",
    "close_after_passes": "github.close_after_passes",
    "assignees": "github.assignees",
    "comment": "github.comment",
    "issues": "github.issues",
    "private": "cloud_run.private",
    "baseline_url": "baseline.url",
}

# Sections of a config file that describe *where* and *what to change*: the demo ignores them, so a repository's
# real target, traffic gate and publishing never apply to the bundled reference backend.
DEMO_IGNORES = ("url", "service", "cloud_run", "version", "gate", "github", "auth", "baseline")


def read(config_path: Path | None) -> dict[str, Any]:
    """The config file's data (the entry point chose the file: the one given, or its default), {} without one."""
    return normalise_keys(read_config_file(config_path)) if config_path else {}


def overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flags (or inputs) by their flag name -> the dotted keys they set; those not given are left out."""
    return {OVERRIDES[name]: values[name] for name in OVERRIDES if values.get(name) is not None}


def for_target(
    values: Mapping[str, Any],
    *,
    warn: Callable[[str], None],
    extra: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    demo: bool = False,
) -> Settings:
    """The settings of a run against a target: ``values`` are the flags (``config``, the file to read;
    ``service``; each override, None when not given). With ``demo``, the file's target, gate and publishing are
    ignored. Raises ``UsageError`` when there is no target at all."""
    file_data = read(values.get("config"))
    if demo:
        file_data = {k: v for k, v in file_data.items() if k not in DEMO_IGNORES}
    given = overrides(values)
    service = values.get("service")
    if service:
        coordinates = values.get("project") or values.get("region") or file_data.get("cloud_run")
        given["cloud_run.service" if coordinates else "service"] = service
    given.update(extra or {})
    settings = build(file_data, given, warn=warn, defaults=defaults)
    if not settings.url and not settings.cloud_run.configured:
        raise UsageError(
            "no target: give --url, or --project, --region and --service (or set them in the config file)"
        )
    return settings


def build(
    file_data: Mapping[str, Any],
    given: Mapping[str, Any],
    *,
    warn: Callable[[str], None],
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """``build_settings``, with each deprecated key warned about once (``warn`` gets the message)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecatedKey)
        settings = build_settings(file_data, given, defaults=defaults)
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DeprecatedKey)):
        warn(message)
    return settings


def credentials(settings: Settings, env: Mapping[str, str]) -> Credentials:
    """The secrets the settings name (``auth.secret_env`` and the like), from ``env``."""
    auth = settings.auth
    users_env = auth.login.users_env if auth.mode == "login" else None
    users = parse_users(env[users_env], users_env) if users_env and env.get(users_env) else ()
    return Credentials(
        secret=env.get(auth.secret_env) or None,
        private_key=env.get(auth.private_key_env) or None,
        token=env.get(auth.token_env) or None,
        password=env.get(auth.login.password_env) or None,
        users=users,
    )
