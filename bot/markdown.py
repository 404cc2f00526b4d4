"""Untrusted text and figures -> GitHub markdown: the filters every template writes through. Pure.

Untrusted text (anything from the system under test, the config or a saved results file) is only ever written
through one of these, which every built-in template uses and a user template should use too:

- ``escape`` (filter ``escape``/``e``): inline text. Markdown punctuation that could build links, images,
  emphasis or code spans is backslash-escaped; ``<`` becomes ``&lt;`` and an entity-like ``&`` becomes
  ``&amp;`` (so no HTML, and no ``<!--``); newlines become spaces and ``|`` is ``\\|`` (safe in table cells);
  a block marker at the start (``#``, ``>``, ``-``, ``1.``) is escaped; ``@name`` and ``#123``/``GH-123`` get a
  WORD JOINER (U+2060) after ``@``/``#`` so they neither notify nor cross-reference; bare URLs get one after
  ``://`` (and ``www.``) so GitHub does not autolink them; control and bidi characters are shown as ``\\xNN``.
- ``code`` (a code span) and ``code_block`` (a fence longer than any backtick run inside): inside code, GitHub
  neither renders HTML nor notifies mentions, but the raw text is still searched for markers, so ``<!--``
  becomes ``<!\\u200b--`` there.
- ``inline``: our own sentences that quote untrusted values (titles, causes): backtick-delimited parts become
  safe code spans and the rest is escaped as above.

Long values are cut with a visible ``… (N more characters)``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from bot.impact import format_money
from bot.results import Run, Status, Step
from bot.untrusted import show_controls

INLINE_LIMIT = 500  # characters of untrusted inline text before "… (N more characters)"
CODE_LIMIT = 4_000  # characters of one evidence value in a code block
SPAN_LIMIT = 200  # characters in one code span
WORD_JOINER = "\u2060"  # invisible, no line break: splits "@name" so GitHub does not see a mention
ZERO_WIDTH_SPACE = "\u200b"  # splits "<!--" inside code, where entities do not render

# -- escaping --------------------------------------------------------------------------------------------------

_LINE_BREAKS = re.compile(r"\r\n|[\n\r\x0b\x0c\x85\u2028\u2029]")
_AUTOLINK = re.compile(r"(?i)(\b(?:https?|ftp|wss?)://|\bwww\.)")
_REFERENCE = re.compile(r"(?i)(@(?=[a-z0-9])|#(?=\d)|\bgh-(?=\d))")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
# What would start a block if the text began a line: heading, quote, list item, setext underline.
_LEADING_BLOCK = re.compile(r"^(\s*)(>|#{1,6}(?=\s|$)|[-+](?=\s|$)|(?:=+|-+)\s*$|\d{1,9}(?=[.)](?:\s|$)))")
_MARKDOWN_CHARS = {"\\": "\\\\", "`": "\\`", "*": "\\*", "~": "\\~", "[": "\\[", "]": "\\]", "|": "\\|",
                   "<": "&lt;"}  # fmt: skip
# Text with none of these is left as it is by the character escapes (most text: they run only when one is there).
_ESCAPED_CHARS = re.compile("[" + re.escape("".join(_MARKDOWN_CHARS)) + "&_]")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _truncate(text: str, limit: int | None, sep: str = "") -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}{sep}… ({len(text) - limit:,} more characters)"


def _escape_markdown(text: str, *, leading: bool, autolinks: bool = False) -> str:
    escaped = _escape_chars(text) if _ESCAPED_CHARS.search(text) else text
    # After the escapes above, which leave these patterns intact (so "&#64;" became "&amp;#64;" first). Each runs
    # only where a substring it needs is there ("://" or "www.", "@", "#" or "gh-"; only ASCII letters fold to
    # w, g and h): most texts have none, and a report escapes thousands.
    lowered = escaped.lower()
    if not autolinks and ("://" in escaped or "www." in lowered):
        escaped = _AUTOLINK.sub(lambda m: m.group()[:-1] + WORD_JOINER + m.group()[-1], escaped)
    if "@" in escaped or "#" in escaped or "gh-" in lowered:
        escaped = _REFERENCE.sub(lambda m: m.group() + WORD_JOINER, escaped)
    if leading:
        escaped = _LEADING_BLOCK.sub(_escape_block_start, escaped, count=1)
    return escaped


_SPECIAL = re.compile("[" + re.escape("".join(_MARKDOWN_CHARS)) + "_]|" + _ENTITY.pattern)


def _escape_chars(text: str) -> str:
    """Each character a markdown renderer could read as syntax, escaped: ``\\ ` * ~ [ ] |`` with a backslash,
    ``<`` as ``&lt;``, an ``&`` that starts an entity as ``&amp;``, and an ``_`` unless it sits inside a word.
    One regular-expression pass that stops only at those characters (a per-character loop cost 38 µs for a
    150-character summary, once per user)."""
    last = len(text) - 1

    def one(match: re.Match[str]) -> str:
        char = match.group()
        if char == "_":
            index = match.start()
            inside_a_word = 0 < index < last and text[index - 1].isalnum() and text[index + 1].isalnum()
            return "_" if inside_a_word else "\\_"
        return "&amp;" if char == "&" else _MARKDOWN_CHARS[char]

    return _SPECIAL.sub(one, text)


def _escape_block_start(match: re.Match[str]) -> str:
    space, mark = match.group(1), match.group(2)
    if mark[0].isdigit():  # "1. " -> "1\. "
        return f"{space}{mark}\\"
    return f"{space}\\{mark}"


def plain_line(text: str) -> str:
    """Plain text (not markdown) on one line: line breaks become spaces, control characters are shown."""
    return show_controls(_LINE_BREAKS.sub(" ", text), multiline=True)


def escape(text: object, limit: int | None = INLINE_LIMIT) -> str:
    """Untrusted text as inert inline markdown, on one line (see the module docstring for the rules)."""
    if type(text) is str and len(text) <= _REMEMBERED_CHARS:
        return _escape_remembered(text, limit)
    return _escape_inline(text, limit)


# A report repeats most of its short texts once per user (summaries, check ids): each is escaped once. Only short
# texts are remembered, so the cache holds at most _REMEMBERED entries of at most this many characters.
_REMEMBERED = 4096
_REMEMBERED_CHARS = 600


@functools.lru_cache(maxsize=_REMEMBERED)
def _escape_remembered(text: str, limit: int | None) -> str:
    return _escape_inline(text, limit)


def _escape_inline(text: object, limit: int | None, *, autolinks: bool = False) -> str:
    value = _truncate(_text(text), limit)
    if not value.isprintable():  # printable text holds no line break, tab or control character
        value = show_controls(_LINE_BREAKS.sub(" ", value).replace("\t", " "), multiline=True)
    return _escape_markdown(value, leading=True, autolinks=autolinks)


def code(text: object, *, table: bool = False, limit: int | None = SPAN_LIMIT) -> str:
    """Untrusted text as an inline code span; ``table=True`` also escapes ``|`` for a table cell."""
    if type(text) is str and len(text) <= _REMEMBERED_CHARS:
        return _code_remembered(text, table, limit)
    return _code(text, table=table, limit=limit)


@functools.lru_cache(maxsize=_REMEMBERED)
def _code_remembered(text: str, table: bool, limit: int | None) -> str:
    return _code(text, table=table, limit=limit)


def _code(text: object, *, table: bool, limit: int | None) -> str:
    value = _LINE_BREAKS.sub(" ", _truncate(_text(text), limit)).replace("\t", " ")
    value = show_controls(value, multiline=True).replace("<!--", f"<!{ZERO_WIDTH_SPACE}--")
    if table:
        value = value.replace("|", "\\|")
    if not value.strip():
        return escape(value)
    ticks = "`" * (_longest_backtick_run(value) + 1)
    if value[0] in "` " or value[-1] in "` ":
        value = f" {value} "
    return f"{ticks}{value}{ticks}"


def code_block(text: object, lang: str = "", *, limit: int | None = CODE_LIMIT) -> str:
    """Untrusted text as a fenced block that nothing inside can close, forge a marker in or notify from.

    The fence is one backtick longer than the longest run inside (at least three); ``<!--`` is split with a
    zero-width space, because the raw body is what marker searches read.
    """
    value = _LINE_BREAKS.sub("\n", _truncate(_text(text), limit, sep="\n"))
    value = show_controls(value, multiline=True).replace("<!--", f"<!{ZERO_WIDTH_SPACE}--")
    fence = "`" * max(3, _longest_backtick_run(value) + 1)
    info = re.sub(r"[^A-Za-z0-9_+-]", "", lang)[:20]
    return f"{fence}{info}\n{value.removesuffix(chr(10))}\n{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def inline(text: object, limit: int | None = 1_500, *, table: bool = False) -> str:
    """Our sentence that quotes untrusted values: `code` parts become safe code spans, the rest is escaped."""
    value = _LINE_BREAKS.sub(" ", _truncate(_text(text), limit))
    parts = re.split(r"(`[^`]+`)", value)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(code(part[1:-1], table=table, limit=None))
        elif part:
            out.append(
                _escape_markdown(show_controls(part.replace("\t", " "), multiline=True), leading=index == 0)
            )
    return "".join(out)


def link(url: object, text: object = None) -> str:
    """A markdown link to an http(s) URL; anything else is shown as escaped text, never as a link."""
    raw = _text(url).strip()
    # Inside a link's text GitHub does not autolink, so URLs there need no word joiner.
    label = _escape_inline(raw if text is None else text, 200, autolinks=True)
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or len(raw) > 2_000:
        return label
    return f"[{label}]({quote(raw, safe=':/?#@!$&*+,;=%~-._')})"


# -- formatting filters ----------------------------------------------------------------------------------------

STATUS_ICONS = {
    "pass": "✅",
    "fail": "❌",
    "skip": "⚪",
    "not verified": "❔",
    "degraded": "⚠️",
    "P0": "❌",
    "P1": "⚠️",
}
STEP_LABELS = {
    Step.REVISION: "Revision",
    Step.HEALTH: "Health",
    Step.LOGIN: "Login",
    Step.CONNECT: "Connect",
    Step.MESSAGE: "Message",
    Step.AGENT: "Agent",
    Step.ANSWER: "Answer",
    Step.ISOLATION: "Isolation",
    Step.PERFORMANCE: "Performance",
}


def _value(item: object) -> str:
    return str(getattr(item, "value", item))


def icon(status: object) -> str:
    """✅ ❌ ⚠️ ⚪ for a Status, Verdict or Severity (or its value)."""
    return STATUS_ICONS.get(_value(status), "•")


def duration(ms: float | None) -> str:
    """``85 ms``, ``1.2 s``, ``2 min 5 s``; ``—`` when not measured."""
    if ms is None or not math.isfinite(ms):
        return "—"
    if ms < 10:
        return f"{ms:.1f} ms"
    if round(ms) < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def measure(value: float | None, unit: str) -> str:
    """A metric figure in its unit: milliseconds as durations, others as ``12 %`` or ``3 events``."""
    if value is None:
        return "—"
    if unit == "ms":
        return duration(value)
    return f"{value:g}{unit}" if unit == "%" else f"{value:g} {escape(unit, 20)}".strip()


def _parse_time(value: object) -> datetime | None:
    text = _text(value).strip()
    # Cloud Run writes nanoseconds; Python reads at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timestamp(value: object) -> str:
    """``2025-06-03 14:21 UTC`` from RFC 3339; unparsable input is shown escaped, as given."""
    moment = _parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else escape(value, 60)


def clock(value: object) -> str:
    """``14:05:01 UTC``: the time of day to the second (log entries within one run's window)."""
    moment = _parse_time(value)
    return moment.strftime("%H:%M:%S UTC") if moment else escape(value, 40)


def age(value: object, reference: object) -> str:
    """How long before ``reference`` (the run's end, so reports are reproducible) ``value`` was: ``3 min``."""
    start, end = _parse_time(value), _parse_time(reference)
    if start is None or end is None:
        return ""
    seconds = max(0, round((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:g}%"


def money(amount: float | None, currency: str = "USD") -> str:
    return "—" if amount is None else format_money(amount, currency)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 finding``, ``3 findings``."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


def short_sha(value: object) -> str:
    """The first 7 characters of a hex commit id; other text as given."""
    text = _text(value)
    return text[:7] if re.fullmatch(r"[0-9a-f]{8,64}", text) else text


def users(found: Sequence[int], total: int) -> str:
    """Which simulated users a finding hit: ``all 5 users``, ``users 2 and 4 of 5``."""
    if not found:
        return ""
    if total > 1 and len(found) >= total:
        return "both users" if total == 2 else f"all {total} users"
    names = [str(u) for u in found]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    label = "user" if len(names) == 1 else "users"
    return f"{label} {listed} of {total}" if total > 1 else f"{label} {listed}"


def lower_first(text: str) -> str:
    """``Compare the…`` -> ``compare the…``, leaving acronyms and code (``JWT``, `` `x` ``) alone."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def counts(run: Run) -> str:
    """`` (2 P0, 1 P1, 5 not verified)`` after the verdict; empty on a pass that verified everything."""
    unverified = sum(1 for c in run.checks if c.status is Status.NOT_VERIFIED)
    parts = [
        f"{n} {s}" for n, s in ((run.p0_count, "P0"), (run.p1_count, "P1"), (unverified, "not verified")) if n
    ]
    return f" ({', '.join(parts)})" if parts else ""


def evidence(items: Mapping[str, object]) -> str:
    """Evidence as one ``key: value`` code block; multi-line values indented under their key."""
    lines = []
    for key, raw in items.items():
        name = _LINE_BREAKS.sub(" ", _truncate(str(key), 80))
        value = _LINE_BREAKS.sub("\n", _truncate(_text(raw), CODE_LIMIT, sep="\n"))
        if not value.strip():
            lines.append(f"{name}: (empty)")
        elif "\n" in value.strip("\n"):
            lines.append(f"{name}:")
            lines += [f"  {line}" for line in value.strip("\n").split("\n")]
        else:
            lines.append(f"{name}: {value.strip(chr(10))}")
    return code_block("\n".join(lines), "text", limit=None)


def shares(traffic: Mapping[str, int]) -> str:
    """A traffic split as ``rev-a 90%, rev-b 10%`` (escaped: revision names come from the Cloud Run API)."""
    if not traffic:
        return "none"
    return ", ".join(f"{code(name)} {pct:g}%" for name, pct in sorted(traffic.items(), key=lambda i: -i[1]))


def ratio(value: float | None) -> str:
    """``1.50×``; ``—`` when one side was not measured."""
    return "—" if value is None else f"{value:.2f}×"


FILTERS: dict[str, Callable[..., Any]] = {
    "escape": escape,
    "e": escape,
    "inline": inline,
    "code": code,
    "code_block": code_block,
    "link": link,
    "icon": icon,
    "duration": duration,
    "measure": measure,
    "timestamp": timestamp,
    "age": age,
    "clock": clock,
    "percent": percent,
    "money": money,
    "plural": plural,
    "short_sha": short_sha,
    "users": users,
    "lower_first": lower_first,
    "counts": counts,
    "evidence": evidence,
    "shares": shares,
    "ratio": ratio,
}
