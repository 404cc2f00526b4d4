"""The profile's JMESPath expressions and frame templates: compiled once, checked at preflight, applied. Pure.

``bot.settings`` checks every expression and template when the config is read (a problem is a usage error
naming the key); ``bot.protocol`` and the probe apply them to frames.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import jmespath
from jmespath.exceptions import JMESPathError, ParseError

PLACEHOLDERS = (
    "message",
    "thread_id",
    "user",
    "nonce",
    "token",
    "token_b64",
    "turn",
    "message_id",
    "turn_id",
)
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
    "message_id": "m-1",
    "turn": "1",
    "turn_id": "t-1",
}


@functools.lru_cache(maxsize=64)
def b64url(token: str) -> str:
    """``token`` in unpadded base64url; remembered: a user's token is spelled so for its frames, its offer and
    its redaction."""
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> Any:
    parsed = jmespath.compile(text)
    direct = _direct(parsed.parsed)
    return parsed if direct is None else _Direct(direct)


class _Direct:
    """An expression made only of fields, indexes, literals, ``a.b``, ``a || b``, ``a && b``, ``a == b`` and
    ``a != b`` (what profiles use), evaluated by
    closures with JMESPath's own semantics instead of walking the tree per frame (4 lookups per frame, at 1,000
    users the interpreter was a tenth of the probe's CPU). Anything else keeps jmespath's interpreter."""

    __slots__ = ("search",)

    def __init__(self, evaluate: Callable[[Any], Any]) -> None:
        self.search = evaluate


def _is_false(value: Any) -> bool:  # JMESPath's falsiness, as jmespath.visitor.TreeInterpreter._is_false
    if value is None or value is False:
        return True
    kind = type(value)
    if (
        kind is str or kind is list or kind is dict
    ):  # what a JSON frame holds: no comparison with new [] and {}
        return not value
    return bool(value == "" or value == [] or value == {})


def _json_equal(x: Any, y: Any) -> bool:
    """JMESPath's ``==`` (jmespath.visitor's own rule): 0 and 1 never equal a boolean; otherwise Python's."""
    if (_number(x) and x in (0, 1) and isinstance(y, bool)) or (
        _number(y) and y in (0, 1) and isinstance(x, bool)
    ):
        return False
    return bool(x == y)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
            if value is not None and not _is_false(value):
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
    if kind == "literal":
        constant = node["value"]
        return lambda _value: constant
    if kind == "comparator" and node["value"] in ("eq", "ne"):
        left_side, right_side = (_direct(child) for child in node["children"])
        if left_side is None or right_side is None:
            return None
        same = node["value"] == "eq"
        return lambda value: _json_equal(left_side(value), right_side(value)) is same
    if kind not in ("subexpression", "index_expression", "or_expression", "and_expression"):
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
    if kind == "and_expression":  # `a && 'name'`: how profiles name an event by the field it carries
        first, second = chain

        def both(value: Any) -> Any:
            matched = first(value)
            return matched if _is_false(matched) else second(value)

        return both

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


def is_fast(expression: str) -> bool:
    """Whether the expression runs on the direct closures rather than JMESPath's tree walk."""
    return isinstance(_compiled(expression), _Direct)


def search(expression: str, document: Any) -> Any:
    """The expression's value on ``document``; None when it matches nothing or cannot apply (wrong types)."""
    return reader(expression)(document)


@functools.lru_cache(maxsize=256)
def reader(expression: str) -> Callable[[Any], Any]:
    """``search`` for one expression, compiled once: a hot caller keeps the function it returns."""
    evaluate = _compiled(expression).search

    def read(document: Any) -> Any:
        try:
            return evaluate(document)
        except (JMESPathError, RecursionError, TypeError, ValueError):
            return None

    return read


def dotted(document: Any, path: str) -> Any:
    """The value at a dotted path of keys (``messages``, ``input.messages``); None when absent."""
    for key in path.split("."):
        document = document.get(key) if isinstance(document, dict) else None
    return document


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


def template_problem(template: str, extra: Sequence[str] = (), *, array: bool = False) -> str | None:
    """Why a frame template is unusable: an unknown placeholder, or not JSON once placeholders are filled.
    ``extra``: names a journey adds (values extracted by request steps, constant values); ``array``: the
    template is a JSON array (an earlier turn's messages, ``sse.history.turn``), not an object."""
    if (problem := unknown_placeholder(template, (*PLACEHOLDERS, *extra))) is not None:
        return problem
    filled = render(template, {**_SAMPLE, **dict.fromkeys(extra, "x")})
    try:
        document = json.loads(filled)
    except json.JSONDecodeError as exc:
        near = filled[max(0, exc.pos - 20) : exc.pos + 20]
        return f"not valid JSON after substitution ({exc.msg} at position {exc.pos}, near {near!r})"
    if array and not isinstance(document, list):
        return "expected a JSON array (the messages of one earlier turn)"
    if not array and not isinstance(document, dict):
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
    return substitute(template, lambda name: _json_text(values[name]) if name in values else None)


def _json_text(value: str) -> str:
    """``json.dumps(value)[1:-1]``; for a string, the same escaping without the encoder's setup (once per
    placeholder of every user's request body)."""
    if type(value) is str:
        return json.encoder.encode_basestring_ascii(value)[1:-1]
    return json.dumps(value)[1:-1]


def render_text(template: str, values: Mapping[str, str]) -> str:
    """The template with each ``{name}`` replaced by its value as it is (a header, a form field, a URL part)."""
    return substitute(template, values.get)


def render_path(template: str, values: Mapping[str, str]) -> str:
    """A path template with each ``{name}`` replaced by its value, percent-encoded as one path segment."""
    return substitute(template, lambda name: quote(values[name], safe="") if name in values else None)


def token_values(token: str) -> dict[str, str]:
    return {"token": token, "token_b64": b64url(token)}


def has_placeholder(template: str) -> bool:
    return _PLACEHOLDER.search(template) is not None


def token_text(template: str, token: str) -> str:
    """A subprotocol or header template with ``{token}`` and ``{token_b64}`` filled (not JSON-escaped)."""
    values = token_values(token)
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group()), template)


@functools.lru_cache(maxsize=256)
def shown_token_text(template: str) -> str:
    """The template as evidence shows it: ``{token}`` reads ``<token>``."""
    return _PLACEHOLDER.sub(
        lambda m: f"<{m.group(1)}>" if m.group(1) in TOKEN_PLACEHOLDERS else m.group(), template
    )


@functools.lru_cache(maxsize=256)
def frame_type(template: str) -> str:
    """A frame template's `type` (its name in our words), or "frame". Remembered: each turn names its frames."""
    try:
        kind = json.loads(render(template, _SAMPLE)).get("type")
    except (ValueError, AttributeError):
        kind = None
    return str(kind) if isinstance(kind, str) and kind else "frame"
