"""The chat journey every simulated user makes (the protocol): requests before connecting, the frames sent,
the events expected, where the answer and each event's owner are, and the turns of a conversation.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bot import expressions, profiles
from bot.settings.base import (
    HeaderTemplates,
    Section,
    UrlPath,
    deprecated,
    valid_expression,
)
from bot.untrusted import shown

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


class RequestStepSettings(Section):
    """A plain HTTP request a journey makes before it connects (create a session, log in for a cookie)."""

    name: str = "request"
    """The step's name in reports and messages."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """The request's HTTP method."""
    path: UrlPath
    """The request's path on the backend's host; may hold {placeholders} (percent-encoded)."""
    body: str | None = None
    """The request's body, a JSON template as in journey.send; null: no body."""
    headers: HeaderTemplates = Field(default_factory=dict)
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

    @field_validator("extract")
    @classmethod
    def _extract(cls, v: dict[str, str]) -> dict[str, str]:
        for name, expression in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"extract: {shown(name)} is not a placeholder name (letters, digits, _)")
            if name in expressions.PLACEHOLDERS or name in expressions.TOKEN_PLACEHOLDERS:
                raise ValueError(f"extract: {{{name}}} is a built-in placeholder; choose another name")
            valid_expression(expression)
        return v


class FrameSettings(Section):
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


class AnswerSettings(Section):
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
        return valid_expression(v) or v


class OwnerSettings(Section):
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
        return valid_expression(v)


class TurnSettings(Section):
    """One message of a conversation: sent on the journey's connection (or a new one, with `reconnect`); over SSE
    each turn is a request of its own in the same session."""

    message: str
    """The message sent in this turn (fills {message})."""
    expect: str | None = None
    """A regular expression the answer must match ({nonce}, {thread_id}, {user} filled in, regex-escaped);
    null: no check."""
    expect_expression: str | None = None
    """A JMESPath that must be true on the completion frame, e.g. `length(data.sources) > `0``; null: no
    check."""
    reconnect: bool = False
    """Close the connection first and reconnect as the same user to the same thread (SSE: a new HTTP
    connection with the same cookies and session values; Socket.IO: a new connection with the same CONNECT
    auth): Cloud Run may route the new connection to another instance. An expectation that fails after a
    reconnect is `session-lost`."""

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
        return valid_expression(v)


class JourneySettings(Section):
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
    """Several messages in one conversation (every transport): each awaited to its completion and judged on
    its own. Empty: one turn with `message`."""
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
            deprecated("journey.message_type/text_field", "journey.send (a list of JSON frame templates)")
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
            deprecated("journey.answer_fields", "journey.answer.expression (JMESPath)")
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
        return valid_expression(v) or v

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
