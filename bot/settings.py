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
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class CloudRunSettings(_Section):
    project: str | None = None
    """The Google Cloud project of the service; project, region and service go together (all or none)."""
    region: str | None = None
    """The Cloud Run region of the service, e.g. us-central1."""
    service: str | None = None
    """The Cloud Run service whose revision is tested; its URL is the tested URL unless `url` or `tag` says
    otherwise."""
    revision: str | None = None
    """The revision to test, by name; default: the service's latest created revision."""
    endpoint: str | None = None
    """A custom Cloud Run Admin API endpoint (scheme and host), e.g. http://127.0.0.1:8123 for a stand-in;
    default: Google's."""
    ready_timeout_s: float = Field(default=300, gt=0, le=3600)
    """Seconds to wait for the revision to become ready; one that fails or is not ready by then is a
    finding."""
    retry_timeout_s: float = Field(default=30, gt=0, le=600)
    """Seconds one Cloud Run API call may spend retrying transient errors (429, 5xx, lost connections),
    honouring Retry-After."""
    tag: str | None = None
    """Select the revision by its traffic tag (e.g. pr-7) and test its tag URL."""
    operation_timeout_s: float = Field(default=300, gt=0, le=3600)
    """Seconds a promote or rollback's long-running operation may take."""
    private: bool = False
    """A private service (no --allow-unauthenticated): send a Google-signed ID token (audience: the service
    URL) as X-Serverless-Authorization. A token passed in GOLDEN_PATH_ID_TOKEN / the id-token input
    turns it on."""
    audience: str | None = None
    """The ID token's audience (private services); default: the service URL (or the tested URL)."""
    min_session_s: float = Field(default=900, ge=0, le=3600)
    """The session length users expect: a request timeout shorter than this is `request-timeout-short` (0:
    off)."""
    rollback_to: str | None = None
    """A known-good traffic tag (e.g. stable) a rollback may send traffic to. Without it a rollback goes
    only to the revision that served before this run (traffic-before), and is refused (exit 3) when
    there is none."""

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
    expected: str | None = None
    """Default GITHUB_SHA in Actions; compared with the health body's `field`."""
    expected_image: str | None = None
    """An image reference with @sha256:..., or a bare sha256 digest."""
    field: str = "version"
    """Dotted path in the health JSON; `commit` and `git_sha` are tried too."""


class HealthSettings(_Section):
    paths: tuple[str, ...] = ("/health",)
    """The health endpoints requested, each a path starting with '/'; every one must answer healthy."""
    ok_statuses: tuple[str, ...] = ("healthy", "ok", "ready")
    """Values of the health body's `status` that mean healthy (when `healthy` is not set)."""
    expected_service: str | None = None
    """The service name the health body should carry, when it names one. When unset, a body naming a front
    end ("frontend", "web", "ui") is reported as the host routing to the wrong service."""
    latency_samples: int = Field(default=3, ge=1, le=50)
    """Warm requests per health path for the API latency metric."""
    timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds for one health request in total, body included (timeouts.request_s bounds each read, so a
    body sent a byte a second never trips it); a slow health endpoint costs health this much, never the
    journey's time."""
    healthy: str | None = None
    """JMESPath on the health body that must be true for healthy; default: `status` is one of ok_statuses."""
    version: str | None = None
    """JMESPath on the health body to the deployed version; default: version.field, then version, commit,
    git_sha, sha."""
    service: str | None = "service"
    """JMESPath on the health body to the service's own name (compared with expected_service); null: not
    read."""

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

    url: str | None = None
    """An absolute login URL (a separate auth service): https, or http only on loopback; beats `path` when
    given."""
    path: str = "/auth/login"
    """The login endpoint's path on the backend (used when `url` is not given)."""
    method: Literal["POST", "GET"] = "POST"
    """The login request's HTTP method; with GET the body fields go in the query string."""
    body: dict[str, Any] = Field(default_factory=lambda: {"username": "{user}", "password": "{password}"})
    """The login request's fields. Values are templates: {user}, {password}, {token}/{token_b64}
    (auth.token_env's token), and with users_env, every field of that user's entry; {{ and }} are
    literal braces."""
    encoding: Literal["json", "form"] = "json"
    """The body's encoding: json, or form (application/x-www-form-urlencoded, as OAuth2 client-credentials
    and password grants expect)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers on the login request; values are templates as in body, e.g. Authorization: Basic ...."""
    password_env: str = "GOLDEN_PATH_PASSWORD"
    """The environment variable holding the password filled into {password}."""
    users_env: str | None = None
    """One environment variable holding a credential per simulated user: a JSON list of objects ({"user":
    ..., "password": ...}; every field a placeholder) or lines `user:password`. User N takes entry N
    (wrapping)."""
    token_field: str = "access_token"
    """Dotted path to the token in the JSON answer (token_expression beats it)."""
    token_expression: str | None = None
    """JMESPath to the token in the JSON answer, e.g. data.session.token; beats token_field."""
    expires_in: str | None = "expires_in"
    """JMESPath on the answer to the token's lifetime in seconds (OAuth2 `expires_in`); otherwise the JWT's
    `exp`. A token is reused by users whose login request is the same until it expires, then fetched
    again."""
    timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds for the login request in total, body included."""

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
    """How users get a token: hs256 / rs256 mint a JWT per user, token uses token_env's token, login calls
    auth.login, none sends no credentials."""
    secret_env: str = "JWT_SECRET_KEY"
    """The environment variable holding the HS256 shared secret (mode hs256)."""
    private_key_env: str = "JWT_PRIVATE_KEY"
    """The environment variable holding the RS256 private key in PEM (mode rs256)."""
    token_env: str = "GOLDEN_PATH_TOKEN"
    """The environment variable holding a ready token (mode token; {token} in login templates)."""
    issuer: str | None = None
    """The minted JWT's `iss` claim; null: none."""
    audience: str | None = None
    """The minted JWT's `aud` claim; null: none."""
    ttl_s: int = Field(default=900, ge=30, le=86400)
    """Lifetime of a minted JWT in seconds (its `exp`), 30 to 86400."""
    subject_prefix: str = "golden-path-user"
    """Start of each minted JWT's `sub`: <prefix>-<user number>-<run>, distinct per simulated user."""
    claims: dict[str, Any] = Field(default_factory=lambda: {"token_type": "access"})
    """Extra claims in every minted JWT (JSON values)."""
    login: LoginSettings = Field(default_factory=LoginSettings)
    """The login request used when mode is `login`."""

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
    """The HTTP header that carries the token."""
    format: str = "Bearer {token}"
    """The header's value; {token} is the token, {token_b64} its base64url form without padding."""

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

    subprotocols: tuple[str, ...] = ("jwt-auth", "jwt.{token_b64}")
    """Subprotocols offered on the upgrade, as templates: `{token_b64}` is base64url(token) without
    padding, `{token}` the token itself. A template without a placeholder (e.g. `jwt-auth`) is offered
    with and without a token."""
    header: TokenHeader | None = Field(default_factory=TokenHeader)
    """Send the token in this header on the upgrade request; null: no header."""
    query: str | None = None
    """Send the token in this query parameter, e.g. `token`; null: not in the query."""

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
    """The WebSocket endpoint's path on the backend."""
    token: TokenSettings = Field(default_factory=TokenSettings)
    """How the token travels on the WebSocket upgrade (subprotocols, header, query)."""
    require_subprotocol_echo: bool = True
    """Require the server to echo one offered subprotocol: browsers drop a connection whose offered
    protocols get no echo."""
    negative_auth_check: bool = True
    """The check without credentials: it runs the journey's opening steps (upgrade, then the frames sent
    before the first expected event) anonymously; a refusal at any of them passes, the journey's events
    fail it."""
    auth_close_codes: tuple[int, ...] = (
        1008,
        4001,
        4003,
        4401,
        4403,
    )
    """WebSocket close codes that mean 'not authorised' (for the check without credentials)."""
    open_timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds allowed for the WebSocket opening handshake."""

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
    """Send the token in this header; null: no header."""
    query: str | None = None
    """Send the token in this query parameter, e.g. `token`; null: not in the query."""

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        if v is not None and not _HTTP_TOKEN.fullmatch(v):
            raise ValueError(f"expected a query parameter name (letters, digits, -._~), got {shown(v)}")
        return v


class SseSettings(_Section):
    """The SSE transport: one HTTP request whose answer is a `text/event-stream` of the journey's events."""

    path: str = "/api/chat"
    """The stream request's path; may hold {placeholders} (percent-encoded) and its own ?query."""
    method: Literal["POST", "GET"] = "POST"
    """The stream request's HTTP method."""
    body: str | None = '{"message": "{message}", "thread_id": "{thread_id}"}'
    """The stream request's body, a JSON template; placeholders as in journey.send, plus journey.values and
    request-step extracts; null: no body."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers on the stream request; values may use {token}."""
    token: StreamTokenSettings = Field(default_factory=StreamTokenSettings)
    """How the token travels on the stream request (header, query)."""
    sentinel: str | None = "[DONE]"
    """The data that ends the stream (OpenAI-compatible servers, the AI SDK), read as an event of that
    name; null when the server sends none."""
    body_end_event: str | None = None
    """The end of the body read as an event of this name (ADK: the body's end ends the run); null: the body
    ending before the completion event is `stream-closed-early`. A body with no event at all is always
    that."""
    event_field: bool = True
    """The SSE `event:` field, when the server sets one, is the event name; else journey.event_name on the
    data."""
    negative_auth_check: bool = True
    """Check that the stream request without a token is refused."""
    open_timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds until the stream answer's status and headers arrive."""

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
    """The Socket.IO event name to emit."""
    data: str | None = None
    """The event's data, a JSON object template; null: the event carries no data."""
    after: str | None = None
    """Emit once an event of this name (Socket.IO's, or the journey's) arrived; null: at once."""

    @model_validator(mode="after")
    def _event_name(self) -> EmitSettings:
        if not self.event or _UNSAFE_IN_URL.sub("", self.event) != self.event.replace(" ", ""):
            raise ValueError(f"event: expected a Socket.IO event name, got {shown(self.event)}")
        return self


class SocketIOSettings(_Section):
    """The Socket.IO transport (python-socketio's client: Engine.IO polling, then the WebSocket upgrade)."""

    path: str = "/socket.io"
    """The server's socketio_path (Chainlit: /ws/socket.io)."""
    namespace: str = "/"
    """The Socket.IO namespace to connect to."""
    auth: str | None = None
    """The CONNECT auth payload: a JSON template (placeholders as the frames, plus {token}); null: none."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers on the Engine.IO requests; values may use {token}."""
    token: StreamTokenSettings = Field(default_factory=StreamTokenSettings)
    """How the token travels on the Engine.IO requests (header, query)."""
    transports: tuple[Literal["polling", "websocket"], ...] = ("polling", "websocket")
    """Engine.IO transports in the order tried: polling first, then the WebSocket upgrade."""
    emit: tuple[EmitSettings, ...] = Field(
        default_factory=lambda: (
            EmitSettings(event="message", data='{"text": "{message}", "thread_id": "{thread_id}"}'),
        )
    )
    """The events the client emits for each message, in order."""
    run_starts_with: str | None = None
    """The event that starts this message's run: expected events before it (a completion the connection
    itself produced, a welcome message) are not this run's; null: every event counts."""
    negative_auth_check: bool = True
    """Check that connecting without credentials is refused."""
    open_timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds for the Engine.IO handshake and the namespace CONNECT."""

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
    """The step's name in reports and messages."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """The request's HTTP method."""
    path: str
    """The request's path on the backend's host; may hold {placeholders} (percent-encoded)."""
    body: str | None = None
    """The request's body, a JSON template as in journey.send; null: no body."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers; values may use {token}."""
    send_token: bool = True
    """Send the token as the transport sends it (sse.token), e.g. a Bearer header."""
    extract: dict[str, str] = Field(default_factory=dict)
    """Values taken from the JSON answer by JMESPath, usable as {name} in later steps, the stream request
    and the frames; cookies the answer sets go on every later request of this user (never another
    user's)."""
    ok_statuses: tuple[int, ...] = (200, 201)
    """HTTP statuses that count as success; any other fails the step."""
    timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds for the request in total, body included."""

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
    """The frame's JSON template; placeholders such as {message}, {thread_id} and {nonce} are filled in."""
    after: str | None = None
    """Send once this event has arrived on the connection (at once if it already has); null: at once."""
    each: Literal["turn", "connection"] = "turn"
    """turn: sent on every turn (the message); connection: once per connection, before the turn's frames
    (graphql-ws connection_init), so a turn on the same connection does not send it again."""

    @field_validator("frame")
    @classmethod
    def _template(cls, v: str) -> str:
        if (problem := expressions.template_problem(v)) is not None:
            # The reason (with its position) first; only the echoed template is cut.
            raise ValueError(f"not a valid frame template: {problem} (template {shown(v)})")
        return v


class AnswerSettings(_Section):
    expression: str = REFERENCE_ANSWER
    """JMESPath to the answer text on the completion frame; with `stream_event`, on each frame of that
    event, the results concatenated."""
    stream_event: str | None = None
    """The event whose frames carry the answer in pieces (deltas); null: the answer is on the completion
    frame."""
    combine: Literal["concat", "last"] = "concat"
    """With stream_event: `concat` joins every frame's match (deltas); `last` takes the last one (ADK's
    final text)."""

    @field_validator("expression")
    @classmethod
    def _expr(cls, v: str) -> str:
        return _expression(v) or v


class OwnerSettings(_Section):
    """Where each event names its owner; a value that is present must be this user's (absent proves nothing)."""

    user: str | None = "user_id || data.user_id || payload.user_id"
    """JMESPath to the user an event belongs to; null: not checked."""
    run: str | None = "run_id || data.run_id || payload.run_id"
    """JMESPath to the run an event belongs to; null: not checked."""
    thread: str | None = "thread_id || data.thread_id || payload.thread_id"
    """JMESPath to the thread an event belongs to; null: not checked."""

    @field_validator("user", "run", "thread")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        return _expression(v)


class TurnSettings(_Section):
    """One message of a conversation: sent on the journey's connection (or a new one, with `reconnect`)."""

    message: str
    """The message sent in this turn (fills {message})."""
    expect: str | None = None
    """A regular expression the answer must match ({nonce}, {thread_id}, {user} filled in, regex-escaped);
    null: no check."""
    expect_expression: str | None = None
    """A JMESPath that must be true on the completion frame, e.g. `length(data.sources) > `0``; null: no
    check."""
    reconnect: bool = False
    """Close the connection first and reconnect as the same user to the same thread: Cloud Run may route
    the new connection to another instance. An expectation that fails after a reconnect is
    `session-lost`."""

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
    """The journey's name in reports and the impact statement."""
    profile: str = profiles.DEFAULT
    """A built-in protocol profile: the base the other keys override."""
    message: str = "What is 2 + 2? Answer in one sentence."
    """The message each user sends (fills {message}); with `turns`, the turns' messages are used instead."""
    send: tuple[FrameSettings, ...] = (FrameSettings(frame=REFERENCE_FRAME),)
    """The frames the client sends for each message, in order (JSON templates)."""
    event_name: str = "type"
    """JMESPath to a frame's event name."""
    expected_events: tuple[str, ...] = DEFAULT_EVENTS
    """The events every user must receive, in order; the completion event is one of them."""
    repeating_events: tuple[str, ...] = ()
    """Expected events that may arrive many times (delta streams)."""
    optional_events: tuple[str, ...] = ()
    """Expected events that may be missing."""
    completion_event: str = "agent_completed"
    """The event that ends a turn successfully; must be one of expected_events."""
    error_events: tuple[str, ...] = ("error", "error_message", "agent_error")
    """Events that mean the backend reported an error; one arriving fails the journey."""
    ignored_events: tuple[str, ...] = ("connection_established", "heartbeat", "pong")
    """Events that are neither expected nor errors (keepalives, greetings); they never fail a journey."""
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    """Where the answer text is read from the events."""
    owner: OwnerSettings = Field(default_factory=OwnerSettings)
    """Where each event names its owner (user, run, thread), for the isolation check between users."""
    canned_patterns: tuple[str, ...] = (r"^Agent response for:", r"^I'm sorry, I (?:cannot|can't) help")
    """Regular expressions for canned or placeholder answers; an answer matching one is a finding."""
    end_events: tuple[str, ...] = ()
    """Events that end the stream (graphql-ws `complete`): one arriving before the completion event ends
    the turn at once, with the missing events as `event-missing`, instead of waiting out
    event_timeout_s."""
    gap: Literal["expected", "all"] = "expected"
    """Which frames count for "longest gap between events" once the first expected event arrived: expected
    events, repeats (deltas) included, so a stall mid-answer shows (expected); or every frame,
    heartbeats too (all)."""
    turns: tuple[TurnSettings, ...] = ()
    """Several messages in one conversation: each awaited to its completion and judged on its own. Empty:
    one turn with `message`."""
    event_timeout_s: float = Field(default=30, gt=0, le=600)
    """Seconds allowed since the last expected event: heartbeats do not keep a stalled agent alive."""
    sla_s: float = Field(default=45, gt=0, le=600)
    """Seconds from sending the message to the completion event, per user; slower is a finding."""
    hold_s: float = Field(default=0, ge=0, le=3600)
    """Connection lifetime: the run's first user keeps its connection open this long after its journey,
    with WebSocket pings, and the report says whether, when and by whom it was closed (0: off)."""
    users: int = Field(default=5, ge=1, le=10_000)
    """Simulated users, all shards together; one runner handles about 1,000 (README: Performance), shards
    go further."""
    requests: tuple[RequestStepSettings, ...] = ()
    """Plain HTTP requests made before connecting, in order (e.g. ADK's session); their extracts name
    placeholders the later templates may use."""
    values: dict[str, str] = Field(default_factory=dict)
    """Constant template values (e.g. {app}), usable as placeholders in every template."""

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
    users: int = Field(default=0, ge=0, le=10_000)
    """Extra load users after the journey users (or with them: concurrent); 0: no load phase."""
    concurrent: bool = False
    """Run the load users at the same time as the journey users, not after them."""


class TargetsSettings(_Section):
    """Metric targets in milliseconds, compared with each metric's p95."""

    api_ms: float = Field(default=100, gt=0)
    """Target for the API (health) latency: warm health requests (ms, p95)."""
    handshake_ms: float = Field(default=50, gt=0)
    """Target for the connection handshake, e.g. the WebSocket upgrade (ms, p95)."""
    agent_startup_ms: float = Field(default=500, gt=0)
    """Target for agent startup: from sending the message to the first expected event (ms, p95)."""
    processing_ms: float = Field(default=200, gt=0)
    """Target for processing: from the first expected event to the completion event (ms, p95)."""
    total_ms: float = Field(default=1000, gt=0)
    """Target for the whole journey, login to answer (ms, p95)."""


class ImpactSettings(_Section):
    journey: str | None = None
    """The journey's name in the impact statement; default: journey.name."""
    arr_at_risk: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Annual recurring revenue that depends on this journey, stated in the impact line; null: not stated."""
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code of arr_at_risk, e.g. USD."""
    users_description: str = "users"
    """Who is affected, as the impact statement names them (e.g. paying customers)."""


class ReportSettings(_Section):
    templates_dir: Path | None = None
    """A directory of Jinja templates that replace the built-in report templates of the same name; null:
    built-in only."""
    max_comment_chars: int = Field(default=65_000, ge=5_000, le=65_536)
    """Longest PR comment or issue body written (GitHub's limit is 65,536 characters); a longer report
    drops detail until it fits."""
    history: int = Field(default=10, ge=0, le=50)
    """Past runs shown in the sticky comment's history table (0: none)."""

    @field_validator("templates_dir", mode="before")
    @classmethod
    def _templates_dir(cls, v: Any) -> Any:
        return local_path(v)


class GitHubSettings(_Section):
    publish: bool = False
    """Publish to GitHub: the sticky PR comment and P0 issues (needs a token)."""
    pr: int | None = Field(default=None, ge=1)
    """The pull request to comment on; default: the event's pull request."""
    comment: bool = True
    """Write the sticky PR comment."""
    issues: bool = True
    """File, update, reopen and close P0 issues."""
    labels: tuple[str, ...] = ("P0", "golden-path")
    """Labels put on filed issues."""
    assignees: tuple[str, ...] = ()
    """GitHub users assigned to filed issues."""
    close_after_passes: int = Field(default=1, ge=1, le=100)
    """Passing runs in a row on the issue's track before an issue is closed."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries of a GitHub API request after a 429, a 5xx or a connection/read error, with backoff."""
    reopen_window_days: int = Field(default=30, ge=1, le=365)
    """Days after closing within which a recurrence reopens an issue; older ones stay closed and a new one
    is filed."""
    settle_s: float = Field(default=1.0, ge=0, le=30)
    """Seconds to wait after editing the sticky comment before reading it again: a concurrent run's edit
    that landed meanwhile is merged instead of lost (GitHub has no conditional edit)."""
    track: str | None = None
    """The incident track: only a pass on the same track closes its issue. Default: the tested Cloud Run
    tag, else pr-N for pull_request events, else the branch (the default branch is `production`)."""
    reopen_after_runs: int = Field(default=3, ge=1, le=100)
    """Failing runs in a row before a new issue is filed for one a person closed as not planned (or
    duplicate); that issue is never reopened, the new one links it."""
    max_list_requests: int = Field(default=30, ge=1, le=1000)
    """Requests one listing of issues may make (100 issues each); reaching it is a warning naming this key."""

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
    fail_on: Literal["correctness", "any", "p0"] = "correctness"
    """Which findings fail the run (exit 1). correctness: every finding except a missed performance target
    (a warning: shared runners are noisy); any: performance too; p0: only P0 findings. Version skew
    fails under every value."""
    on_pass: Literal["none", "promote"] = "none"
    """What a passing run does to traffic: none, or promote the tested revision to 100%."""
    on_fail: Literal["none", "rollback"] = "none"
    """What a failing run does to traffic: none, or roll back to the revision that served before (or
    rollback_to)."""


class LogsSettings(_Section):
    """The revision's own logs (Cloud Logging) under each finding; needs Cloud Run coordinates."""

    mode: Literal["auto", "always", "never"] = "auto"
    """When to read the revision's logs: auto (only on runs with findings), always, or never."""
    endpoint: str | None = None
    """A custom Cloud Logging API endpoint (scheme and host), e.g. http://127.0.0.1:8124 for a stand-in;
    default: Google's."""
    page_size: int = Field(default=200, ge=1, le=1000)
    """Log entries per call (at most two calls per run)."""
    budget_s: float = Field(default=10, gt=0, le=60)
    """Seconds of wall time for both calls together."""
    top_groups: int = Field(default=5, ge=1, le=20)
    """Log groups shown per finding and for the run."""
    settle_s: float = Field(default=3, ge=0, le=30)
    """Seconds to wait before reading: Logging ingests entries seconds after they are written."""

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

    enabled: bool = True
    """Measure the serving revision too, when the new revision is tested at its tag URL and receives no
    traffic."""
    url: str | None = None
    """The serving revision's URL; default: the service URL (while the new revision has 0% of traffic)."""
    max_ratio: float = Field(default=1.5, ge=1)
    """A p95 beyond this factor of the baseline's is a regression (if also min_delta_ms slower)."""
    min_delta_ms: float = Field(default=50, ge=0)
    """A regression must also be at least this many milliseconds slower than the baseline's p95."""

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
    """Seconds allowed to open a TCP/TLS connection."""
    request_s: float = Field(default=10, gt=0, le=120)
    """Seconds allowed per HTTP read (each read of a body, not the whole request)."""
    run_s: float = Field(default=300, gt=0, le=3600)
    """Seconds for the whole probe: one deadline over every step."""


TRANSPORTS = ("websocket", "sse", "socketio")


class Settings(_Section):
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
