"""Text from outside (the system under test, its logs, GitHub): JSON parsed with bounds, secrets redacted first.

Two rules every module that keeps outside text follows:
- parse it with :func:`loads`, never bare ``json.loads``: a 2 KB frame of nested arrays must be a finding, not a
  ``RecursionError`` later in whatever walks the document;
- redact it before cutting it (:meth:`Redactor.clip`): a secret split by a cut leaks the half that is kept.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import re
from collections.abc import Iterable
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

MAX_JSON_DEPTH = 64  # real chat frames nest a handful of levels; anything deeper is hostile or broken
REDACTED = "[redacted]"
_MIN_NEEDLE = 4  # shorter "secrets" would blank out ordinary words and protect nothing


class UntrustedJSONError(ValueError):
    """Outside text that is not a JSON document we accept; ``str(e)`` says why in one line."""


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped), without recursion."""
    if text.count("[") + text.count("{") <= 1:
        return 1 if ("[" in text or "{" in text) else 0
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def loads(raw: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for outside text: invalid UTF-8, bad JSON and over-deep nesting are one error type."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UntrustedJSONError(f"not UTF-8 (invalid byte at position {exc.start})") from None
    else:
        text = raw
    opens = text.count("[") + text.count("{")
    if opens > max_depth and json_depth(text) > max_depth:
        raise UntrustedJSONError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UntrustedJSONError(f"not JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:  # unreachable after the depth check; kept so no input can crash a caller
        raise UntrustedJSONError(f"JSON nested deeper than {max_depth} levels") from None


_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-f]{4}")


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (a 10 MB value still gives a short line)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to a readable length: how a message quotes a value it refuses."""
    return cut(repr(value), limit)


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` a server or a renderer might produce: raw, base64 (url-safe and standard),
    JSON-escaped (``\\/``, ``\\"``, ``\\u00e9``), URL- and HTML-encoded, and each long line of a multi-line key."""
    forms = {secret, html.escape(secret), html.escape(secret).replace("&#x27;", "&#39;")}
    for encoded in (quote(secret, safe=""), quote_plus(secret)):
        forms |= {encoded, _PERCENT_HEX.sub(lambda m: m.group().lower(), encoded)}  # %2F and %2f alike
    raw = secret.encode()
    standard = base64.b64encode(raw).decode()
    forms |= {base64.urlsafe_b64encode(raw).decode().rstrip("="), standard, standard.rstrip("=")}
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
        forms.add(_UNICODE_ESCAPE.sub(lambda m: m.group()[:2] + m.group()[2:].upper(), escaped))  # \u00E9
    for line in secret.splitlines():
        if len(line.strip()) >= 8:
            forms.add(line.strip())
    return {form for form in forms if len(form) >= _MIN_NEEDLE}


# A JSON Web Token, and where one (or its base64: "eyJ" encodes as "ZXlK") can start. Every form of a JWT starts
# with one of the two, so the tokens a run mints are found by scanning for these and looking up the few lengths
# they come in: no pattern to compile however many users there are.
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_JWT_PREFIXES = ("eyJ", "ZXlK")
_JWT_STARTS = re.compile("|".join(_JWT_PREFIXES))


def jwt_forms(token: str) -> set[str]:
    """:func:`secret_forms` of a JWT, computed in three base64 calls: its characters (``A-Za-z0-9-_.``) are left
    alone by JSON, URL and HTML escaping, so only the token and its base64 spellings remain (a thousand users mint
    a thousand tokens, each while the other users' frames wait)."""
    raw = token.encode()
    standard = base64.b64encode(raw).decode()
    return {token, standard, standard.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}


# Up to this many new needles are found with `str.__contains__` (C speed) before they are compiled: tokens minted
# one by one during a run then cost a handful of compiles, not one per token.
_PENDING_SEARCHED = 128


class Redactor:
    """Replaces every form of every secret with ``[redacted]``.

    The needles are compiled into regular expressions shaped like a trie, so the cost per character stays flat
    however many tokens a run minted (a thousand users mint a thousand JWTs that share a long prefix). Tokens are
    added while the run goes on, so the needles live in generations, merged the way a log-structured store
    merges runs: a new token compiles a small pattern, and a generation is rebuilt only when a newer one has
    grown as large. Compiling costs O(n log n) over a run and a clean makes O(log n) passes, where one pattern
    rebuilt on every add cost O(n²) (minutes at 1,000 users).
    """

    __slots__ = ("_generations", "_known", "_pending", "_token_lengths", "_tokens")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._generations: list[tuple[frozenset[str], re.Pattern[str]]] = []
        self._known: set[str] = set()  # every needle, compiled or pending
        # not compiled yet: found with plain substring search until there are many
        self._pending: list[str] = []
        self._tokens: set[str] = set()  # every form of every JWT: found from where one can start, by length
        self._token_lengths: list[int] = []  # longest first
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret:
            jwt = _JWT_SHAPE.fullmatch(secret) is not None
            new = (jwt_forms(secret) if jwt else secret_forms(secret)) - self._known
            self._known |= new
            if jwt and all(form.startswith(_JWT_PREFIXES) for form in new):
                self._tokens |= new
                self._token_lengths = sorted({*self._token_lengths, *map(len, new)}, reverse=True)
                return
            self._pending = sorted({*self._pending, *new}, key=len, reverse=True)  # longest form first

    def __bool__(self) -> bool:
        return bool(self._known)

    def __repr__(self) -> str:  # never the secrets themselves
        return f"Redactor({len(self._known)} forms)"

    def _compiled(self) -> list[tuple[frozenset[str], re.Pattern[str]]]:
        if len(self._pending) > _PENDING_SEARCHED:
            needles = frozenset(self._pending)
            self._pending = []
            while self._generations and len(self._generations[-1][0]) <= len(needles):
                needles |= self._generations.pop()[0]
            self._generations.append((needles, re.compile(_trie_pattern(needles))))
        return self._generations

    def clean(self, text: str) -> str:
        if not self._known or not text:
            return text
        if self._tokens:
            text = self._clean_tokens(text)
        # The oldest (largest) generation first: it holds the configured secrets, added before any token.
        for _, pattern in self._compiled():
            text = pattern.sub(REDACTED, text)
        for needle in self._pending:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def _clean_tokens(self, text: str) -> str:
        pieces: list[str] = []
        end = 0
        for match in _JWT_STARTS.finditer(text):
            start = match.start()
            if start < end:
                continue  # inside a token just redacted
            for length in self._token_lengths:
                if text[start : start + length] in self._tokens:
                    pieces += (text[end:start], REDACTED)
                    end = start + length
                    break
        return "".join((*pieces, text[end:])) if pieces else text

    def clip(self, text: str, limit: int) -> str:
        """Redact, then cut to ``limit`` characters, saying how much was cut."""
        cleaned = self.clean(text)
        if len(cleaned) <= limit:
            return cleaned
        return f"{cleaned[:limit]}… [{len(cleaned) - limit} more characters]"


T = TypeVar("T")


def redact_strings(value: T, redactor: Redactor) -> T:
    """``value`` with every string inside it redacted: frozen dataclasses (rebuilt), tuples, lists and dicts
    (keys too) are walked; enum members and other values are kept as they are."""
    if not redactor:
        return value
    return _redact(value, redactor)  # type: ignore[no-any-return]


def _redact(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, Enum):
        return value
    if isinstance(value, str):
        return redactor.clean(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _redact(getattr(value, f.name), redactor) for f in dataclasses.fields(value) if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_redact(item, redactor) for item in value)
    if isinstance(value, list):
        return [_redact(item, redactor) for item in value]
    if isinstance(value, dict):
        return {_redact(k, redactor): _redact(v, redactor) for k, v in value.items()}
    return value


def _trie_pattern(needles: Iterable[str]) -> str:
    trie: dict[str, Any] = {}
    for needle in needles:
        node = trie
        for char in needle:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a needle
    return _node_pattern(trie)


def _node_pattern(node: dict[str, Any]) -> str:
    # Longest match first: children before the end marker, so "abcdef" wins over its prefix "abcd".
    branches = []
    for char in sorted(k for k in node if k):
        child = node[char]
        # Collapse a chain of single children into one literal run (keeps the pattern small and fast).
        run = char
        while len(child) == 1 and "" not in child:
            ((next_char, child),) = child.items()
            run += next_char
        branches.append(re.escape(run) + _node_pattern(child) if child != {"": {}} else re.escape(run))
    ends = "" in node
    if not branches:
        return ""
    if len(branches) == 1 and not ends:
        return branches[0]
    body = "(?:" + "|".join(branches) + ")"
    return body + "?" if ends else body
