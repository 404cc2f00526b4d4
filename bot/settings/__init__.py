"""Settings: the frozen pydantic models of everything golden-path can be told, with their validation.

``bot.config`` reads the config file, action inputs and flags into them (defaults < config file < overrides).
Every problem becomes a ``ConfigError`` naming the key, the value and what was expected. Secrets are never
stored here: the config names the environment variable that holds each one (``auth.secret_env``) and the
entry point reads it.

One module per job, everything importable from here: ``base`` (the section base class and the value checks),
``transport`` (auth, login and the WebSocket / SSE / Socket.IO transports), ``journey`` (the protocol: steps,
frames, events, answer, turns) and ``deploy`` (Cloud Run, health, targets, report, GitHub, gate, logs). This
module holds the root ``Settings``, which ties the sections together and checks what spans them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bot import expressions, profiles
from bot.settings.base import (
    UNSAFE_IN_URL,
    DeprecatedKey,
    Section,
    local_path,
)
from bot.settings.deploy import (
    BaselineSettings,
    CloudRunSettings,
    GateSettings,
    GitHubSettings,
    HealthSettings,
    ImpactSettings,
    LoadSettings,
    LogsSettings,
    ReportSettings,
    TargetsSettings,
    TimeoutSettings,
    VersionSettings,
)
from bot.settings.journey import (
    DEFAULT_EVENTS,
    LEGACY_MESSAGES,
    REFERENCE_ANSWER,
    REFERENCE_FRAME,
    AnswerSettings,
    FrameSettings,
    JourneySettings,
    OwnerSettings,
    RequestStepSettings,
    TurnSettings,
)
from bot.settings.transport import (
    LOGIN_PLACEHOLDERS,
    AuthSettings,
    EmitSettings,
    LoginSettings,
    SocketIOSettings,
    SseHistorySettings,
    SseSettings,
    StreamTokenSettings,
    TokenHeader,
    TokenSettings,
    WebSocketSettings,
)
from bot.untrusted import shown

__all__ = [
    "DEFAULT_EVENTS",
    "LEGACY_MESSAGES",
    "LOGIN_PLACEHOLDERS",
    "REFERENCE_ANSWER",
    "REFERENCE_FRAME",
    "TRANSPORTS",
    "AnswerSettings",
    "AuthSettings",
    "BaselineSettings",
    "CloudRunSettings",
    "DeprecatedKey",
    "EmitSettings",
    "FrameSettings",
    "GateSettings",
    "GitHubSettings",
    "HealthSettings",
    "ImpactSettings",
    "JourneySettings",
    "LoadSettings",
    "LoginSettings",
    "LogsSettings",
    "OwnerSettings",
    "ReportSettings",
    "RequestStepSettings",
    "Section",
    "Settings",
    "SocketIOSettings",
    "SseHistorySettings",
    "SseSettings",
    "StreamTokenSettings",
    "TargetsSettings",
    "TimeoutSettings",
    "TokenHeader",
    "TokenSettings",
    "TurnSettings",
    "VersionSettings",
    "WebSocketSettings",
    "local_path",
]


TRANSPORTS = ("websocket", "sse", "socketio")


class Settings(Section):
    url: str | None = None
    """The backend's base URL (http:// or https://, no query); default: the Cloud Run revision's URL."""
    transport: str = "websocket"
    """How the journey's events travel: a WebSocket (default), Server-Sent Events, or Socket.IO."""
    service: str | None = None
    """The service's name in reports, markers and fingerprints; default: the Cloud Run service, else the
    URL's host."""
    output_dir: Path = Path("golden-path-out")
    """Directory for results.json, the report and the other artifacts."""
    cloud_run: CloudRunSettings = Field(default_factory=CloudRunSettings)
    """The Cloud Run service and revision under test; also needed for traffic gating and logs."""
    version: VersionSettings = Field(default_factory=VersionSettings)
    """The version the revision must report (version skew check)."""
    health: HealthSettings = Field(default_factory=HealthSettings)
    """The health endpoints and how their bodies are read."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """How simulated users get credentials."""
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)
    """The WebSocket transport."""
    sse: SseSettings = Field(default_factory=SseSettings)
    """The Server-Sent Events transport."""
    socketio: SocketIOSettings = Field(default_factory=SocketIOSettings)
    """The Socket.IO transport."""
    journey: JourneySettings = Field(default_factory=JourneySettings)
    """The chat journey every simulated user makes: frames sent, events expected, answer checks."""
    load: LoadSettings = Field(default_factory=LoadSettings)
    """Extra load users run beside or after the journey users."""
    targets: TargetsSettings = Field(default_factory=TargetsSettings)
    """Performance targets (ms) a run's p95 metrics are held to; a miss is `perf-target-missed`."""
    impact: ImpactSettings = Field(default_factory=ImpactSettings)
    """How the report states business impact."""
    report: ReportSettings = Field(default_factory=ReportSettings)
    """The report's templates and size."""
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    """The PR comment and P0 issues on GitHub."""
    gate: GateSettings = Field(default_factory=GateSettings)
    """When the run fails, and what it does to Cloud Run traffic."""
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)
    """The serving revision measured in the same run, for performance comparison."""
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    """Network deadlines and the whole probe's deadline."""
    logs: LogsSettings = Field(default_factory=LogsSettings)
    """The revision's own Cloud Logging entries shown under each finding."""

    @model_validator(mode="before")
    @classmethod
    def _start_from_profile(cls, data: Any) -> Any:
        """The journey's profile is the base of health, websocket and journey; the config overrides it."""
        if not isinstance(data, dict):
            return data
        journey = data.get("journey")
        name = journey.get("profile", profiles.DEFAULT) if isinstance(journey, dict) else profiles.DEFAULT
        found = profiles.canonical(str(name))
        if found is None or found == profiles.DEFAULT:
            return data  # the models' defaults are the reference profile (a test keeps them equal)
        merged = _merged(profiles.load(found), data)
        if isinstance(journey, dict) and "expected_events" in journey:
            # The user's own events: the profile's repeating/optional ones apply only where they still exist.
            events = merged["journey"]["expected_events"]
            for key in ("repeating_events", "optional_events"):
                if key not in journey and isinstance(events, list | tuple):
                    merged["journey"][key] = [e for e in merged["journey"].get(key, []) if e in events]
        return merged

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        return _base_url(v)

    @field_validator("transport")
    @classmethod
    def _transport(cls, v: str) -> str:
        if v not in TRANSPORTS:
            raise ValueError(
                f"unsupported transport {shown(v)}; expected one of: {', '.join(TRANSPORTS)}"
                + (
                    " (Socket.IO is `socketio`)"
                    if v.replace(".", "").replace("-", "").lower() == "socketio"
                    else ""
                )
            )
        return v

    @model_validator(mode="after")
    def _templates_name_known_values(self) -> Settings:
        """Every template may use the built-in placeholders, journey.values and what earlier steps extract."""
        known = list(self.journey.values)
        for index, step in enumerate(self.journey.requests):
            where = f"journey.requests.{index}"
            _check_template(f"{where}.path", step.path, known, json_body=False)
            if step.body is not None:
                _check_template(f"{where}.body", step.body, known, json_body=True)
            for name, value in step.headers.items():
                _check_template(
                    f"{where}.headers.{name}",
                    value,
                    [*known, *expressions.TOKEN_PLACEHOLDERS],
                    json_body=False,
                )
            known.extend(step.extract)
        if self.transport == "socketio":
            token_known = [*known, *expressions.TOKEN_PLACEHOLDERS]
            if self.socketio.auth is not None:
                _check_template("socketio.auth", self.socketio.auth, token_known, json_body=True)
            for index, emit in enumerate(self.socketio.emit):
                if emit.data is not None:
                    _check_template(f"socketio.emit.{index}.data", emit.data, known, json_body=True)
            for name, value in self.socketio.headers.items():
                _check_template(f"socketio.headers.{name}", value, token_known, json_body=False)
        if self.transport == "sse":
            _check_template("sse.path", self.sse.path, known, json_body=False)
            if self.sse.body is not None:
                _check_template("sse.body", self.sse.body, known, json_body=True)
            if self.sse.history is not None:
                _check_history(self.sse.body, self.sse.history, known)
            for name, value in self.sse.headers.items():
                _check_template(
                    f"sse.headers.{name}", value, [*known, *expressions.TOKEN_PLACEHOLDERS], json_body=False
                )
        return self

    @model_validator(mode="after")
    def _journey_fits_the_transport(self) -> Settings:
        """What only one transport can do is refused by name on another, never ignored."""
        transport, journey = self.transport, self.journey
        if transport != "websocket" and "send" in journey.model_fields_set and journey.send:
            carrier = (
                "sse.body (and sse.history)" if transport == "sse" else "socketio.emit (`each`, `after`)"
            )
            raise ValueError(
                f"journey.send: frames are sent only over a WebSocket; with transport {transport} the message "
                f"travels in {carrier}: move it there, or set journey.send to []"
            )
        ends = {"sse.sentinel": self.sse.sentinel, "sse.body_end_event": self.sse.body_end_event}
        marker = next((key for key, name in ends.items() if name == journey.completion_event), None)
        if transport == "sse" and marker is not None:
            for index, turn in enumerate(journey.turns):
                if turn.expect_expression is not None:
                    raise ValueError(
                        f"journey.turns.{index}.expect_expression: the completion event "
                        f"{journey.completion_event!r} is the stream's end ({marker}) and carries no data to "
                        "judge; check the answer with `expect` (a regular expression) instead"
                    )
        return self

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir(cls, v: Any) -> Any:
        return local_path(v)

    @model_validator(mode="after")
    def _gate_needs_cloud_run(self) -> Settings:
        for key, value in (("on_pass", self.gate.on_pass), ("on_fail", self.gate.on_fail)):
            if value != "none" and not self.cloud_run.configured:
                raise ValueError(
                    f"gate.{key} '{value}' changes Cloud Run traffic: it needs cloud_run.project, region and service"
                )
        hold, run = self.journey.hold_s, self.timeouts.run_s
        if hold and hold + self.journey.sla_s > run:
            raise ValueError(
                f"journey.hold_s ({hold:g} s) after a journey of up to journey.sla_s ({self.journey.sla_s:g} s) "
                f"does not fit in timeouts.run_s ({run:g} s): raise timeouts.run_s to at least "
                f"{hold + self.journey.sla_s:g}"
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


_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]+$")


def _base_url(value: str) -> str:
    if UNSAFE_IN_URL.search(value):
        raise ValueError(f"expected a URL without spaces or control characters, got {shown(value)}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", a bad IPv6 literal
        raise ValueError(f"expected an http:// or https:// URL, got {shown(value)}: {exc}") from None
    if parts.username is not None or parts.password is not None:
        # Never echo them: the URL goes into every report; credentials belong in auth (from the environment).
        masked = value.replace(parts.netloc.rsplit("@", 1)[0], "***")
        raise ValueError(
            f"credentials inside the URL are not accepted (they would be printed in every report): give the "
            f"URL without them ({shown(masked)}) and the secret through auth and the environment"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname or not _HOST.match(parts.hostname):
        raise ValueError(f"expected an http:// or https:// URL with a host, got {shown(value)}")
    if port == 0:
        raise ValueError(f"expected a port from 1 to 65535, got 0 in {shown(value)}")
    if parts.query or parts.fragment:
        raise ValueError(f"expected a base URL without ?query or #fragment, got {shown(value)}")
    return value.rstrip("/")


def _check_template(
    key: str, template: str, known: list[str], *, json_body: bool, array: bool = False
) -> None:
    problem = (
        expressions.template_problem(template, known, array=array)
        if json_body
        else expressions.unknown_placeholder(template, (*expressions.PLACEHOLDERS, *known))
    )
    if problem is not None:
        raise ValueError(f"{key}: {shown(template)} is not a valid template: {problem}")


def _check_history(body: str | None, history: SseHistorySettings, known: list[str]) -> None:
    """``sse.history`` needs a body whose ``at`` is a list, and a turn template that is a JSON array."""
    if body is None:
        raise ValueError("sse.history: the earlier turns go into sse.body, which is null: give sse.body")
    _check_template("sse.history.turn", history.turn, [*known, "answer"], json_body=True, array=True)
    sample = json.loads(expressions.render(body, {p: "x" for p in [*expressions.PLACEHOLDERS, *known]}))
    if not isinstance(expressions.dotted(sample, history.at), list):
        raise ValueError(
            f"sse.history.at: {shown(history.at)} is not a list in sse.body; expected the key of the body's "
            "list of messages, e.g. messages"
        )


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge key by key, anything else (lists too) replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out
