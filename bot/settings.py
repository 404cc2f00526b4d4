"""Settings: the frozen pydantic models of everything golden-path can be told, with their validation.

``bot.config`` reads the config file, action inputs and flags into them (defaults < config file < overrides).
Every problem becomes a ``ConfigError`` naming the key, the value and what was expected. Secrets are never
stored here: the config names the environment variable that holds each one (``auth.secret_env``) and the
entry point reads it.
"""

from __future__ import annotations

import functools
import json
import re
import string
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot import expressions, hosts, profiles
from bot.untrusted import has_controls, shown

DEFAULT_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")

# The earlier spelling of the message (journey.message_type / text_field), per earlier profile name.
LEGACY_MESSAGES: dict[str, tuple[str, str]] = {
    "reference": ("start_agent", "user_request"),
    "start-agent": ("start_agent", "user_request"),
    "user-message": ("user_message", "content"),
}
REFERENCE_ANSWER = (
    "result || data.result || payload.result || final_response || data.final_response || "
    "payload.final_response || response || data.response || payload.response || answer || data.answer || "
    "payload.answer || content || data.content || payload.content"
)
REFERENCE_FRAME = (
    '{"type": "start_agent", "payload": {"user_request": "{message}", "thread_id": "{thread_id}"}}'
)


class DeprecatedKey(FutureWarning):
    """A config key that still works under its earlier spelling; the message names the new one."""


def _expression(text: str | None) -> str | None:
    if text is not None and (problem := expressions.expression_problem(text)) is not None:
        raise ValueError(f"{text!r} is not a valid JMESPath expression: {problem}")
    return text


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
    tag: str | None = None  # select the revision by its traffic tag (e.g. pr-7) and test its tag URL
    operation_timeout_s: float = Field(
        default=300, gt=0, le=3600
    )  # a promote/rollback's long-running operation
    # A private service (no --allow-unauthenticated): send a Google-signed ID token (audience: the service URL)
    # as X-Serverless-Authorization. A token passed in GOLDEN_PATH_ID_TOKEN / the id-token input turns it on.
    private: bool = False
    audience: str | None = None  # the ID token's audience; default the service URL (or the tested URL)
    # The session length users expect: a request timeout shorter than this is `request-timeout-short` (0: off).
    min_session_s: float = Field(default=900, ge=0, le=3600)
    # A known-good traffic tag (e.g. stable) a rollback may send traffic to. Without it a rollback goes only to
    # the revision that served before this run (traffic-before), and is refused (exit 3) when there is none.
    rollback_to: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.project or self.region or self.service)

    @field_validator("rollback_to")
    @classmethod
    def _traffic_tag(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z]([a-z0-9-]{0,44}[a-z0-9])?", v):
            raise ValueError(
                f"expected a Cloud Run traffic tag (lowercase letters, digits and hyphens, starting with a "
                f"letter, e.g. stable), got {v!r}"
            )
        return v

    @model_validator(mode="after")
    def _all_or_nothing(self) -> CloudRunSettings:
        given = {"project": self.project, "region": self.region, "service": self.service}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(f"cloud_run.{k}" for k, v in given.items() if not v)
            raise ValueError(f"project, region and service go together; missing {missing}")
        if self.tag and not all(given.values()):
            raise ValueError(
                f"tag {self.tag!r} selects a Cloud Run revision: it needs project, region and service"
            )
        if self.tag and self.revision:
            raise ValueError(
                f"give cloud_run.tag ({self.tag!r}) or cloud_run.revision ({self.revision!r}), not both"
            )
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
    # One health request's TOTAL deadline, body included (httpx's request_s bounds each read, so a body sent a
    # byte a second never trips it); a slow health endpoint costs health this much, never the journey's time.
    timeout_s: float = Field(default=10, gt=0, le=120)
    # JMESPath expressions on the health body: healthy when `healthy` is true (default: `status` is one of
    # ok_statuses), the version at `version` (default: version.field, then version/commit/git_sha/sha), the
    # service's own name at `service`.
    healthy: str | None = None
    version: str | None = None
    service: str | None = "service"

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_path(p) for p in v)

    @field_validator("healthy", "version", "service")
    @classmethod
    def _expressions(cls, v: str | None) -> str | None:
        return _expression(v)


LOGIN_PLACEHOLDERS = ("user", "password", "token", "token_b64")


class LoginSettings(_Section):
    """A login request that answers a token: on the backend (``path``) or another service (``url``)."""

    # An absolute URL (a separate auth service): https, or http only on loopback. Beats `path` when given.
    url: str | None = None
    path: str = "/auth/login"
    method: Literal["POST", "GET"] = "POST"
    # Field values are templates: {user}, {password}, {token}/{token_b64} (auth.token_env's token), and with
    # users_env, every field of that user's entry; {{ and }} are literal braces.
    body: dict[str, Any] = Field(default_factory=lambda: {"username": "{user}", "password": "{password}"})
    # json: a JSON body; form: application/x-www-form-urlencoded (OAuth2 client credentials / password grants).
    encoding: Literal["json", "form"] = "json"
    headers: dict[str, str] = Field(
        default_factory=dict
    )  # templates as in body, e.g. Authorization: Basic ...
    password_env: str = "GOLDEN_PATH_PASSWORD"
    # One environment variable holding a credential per simulated user: a JSON list of objects ({"user": ...,
    # "password": ...}; every field a placeholder) or lines `user:password`. User N takes entry N (wrapping).
    users_env: str | None = None
    token_field: str = "access_token"  # dotted path in the JSON answer (token_expression beats it)
    token_expression: str | None = None  # JMESPath on the JSON answer, e.g. data.session.token
    # JMESPath on the answer to the token's lifetime in seconds (OAuth2 `expires_in`); otherwise the JWT's `exp`.
    # A token is reused by users whose login request is the same until it expires, then fetched again.
    expires_in: str | None = "expires_in"
    timeout_s: float = Field(default=10, gt=0, le=120)  # the login request's total deadline, body included

    @field_validator("path")
    @classmethod
    def _p(cls, v: str) -> str:
        return _path(v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _service_url(v)

    @field_validator("password_env", "users_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return None if v is None else _env_name(v)

    @field_validator("token_expression", "expires_in")
    @classmethod
    def _expressions(cls, v: str | None) -> str | None:
        return _expression(v)

    @field_validator("body")
    @classmethod
    def _json_body(cls, v: dict[str, Any]) -> dict[str, Any]:
        _login_templates(v)
        return _json_values(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HTTP_TOKEN.fullmatch(name):
                raise ValueError(f"expected an HTTP header name (no spaces, CR/LF or ':'), got {shown(name)}")
            if not isinstance(value, str) or _UNSAFE_IN_URL.sub("", value.replace(" ", "")) != value.replace(
                " ", ""
            ):
                raise ValueError(
                    f"header {name}: expected text without control characters, got {shown(value)}"
                )
        _login_templates(v)
        return v

    @model_validator(mode="after")
    def _form_is_flat(self) -> LoginSettings:
        if self.encoding == "form" or self.method == "GET":
            nested = [k for k, v in self.body.items() if isinstance(v, dict | list)]
            if nested:
                raise ValueError(
                    f"body field {shown(nested[0])} is a list or mapping: a form or query string holds only "
                    "text and numbers (use encoding: json)"
                )
        return self

    @property
    def token_path(self) -> str:
        """The JMESPath that reads the token: token_expression, else token_field's dotted path quoted."""
        if self.token_expression:
            return self.token_expression
        return ".".join(json.dumps(part) for part in self.token_field.split("."))

    @property
    def where(self) -> str:
        """The login endpoint as configured, for messages."""
        return self.url or self.path


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

    @field_validator("secret_env", "private_key_env", "token_env")
    @classmethod
    def _env(cls, v: str) -> str:
        return _env_name(v)

    @field_validator("claims")
    @classmethod
    def _json_claims(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _json_values(v)


class TokenHeader(_Section):
    name: str = "Authorization"
    format: str = "Bearer {token}"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _HTTP_TOKEN.fullmatch(v):
            raise ValueError(f"expected an HTTP header name (no spaces, CR/LF or ':'), got {shown(v)}")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if _UNSAFE_IN_URL.sub("", v.replace(" ", "")) != v.replace(" ", ""):
            raise ValueError(f"expected a header value template without control characters, got {shown(v)}")
        return _token_template(v)


class TokenSettings(_Section):
    """How the token travels on the upgrade; each way is independent, and all may be off."""

    # `{token_b64}` is base64url(token) without padding; `{token}` the token itself. A template without a
    # placeholder (e.g. `jwt-auth`) is offered with and without a token.
    subprotocols: tuple[str, ...] = ("jwt-auth", "jwt.{token_b64}")
    header: TokenHeader | None = Field(default_factory=TokenHeader)
    query: str | None = None  # a query parameter name, e.g. `token`

    @field_validator("subprotocols")
    @classmethod
    def _templates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for template in v:
            _subprotocol_template(template)  # only {token}/{token_b64}; an HTTP token once filled (no CR/LF)
        return tuple(_token_template(t) for t in v)

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        if v is not None and not _HTTP_TOKEN.fullmatch(v):
            raise ValueError(f"expected a query parameter name (letters, digits, -._~), got {shown(v)}")
        return v


class WebSocketSettings(_Section):
    path: str = "/ws"
    token: TokenSettings = Field(default_factory=TokenSettings)
    require_subprotocol_echo: bool = True  # browsers drop a connection whose offered protocols get no echo
    # The check without credentials: it runs the journey's opening steps (upgrade, then the frames sent before
    # the first expected event) anonymously; a refusal at any of them passes, the journey's events fail it.
    negative_auth_check: bool = True
    auth_close_codes: tuple[int, ...] = (
        1008,
        4001,
        4003,
        4401,
        4403,
    )  # close codes that mean "not authorised"
    open_timeout_s: float = Field(default=10, gt=0, le=120)

    @field_validator("path")
    @classmethod
    def _p(cls, v: str) -> str:
        return _path(v)

    @model_validator(mode="before")
    @classmethod
    def _legacy_token_keys(cls, data: Any) -> Any:
        """offer_token / subprotocols / query_param -> token.subprotocols / header / query."""
        if not isinstance(data, dict) or not {"offer_token", "subprotocols", "query_param"} & data.keys():
            return data
        data = dict(data)
        token = dict(data.get("token") or {})
        ways = data.pop("offer_token", None)
        templates = data.pop("subprotocols", None)
        query_param = data.pop("query_param", None)
        _deprecated(
            "websocket.offer_token/subprotocols/query_param", "websocket.token (subprotocols, header, query)"
        )
        if ways is not None:
            ways = [ways] if isinstance(ways, str) else list(ways)
            for way in ways:
                if way not in ("subprotocol", "header", "query"):
                    raise ValueError(f"offer_token: expected subprotocol, header or query, got {way!r}")
            token["header"] = token.get("header", {}) if "header" in ways else None
            token["query"] = (query_param or "token") if "query" in ways else None
            if templates is None:
                templates = ["jwt-auth", "jwt.{token_b64}"] if "subprotocol" in ways else []
            elif "subprotocol" not in ways:
                templates = [t for t in templates if "{" not in str(t)]
        elif query_param is not None:
            token["query"] = query_param
        if templates is not None:
            token["subprotocols"] = templates
        data["token"] = token
        return data


class StreamTokenSettings(_Section):
    """How the token travels on the SSE request and on the journey's request steps; each way independent."""

    header: TokenHeader | None = Field(default_factory=TokenHeader)
    query: str | None = None  # a query parameter name, e.g. `token`

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        if v is not None and not _HTTP_TOKEN.fullmatch(v):
            raise ValueError(f"expected a query parameter name (letters, digits, -._~), got {shown(v)}")
        return v


class SseSettings(_Section):
    """The SSE transport: one HTTP request whose answer is a `text/event-stream` of the journey's events."""

    path: str = "/api/chat"  # may hold {placeholders} (percent-encoded) and its own ?query
    method: Literal["POST", "GET"] = "POST"
    # A JSON template; placeholders as in journey.send, plus journey.values and request-step extracts.
    body: str | None = '{"message": "{message}", "thread_id": "{thread_id}"}'
    headers: dict[str, str] = Field(default_factory=dict)  # extra headers; values may use {token}
    token: StreamTokenSettings = Field(default_factory=StreamTokenSettings)
    # The data that ends the stream (OpenAI-compatible servers, the AI SDK), read as an event of that name;
    # null when the server sends none.
    sentinel: str | None = "[DONE]"
    # The end of the body read as an event of this name (ADK: the body's end ends the run); null: the body
    # ending before the completion event is `stream-closed-early`. A body with no event at all is always that.
    body_end_event: str | None = None
    # The SSE `event:` field, when the server sets one, is the event name; else journey.event_name on the data.
    event_field: bool = True
    negative_auth_check: bool = True  # the stream request without a token must be refused
    open_timeout_s: float = Field(default=10, gt=0, le=120)  # until the answer's status and headers

    @field_validator("path")
    @classmethod
    def _p(cls, v: str) -> str:
        return _path(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        return _header_templates(v)


class EmitSettings(_Section):
    """One Socket.IO event the client emits: its name, its data (a JSON template), and when."""

    event: str
    data: str | None = None  # a JSON object template; null: the event carries no data
    after: str | None = None  # emitted once an event of this name (Socket.IO's, or the journey's) arrived

    @model_validator(mode="after")
    def _event_name(self) -> EmitSettings:
        if not self.event or _UNSAFE_IN_URL.sub("", self.event) != self.event.replace(" ", ""):
            raise ValueError(f"event: expected a Socket.IO event name, got {shown(self.event)}")
        return self


class SocketIOSettings(_Section):
    """The Socket.IO transport (python-socketio's client: Engine.IO polling, then the WebSocket upgrade)."""

    path: str = "/socket.io"  # the server's socketio_path (Chainlit: /ws/socket.io)
    namespace: str = "/"
    # The CONNECT auth payload: a JSON template (placeholders as the frames, plus {token}); null: none.
    auth: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # values may use {token}
    token: StreamTokenSettings = Field(default_factory=StreamTokenSettings)
    transports: tuple[Literal["polling", "websocket"], ...] = ("polling", "websocket")
    emit: tuple[EmitSettings, ...] = Field(
        default_factory=lambda: (
            EmitSettings(event="message", data='{"text": "{message}", "thread_id": "{thread_id}"}'),
        )
    )
    # The event that starts this message's run: expected events before it (a completion the connection itself
    # produced, a welcome message) are not this run's.
    run_starts_with: str | None = None
    negative_auth_check: bool = True  # connecting without credentials must be refused
    open_timeout_s: float = Field(default=10, gt=0, le=120)  # Engine.IO handshake and the namespace CONNECT

    @field_validator("path")
    @classmethod
    def _p(cls, v: str) -> str:
        return _path(v)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return _path(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        return _header_templates(v)

    @field_validator("transports")
    @classmethod
    def _transports(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("name at least one of polling, websocket")
        return v


class RequestStepSettings(_Section):
    """A plain HTTP request a journey makes before it connects (create a session, log in for a cookie)."""

    name: str = "request"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str  # may hold {placeholders} (percent-encoded); URL-absolute paths only, on the backend's host
    body: str | None = None  # a JSON template, as journey.send
    headers: dict[str, str] = Field(default_factory=dict)  # values may use {token}
    send_token: bool = True  # the token as the transport sends it (sse.token), e.g. a Bearer header
    # Values taken from the JSON answer by JMESPath, usable as {name} in later steps, the stream request and
    # the frames; cookies the answer sets go on every later request of this user (never another user's).
    extract: dict[str, str] = Field(default_factory=dict)
    ok_statuses: tuple[int, ...] = (200, 201)
    timeout_s: float = Field(default=10, gt=0, le=120)  # the request's total deadline, body included

    @field_validator("path")
    @classmethod
    def _p(cls, v: str) -> str:
        return _path(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        return _header_templates(v)

    @field_validator("extract")
    @classmethod
    def _extract(cls, v: dict[str, str]) -> dict[str, str]:
        for name, expression in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"extract: {shown(name)} is not a placeholder name (letters, digits, _)")
            if name in expressions.PLACEHOLDERS or name in expressions.TOKEN_PLACEHOLDERS:
                raise ValueError(f"extract: {{{name}}} is a built-in placeholder; choose another name")
            _expression(expression)
        return v


class FrameSettings(_Section):
    """One frame the client sends: a JSON template, optionally once a given event has arrived."""

    frame: str
    after: str | None = None  # sent once this event has arrived on the connection (at once if it already has)
    # turn: sent on every turn (the message); connection: once per connection, before the turn's frames
    # (graphql-ws connection_init), so a turn on the same connection does not send it again.
    each: Literal["turn", "connection"] = "turn"

    @field_validator("frame")
    @classmethod
    def _template(cls, v: str) -> str:
        if (problem := expressions.template_problem(v)) is not None:
            # The reason (with its position) first; only the echoed template is cut.
            raise ValueError(f"not a valid frame template: {problem} (template {shown(v)})")
        return v


class AnswerSettings(_Section):
    # On the completion frame; with `stream_event`, on each frame of that event, the results concatenated.
    expression: str = REFERENCE_ANSWER
    stream_event: str | None = None
    # With stream_event: `concat` joins every frame's match (deltas); `last` takes the last one (ADK's final text).
    combine: Literal["concat", "last"] = "concat"

    @field_validator("expression")
    @classmethod
    def _expr(cls, v: str) -> str:
        return _expression(v) or v


class OwnerSettings(_Section):
    """Where each event names its owner; a value that is present must be this user's (absent proves nothing)."""

    user: str | None = "user_id || data.user_id || payload.user_id"
    run: str | None = "run_id || data.run_id || payload.run_id"
    thread: str | None = "thread_id || data.thread_id || payload.thread_id"

    @field_validator("user", "run", "thread")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        return _expression(v)


class TurnSettings(_Section):
    """One message of a conversation: sent on the journey's connection (or a new one, with `reconnect`)."""

    message: str
    # The answer must match this regular expression ({nonce}, {thread_id}, {user} filled in, regex-escaped).
    expect: str | None = None
    # ...and/or this JMESPath must be true on the completion frame, e.g. `length(data.sources) > `0``.
    expect_expression: str | None = None
    # Close the connection first and reconnect as the same user to the same thread: Cloud Run may route the new
    # connection to another instance. An expectation that fails after a reconnect is `session-lost`.
    reconnect: bool = False

    @field_validator("expect")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(expressions.render_text(v, {p: "x" for p in expressions.PLACEHOLDERS}))
            except (re.error, RecursionError, OverflowError) as exc:
                raise ValueError(f"{shown(v)} is not a valid regular expression ({exc})") from None
        return v

    @field_validator("expect_expression")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        return _expression(v)


class JourneySettings(_Section):
    name: str = "AI chat"
    profile: str = profiles.DEFAULT  # a built-in profile: the base the other keys override
    message: str = "What is 2 + 2? Answer in one sentence."
    send: tuple[FrameSettings, ...] = (FrameSettings(frame=REFERENCE_FRAME),)
    event_name: str = "type"  # where a frame's event name is (JMESPath)
    expected_events: tuple[str, ...] = DEFAULT_EVENTS
    repeating_events: tuple[str, ...] = ()  # may arrive many times (delta streams)
    optional_events: tuple[str, ...] = ()  # may be missing
    completion_event: str = "agent_completed"
    error_events: tuple[str, ...] = ("error", "error_message", "agent_error")
    ignored_events: tuple[str, ...] = ("connection_established", "heartbeat", "pong")
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    owner: OwnerSettings = Field(default_factory=OwnerSettings)
    canned_patterns: tuple[str, ...] = (r"^Agent response for:", r"^I'm sorry, I (?:cannot|can't) help")
    # Events that end the stream (graphql-ws `complete`): one arriving before the completion event ends the turn
    # at once, with the missing events as `event-missing`, instead of waiting out event_timeout_s.
    end_events: tuple[str, ...] = ()
    # Which frames count for "longest gap between events" once the first expected event arrived: expected events,
    # repeats (deltas) included, so a stall mid-answer shows (expected); or every frame, heartbeats too (all).
    gap: Literal["expected", "all"] = "expected"
    # Several messages in one conversation: each awaited to its completion and judged on its own. Empty: one turn
    # with `message`.
    turns: tuple[TurnSettings, ...] = ()
    event_timeout_s: float = Field(default=30, gt=0, le=600)  # since the last expected event
    sla_s: float = Field(default=45, gt=0, le=600)
    # Connection lifetime: the run's first user keeps its connection open this long after its journey, with
    # WebSocket pings, and the report says whether, when and by whom it was closed (0: off).
    hold_s: float = Field(default=0, ge=0, le=3600)
    # All shards' users together; one runner handles about 1,000 (README: Performance), shards go further.
    users: int = Field(default=5, ge=1, le=10_000)
    # Plain HTTP requests before connecting, in order (e.g. ADK's session), and constant template values
    # (e.g. {app}); both name placeholders the later templates may use.
    requests: tuple[RequestStepSettings, ...] = ()
    values: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """message_type / text_field -> send; answer_fields -> answer.expression."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "message_type" in data or "text_field" in data:
            _deprecated("journey.message_type/text_field", "journey.send (a list of JSON frame templates)")
            profile = str(data.get("profile", profiles.DEFAULT))
            message_type, text_field = LEGACY_MESSAGES.get(profile, LEGACY_MESSAGES["reference"])
            message_type = str(data.pop("message_type", None) or message_type)
            text_field = str(data.pop("text_field", None) or text_field)
            template = {
                "type": message_type,
                "payload": {text_field: "{message}", "thread_id": "{thread_id}"},
            }
            data["send"] = [{"frame": json.dumps(template)}]
        if "answer_fields" in data:
            _deprecated("journey.answer_fields", "journey.answer.expression (JMESPath)")
            fields = data.pop("answer_fields")
            fields = [fields] if isinstance(fields, str) else list(fields or [])
            if not all(isinstance(f, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f) for f in fields):
                raise ValueError(f"answer_fields: expected plain field names, got {fields!r}")
            chain = " || ".join(f"{c}{f}" for f in fields for c in ("", "data.", "payload."))
            answer = dict(data.get("answer") or {})
            answer["expression"] = chain or "null"
            data["answer"] = answer
        return data

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        if profiles.canonical(v) is None:
            raise ValueError(f"unknown profile {v!r}; expected one of: {', '.join(profiles.names())}")
        return v

    @functools.cached_property
    def conversation(self) -> tuple[TurnSettings, ...]:
        """The turns to run: `turns`, or one turn with `message` (built once: every user asks)."""
        return self.turns or (TurnSettings(message=self.message),)

    @field_validator("event_name")
    @classmethod
    def _event_name(cls, v: str) -> str:
        return _expression(v) or v

    @field_validator("canned_patterns")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as exc:
                raise ValueError(f"{shown(pattern)} is not a valid regular expression ({exc})") from None
        return v

    @model_validator(mode="after")
    def _events_are_consistent(self) -> JourneySettings:
        expected = list(self.expected_events)
        if self.completion_event not in expected:
            raise ValueError(
                f"completion_event {self.completion_event!r} must be one of expected_events {expected}"
            )
        for key in ("repeating_events", "optional_events"):
            stray = [e for e in getattr(self, key) if e not in expected]
            if stray:
                raise ValueError(f"{key} {stray} must be among expected_events {expected}")
        stray = [e for e in self.end_events if e in expected]
        if stray:
            raise ValueError(f"end_events {stray} must not be among expected_events {expected}")
        if self.turns and self.turns[0].reconnect:
            raise ValueError(
                "turns.0.reconnect: the first turn opens the connection; reconnect from turn 2 on"
            )
        if self.answer.stream_event is not None and self.answer.stream_event not in expected:
            raise ValueError(
                f"answer.stream_event {self.answer.stream_event!r} must be one of expected_events"
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

    @field_validator("templates_dir", mode="before")
    @classmethod
    def _templates_dir(cls, v: Any) -> Any:
        return local_path(v)


class GitHubSettings(_Section):
    publish: bool = False
    pr: int | None = Field(default=None, ge=1)
    comment: bool = True
    issues: bool = True
    labels: tuple[str, ...] = ("P0", "golden-path")
    assignees: tuple[str, ...] = ()
    close_after_passes: int = Field(default=1, ge=1, le=100)
    max_retries: int = Field(default=3, ge=0, le=10)
    # A recurrence reopens an issue closed within this many days; older ones stay closed and a new one is filed.
    reopen_window_days: int = Field(default=30, ge=1, le=365)
    # After editing the sticky comment, wait this long and read it again: a concurrent run's edit that landed
    # meanwhile is merged instead of lost (GitHub has no conditional edit).
    settle_s: float = Field(default=1.0, ge=0, le=30)
    # The incident track: only a pass on the same track closes its issue. Default: the tested Cloud Run tag, else
    # pr-N for pull_request events, else the branch (the default branch is `production`).
    track: str | None = None
    # An issue a person closed as not planned (or duplicate) is never reopened; after this many failing runs in a
    # row a new issue is filed that links it.
    reopen_after_runs: int = Field(default=3, ge=1, le=100)
    # Requests one listing of issues may make (100 issues each); reaching it is a warning naming this key.
    max_list_requests: int = Field(default=30, ge=1, le=1000)

    @field_validator("track")
    @classmethod
    def _track(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", v):
            raise ValueError(
                f"expected a track name of letters, digits, '.', '_', '-' or '/' (at most 100, e.g. production, "
                f"canary, pr-42), got {v!r}"
            )
        return v


class GateSettings(_Section):
    # correctness: exit 1 on every finding except a missed performance target (a warning: shared runners are
    # noisy); any: performance too; p0: only P0 findings. Version skew fails under every value.
    fail_on: Literal["correctness", "any", "p0"] = "correctness"
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
        if v and v.startswith("http://") and not hosts.is_local_http(v):
            raise ValueError(
                f"plain http:// is only allowed for a local stand-in on loopback (127.0.0.1, localhost, [::1]); "
                f"use https:// for {v!r}"
            )
        return v


class BaselineSettings(_Section):
    """The serving revision measured in the same run: the honest performance signal on shared runners."""

    enabled: bool = True  # when the new revision is tested at its tag URL and receives no traffic
    url: str | None = None  # the serving revision's URL; default the service URL (while the new one has 0%)
    max_ratio: float = Field(default=1.5, ge=1)  # p95 beyond this factor of the baseline's is a regression...
    min_delta_ms: float = Field(default=50, ge=0)  # ...and at least this much slower

    @field_validator("url")
    @classmethod
    def _baseline_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {v!r}")
        return v.rstrip("/")


class TimeoutSettings(_Section):
    connect_s: float = Field(default=10, gt=0, le=120)
    request_s: float = Field(default=10, gt=0, le=120)
    run_s: float = Field(default=300, gt=0, le=3600)  # one deadline over the whole probe


TRANSPORTS = ("websocket", "sse", "socketio")


class Settings(_Section):
    url: str | None = None
    # How the journey's events travel: a WebSocket (default), Server-Sent Events, or Socket.IO.
    transport: str = "websocket"
    service: str | None = None  # name used in reports, markers and fingerprints
    output_dir: Path = Path("golden-path-out")
    cloud_run: CloudRunSettings = Field(default_factory=CloudRunSettings)
    version: VersionSettings = Field(default_factory=VersionSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)
    sse: SseSettings = Field(default_factory=SseSettings)
    socketio: SocketIOSettings = Field(default_factory=SocketIOSettings)
    journey: JourneySettings = Field(default_factory=JourneySettings)
    load: LoadSettings = Field(default_factory=LoadSettings)
    targets: TargetsSettings = Field(default_factory=TargetsSettings)
    impact: ImpactSettings = Field(default_factory=ImpactSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)

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
            for name, value in self.sse.headers.items():
                _check_template(
                    f"sse.headers.{name}", value, [*known, *expressions.TOKEN_PLACEHOLDERS], json_body=False
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


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"expected a path starting with '/', got {shown(value)}")
    if _UNSAFE_IN_URL.search(value):
        raise ValueError(
            f"expected a path without spaces or control characters (CR, LF, ...), got {shown(value)}"
        )
    return value


# -- validation helpers (values quoted in messages are cut: a 10 MB bad value still gives a short line) ------

_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token: what a subprotocol may be
_TEMPLATE_FIELDS = frozenset({"token", "token_b64"})


def local_path(value: Any) -> Any:
    """A file or directory path as given (str or Path); one with a NUL, a line break or another control
    character is refused (the OS refuses NUL later with a crash; the others are a mistake or an attack)."""
    if isinstance(value, str | PurePath) and has_controls(str(value)):
        raise ValueError(
            f"expected a path without control characters (NUL, CR, LF, ESC, ...), got {shown(str(value))}"
        )
    return value


def _base_url(value: str) -> str:
    if _UNSAFE_IN_URL.search(value):
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


def _service_url(value: str) -> str:
    """An absolute URL of another service (a login endpoint): https, or plain http only on loopback."""
    if _UNSAFE_IN_URL.search(value):
        raise ValueError(f"expected a URL without spaces or control characters, got {shown(value)}")
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "credentials inside the URL are not accepted (they would be printed in every report): give the "
            "secret through auth.login.body or headers and the environment"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ValueError(f"expected an https:// URL with a host, got {shown(value)}")
    if parts.scheme == "http" and not hosts.is_loopback(parts.hostname):
        raise ValueError(
            f"plain http:// is only allowed on loopback (127.0.0.1, localhost, [::1]); use https:// for "
            f"{shown(value)}: the body carries a secret"
        )
    return value


def _login_templates(mapping: dict[str, Any]) -> None:
    """Placeholders in login body/header values must be names (``{user}``), never attribute lookups."""
    for key, value in mapping.items():
        if isinstance(value, str):
            for name, position in expressions.placeholders(value):
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ValueError(
                        f"{shown(key)}: {{{name[:40]}}} at position {position} is not a placeholder name; "
                        f"expected e.g. {', '.join('{' + p + '}' for p in LOGIN_PLACEHOLDERS)}"
                    )


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"expected an environment variable name like JWT_SECRET_KEY, got {shown(value)}")
    return value


def _json_values(mapping: dict[str, Any]) -> dict[str, Any]:
    """Claims and login bodies go out as JSON: a YAML date (unquoted 2025-01-01) or a set cannot."""
    for key, value in mapping.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise ValueError(
                f"{shown(key)} holds a {type(value).__name__}, not a JSON value "
                "(strings, numbers, true/false, lists, mappings): quote it, e.g. '2025-01-01'"
            ) from None
    return mapping


def _subprotocol_template(template: str) -> None:
    """Only ``{token}`` and ``{token_b64}``, nothing else (``{token.__class__}`` would read attributes), and
    what is left must be a valid subprotocol (an HTTP token: no spaces, CR/LF, commas or quotes)."""
    expected = "only {token} and {token_b64} may be used"
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{shown(template)} is not a valid template ({exc}): {expected}") from None
    literal = ""
    for text, name, spec, conversion in fields:
        literal += text + ("x" if name is not None else "")
        if name is not None and (name not in _TEMPLATE_FIELDS or spec or conversion):
            raise ValueError(f"{shown(template)} is not a valid template: {expected}")
    if not _HTTP_TOKEN.match(literal):
        raise ValueError(
            f"{shown(template)} is not a valid subprotocol: letters, digits and !#$%&'*+-.^_`|~ only"
        )


def _check_template(key: str, template: str, known: list[str], *, json_body: bool) -> None:
    problem = (
        expressions.template_problem(template, known)
        if json_body
        else expressions.unknown_placeholder(template, (*expressions.PLACEHOLDERS, *known))
    )
    if problem is not None:
        raise ValueError(f"{key}: {shown(template)} is not a valid template: {problem}")


def _header_templates(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _HTTP_TOKEN.fullmatch(name):
            raise ValueError(f"expected an HTTP header name (no spaces, CR/LF or ':'), got {shown(name)}")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name}: expected one line of text, got {shown(value)}")
    return headers


def _token_template(template: str) -> str:
    if (problem := expressions.token_template_problem(template)) is not None:
        raise ValueError(f"{template!r} is not a valid template: {problem}")
    return template


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"config key {old} is deprecated: write {new} instead", DeprecatedKey, stacklevel=2)


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge key by key, anything else (lists too) replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out
