"""The wire protocol as data: how the token is offered, what the client sends, how server frames are read. Pure.

A profile (``bot/profiles/*.yml``, overridden by the config) says everything the probe needs to know about a
backend's protocol: JSON frame templates to send, and JMESPath expressions for the event name, the owner ids
and the answer. This module turns those settings into requests and reads frames with them; the probe
(``bot.probe.journey``) only interprets the steps.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

from bot import untrusted
from bot.expressions import (
    TOKEN_PLACEHOLDERS,
    frame_type,
    has_placeholder,
    placeholders,
    reader,
    search,
    shown_token_text,
    token_text,
)
from bot.settings import OwnerSettings, WebSocketSettings

SHOWN_TOKEN = "<token>"  # how a token reads in evidence: where it travels, never its value


def http_url(base_url: str, path: str, *, query: Mapping[str, str] | None = None) -> str:
    """http(s)://host/base + /path[?query] (a path that carries its own query keeps it)."""
    parts = urlsplit(base_url)
    path_part, _, own_query = path.partition("?")
    merged = "&".join(q for q in (own_query, urlencode(query or {})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path_part, merged, ""))


def websocket_url(base_url: str, path: str, *, query: Mapping[str, str] | None = None) -> str:
    """http(s)://host/base + /ws?model=x -> ws(s)://host/base/ws?model=x[&query]: the path's own query and the
    token's parameters merged with urllib (a parameter given twice keeps the token's value)."""
    if not query:
        return _websocket_url(base_url, path)
    return _merged_url(base_url, path, query)


@functools.lru_cache(maxsize=64)
def _websocket_url(base_url: str, path: str) -> str:
    """Without a token in the query, every user's URL is the same one."""
    return _merged_url(base_url, path, None)


def _merged_url(base_url: str, path: str, query: Mapping[str, str] | None) -> str:
    parts = urlsplit(base_url)
    target = urlsplit(path)
    scheme = "wss" if parts.scheme == "https" else "ws"
    extra = dict(query or {})
    pairs = [(k, v) for k, v in parse_qsl(target.query, keep_blank_values=True) if k not in extra]
    full_path = parts.path.rstrip("/") + target.path
    return urlunsplit((scheme, parts.netloc, full_path, urlencode([*pairs, *extra.items()]), ""))


def sibling_path(path: str, suffix: str) -> str:
    """``/v1/realtime?model=x`` -> ``/v1/realtime<suffix>?model=x``: another path with the same query."""
    target = urlsplit(path)
    return urlunsplit(("", "", target.path.rstrip("/") + suffix, target.query, ""))


def token_travel(settings: WebSocketSettings, frames: tuple[str, ...] = ()) -> str:
    """Where the token travels, in words for evidence and remediations: every way configured, never its value.
    Remembered per settings object: every user's offer asks the same question (and hashing the settings, a
    pydantic model, cost more than the answer)."""
    key = (id(settings), frames)
    found = _TRAVELS.get(key)
    if found is not None and found[0] is settings:
        return found[1]
    travel = _token_travel(settings, frames)
    if len(_TRAVELS) >= 16:
        _TRAVELS.clear()
    _TRAVELS[key] = (settings, travel)  # the settings object kept alive with it: its id is never reused
    return travel


_TRAVELS: dict[tuple[int, tuple[str, ...]], tuple[WebSocketSettings, str]] = {}


def _token_travel(settings: WebSocketSettings, frames: tuple[str, ...]) -> str:
    way = settings.token
    ways = [f"subprotocol `{shown_token_text(t)}`" for t in way.subprotocols if has_placeholder(t)]
    if way.header is not None:
        ways.append(f"header `{way.header.name}: {shown_token_text(way.header.format)}`")
    if way.query:
        ways.append(f"query parameter `{way.query}`")
    for template in frames:
        if any(name in TOKEN_PLACEHOLDERS for name, _ in placeholders(template)):
            ways.append(f"the `{frame_type(template)}` frame")
    return ", ".join(ways) or "nowhere (no token is offered)"


# -- the upgrade request ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """What the client presents on the upgrade request."""

    url: str
    subprotocols: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    shown_url: str = ""  # the URL as evidence shows it: a token in the query reads <token>
    shown_subprotocols: tuple[str, ...] = ()  # likewise: jwt.<token_b64>
    token_travel: str = ""  # where the token travels (token_travel()), for evidence

    @property
    def display_url(self) -> str:
        return self.shown_url or self.url


def offer(
    base_url: str,
    settings: WebSocketSettings,
    token: str | None,
    *,
    path: str | None = None,
    frames: Sequence[str] = (),
) -> Offer:
    """The upgrade request for ``token``; with ``token=None`` the negative check's request (no credentials).

    Each way the token travels is independent: subprotocol templates (those without a placeholder are offered
    with or without a token), a header, a query parameter (merged into the path's own query). ``frames``: the
    frame templates, only to say in evidence whether one carries the token.
    """
    way = settings.token
    subprotocols: list[str] = []
    shown: list[str] = []
    for template in way.subprotocols:
        needs_token = has_placeholder(template)
        if needs_token and token is None:
            continue
        subprotocols.append(token_text(template, token or ""))
        shown.append(shown_token_text(template))
    headers: list[tuple[str, str]] = []
    query: dict[str, str] = {}
    if token is not None and way.header is not None:
        headers.append((way.header.name, token_text(way.header.format, token)))
    if token is not None and way.query:
        query[way.query] = token
    target = path or settings.path
    url = websocket_url(base_url, target, query=query)
    shown_url = url
    if query:  # the token in the query: evidence shows where, never what
        shown_url = websocket_url(base_url, target, query=dict.fromkeys(query, SHOWN_TOKEN)).replace(
            quote_plus(SHOWN_TOKEN), SHOWN_TOKEN
        )
    return Offer(
        url=url,
        subprotocols=tuple(subprotocols),
        headers=tuple(headers),
        shown_url=shown_url,
        shown_subprotocols=tuple(shown),
        token_travel=token_travel(settings, tuple(frames)),
    )


# -- frames ----------------------------------------------------------------------------------------------------


class FrameError(ValueError):
    """A frame that does not match the configured shape; ``str(e)`` says how, in one line."""


class Frame(NamedTuple):
    """One frame read (a NamedTuple: immutable, and built in a third of a frozen dataclass's time, per frame)."""

    name: str  # the event name, read with journey.event_name
    body: Any
    raw: str


def parse_frame(raw: str | bytes, *, event_name: str = "type", name: str | None = None) -> Frame:
    """A server frame read with the profile's event-name expression.

    ``name``: the event name when the transport already knows it (an SSE `event:` field, a Socket.IO event, the
    stream's sentinel); the body is then the JSON data when it is JSON, else the text itself.

    Raises:
        FrameError: not UTF-8, not JSON, nested too deep, or no string event name where the profile says.
    """
    if name is not None:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", errors="replace")
        try:
            body = untrusted.loads(raw)
        except untrusted.UntrustedJSONError:
            body = text
        return Frame(name=name, body=body, raw=text)
    try:
        body = untrusted.loads(raw)
    except untrusted.UntrustedJSONError as exc:
        raise FrameError(f"frame is {exc}") from None
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", errors="replace")
    name = search(event_name, body)
    if not isinstance(name, str) or not name:
        raise FrameError(f"frame has no string event name at `{event_name}` (found {_shape(name)})")
    return Frame(name=name, body=body, raw=text)


def _shape(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {json.dumps(value)[:40]}" if not isinstance(value, str) else "''"


def answer_text(value: Any) -> tuple[str, str]:
    """(the answer, '') from an answer expression's value, or ('', why it is not an answer)."""
    if value is None:
        return "", "the configured path matched nothing"
    if isinstance(value, bool):
        return "", f"the configured path matched a boolean ({json.dumps(value)}), not text"
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return (text, "") if text else ("", "the configured path matched an empty string")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "".join(value).strip()
        return (text, "") if text else ("", "the configured path matched only empty strings")
    if isinstance(value, Mapping):
        # An object holding the text under a usual key (e.g. {"content": "..."}) is still an answer.
        nested = next((value[k] for k in ("content", "text", "answer", "result") if k in value), None)
        if isinstance(nested, str) and nested.strip():
            return nested.strip(), ""
        return "", "the configured path matched an object, not text: point answer.expression at its text"
    return "", f"the configured path matched a {type(value).__name__}, not text"


def canned_match(answer: str, patterns: Sequence[str]) -> str | None:
    """The first canned-fallback pattern the answer matches, else None."""
    for pattern in patterns:
        if re.search(pattern, answer):
            return pattern
    return None


@dataclass(frozen=True, slots=True)
class Owners:
    """This user's identity as the events should name it; None where unknown (the run id is learnt)."""

    user: str | None
    run: str | None
    thread: str | None


def owner_values(frame: Frame, owner: OwnerSettings) -> dict[str, str]:
    """The owner fields this frame names (user, run, thread), as text."""
    found = {}
    for name, read in _owner_readers(owner.user, owner.run, owner.thread):
        value = read(frame.body)
        if value is None:
            continue
        if type(value) is str:
            if value:
                found[name] = value
        elif isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            found[name] = str(value)
    return found


@functools.lru_cache(maxsize=32)
def _owner_readers(
    user: str | None, run: str | None, thread: str | None
) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """The configured owner expressions, each compiled once (five events per journey read all three)."""
    named = (("user", user), ("run", run), ("thread", thread))
    return tuple((name, reader(expression)) for name, expression in named if expression)


def foreign_owner(named: Mapping[str, str], ours: Owners, *, run: str | None = None) -> str | None:
    """Why a frame naming ``named`` belongs to someone else, or None when it is ours or unmarked.

    A field that is absent proves nothing; a field that is present must match this user's identity. ``run``:
    the run id learnt from the stream, which stands in for ``ours.run`` when given.
    """
    if not named:
        return None
    for name, mine in (
        ("user", ours.user),
        ("run", ours.run if run is None else run),
        ("thread", ours.thread),
    ):
        value = named.get(name)
        if mine is not None and value is not None and value != mine:
            return f"{name}={value[:80]} (expected {mine})"
    return None


NONCE_PATTERN = re.compile(r"gpn[0-9a-f]{12}")  # the shape of every nonce: found by one fixed scan per frame


def new_nonce() -> str:
    """A per-user nonce the user's message carries; no other user may ever receive it."""
    return f"gpn{secrets.token_hex(6)}"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version nibble and the variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def new_uuid() -> str:
    """``str(uuid.uuid4())`` (a random RFC 4122 version 4 UUID, canonical text) without building a UUID object:
    three per journey at 1,000 users were 20 µs of each journey's CPU."""
    h = f"{int.from_bytes(secrets.token_bytes(16)) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Nonces:
    """Finds other users' nonces in a frame with one fixed pattern and a set lookup: the cost per frame does not
    grow with the number of users (a compiled alternation of every other nonce, per user, cost O(n²))."""

    __slots__ = ("_everyone", "_own")

    def __init__(self, own: str, everyone: Iterable[str]) -> None:
        self._own = own
        self._everyone = everyone if isinstance(everyone, frozenset) else frozenset(everyone)

    def foreign_in(self, text: str) -> str | None:
        for match in NONCE_PATTERN.finditer(text):
            nonce = match.group()
            if nonce != self._own and nonce in self._everyone:
                return nonce
        return None

    def own_in(self, text: str) -> bool:
        return self._own in text
