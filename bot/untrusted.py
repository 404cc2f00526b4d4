"""Text from outside (the system under test, its logs, GitHub): JSON parsed with bounds, secrets redacted first.

Two rules every module that keeps outside text follows:
- parse it with :func:`loads`, never bare ``json.loads``: a 2 KB frame of nested arrays must be a finding, not a
  ``RecursionError`` later in whatever walks the document;
- redact it before cutting it (:meth:`Redactor.clip`): a secret split by a cut leaks the half that is kept.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
import json
import re
from collections.abc import Callable, Iterable
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


# C0 and C1 controls and DEL (a terminal obeys ESC and CSI sequences, a carriage return rewrites the line), and the
# bidirectional marks and overrides that reorder what a reader sees ("Trojan Source").
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


_C0_C1 = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_controls(text: str) -> bool:
    """True when ``text`` holds a C0 or C1 control character or DEL: never right in a path or a name (the OS
    refuses NUL with a crash; the others are a mistake or an attack)."""
    return _C0_C1.search(text) is not None


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def show_controls(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character shown as its escape (ESC as ``\\x1b``, U+202E as ``\\u202e``), so
    outside text can never drive a terminal or a log viewer. ``multiline`` keeps line feeds and tabs (evidence
    shown as a block); otherwise they are escaped too (a line break could start a forged line)."""
    if text.isprintable():  # every character the patterns show is a control, format or separator character
        return text
    return (_CONTROLS_BUT_LAYOUT if multiline else _CONTROLS).sub(_visible, text)


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


# -- a secret escaped any number of times ----------------------------------------------------------------------
#
# A server that echoes a secret inside a JSON string inside a frame escapes it twice (`"` -> `\"` -> `\\\"`); a
# URL inside a URL encodes `%` again (`"` -> `%22` -> `%2522`). Listing every form of every depth cannot end, so
# each secret with a character some escaping changes gets one pattern, built when it is added, in which each such
# character matches itself escaped any number of times, in any order: one scan finds every depth.

# Characters no JSON, URL or HTML escaping changes: a run of them is found verbatim in every escaped form.
_UNCHANGED = re.compile(r"[A-Za-z0-9_.~-]+")
_PERCENT = r"%(?:25)*+"  # a percent sign, itself percent-encoded any number of times
_BACKSLASH = rf"(?:\\|{_PERCENT}5[cC])"  # a backslash, raw or percent-encoded at any depth
_JSON_SHORT = {"\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}  # \" \\ \/ are the character itself
_ENTITIES = {
    '"': "quot|#34|#x22",
    "&": "#38|#x26",
    "<": "lt|#60|#x3c",
    ">": "gt|#62|#x3e",
    "'": "#39|#x27|apos",
}
# Secrets that get a pattern (the configured ones, and the first tokens that need one); past this, their fixed
# forms only, so a run of opaque tokens cannot make every clean cost one scan per token.
_DEEP_LIMIT = 64
_DEEP_MAX_CHARS = 8192


def _hex(digits: str) -> str:
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in digits)


def _escaped_any_depth(char: str) -> str:
    """A pattern for ``char`` JSON-, URL- and HTML-escaped any number of times (atomic: no backtracking)."""
    if char == "\\":
        return f"{_BACKSLASH}++"  # 2**depth backslashes: a run of any length
    if char == "%":
        return rf"(?>{_BACKSLASH}++u0025|{_PERCENT})"
    code = ord(char)
    if code > 0xFFFF:  # JSON spells it as a surrogate pair
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        unicode = f"u{_hex(f'{high:04x}')}{_BACKSLASH}++u{_hex(f'{low:04x}')}"
    else:
        unicode = f"u{_hex(f'{code:04x}')}"
    after_backslashes = [unicode] + ([_JSON_SHORT[char]] if char in _JSON_SHORT else [])
    itself = [re.escape(char), "".join(f"{_PERCENT}{_hex(f'{byte:02X}')}" for byte in char.encode())]
    if char == " ":
        itself.append(rf"\+|{_PERCENT}2[bB]")  # quote_plus, then quoted again
    entity = [rf"&(?:amp;)*+(?:{_ENTITIES[char]});"] if char in _ENTITIES else []
    if char == "&":
        entity.append("&(?:amp;)++")  # possessive: the entity's own "amp;" is one of the repeats
    # Longest first: the atomic group keeps the first alternative that matches ("&amp;" before "&").
    alternatives = [
        f"{_BACKSLASH}++(?:{'|'.join(after_backslashes)})",
        *entity,
        f"{_BACKSLASH}*+(?:{'|'.join(itself)})",
    ]
    return f"(?>{'|'.join(alternatives)})"


def deep_pattern(secret: str) -> tuple[str | None, re.Pattern[str]] | None:
    """``(anchor, pattern)`` finding ``secret`` however many times it was escaped; None when no escaping changes
    it (its fixed forms find it). ``anchor`` is its longest unchanged run, found by plain substring search before
    the pattern runs (None when it has no run long enough)."""
    if len(secret) > _DEEP_MAX_CHARS or _UNCHANGED.fullmatch(secret):
        return None
    parts: list[str] = []
    position = 0
    for match in _UNCHANGED.finditer(secret):
        parts += [_escaped_any_depth(c) for c in secret[position : match.start()]]
        parts.append(re.escape(match.group()))
        position = match.end()
    parts += [_escaped_any_depth(c) for c in secret[position:]]
    merged = [p for i, p in enumerate(parts) if not (p == f"{_BACKSLASH}++" and i and parts[i - 1] == p)]
    # A match never starts inside a run of (encoded) backslashes: each start in a long run would scan the rest of
    # it again (quadratic in a hostile frame).
    guard = r"(?<!\\)(?<!5[cC])" if not _UNCHANGED.match(secret) else ""
    runs = sorted((m.group() for m in _UNCHANGED.finditer(secret)), key=len, reverse=True)
    anchor = runs[0] if runs and len(runs[0]) >= _MIN_NEEDLE else None
    return anchor, re.compile(guard + "".join(merged))


# A JSON Web Token, and where one (or its base64: "eyJ" encodes as "ZXlK") can start. Every form of a JWT starts
# with one of the two, so the tokens a run mints are found by scanning for these and looking up the few lengths
# they come in: no pattern to compile however many users there are.
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_JWT_PREFIXES = ("eyJ", "ZXlK")
_JWT_STARTS = re.compile("|".join(_JWT_PREFIXES))


@functools.lru_cache(maxsize=64)  # each token is added to the probe's redactor and to the console's
def jwt_forms(token: str) -> frozenset[str]:
    """:func:`secret_forms` of a JWT, computed in three base64 calls: its characters (``A-Za-z0-9-_.``) are left
    alone by JSON, URL and HTML escaping, so only the token and its base64 spellings remain (a thousand users mint
    a thousand tokens, each while the other users' frames wait)."""
    raw = token.encode()
    standard = base64.b64encode(raw).decode()
    return frozenset(
        (token, standard, standard.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="))
    )


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

    A secret that some escaping changes (a password with ``"``, ``\\`` or ``%``) also gets a :func:`deep_pattern`
    when it is added, finding it escaped any number of times; it runs only when a piece of the secret that no
    escaping changes is in the text (a substring search), so a clean without a leak costs one ``in`` per such
    secret. JWTs (minted per user) never need one: no escaping changes their characters.
    """

    __slots__ = ("_deep", "_generations", "_known", "_pending", "_token_lengths", "_tokens")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._generations: list[tuple[frozenset[str], re.Pattern[str]]] = []
        self._known: set[str] = set()  # every needle, compiled or pending
        # not compiled yet: found with plain substring search until there are many
        self._pending: list[str] = []
        self._tokens: set[str] = set()  # every form of every JWT: found from where one can start, by length
        self._token_lengths: list[int] = []  # longest first
        self._deep: list[tuple[str | None, re.Pattern[str]]] = []  # secrets escaped any number of times
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret:
            jwt = _JWT_SHAPE.fullmatch(secret) is not None
            new = (jwt_forms(secret) if jwt else secret_forms(secret)) - self._known
            self._known |= new
            if jwt and all(form.startswith(_JWT_PREFIXES) for form in new):
                self._tokens |= new
                lengths = {len(form) for form in new}
                if not lengths.issubset(self._token_lengths):  # a run's tokens come in a few lengths
                    self._token_lengths = sorted({*self._token_lengths, *lengths}, reverse=True)
                return
            self._pending = sorted({*self._pending, *new}, key=len, reverse=True)  # longest form first
            if new and len(self._deep) < _DEEP_LIMIT:
                deep = deep_pattern(secret)
                if deep is not None:
                    self._deep.append(deep)

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
        # Before the fixed forms, which could cut a deeper form in two (a level-1 form is the tail of level 2).
        for anchor, pattern in self._deep:
            if anchor is None or anchor in text:
                text = pattern.sub(REDACTED, text)
        # The oldest (largest) generation first: it holds the configured secrets, added before any token.
        for _, pattern in self._compiled():
            text = pattern.sub(REDACTED, text)
        for needle in self._pending:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text

    def _clean_tokens(self, text: str) -> str:
        if _JWT_PREFIXES[0] not in text and _JWT_PREFIXES[1] not in text:
            return text  # no token can start here (a substring search is cheaper than the pattern's scan)
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
    (keys too) are walked; enum members and other values are kept as they are.

    A text met again is cleaned once (a 1,000-user run repeats each check id and most summaries a thousand
    times); the memo lives for this call only, so a token added to the redactor later is never missed."""
    if not redactor:
        return value
    memo: dict[str, str | None] = {}  # text -> its cleaned text, or None when cleaning left it as it was

    def clean(text: str) -> str:
        if text in memo:
            cleaned = memo[text]
            return text if cleaned is None else cleaned
        cleaned = redactor.clean(text)
        unchanged = cleaned == text
        if len(memo) < _MEMO_LIMIT and len(text) <= _MEMO_CHARS:
            memo[text] = None if unchanged else cleaned
        return text if unchanged else cleaned  # the same object: an unchanged dataclass is not rebuilt

    return _redact(value, clean)  # type: ignore[no-any-return]


_MEMO_LIMIT = 100_000  # texts remembered per redact_strings call
_MEMO_CHARS = 4096  # longer texts (a frame's evidence) are rarely repeated: cleaned each time, not kept


@functools.cache
def _init_fields(cls: type) -> tuple[tuple[str, ...], bool]:
    """A dataclass's fields set by ``__init__``, and whether those are all its fields."""
    fields = dataclasses.fields(cls)
    return tuple(f.name for f in fields if f.init), all(f.init for f in fields)


def _redact(value: Any, clean: Callable[[str], str]) -> Any:
    kind = type(value)
    if kind is str:
        return clean(value)
    how = _HOW.get(kind) or _how(kind)
    if how == _KEEP:
        return value
    if how == _CLEAN:
        return clean(value)
    if how == _DATACLASS:
        cls: type = kind
        names, only_init = _init_fields(cls)
        changes = {}
        same = True
        for name in names:
            old = getattr(value, name)
            kind = type(old)
            if kind is str:
                new = clean(old)
            elif _HOW.get(kind) == _KEEP:  # numbers, None, enum members: most fields, kept without a call
                new = old
            else:
                new = _redact(old, clean)
            changes[name] = new
            same = same and new is old
        if only_init and same:
            return value  # nothing to redact: the same value (a rebuilt one would be equal)
        return dataclasses.replace(value, **changes)
    if how == _TUPLE:
        items = tuple(_redact(item, clean) for item in value)
        return value if kind is tuple and all(a is b for a, b in zip(items, value, strict=True)) else items
    if how == _LIST:
        listed = [_redact(item, clean) for item in value]
        return value if kind is list and all(a is b for a, b in zip(listed, value, strict=True)) else listed
    pairs = [(_redact(k, clean), _redact(v, clean)) for k, v in value.items()]
    if kind is dict and all(k is a and v is b for (k, v), (a, b) in zip(pairs, value.items(), strict=True)):
        return value  # nothing redacted: the dataclass holding it need not be rebuilt
    return dict(pairs)


_KEEP, _CLEAN, _DATACLASS, _TUPLE, _LIST, _DICT = range(1, 7)  # how _redact walks a type (never 0: `or`)
_HOW: dict[type, int] = {int: _KEEP, float: _KEEP, bool: _KEEP, type(None): _KEEP}


def _how(kind: type) -> int:
    """How ``_redact`` walks a value of this type, decided once per type (in the order the checks read)."""
    if issubclass(kind, Enum):
        how = _KEEP
    elif issubclass(kind, str):
        how = _CLEAN
    elif dataclasses.is_dataclass(kind):
        how = _DATACLASS
    elif issubclass(kind, tuple):
        how = _TUPLE
    elif issubclass(kind, list):
        how = _LIST
    elif issubclass(kind, dict):
        how = _DICT
    else:
        how = _KEEP
    if len(_HOW) < 1024:
        _HOW[kind] = how
    return how


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
