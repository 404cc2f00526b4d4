"""How simulated users get credentials and how the journey's events travel: auth and login, the token's
ways on the upgrade or request, and the WebSocket, Server-Sent Events and Socket.IO transports.
"""

from __future__ import annotations

import json
import re
import string
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from bot import expressions, hosts
from bot.settings.base import (
    HTTP_TOKEN,
    UNSAFE_IN_URL,
    HeaderTemplates,
    Section,
    UrlPath,
    deprecated,
    valid_expression,
)
from bot.untrusted import shown

LOGIN_PLACEHOLDERS = ("user", "password", "token", "token_b64")


class LoginSettings(Section):
    """A login request that answers a token: on the backend (``path``) or another service (``url``)."""

    url: str | None = None
    """An absolute login URL (a separate auth service): https, or http only on loopback; beats `path` when
    given."""
    path: UrlPath = "/auth/login"
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
        return valid_expression(v)

    @field_validator("body")
    @classmethod
    def _json_body(cls, v: dict[str, Any]) -> dict[str, Any]:
        _login_templates(v)
        return _json_values(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not HTTP_TOKEN.fullmatch(name):
                raise ValueError(f"expected an HTTP header name (no spaces, CR/LF or ':'), got {shown(name)}")
            if not isinstance(value, str) or UNSAFE_IN_URL.sub("", value.replace(" ", "")) != value.replace(
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


class AuthSettings(Section):
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


def _query_param(value: str) -> str:
    """The name of the query parameter that carries the token: an HTTP token (RFC 9110)."""
    if not HTTP_TOKEN.fullmatch(value):
        raise ValueError(f"expected a query parameter name (letters, digits, -._~), got {shown(value)}")
    return value


QueryParam = Annotated[str, AfterValidator(_query_param)]
"""A query parameter's name (``_query_param``), wherever the token may travel in the query."""


class TokenHeader(Section):
    name: str = "Authorization"
    """The HTTP header that carries the token."""
    format: str = "Bearer {token}"
    """The header's value; {token} is the token, {token_b64} its base64url form without padding."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not HTTP_TOKEN.fullmatch(v):
            raise ValueError(f"expected an HTTP header name (no spaces, CR/LF or ':'), got {shown(v)}")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if UNSAFE_IN_URL.sub("", v.replace(" ", "")) != v.replace(" ", ""):
            raise ValueError(f"expected a header value template without control characters, got {shown(v)}")
        return _token_template(v)


class TokenSettings(Section):
    """How the token travels on the upgrade; each way is independent, and all may be off."""

    subprotocols: tuple[str, ...] = ("jwt-auth", "jwt.{token_b64}")
    """Subprotocols offered on the upgrade, as templates: `{token_b64}` is base64url(token) without
    padding, `{token}` the token itself. A template without a placeholder (e.g. `jwt-auth`) is offered
    with and without a token."""
    header: TokenHeader | None = Field(default_factory=TokenHeader)
    """Send the token in this header on the upgrade request; null: no header."""
    query: QueryParam | None = None
    """Send the token in this query parameter, e.g. `token`; null: not in the query."""

    @field_validator("subprotocols")
    @classmethod
    def _templates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for template in v:
            _subprotocol_template(template)  # only {token}/{token_b64}; an HTTP token once filled (no CR/LF)
        return tuple(_token_template(t) for t in v)


class WebSocketSettings(Section):
    path: UrlPath = "/ws"
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
        deprecated(
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


class StreamTokenSettings(Section):
    """How the token travels on the SSE request and on the journey's request steps; each way independent."""

    header: TokenHeader | None = Field(default_factory=TokenHeader)
    """Send the token in this header; null: no header."""
    query: QueryParam | None = None
    """Send the token in this query parameter, e.g. `token`; null: not in the query."""


class SseHistorySettings(Section):
    """How a stateless server (OpenAI-compatible, the AI SDK) gets the conversation: the earlier turns'
    messages, rendered from `turn`, go before the items of the body's list at `at`."""

    at: str = "messages"
    """Dotted path to the list in sse.body that carries the conversation, e.g. `messages`."""
    turn: str
    """One earlier turn's messages, a JSON array template: {message} and {answer} are that turn's message
    and the answer golden-path read, {turn} its number; the other placeholders as in sse.body."""

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*", v):
            raise ValueError(f"expected a dotted path of keys in sse.body, e.g. messages, got {shown(v)}")
        return v


class SseSettings(Section):
    """The SSE transport: one HTTP request whose answer is a `text/event-stream` of the journey's events."""

    path: UrlPath = "/api/chat"
    """The stream request's path; may hold {placeholders} (percent-encoded) and its own ?query."""
    method: Literal["POST", "GET"] = "POST"
    """The stream request's HTTP method."""
    body: str | None = '{"message": "{message}", "thread_id": "{thread_id}"}'
    """The stream request's body, a JSON template; placeholders as in journey.send, plus journey.values and
    request-step extracts; null: no body."""
    headers: HeaderTemplates = Field(default_factory=dict)
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
    history: SseHistorySettings | None = None
    """With journey.turns, each turn is a new request; a stateless server needs the earlier turns in it:
    their messages (and answers) go into the body's list (OpenAI-compatible `messages`, AI SDK UI
    messages); null: the server keeps the conversation (ADK's session, a thread id)."""
    negative_auth_check: bool = True
    """Check that the stream request without a token is refused."""
    open_timeout_s: float = Field(default=10, gt=0, le=120)
    """Seconds until the stream answer's status and headers arrive."""


class EmitSettings(Section):
    """One Socket.IO event the client emits: its name, its data (a JSON template), and when."""

    event: str
    """The Socket.IO event name to emit."""
    data: str | None = None
    """The event's data, a JSON object template; null: the event carries no data."""
    after: str | None = None
    """Emit once an event of this name (Socket.IO's, or the journey's) arrived; null: at once."""
    each: Literal["turn", "connection"] = "turn"
    """turn: emitted on every turn (the message); connection: once per connection (Chainlit's
    `connection_successful`), so a later turn on the same connection does not emit it again."""

    @model_validator(mode="after")
    def _event_name(self) -> EmitSettings:
        if not self.event or UNSAFE_IN_URL.sub("", self.event) != self.event.replace(" ", ""):
            raise ValueError(f"event: expected a Socket.IO event name, got {shown(self.event)}")
        return self


class SocketIOSettings(Section):
    """The Socket.IO transport (python-socketio's client: Engine.IO polling, then the WebSocket upgrade)."""

    path: UrlPath = "/socket.io"
    """The server's socketio_path (Chainlit: /ws/socket.io)."""
    namespace: UrlPath = "/"
    """The Socket.IO namespace to connect to."""
    auth: str | None = None
    """The CONNECT auth payload: a JSON template (placeholders as the frames, plus {token}); null: none."""
    headers: HeaderTemplates = Field(default_factory=dict)
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

    @field_validator("transports")
    @classmethod
    def _transports(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("name at least one of polling, websocket")
        return v


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_FIELDS = frozenset({"token", "token_b64"})


def _service_url(value: str) -> str:
    """An absolute URL of another service (a login endpoint): https, or plain http only on loopback."""
    if UNSAFE_IN_URL.search(value):
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
    if not HTTP_TOKEN.match(literal):
        raise ValueError(
            f"{shown(template)} is not a valid subprotocol: letters, digits and !#$%&'*+-.^_`|~ only"
        )


def _token_template(template: str) -> str:
    if (problem := expressions.token_template_problem(template)) is not None:
        raise ValueError(f"{template!r} is not a valid template: {problem}")
    return template
