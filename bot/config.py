"""The config file and overrides -> one ``Settings``: YAML read safely, every problem one ``ConfigError``.

Precedence, lowest first: defaults < config file (YAML) < overrides (action inputs, then CLI flags). A problem
names the key, the value and what was expected (the first one pydantic found, in the user's spelling); the
YAML reader refuses duplicate keys, alias bombs and files that are not a mapping. ``json_schema`` is the same
models as a JSON Schema for editors. ``for_target`` is how the entry point builds a run's settings from its
flags (or the Action's inputs, ``OVERRIDES``), each deprecated key warned about once; ``credentials`` reads
the secrets the settings name from the environment it is given.
"""

from __future__ import annotations

import json
import re
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bot.auth import Credentials, parse_users
from bot.errors import ConfigError, UsageError
from bot.settings import DeprecatedKey, Settings
from bot.settings.base import described
from bot.untrusted import cut, has_controls, shown

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
    "rollback_to": "cloud_run.rollback_to",
    "ws_path": "websocket.path",
    "auth_mode": "auth.mode",
    "arr_at_risk": "impact.arr_at_risk",
    "labels": "github.labels",
    "close_after_passes": "github.close_after_passes",
    "track": "github.track",
    "assignees": "github.assignees",
    "comment": "github.comment",
    "issues": "github.issues",
    "private": "cloud_run.private",
    "baseline_url": "baseline.url",
}

# Sections of a config file that describe *where* and *what to change*: the demo ignores them, so a repository's
# real target, traffic gate and publishing never apply to the bundled reference backend.
DEMO_IGNORES = ("url", "service", "cloud_run", "version", "gate", "github", "auth", "baseline")


# -- loading -------------------------------------------------------------------------------------------------


MAX_CONFIG_BYTES = 1024 * 1024  # a config file is a few KB; a bigger one is a mistake (or an attack)
MAX_CONFIG_DEPTH = 32  # the deepest real key is four levels down (auth.login.body.<field>)
MAX_CONFIG_NODES = 100_000  # values after YAML aliases are expanded: stops a "billion laughs" alias bomb


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML's "last wins" hides mistakes)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {shown(key)} is given twice (remove one)",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML as the config file is read: safe, and a key given twice in one mapping is an error
    (``yaml.constructor.ConstructorError``) instead of YAML's silent "last wins"."""
    return yaml.load(text, Loader=_ConfigLoader)


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML config as a mapping; a missing, unreadable or malformed file is a ``ConfigError``."""
    where_file = f"config file {shown(str(path))}"
    if has_controls(str(path)):
        raise ConfigError(
            "", f"{where_file} (--config, the `config` input): expected a path without control characters"
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("", f"{where_file} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"{where_file} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"{where_file} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            "",
            f"{where_file} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}): save it as UTF-8",
        ) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(
            "", f"{where_file} is not valid YAML{where}" + (f": {cut(str(problem), 300)}" if problem else "")
        ) from None
    except RecursionError:
        raise ConfigError("", f"{where_file} nests deeper than {MAX_CONFIG_DEPTH} levels") from None
    except Exception as exc:  # PyYAML's own constructors raise ValueError & co. (e.g. a date like 2025-13-45)
        raise ConfigError(
            "", f"{where_file} is not valid YAML: {cut(f'{type(exc).__name__}: {exc}', 300)}"
        ) from None
    _check_shape(data, where_file)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            "", f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}"
        )
    return data


def _check_shape(data: Any, where_file: str) -> None:
    """Refuse over-deep nesting and alias bombs before anything walks the data (each alias is one shared
    object to PyYAML, but every copy later made of it is not)."""
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError("", f"{where_file} nests deeper than {MAX_CONFIG_DEPTH} levels")
        if not isinstance(node, dict | list):
            return 1
        known = sizes.get(id(node))
        if known is None:
            children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            known = 1 + sum(size(child, depth + 1) for child in children)
            sizes[id(node)] = known
        if known > MAX_CONFIG_NODES:
            raise ConfigError(
                "", f"{where_file} expands to more than {MAX_CONFIG_NODES} values (YAML aliases, *name?)"
            )
        return known

    size(data, 0)


def build_settings(
    file_data: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """Validate config data plus dotted-key overrides (``{"journey.users": 3}``) into ``Settings``.

    ``defaults`` (dotted keys too) apply only where neither the file nor an override sets the key: e.g.
    ``GITHUB_SHA`` as the expected version.
    """
    _check_shape(file_data, "the configuration")
    data: dict[str, Any] = normalise_keys(dict(file_data or {}))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _put(data, dotted, value, replace=True)
    for dotted, value in (defaults or {}).items():
        if value is not None:
            _put(data, dotted, value, replace=False)
    _strict_scalars(data, Settings, ())
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(*_first_problem(exc)) from None
    except (TypeError, ValueError, RecursionError) as exc:  # a validator's own bug must still be one line
        raise ConfigError("", f"the configuration could not be read: {cut(str(exc), 300)}") from None


def _strict_scalars(data: Any, model: type[BaseModel], loc: tuple[Any, ...]) -> None:
    """Where a number is expected, ``true`` is not 1; where true/false is expected, ``"yes"`` or 1 is not
    true. (pydantic's lax mode accepts both silently; the rest of its coercions are fine for a config: a quoted
    ``'3'`` that worked before keeps working, and ``'three'`` is still refused by pydantic.)"""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        if field is None or value is None:
            continue
        kinds = _scalar_kinds(field.annotation)
        where = (*loc, key)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            _strict_scalars(value, field.annotation, where)
        elif kinds & {int, float} and bool not in kinds and isinstance(value, bool):
            expected = "a whole number" if float not in kinds else "a number"
            raise ConfigError(_show_key(where), f"expected {expected}, got {shown(value)}")
        elif kinds == {bool} and not isinstance(value, bool):
            raise ConfigError(_show_key(where), f"expected true or false, got {shown(value)}")


def _scalar_kinds(annotation: Any) -> set[type]:
    """The plain types an annotation accepts (``int | None`` -> {int})."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return {t for arg in typing.get_args(annotation) for t in _scalar_kinds(arg)}
    return {annotation} if annotation in (int, float, bool) else set()


def _show_key(loc: tuple[Any, ...]) -> str:
    """A dotted key fit for one line: a part with spaces, quotes or line breaks is quoted and cut."""
    return ".".join(
        str(part) if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(part)) else shown(part) for part in loc
    )


def _put(data: dict[str, Any], dotted: str, value: Any, *, replace: bool) -> None:
    node = data
    *parents, leaf = dotted.replace("-", "_").split(".")
    for depth, part in enumerate(parents):
        child = node.get(part)
        if child is not None and not isinstance(child, dict):
            # A flag must not paper over a malformed section (`cloud_run: 5` and --project): say what is wrong.
            where = _show_key(tuple(parents[: depth + 1]))
            raise ConfigError(where, f"expected a mapping of keys, got {shown(child)}")
        if child is None:
            child = {}
            node[part] = child
        node = child
    if replace or node.get(leaf) is None:
        node[leaf] = value


def normalise_keys(data: Any, loc: tuple[Any, ...] = ()) -> Any:
    """Accept `kebab-case` keys as well as `snake_case` (YAML users write both); one key spelled both ways in
    one section is a ``ConfigError`` naming both (which one should win?)."""
    if not isinstance(data, dict):
        return data
    out: dict[Any, Any] = {}
    spelled: dict[Any, Any] = {}
    for k, v in data.items():
        key = k.replace("-", "_") if isinstance(k, str) else k
        if key in spelled:
            raise ConfigError(
                _show_key((*loc, key)),
                f"given twice, as {shown(spelled[key])} and {shown(k)}: keep one spelling",
            )
        spelled[key] = k
        out[key] = v if k in ("claims", "body", "headers") else normalise_keys(v, (*loc, key))
    return out


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors(include_url=False)[0]
    key = _show_key(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":
        parent_model = _model_at(error["loc"][:-1])
        known = ", ".join(sorted(parent_model.model_fields)) if parent_model else ""
        return key, f"unknown key; expected one of: {known}"
    message = cut(str(error["msg"]).removeprefix("Value error, "), 300)
    given = error.get("input")
    if error["type"] in ("missing", "value_error") or isinstance(given, dict):
        return key, message
    return key, f"{message} (got {shown(given)})"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


SCHEMA_ID = "https://raw.githubusercontent.com/your-org/golden-path/main/schema/golden-path.schema.json"


def json_schema() -> str:
    """The JSON Schema of the config file (pydantic's, of ``Settings``), as committed in ``schema/``.

    Editors use it through ``# yaml-language-server: $schema=...``; it describes the snake_case spelling
    (kebab-case keys are accepted by golden-path too, but an editor will flag them).
    """
    schema = described(Settings).model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "golden-path configuration (.github/golden-path.yml)",
    }
    return json.dumps(schema, indent=2) + "\n"


# -- from the entry point's flags and environment ------------------------------------------------------------


def read(config_path: Path | None) -> dict[str, Any]:
    """The config file's data (the entry point chose the file: the one given, or its default), {} without one."""
    return normalise_keys(read_config_file(config_path)) if config_path else {}


def overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flags (or inputs) by their flag name -> the dotted keys they set; those not given are left out."""
    return {OVERRIDES[name]: values[name] for name in OVERRIDES if values.get(name) is not None}


# The keys of `cloud_run` that choose the revision under test: a URL given as a flag or input replaces them.
CLOUD_RUN_TARGET = ("project", "region", "service", "revision", "tag")


def for_target(
    values: Mapping[str, Any],
    *,
    warn: Callable[[str], None],
    note: Callable[[str], None] = lambda _message: None,
    extra: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    demo: bool = False,
) -> Settings:
    """The settings of a run against a target: ``values`` are the flags (``config``, the file to read;
    ``service``; each override, None when not given). Flags beat the file: ``--url`` (without Cloud Run flags)
    replaces the file's Cloud Run target, with a ``note`` saying so. With ``demo``, the file's target, gate and
    publishing are ignored. Raises ``UsageError`` when there is no target at all."""
    file_data = read(values.get("config"))
    url = values.get("url")
    section = file_data.get("cloud_run")
    if (
        url
        and isinstance(section, dict)
        and not any(values.get(k) for k in ("project", "region", "revision", "tag"))
    ):
        replaced = [k for k in CLOUD_RUN_TARGET if section.get(k) is not None]
        if replaced:
            kept = {k: v for k, v in section.items() if k not in CLOUD_RUN_TARGET}
            file_data = {**file_data, "cloud_run": kept}
            note(
                f"--url {url} replaces the config file's Cloud Run target "
                f"({', '.join(f'cloud_run.{k}' for k in replaced)}): that URL is tested as given, no revision "
                "is resolved and no traffic is moved"
            )
    if demo:
        with warnings.catch_warnings():  # warned about once, below
            warnings.simplefilter("ignore", DeprecatedKey)
            build_settings(file_data)  # what the demo ignores must still be well formed
        file_data = {k: v for k, v in file_data.items() if k not in DEMO_IGNORES}
    given = overrides(values)
    service = values.get("service")
    if service:
        coordinates = values.get("project") or values.get("region") or file_data.get("cloud_run")
        given["cloud_run.service" if coordinates else "service"] = service
    given.update(extra or {})
    settings = build_warned(file_data, given, warn=warn, defaults=defaults)
    if not settings.url and not settings.cloud_run.configured:
        raise UsageError(
            "no target: give --url, or --project, --region and --service (or set them in the config file)"
        )
    return settings


def build_warned(
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
