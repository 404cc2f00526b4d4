"""Settings: the config file, action inputs and flags, validated into one frozen ``Settings`` (pydantic).

Precedence, lowest first: defaults < config file (YAML) < overrides (action inputs, then CLI flags).
Every problem becomes a ``ConfigError`` naming the key, the value and what was expected. Secrets are never
stored here: the config names the environment variable that holds each one (``auth.secret_env``) and the
entry point reads it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import ConfigError

DEFAULT_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")

# Wire profiles (DESIGN.md section 3): which message type carries the user's text, and under which key.
PROFILES: dict[str, dict[str, str]] = {
    "start-agent": {"message_type": "start_agent", "text_field": "user_request"},
    "user-message": {"message_type": "user_message", "text_field": "content"},
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CloudRunSettings(_Section):
    project: str | None = None
    region: str | None = None
    service: str | None = None
    revision: str | None = None  # default: the service's latest created revision
    endpoint: str | None = None  # custom Admin API endpoint, e.g. http://127.0.0.1:8123 for a stand-in
    ready_timeout_s: float = Field(default=300, gt=0, le=3600)
    retry_timeout_s: float = Field(default=30, gt=0, le=600)

    @property
    def configured(self) -> bool:
        return bool(self.project or self.region or self.service)

    @model_validator(mode="after")
    def _all_or_nothing(self) -> CloudRunSettings:
        given = {"project": self.project, "region": self.region, "service": self.service}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(f"cloud_run.{k}" for k, v in given.items() if not v)
            raise ValueError(f"project, region and service go together; missing {missing}")
        if self.endpoint is not None and not re.match(r"^https?://[^/\s]+/?$", self.endpoint):
            raise ValueError(
                f"endpoint must be a scheme and host like https://run.googleapis.com, got {self.endpoint!r}"
            )
        return self


class VersionSettings(_Section):
    expected: str | None = None  # default GITHUB_SHA in Actions; compared with the health body's `field`
    expected_image: str | None = None  # an image reference with @sha256:..., or a bare sha256 digest
    field: str = "version"  # dotted path in the health JSON; `commit` and `git_sha` are tried too


class HealthSettings(_Section):
    paths: tuple[str, ...] = ("/health",)
    ok_statuses: tuple[str, ...] = ("healthy", "ok", "ready")
    # The service name the health body should carry, when it names one. When unset, a body naming a
    # front end ("frontend", "web", "ui") is reported as the host routing to the wrong service.
    expected_service: str | None = None
    latency_samples: int = Field(default=3, ge=1, le=50)  # warm requests per path for the API latency metric

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_path(p) for p in v)


class LoginSettings(_Section):
    path: str = "/auth/login"
    method: Literal["POST", "GET"] = "POST"
    body: dict[str, Any] = Field(default_factory=lambda: {"username": "{user}", "password": "{password}"})
    password_env: str = "GOLDEN_PATH_PASSWORD"
    token_field: str = "access_token"  # dotted path in the JSON answer

    @field_validator("path")
    @classmethod
    def _p(cls, v: str) -> str:
        return _path(v)


class AuthSettings(_Section):
    mode: Literal["hs256", "rs256", "token", "login", "none"] = "hs256"
    secret_env: str = "JWT_SECRET_KEY"  # HS256 shared secret
    private_key_env: str = "JWT_PRIVATE_KEY"  # RS256 PEM
    token_env: str = "GOLDEN_PATH_TOKEN"  # mode "token": a token given as a secret
    issuer: str | None = None
    audience: str | None = None
    ttl_s: int = Field(default=900, ge=30, le=86400)
    subject_prefix: str = "golden-path-user"
    claims: dict[str, Any] = Field(default_factory=lambda: {"token_type": "access"})
    login: LoginSettings = Field(default_factory=LoginSettings)


class WebSocketSettings(_Section):
    path: str = "/ws"
    offer_token: tuple[Literal["subprotocol", "header", "query"], ...] = ("subprotocol", "header")
    # `{token_b64}` is base64url(token) without padding; `{token}` the token itself.
    subprotocols: tuple[str, ...] = ("jwt-auth", "jwt.{token_b64}")
    query_param: str = "token"
    require_subprotocol_echo: bool = True  # browsers drop a connection whose offered protocols get no echo
    negative_auth_check: bool = True  # connecting without a token must be refused
    open_timeout_s: float = Field(default=10, gt=0, le=120)

    @field_validator("path")
    @classmethod
    def _p(cls, v: str) -> str:
        return _path(v)

    @field_validator("subprotocols")
    @classmethod
    def _templates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for template in v:
            try:
                template.format(token="t", token_b64="t")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"{template!r} is not a valid template: only {{token}} and {{token_b64}} may be used ({exc!r})"
                ) from None
        return v


class JourneySettings(_Section):
    name: str = "AI chat"
    profile: Literal["start-agent", "user-message"] = "start-agent"
    message_type: str = ""  # default from the profile
    text_field: str = ""  # default from the profile
    message: str = "What is 2 + 2? Answer in one sentence."
    expected_events: tuple[str, ...] = DEFAULT_EVENTS
    completion_event: str = "agent_completed"
    error_events: tuple[str, ...] = ("error", "error_message", "agent_error")
    answer_fields: tuple[str, ...] = ("result", "final_response", "response", "answer", "content")
    canned_patterns: tuple[str, ...] = (r"^Agent response for:", r"^I'm sorry, I (?:cannot|can't) help")
    event_timeout_s: float = Field(default=30, gt=0, le=600)
    sla_s: float = Field(default=45, gt=0, le=600)
    # All shards' users together; one runner handles about 1,000 (README: Performance), shards go further.
    users: int = Field(default=5, ge=1, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            profile = PROFILES.get(str(data.get("profile", "start-agent")), PROFILES["start-agent"])
            data = {**data}
            for key, value in profile.items():
                if not data.get(key):
                    data[key] = value
        return data

    @field_validator("canned_patterns")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from None
        return v

    @model_validator(mode="after")
    def _completion_is_expected(self) -> JourneySettings:
        if self.completion_event not in self.expected_events:
            raise ValueError(
                f"completion_event {self.completion_event!r} must be one of expected_events "
                f"{list(self.expected_events)}"
            )
        return self


class LoadSettings(_Section):
    users: int = Field(default=0, ge=0, le=10_000)  # 0: no load phase
    concurrent: bool = False  # run the load users at the same time as the journey users, not after them


class TargetsSettings(_Section):
    """Metric targets in milliseconds, compared with each metric's p95."""

    api_ms: float = Field(default=100, gt=0)
    handshake_ms: float = Field(default=50, gt=0)
    agent_startup_ms: float = Field(default=500, gt=0)
    processing_ms: float = Field(default=200, gt=0)
    total_ms: float = Field(default=1000, gt=0)


class ImpactSettings(_Section):
    journey: str | None = None  # default: journey.name
    arr_at_risk: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    users_description: str = "users"


class ReportSettings(_Section):
    templates_dir: Path | None = None
    max_comment_chars: int = Field(default=65_000, ge=5_000, le=65_536)
    history: int = Field(default=10, ge=0, le=50)


class GitHubSettings(_Section):
    publish: bool = False
    pr: int | None = Field(default=None, ge=1)
    comment: bool = True
    issues: bool = True
    labels: tuple[str, ...] = ("P0", "golden-path")
    assignees: tuple[str, ...] = ()
    close_after_passes: int = Field(default=1, ge=1, le=100)
    max_retries: int = Field(default=3, ge=0, le=10)


class GateSettings(_Section):
    fail_on: Literal["any", "p0"] = "any"
    on_pass: Literal["none", "promote"] = "none"
    on_fail: Literal["none", "rollback"] = "none"


class LogsSettings(_Section):
    """The revision's own logs (Cloud Logging) under each finding; needs Cloud Run coordinates."""

    mode: Literal["auto", "always", "never"] = "auto"  # auto: only on runs with findings
    endpoint: str | None = None  # custom Logging API endpoint, e.g. http://127.0.0.1:8124 for a stand-in
    page_size: int = Field(default=200, ge=1, le=1000)  # entries per call (at most two calls per run)
    budget_s: float = Field(default=10, gt=0, le=60)  # wall time for both calls together
    top_groups: int = Field(default=5, ge=1, le=20)  # groups shown per finding and for the run
    settle_s: float = Field(default=3, ge=0, le=30)  # Logging ingests entries seconds after they are written

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+/?$", v):
            raise ValueError(
                f"endpoint must be a scheme and host like https://logging.googleapis.com, got {v!r}"
            )
        host = urlsplit(v).hostname if v else None
        if v and v.startswith("http://") and host != "localhost" and not _loopback_ip(host):
            raise ValueError(
                f"plain http:// is only allowed for a local stand-in on loopback (127.0.0.1, localhost, [::1]); "
                f"use https:// for {v!r}"
            )
        return v


class TimeoutSettings(_Section):
    connect_s: float = Field(default=10, gt=0, le=120)
    request_s: float = Field(default=10, gt=0, le=120)
    run_s: float = Field(default=300, gt=0, le=3600)  # one deadline over the whole probe


class Settings(_Section):
    url: str | None = None
    service: str | None = None  # name used in reports, markers and fingerprints
    output_dir: Path = Path("golden-path-out")
    cloud_run: CloudRunSettings = Field(default_factory=CloudRunSettings)
    version: VersionSettings = Field(default_factory=VersionSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)
    journey: JourneySettings = Field(default_factory=JourneySettings)
    load: LoadSettings = Field(default_factory=LoadSettings)
    targets: TargetsSettings = Field(default_factory=TargetsSettings)
    impact: ImpactSettings = Field(default_factory=ImpactSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _gate_needs_cloud_run(self) -> Settings:
        for key, value in (("on_pass", self.gate.on_pass), ("on_fail", self.gate.on_fail)):
            if value != "none" and not self.cloud_run.configured:
                raise ValueError(
                    f"gate.{key} '{value}' changes Cloud Run traffic: it needs cloud_run.project, region and service"
                )
        return self

    @property
    def service_name(self) -> str:
        """The name in fingerprints and markers: explicit, else the Cloud Run service, else the URL's host."""
        if self.service:
            return self.service
        if self.cloud_run.service:
            return self.cloud_run.service
        if self.url:
            return urlsplit(self.url).hostname or "service"
        return "service"


def _loopback_ip(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"expected a path starting with '/', got {value!r}")
    return value


# -- loading -------------------------------------------------------------------------------------------------


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML config as a mapping; a missing, unreadable or malformed file is a ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    import yaml  # ~25 ms: only when there is a config file to read

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(
            "", f"config file {str(path)!r} is not valid YAML{where}" + (f": {problem}" if problem else "")
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            "", f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}"
        )
    return data


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
    data: dict[str, Any] = normalise_keys(dict(file_data or {}))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _put(data, dotted, value, replace=True)
    for dotted, value in (defaults or {}).items():
        if value is not None:
            _put(data, dotted, value, replace=False)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(*_first_problem(exc)) from None


def _put(data: dict[str, Any], dotted: str, value: Any, *, replace: bool) -> None:
    node = data
    *parents, leaf = dotted.replace("-", "_").split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    if replace or node.get(leaf) is None:
        node[leaf] = value


def normalise_keys(data: Any) -> Any:
    """Accept `kebab-case` keys as well as `snake_case` (YAML users write both)."""
    if isinstance(data, dict):
        return {
            (k.replace("-", "_") if isinstance(k, str) else k): (
                v if k in ("claims", "body") else normalise_keys(v)
            )
            for k, v in data.items()
        }
    return data


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        parent_model = _model_at(error["loc"][:-1])
        known = ", ".join(sorted(parent_model.model_fields)) if parent_model else ""
        return key, f"unknown key; expected one of: {known}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    given = error.get("input")
    if error["type"] in ("missing", "value_error") or isinstance(given, dict):
        return key, message
    return key, f"{message} (got {given!r})"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
