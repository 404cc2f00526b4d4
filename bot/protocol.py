"""The wire protocol as data: how the token is offered, what the client sends, how server frames are read. Pure.

Real backends put event fields at the root, under ``data`` or under ``payload``; ``Frame`` reads all three so
the rest of the probe never cares which shape a server chose.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from bot.settings import JourneySettings, WebSocketSettings


def b64url(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def websocket_url(base_url: str, path: str, *, query: Mapping[str, str] | None = None) -> str:
    """http(s)://host/base + /ws -> ws(s)://host/base/ws[?query]."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    full_path = parts.path.rstrip("/") + path
    return urlunsplit((scheme, parts.netloc, full_path, urlencode(query or {}), ""))


@dataclass(frozen=True, slots=True)
class Offer:
    """What the client presents on the upgrade request."""

    url: str
    subprotocols: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]


def offer(base_url: str, settings: WebSocketSettings, token: str | None) -> Offer:
    """The upgrade request for ``token``; with ``token=None`` the negative check's request (no credentials)."""
    subprotocols: list[str] = []
    headers: list[tuple[str, str]] = []
    query: dict[str, str] = {}
    for template in settings.subprotocols:
        needs_token = "{token" in template
        if needs_token and (token is None or "subprotocol" not in settings.offer_token):
            continue
        if token is None and needs_token:
            continue
        subprotocols.append(template.format(token=token or "", token_b64=b64url(token or "")))
    if token is not None and "header" in settings.offer_token:
        headers.append(("Authorization", f"Bearer {token}"))
    if token is not None and "query" in settings.offer_token:
        query[settings.query_param] = token
    return Offer(
        url=websocket_url(base_url, settings.path, query=query),
        subprotocols=tuple(subprotocols),
        headers=tuple(headers),
    )


def build_message(journey: JourneySettings, *, text: str, thread_id: str) -> dict[str, Any]:
    return {"type": journey.message_type, "payload": {journey.text_field: text, "thread_id": thread_id}}


class FrameError(ValueError):
    """A frame that is not a JSON object with a string ``type``."""


@dataclass(frozen=True, slots=True)
class Frame:
    type: str
    body: Mapping[str, Any]
    raw: str

    def field(self, name: str) -> Any:
        """A field from the root, ``data`` or ``payload``, in that order; None when absent."""
        if name in self.body and name != "type":
            return self.body[name]
        for container in ("data", "payload"):
            inner = self.body.get(container)
            if isinstance(inner, Mapping) and name in inner:
                return inner[name]
        return None

    def first_field(self, names: Sequence[str]) -> Any:
        for name in names:
            value = self.field(name)
            if value is not None:
                return value
        return None


def parse_frame(raw: str | bytes) -> Frame:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FrameError(f"frame is not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise FrameError("frame is not a JSON object with a string 'type'")
    return Frame(type=body["type"], body=body, raw=text)


def answer_text(frame: Frame, fields: Sequence[str]) -> str:
    """The final answer carried by the completion frame, as text ('' when there is none)."""
    value = frame.first_field(fields)
    if value is None:
        # Some servers put the whole answer in `data` or `payload` as a string.
        for container in ("data", "payload"):
            inner = frame.body.get(container)
            if isinstance(inner, str):
                return inner.strip()
        return ""
    if isinstance(value, Mapping):
        nested = next((value[k] for k in ("content", "text", "answer", "result") if k in value), None)
        return str(nested).strip() if nested is not None else json.dumps(value)
    return str(value).strip()


def canned_match(answer: str, patterns: Sequence[str]) -> str | None:
    """The first canned-fallback pattern the answer matches, else None."""
    for pattern in patterns:
        if re.search(pattern, answer):
            return pattern
    return None


def foreign_owner(frame: Frame, *, user_id: str | None, run_id: str | None, thread_id: str) -> str | None:
    """Why this frame belongs to someone else (a field and its value), or None when it is ours or unmarked.

    A field that is absent proves nothing; a field that is present must match this user's identity.
    """
    checks = (("user_id", user_id), ("run_id", run_id), ("thread_id", thread_id))
    for name, ours in checks:
        value = frame.field(name)
        if ours is not None and value is not None and str(value) != ours:
            return f"{name}={value!s} (expected {ours})"
    return None
