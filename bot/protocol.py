"""The wire protocol as data: how the token is offered, what the client sends, how server frames are read. Pure.

A profile (``bot/profiles/*.yml``, overridden by the config) says everything the probe needs to know about a
backend's protocol: JSON frame templates to send, and JMESPath expressions for the event name, the owner ids
and the answer. This module turns those settings into requests and reads frames with them; the probe
(``bot.probe.journey``) only interprets the steps.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import jmespath
from jmespath.exceptions import JMESPathError, ParseError

from bot import untrusted

if TYPE_CHECKING:
    from bot.settings import OwnerSettings, WebSocketSettings

PLACEHOLDERS = ("message", "thread_id", "user", "nonce", "token", "token_b64")
TOKEN_PLACEHOLDERS = ("token", "token_b64")
# A template's parts: `{{` and `}}` (literal braces), and `{name}` placeholders. `}}` is a literal `}` only when it
# closes a `{{`: a JSON template ends with `}}` (two closing objects) and always has.
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
# Sample values a template must survive at preflight: quotes, backslashes and line breaks included.
_SAMPLE = {
    "message": 'say "hi"\\\n',
    "thread_id": "t-1",
    "user": "u-1",
    "nonce": "n-1",
    "token": "eyJ.sample.token",
    "token_b64": "ZXlK",
}
SHOWN_TOKEN = "<token>"  # how a token reads in evidence: where it travels, never its value


def b64url(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def websocket_url(base_url: str, path: str, *, query: Mapping[str, str] | None = None) -> str:
    """http(s)://host/base + /ws?model=x -> ws(s)://host/base/ws?model=x[&query]: the path's own query and the
    token's parameters merged with urllib (a parameter given twice keeps the token's value)."""
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


# -- expressions and templates (also checked at preflight by bot.settings) ------------------------------------


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Any:
    parsed = jmespath.compile(text)
    direct = _direct(parsed.parsed)
    return parsed if direct is None else _Direct(direct)


class _Direct:
    """An expression made only of fields, indexes, ``a.b`` and ``a || b`` (what profiles use), evaluated by
    closures with JMESPath's own semantics instead of walking the tree per frame (4 lookups per frame, at 1,000
    users the interpreter was a tenth of the probe's CPU). Anything else keeps jmespath's interpreter."""

    __slots__ = ("search",)

    def __init__(self, evaluate: Callable[[Any], Any]) -> None:
        self.search = evaluate


def _is_false(value: Any) -> bool:  # JMESPath's falsiness, as jmespath.visitor.TreeInterpreter._is_false
    return value == "" or value == [] or value == {} or value is None or value is False


def _keys(node: dict[str, Any]) -> tuple[str, ...] | None:
    """``a.b.c`` as ("a", "b", "c"); None when the node is anything but fields."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] != "subexpression":
        return None
    parts = [_keys(child) for child in node["children"]]
    return None if any(p is None for p in parts) else tuple(k for p in parts if p is not None for k in p)


def _alternatives(node: dict[str, Any]) -> list[dict[str, Any]]:
    """``a || b || c`` (left-associative) as [a, b, c]."""
    if node["type"] != "or_expression":
        return [node]
    left, right = node["children"]
    return [*_alternatives(left), right]


def _fields_or_fields(node: dict[str, Any]) -> Callable[[Any], Any] | None:
    """The common shape, ``user_id || data.user_id || payload.user_id``, as one loop over key paths."""
    paths = [_keys(alternative) for alternative in _alternatives(node)]
    if any(p is None for p in paths):
        return None
    chains = tuple(p for p in paths if p is not None)

    def first(document: Any) -> Any:
        value = None
        for keys in chains:
            value = document
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if not _is_false(value):
                return value
        return value  # every alternative false: the last one's value, as `||` gives

    return first


def _direct(node: dict[str, Any]) -> Callable[[Any], Any] | None:
    if (fast := _fields_or_fields(node)) is not None:
        return fast
    kind = node["type"]
    if kind == "field":
        key = node["value"]

        def field(value: Any) -> Any:
            return value.get(key) if isinstance(value, dict) else None

        return field
    if kind == "index":
        position = node["value"]

        def index(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[position]
            except IndexError:
                return None

        return index
    if kind in ("current", "identity"):
        return lambda value: value
    if kind not in ("subexpression", "index_expression", "or_expression"):
        return None
    steps = [_direct(child) for child in node["children"]]
    if any(step is None for step in steps):
        return None
    chain = tuple(step for step in steps if step is not None)
    if kind == "or_expression":
        left, right = chain

        def either(value: Any) -> Any:
            matched = left(value)
            return right(value) if _is_false(matched) else matched

        return either

    def path(value: Any) -> Any:
        for step in chain:
            value = step(value)
        return value

    return path


def expression_problem(text: str) -> str | None:
    """Why ``text`` is not a JMESPath expression (with the position), or None when it is one."""
    try:
        _compiled(text)
    except ParseError as exc:
        return f"{exc.msg} at position {exc.lex_position} (near {str(exc.token_value)[:40]!r})"
    except JMESPathError as exc:
        return str(exc).splitlines()[0][:200]
    return None


def search(expression: str, document: Any) -> Any:
    """The expression's value on ``document``; None when it matches nothing or cannot apply (wrong types)."""
    try:
        return _compiled(expression).search(document)
    except (JMESPathError, RecursionError, TypeError, ValueError):
        return None


def substitute(template: str, value: Callable[[str], str | None]) -> str:
    """The template with ``{{``/``}}`` unescaped and each ``{name}`` replaced by ``value(name)`` (left as written
    when that is None). One pass, so a value is never read as a template."""
    depth = 0

    def one(match: re.Match[str]) -> str:
        nonlocal depth
        text = match.group()
        if text == "{{":
            depth += 1
            return "{"
        if text == "}}":
            if depth:
                depth -= 1
                return "}"
            return text
        filled = value(match.group(1))
        return text if filled is None else filled

    return _TEMPLATE_PART.sub(one, template)


def placeholders(template: str) -> list[tuple[str, int]]:
    """Each ``{name}`` a template uses (escaped braces skipped), with its position."""
    return [(m.group(1), m.start()) for m in _TEMPLATE_PART.finditer(template) if m.group(1) is not None]


def unknown_placeholder(template: str, known: Sequence[str]) -> str | None:
    """Why the template uses a placeholder outside ``known`` (with its position), or None."""
    for name, position in placeholders(template):
        if name not in known:
            return (
                f"unknown placeholder {{{name[:40]}}} at position {position}; expected "
                f"{', '.join('{' + p + '}' for p in known)} (write {{{{ and }}}} for a literal brace)"
            )
    return None


def template_problem(template: str) -> str | None:
    """Why a frame template is unusable: an unknown placeholder, or not JSON once placeholders are filled."""
    if (problem := unknown_placeholder(template, PLACEHOLDERS)) is not None:
        return problem
    filled = render(template, _SAMPLE)
    try:
        document = json.loads(filled)
    except json.JSONDecodeError as exc:
        near = filled[max(0, exc.pos - 20) : exc.pos + 20]
        return f"not valid JSON after substitution ({exc.msg} at position {exc.pos}, near {near!r})"
    if not isinstance(document, dict):
        return "a frame must be a JSON object"
    return None


def token_template_problem(template: str) -> str | None:
    if any(c in template for c in "\r\n\0"):
        return "a line break or NUL character cannot travel in a header or subprotocol"
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in TOKEN_PLACEHOLDERS:
            return f"unknown placeholder {match.group()} at position {match.start()}; only {{token}} and {{token_b64}}"
    return None


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with each ``{name}`` replaced by its value, JSON-escaped (templates quote placeholders)."""
    return substitute(template, lambda name: json.dumps(values[name])[1:-1] if name in values else None)


def render_text(template: str, values: Mapping[str, str]) -> str:
    """The template with each ``{name}`` replaced by its value as it is (a header, a form field, a URL part)."""
    return substitute(template, values.get)


def token_values(token: str) -> dict[str, str]:
    return {"token": token, "token_b64": b64url(token)}


def _token_text(template: str, token: str) -> str:
    values = token_values(token)
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group()), template)


def _shown_token_text(template: str) -> str:
    return _PLACEHOLDER.sub(
        lambda m: f"<{m.group(1)}>" if m.group(1) in TOKEN_PLACEHOLDERS else m.group(), template
    )


def token_travel(settings: WebSocketSettings, frames: Sequence[str] = ()) -> str:
    """Where the token travels, in words for evidence and remediations: every way configured, never its value."""
    way = settings.token
    ways = [f"subprotocol `{_shown_token_text(t)}`" for t in way.subprotocols if _PLACEHOLDER.search(t)]
    if way.header is not None:
        ways.append(f"header `{way.header.name}: {_shown_token_text(way.header.format)}`")
    if way.query:
        ways.append(f"query parameter `{way.query}`")
    for template in frames:
        if any(name in TOKEN_PLACEHOLDERS for name, _ in placeholders(template)):
            ways.append(f"the `{frame_type(template)}` frame")
    return ", ".join(ways) or "nowhere (no token is offered)"


def frame_type(template: str) -> str:
    """A frame template's `type` (its name in our words), or "frame"."""
    try:
        kind = json.loads(render(template, _SAMPLE)).get("type")
    except (ValueError, AttributeError):
        kind = None
    return str(kind) if isinstance(kind, str) and kind else "frame"


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
        needs_token = _PLACEHOLDER.search(template) is not None
        if needs_token and token is None:
            continue
        subprotocols.append(_token_text(template, token or ""))
        shown.append(_shown_token_text(template))
    headers: list[tuple[str, str]] = []
    query: dict[str, str] = {}
    if token is not None and way.header is not None:
        headers.append((way.header.name, _token_text(way.header.format, token)))
    if token is not None and way.query:
        query[way.query] = token
    target = path or settings.path
    url = websocket_url(base_url, target, query=query)
    shown_url = websocket_url(base_url, target, query=dict.fromkeys(query, SHOWN_TOKEN)).replace(
        quote_plus(SHOWN_TOKEN), SHOWN_TOKEN
    )
    return Offer(
        url=url,
        subprotocols=tuple(subprotocols),
        headers=tuple(headers),
        shown_url=shown_url,
        shown_subprotocols=tuple(shown),
        token_travel=token_travel(settings, frames),
    )


# -- frames ----------------------------------------------------------------------------------------------------


class FrameError(ValueError):
    """A frame that does not match the configured shape; ``str(e)`` says how, in one line."""


@dataclass(frozen=True, slots=True)
class Frame:
    name: str  # the event name, read with journey.event_name
    body: Any
    raw: str


def parse_frame(raw: str | bytes, *, event_name: str = "type") -> Frame:
    """A server frame read with the profile's event-name expression.

    Raises:
        FrameError: not UTF-8, not JSON, nested too deep, or no string event name where the profile says.
    """
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
    for name in ("user", "run", "thread"):
        expression = getattr(owner, name)
        value = search(expression, frame.body) if expression else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            found[name] = str(value)
    return found


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
