"""Run -> markdown: the report, the PR comment, P0 issue texts and the step summary, from Jinja templates. Pure.

Templates live in ``templates/`` (installed as ``bot/templates``) and are rendered in a sandboxed Jinja
environment with strict undefined and autoescape off (the output is markdown, not HTML). A user's
``templates-dir`` is searched first, so a file there replaces ours of the same name; ours stay reachable as
``builtin/<name>``, so a user's ``report.md.j2`` can ``{% extends "builtin/report.md.j2" %}`` and override
one block. A missing directory or template, a syntax error, an undefined variable or a missing hidden marker is
a ``TemplateError`` naming the file and line.

Untrusted text is only ever written through the filters of ``bot.markdown`` (escaping, code spans and
blocks); see there.

Hidden markers are HTML comments we write on a line of their own (``comment_marker``, ``issue_marker``,
``issue_comment_marker``, and the history line). The rule that makes them unforgeable: untrusted text is
never written with a raw ``<!--`` (see above), and a marker counts only as a whole line (``has_marker``,
``decode_history``), so quoting our own marker in evidence can never be mistaken for it. Code that finds
comments or issues through GitHub search must confirm the hit with ``has_marker``.

Size: ``render_comment`` (and the issue texts) stay under ``max_chars`` by dropping, in order, the evidence,
the journey/metric/history detail, the findings' explanations and finally the later findings; the verdict,
impact and the first finding's title always stay, and the text says what was cut.

Template context (the contract for user templates): ``run`` (``bot.results.Run``), ``journey`` (list of
``JourneyStep``), ``findings`` (those shown) and ``findings_omitted`` (count), ``show_evidence``,
``show_details``, ``compact_findings``, ``omitted`` (a sentence saying what was cut, or ``""``); the comment
adds ``marker``, ``history`` (``HistoryEntry``, newest first) and ``history_data`` (the hidden line to keep);
the comment also adds ``issues`` (``IssueLink``: the P0 issues this run opened, updated or closed); issue texts add
``finding``, ``marker`` and ``trail`` (``Trail``: links to the PR and commit); the recovery comment adds
``passes``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, PrefixLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from bot import markdown
from bot.errors import TemplateError
from bot.results import (
    JOURNEY_STEPS,
    CheckResult,
    Finding,
    Impact,
    Kind,
    Run,
    Severity,
    Status,
    Step,
    Target,
    Verdict,
    to_junit,
)

GITHUB_COMMENT_LIMIT = 65_536

_MARKER_PREFIX = "<!-- golden-path:"
_HISTORY_VERSION = 1
_HISTORY_LINE = re.compile(r"^<!-- golden-path:history v1 ([A-Za-z0-9+/=]*) -->[ \t]*\r?$", re.MULTILINE)
_HISTORY_MAX_ENTRIES = 50
_HISTORY_MAX_B64 = 200_000


# -- markers and history ---------------------------------------------------------------------------------------


def _marker_value(text: str, limit: int = 200) -> str:
    """A marker value: percent-encoded (so distinct inputs stay distinct and no '>' or space can occur)."""
    value = quote(text, safe=":/._+=")
    if len(value) > limit:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        value = f"{value[: limit - 17]}~{digest}"
    return value


def comment_marker(service: str) -> str:
    """The hidden line that identifies our PR comment for ``service``."""
    return f"{_MARKER_PREFIX}comment service={_marker_value(service)} -->"


# The track of an incident when nothing names another one; markers written before tracks existed carry none and
# belong to it, and its markers are still written without ``track=`` (so old and new versions agree).
DEFAULT_TRACK = "production"


def _track_part(track: str) -> str:
    return "" if track == DEFAULT_TRACK else f" track={_marker_value(track, 100)}"


def issue_marker(fingerprint: str, track: str = DEFAULT_TRACK) -> str:
    """The hidden line that identifies the issue of an incident: its root cause's fingerprint and its track."""
    return f"{_MARKER_PREFIX}issue fingerprint={_marker_value(fingerprint)}{_track_part(track)} -->"


def issue_comment_marker(fingerprint: str, run_id: str) -> str:
    """The hidden line of a recurrence comment written before recurrence and recovery had markers of their own
    (still recognised; no longer written)."""
    return f"{_MARKER_PREFIX}issue-comment fingerprint={_marker_value(fingerprint)} run={_marker_value(run_id, 100)} -->"


def recurrence_marker(fingerprint: str, run_key: str, track: str = DEFAULT_TRACK) -> str:
    """The hidden line of a "seen again" comment: one per workflow run (a re-run finds it and posts no second)."""
    return (
        f"{_MARKER_PREFIX}issue-recurrence fingerprint={_marker_value(fingerprint)}{_track_part(track)} "
        f"run={_marker_value(run_key, 100)} -->"
    )


def recovery_marker(fingerprint: str, episode: int, track: str = DEFAULT_TRACK) -> str:
    """The hidden line of a "recovered" comment: one per episode of the incident (it is opened or reopened once
    per episode), so neither a re-run nor a close that keeps failing posts a second one."""
    return (
        f"{_MARKER_PREFIX}issue-recovery fingerprint={_marker_value(fingerprint)}{_track_part(track)} "
        f"episode={episode} -->"
    )


@dataclass(frozen=True, slots=True)
class Trail:
    """Where a run came from, linked from the issues and comments it writes (each link optional).

    ``run_key`` identifies the workflow run across re-runs (``GITHUB_RUN_ID``): recurrence and recovery comments
    carry it in their hidden marker, so a re-run of the same workflow run never comments twice.
    """

    pr_url: str | None = None
    commit_url: str | None = None
    run_key: str | None = None


NO_TRAIL = Trail()


@dataclass(frozen=True, slots=True)
class IssueLink:
    """A P0 issue this run opened or updated, listed in the PR comment."""

    number: int
    url: str
    title: str
    action: str  # "opened" | "reopened" | "updated" | "closed" (recovered)


def has_marker(body: str, marker: str) -> bool:
    """True when ``marker`` is a whole line of ``body`` (the only place we write one)."""
    return any(line.strip() == marker for line in body.splitlines())


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One earlier run, kept compactly (hidden) inside the PR comment."""

    revision: str | None
    commit: str | None
    verdict: str
    started_at: str
    total_ms: float | None
    handshake_ms: float | None
    p0_count: int
    run_url: str | None = None

    @classmethod
    def from_run(cls, run: Run) -> HistoryEntry:
        total, handshake = run.metric("total_ms"), run.metric("handshake_ms")
        return cls(
            revision=run.target.revision,
            commit=run.commit,
            verdict=run.verdict.value,
            started_at=run.started_at,
            total_ms=total.p95 if total else None,
            handshake_ms=handshake.p95 if handshake else None,
            p0_count=run.p0_count,
            run_url=run.run_url,
        )


def encode_history(entries: Sequence[HistoryEntry]) -> str:
    """One hidden line holding the entries as base64 JSON: base64 can never contain ``-->``."""
    payload = {"v": _HISTORY_VERSION, "runs": [asdict(e) for e in entries]}
    data = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return f"{_MARKER_PREFIX}history v1 {base64.b64encode(data).decode('ascii')} -->"


def decode_history(body: str) -> list[HistoryEntry]:
    """The history saved in a previous comment body, oldest first; ``[]`` when absent or corrupt (never raises)."""
    match = _HISTORY_LINE.search(body or "")
    if match is None or len(match.group(1)) > _HISTORY_MAX_B64:
        return []
    try:
        payload = json.loads(base64.b64decode(match.group(1), validate=True))
    except (ValueError, binascii.Error, RecursionError):
        return []
    if not isinstance(payload, dict) or payload.get("v") != _HISTORY_VERSION:
        return []
    runs = payload.get("runs")
    if not isinstance(runs, list):
        return []
    entries = [entry for item in runs[-_HISTORY_MAX_ENTRIES:] if (entry := _history_entry(item)) is not None]
    return entries


def _history_entry(item: object) -> HistoryEntry | None:
    """A valid entry, or None: a hand-edited comment must not break the next run."""
    if not isinstance(item, dict):
        return None

    def text(key: str, optional: bool = True) -> str | None:
        value = item.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > 500:
            raise ValueError(key)
        return value

    def number(key: str) -> float | None:
        value = item.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(key)
        return float(value)

    try:
        verdict = text("verdict", optional=False)
        p0 = item.get("p0_count")
        if (
            verdict not in {v.value for v in Verdict}
            or isinstance(p0, bool)
            or not isinstance(p0, int)
            or p0 < 0
        ):
            return None
        return HistoryEntry(
            revision=text("revision"),
            commit=text("commit"),
            verdict=verdict or "",
            started_at=text("started_at", optional=False) or "",
            total_ms=number("total_ms"),
            handshake_ms=number("handshake_ms"),
            p0_count=p0,
            run_url=text("run_url"),
        )
    except ValueError:
        return None


# -- what the templates draw -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JourneyStep:
    """One node of the journey: fail if any check at the step failed, skip if none ran, else pass."""

    step: Step
    label: str
    status: Status
    passed: int
    failed: int
    total: int
    slowest_ms: float | None  # the slowest user's time at this step
    note: str  # raw (untrusted) one-line detail; templates escape it
    # Why the revision is not ready, in Cloud Run's words, reduced to characters safe in a Mermaid label.
    reason: str = ""

    @property
    def node(self) -> str:
        """The Mermaid node id (a fixed word, never data)."""
        return self.label


def journey(run: Run) -> list[JourneyStep]:
    """Login -> Connect -> Message -> Agent -> Answer, with Revision and Health before and Isolation after
    when the run has checks there."""
    by_step: dict[Step, list[CheckResult]] = {}
    for check in run.checks:
        by_step.setdefault(check.step, []).append(check)
    steps: list[Step] = [s for s in (Step.REVISION, Step.HEALTH) if s in by_step]
    steps += [*JOURNEY_STEPS, *([Step.ISOLATION] if Step.ISOLATION in by_step else [])]
    return [_journey_step(step, by_step.get(step, [])) for step in steps]


def _journey_step(step: Step, checks: list[CheckResult]) -> JourneyStep:
    failed = [c for c in checks if c.status is Status.FAIL]
    ran = [c for c in checks if c.status is not Status.SKIP]
    unverified = [c for c in ran if c.status is Status.NOT_VERIFIED]
    status = (
        Status.FAIL if failed else Status.NOT_VERIFIED if unverified else Status.PASS if ran else Status.SKIP
    )
    per_user: dict[int | None, float] = {}
    for check in ran:
        if check.duration_ms is not None:
            per_user[check.user] = per_user.get(check.user, 0.0) + check.duration_ms
    if failed:
        first = failed[0]
        note = first.summary or (first.failure.message if first.failure else "")
    elif unverified:
        note = unverified[0].summary
    elif ran:
        note = ran[0].summary if len(ran) == 1 else ""
    else:
        note = checks[0].summary if checks else "not run"
    died = next((c.failure for c in failed if c.failure and c.failure.kind is Kind.REVISION_NOT_READY), None)
    reason = ""
    if died is not None:
        words = died.evidence.get("message") or died.detail or ""
        reason = " ".join(_MERMAID_UNSAFE.sub(" ", words).split())
        if len(reason) > 60:
            reason = reason[:60].rsplit(" ", 1)[0] + "…"
    return JourneyStep(
        step=step,
        label=markdown.STEP_LABELS[step],
        status=status,
        passed=sum(1 for c in ran if c.status is Status.PASS),
        failed=len(failed),
        total=len(ran),
        slowest_ms=max(per_user.values(), default=None),
        note=note,
        reason=reason,
    )


_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9_.,:() -]")


@dataclass(frozen=True, slots=True)
class _Detail:
    """How much a rendering shows; each level drops more to fit a size limit."""

    show_evidence: bool = True
    show_details: bool = True
    compact_findings: bool = False
    findings_limit: int | None = None
    history_limit: int | None = None  # rows of the visible history table
    saved_history_limit: int | None = None  # entries kept in the hidden line: cut only as a last resort

    def omitted(self, *, history_count: int = 0) -> str:
        """What this level leaves out, as the start of a sentence (templates add where to find it)."""
        cut = []
        if not self.show_evidence:
            cut.append("evidence")
        if not self.show_details:
            cut += ["the journey table", "passing metrics"]
        if self.history_limit is not None and history_count > self.history_limit:
            cut.append("older runs")
        if self.compact_findings:
            cut.append("the findings' causes and fixes")
        if self.findings_limit is not None:
            cut.append("later findings")
        if not cut:
            return ""
        what = cut[0] if len(cut) == 1 else ", ".join(cut[:-1]) + " and " + cut[-1]
        return f"{what[0].upper()}{what[1:]} omitted to fit GitHub's comment limit"


_LEVELS = (
    _Detail(),
    _Detail(show_evidence=False),
    _Detail(show_evidence=False, show_details=False, history_limit=5),
    _Detail(show_evidence=False, show_details=False, compact_findings=True, history_limit=3),
)


@dataclass(frozen=True, slots=True)
class Waterfall:
    """The slowest user's events, each a bar from the previous arrival to its own (ms after the message)."""

    user: int
    bars: tuple[tuple[str, float, str, str], ...]  # label, arrival ms, from and to as HH:mm:ss.SSS


_GANTT_UNSAFE = re.compile(r"[^A-Za-z0-9_. -]")


def waterfall(run: Run) -> Waterfall | None:
    """For a Mermaid ``gantt``: the user whose journey took longest, among those with arrival times."""
    timed = [s for s in run.samples if s.events]
    if not timed:
        return None
    slowest = max(timed, key=lambda s: (s.total_ms or 0.0, max(s.events.values())))
    bars, previous = [], 0.0
    for name, at in sorted(slowest.events.items(), key=lambda item: item[1]):
        bars.append((_GANTT_UNSAFE.sub("_", name)[:60], at, _gantt_clock(previous), _gantt_clock(at)))
        previous = at
    return Waterfall(slowest.user, tuple(bars))


def _gantt_clock(ms: float) -> str:
    """Milliseconds as a Mermaid gantt time of day (``dateFormat HH:mm:ss.SSS``)."""
    whole = round(ms)
    hours, rest = divmod(whole, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{min(hours, 23):02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


# -- the environment -------------------------------------------------------------------------------------------


def builtin_templates_dir() -> Path:
    """Our templates: ``bot/templates`` in the wheel, ``<repo>/templates`` in a source checkout."""
    here = Path(__file__).resolve().parent
    candidates = (here / "templates", here.parent / "templates")
    for candidate in candidates:
        if (candidate / "report.md.j2").is_file():
            return candidate
    raise TemplateError(f"the built-in templates are missing (looked in {', '.join(map(str, candidates))})")


class _ConfinedLoader(FileSystemLoader):
    """A user's templates directory: a template whose real path is outside it (a symbolic link to
    ``/proc/self/environ`` or to a file of secrets) is refused, also when the link appeared after the check."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        _confined(Path(self.searchpath[0]), Path(filename))
        return source, filename, uptodate


def _confined(root: Path, path: Path) -> None:
    real_root, real = root.resolve(), path.resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise TemplateError(
            f"templates directory {str(root)!r}: {str(path)!r} is a symbolic link to {str(real)!r}, outside the "
            "directory; refused (a template could publish any file the runner can read): copy the file in instead"
        )


def _check_links(templates_dir: Path) -> None:
    """Every symbolic link under ``templates_dir`` (files and directories, not followed) stays inside it."""
    for folder, dirs, files in os.walk(templates_dir):
        for name in (*dirs, *files):
            path = Path(folder, name)
            if path.is_symlink():
                _confined(templates_dir, path)


class _Sandbox(SandboxedEnvironment):
    """jinja's sandbox, remembering its verdict on an attribute per (type, name): ``is_safe_attribute`` reads
    nothing else (the name, and ``isinstance`` of the object against fixed types), and the report asks it about
    ten times per check row (66,000 times at 1,000 users)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._safe: dict[tuple[type, str], bool] = {}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """A public field of a dataclass (the Run and its parts) holding plain data, or an enum's ``value``,
        read at once: jinja's checks would return the same value (no ``str.format`` to wrap, no underscore, no
        internal attribute), and a 1,000-user report reads about 66,000 of them. Anything else goes through
        the sandbox."""
        kind: type = type(obj)
        if attribute in _public_fields(kind) or (attribute == "value" and isinstance(obj, Enum)):
            value = getattr(obj, attribute)
            of: type = type(value)
            if _is_plain(of):
                return value
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        safe = self._safe.get(key)
        if safe is None:
            safe = super().is_safe_attribute(obj, attr, value)
            if obj.__class__ is key[0] and len(self._safe) < _SAFE_REMEMBERED:
                self._safe[key] = safe
        return safe


@functools.cache
def _public_fields(kind: type) -> frozenset[str]:
    """Per type: its dataclass fields a template may read (none for other types)."""
    if not dataclasses.is_dataclass(kind):
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(kind) if not f.name.startswith("_"))


@functools.cache
def _is_plain(kind: type) -> bool:
    """Values of this type are data a template may hold: text, numbers, containers, enum members, dataclass
    instances (never a function, a method, a type or a code object)."""
    return kind in _PLAIN_TYPES or issubclass(kind, Enum) or dataclasses.is_dataclass(kind)


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), tuple, list, dict})
_SAFE_REMEMBERED = 4096  # (type, attribute) verdicts kept: a template names a bounded set of attributes


_STATUS_WORDS = {"pass": "pass", "fail": "fail", "skip": "skipped", "not verified": "not verified"}


@functools.cache
def _status_cell(status: Status) -> str:
    return f"{markdown.icon(status)} {_STATUS_WORDS[status.value]}"


@functools.cache
def _step_cell(step: Step) -> str:
    return str(step.value)


def check_rows(checks: Iterable[CheckResult]) -> str:
    """The rows of the table of every check (the ``checks_table`` macro), one per line: the text the macro's
    template loop wrote (a test holds them equal), in Python. A 1,000-user report has 6,000 rows, and reading
    seven attributes per row through the sandbox made that loop most of the report's CPU."""
    rows = []
    escape, inline, code, duration = markdown.escape, markdown.inline, markdown.code, markdown.duration
    for c in checks:
        if c.summary:
            detail = escape(c.summary, 160)
        elif c.failure:
            detail = inline(c.failure.message, 160, table=True)
        else:
            detail = ""
        user = c.user if c.user is not None else "—"
        rows.append(
            f"| {code(c.id, table=True)} | {user} | {_step_cell(c.step)} | {_status_cell(c.status)}"
            f" | {duration(c.duration_ms)} | {detail} |"
        )
    return "\n".join(rows)


def environment(templates_dir: Path | None = None) -> SandboxedEnvironment:
    """The sandboxed, strict environment: the user's directory first, then ours (also as ``builtin/``)."""
    builtin = builtin_templates_dir()
    loaders: list[BaseLoader] = []
    if templates_dir is not None:
        if not templates_dir.is_dir():
            raise TemplateError(
                f"templates directory {str(templates_dir)!r} does not exist or is not a directory"
            )
        _check_links(templates_dir)
        loaders.append(_ConfinedLoader(templates_dir))
    loaders += [PrefixLoader({"builtin": FileSystemLoader(builtin)}), FileSystemLoader(builtin)]
    env = _Sandbox(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        # Compiled templates are kept (keyed by path and source checksum) in a private per-user directory
        # under the system's temp dir: a run after the first skips compiling them (~20 ms).
        bytecode_cache=_bytecode_cache(),
    )
    env.filters.update(markdown.FILTERS)
    env.filters["check_rows"] = check_rows
    env.globals.update(
        journey_steps=[s.value for s in JOURNEY_STEPS],
        comment_limit=GITHUB_COMMENT_LIMIT,
    )
    return env


@functools.lru_cache(maxsize=1)
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return jinja2.FileSystemBytecodeCache()
    except (
        OSError,
        RuntimeError,
    ):  # no usable temp dir (read-only, or owned by someone else): compile each time
        return None


@functools.lru_cache(maxsize=1)
def _builtin_environment() -> SandboxedEnvironment:
    return environment(None)


def _environment_for(templates_dir: Path | None) -> SandboxedEnvironment:
    """Ours is compiled once per process; a user's directory is read afresh on each call."""
    return _builtin_environment() if templates_dir is None else environment(templates_dir)


_TEMPLATE_FAILURES = (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError,
                      ZeroDivisionError, RecursionError)  # fmt: skip


def _render(env: SandboxedEnvironment, name: str, context: Mapping[str, Any]) -> str:
    """Render one template; every template problem becomes a ``TemplateError`` naming the file and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise TemplateError(f"template {where}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        missing = ", ".join(getattr(exc, "templates", None) or [exc.name])
        frame = _template_frame(exc.__traceback__)
        where = f" (needed by {frame})" if frame else ""
        raise TemplateError(f"template {missing} not found{where}; searched {_searched(env)}") from None
    except _TEMPLATE_FAILURES as exc:
        frame = _template_frame(exc.__traceback__)
        if frame is None and not isinstance(exc, jinja2.TemplateError):
            raise  # a bug in our Python code, not a template problem
        if isinstance(exc, RecursionError):
            message = (
                "templates include or extend each other in a loop (extend 'builtin/<name>' to reuse ours)"
            )
        else:
            message = str(exc) or type(exc).__name__
        raise TemplateError(f"template {frame or name}: {message}") from None


def _template_frame(tb: TracebackType | None) -> str | None:
    """``<file>, line N`` of the innermost template frame (Jinja rewrites tracebacks to template lines)."""
    frames = [f for f in traceback.extract_tb(tb) if f.filename.endswith(".j2")]
    return f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else None


def _searched(env: SandboxedEnvironment) -> str:
    loader = env.loader
    paths: list[str] = []
    if isinstance(loader, ChoiceLoader):
        for item in loader.loaders:
            if isinstance(item, FileSystemLoader):
                paths += [str(p) for p in item.searchpath]
    return ", ".join(dict.fromkeys(paths))


def _context(run: Run, detail: _Detail, *, history_count: int = 0, **extra: Any) -> dict[str, Any]:
    findings = list(run.findings)
    shown = findings if detail.findings_limit is None else findings[: detail.findings_limit]
    return {
        "run": run,
        "journey": journey(run),
        "waterfall": waterfall(run),
        "findings": shown,
        "findings_omitted": len(findings) - len(shown),
        "show_evidence": detail.show_evidence,
        "show_details": detail.show_details,
        "compact_findings": detail.compact_findings,
        "omitted": detail.omitted(history_count=history_count),
        **extra,
    }


def _require(output: str, name: str, lines: Iterable[str]) -> str:
    for line in lines:
        if not has_marker(output, line):
            shown = line if len(line) < 80 else line[:77] + "..."
            raise TemplateError(
                f"template {name} did not output the hidden line {shown!r} on a line of its own; "
                "keep it (it is how golden-path finds its own text again)"
            )
    return output


def _render_capped(
    env: SandboxedEnvironment,
    name: str,
    run: Run,
    *,
    max_chars: int,
    required: Callable[[_Detail], dict[str, Any]],
    extra: Callable[[_Detail], dict[str, Any]] = lambda detail: {},
    history_count: int = 0,
) -> str:
    """Render at the first level of detail that fits ``max_chars``; then with fewer findings; else fail."""
    levels = list(_LEVELS)
    count = len(run.findings)
    while count > 1:
        count = (count + 1) // 2
        levels.append(replace(_LEVELS[-1], findings_limit=count, history_limit=1))
    levels.append(replace(levels[-1], saved_history_limit=1))
    for detail in levels:
        hidden = required(detail)
        output = _render(
            env, name, _context(run, detail, history_count=history_count, **hidden, **extra(detail))
        )
        _require(output, name, [v for k, v in hidden.items() if k in ("marker", "history_data")])
        if len(output) <= max_chars:
            return output
    raise TemplateError(
        f"template {name} renders {len(output):,} characters even with evidence and details cut, over the "
        f"limit of {max_chars:,}: shorten the template"
    )


# -- public renderers ------------------------------------------------------------------------------------------


def render_report(run: Run, *, templates_dir: Path | None = None) -> str:
    """The full report (terminal and ``report.md``): verdict, impact and next step on the first three lines."""
    return _render(_environment_for(templates_dir), "report.md.j2", _context(run, _LEVELS[0]))


def render_summary(run: Run, *, templates_dir: Path | None = None) -> str:
    """The GitHub step summary."""
    return _render(_environment_for(templates_dir), "summary.md.j2", _context(run, _LEVELS[0]))


def render_comment(
    run: Run,
    *,
    history: Sequence[HistoryEntry],
    max_chars: int = 65_000,
    history_limit: int = 10,
    templates_dir: Path | None = None,
    issues: Sequence[IssueLink] = (),
) -> str:
    """The sticky PR comment: marker, report, run history (newest first) and the hidden history line.

    ``issues`` are the P0 issues this run opened or updated (the template links each).

    ``history`` is what ``decode_history`` read from the previous comment (oldest first); this run is appended
    and the newest ``history_limit`` entries are kept.
    """
    max_chars = min(max_chars, GITHUB_COMMENT_LIMIT)
    entries = [e for e in history if e != HistoryEntry.from_run(run)] + [HistoryEntry.from_run(run)]
    entries = entries[-history_limit:] if history_limit > 0 else []
    env = _environment_for(templates_dir)

    def hidden(detail: _Detail) -> dict[str, Any]:
        limit = detail.saved_history_limit
        kept = entries if limit is None else entries[-limit:]
        return {"marker": comment_marker(run.target.service), "history_data": encode_history(kept)}

    def shown(detail: _Detail) -> dict[str, Any]:
        kept = entries if detail.history_limit is None else entries[-detail.history_limit :]
        return {"history": list(reversed(kept)), "issues": list(issues)}

    return _render_capped(
        env,
        "comment.md.j2",
        run,
        max_chars=max_chars,
        required=hidden,
        extra=shown,
        history_count=len(entries),
    )


def render_issue(
    run: Run,
    finding: Finding,
    *,
    max_chars: int = 65_000,
    templates_dir: Path | None = None,
    trail: Trail = NO_TRAIL,
    track: str = DEFAULT_TRACK,
    related: Sequence[Finding] = (),
    previous_url: str | None = None,
) -> str:
    """The body of the P0 issue of an incident: ``finding`` is its root cause (its marker carries the root's
    fingerprint and the track), ``related`` the findings downstream of it, ``previous_url`` an issue a person
    closed as not planned that this one follows."""
    return _render_capped(
        _environment_for(templates_dir),
        "issue.md.j2",
        run,
        max_chars=min(max_chars, GITHUB_COMMENT_LIMIT),
        required=lambda detail: {"marker": issue_marker(finding.fingerprint, track)},
        extra=lambda detail: {
            "finding": finding, "trail": trail, "track": track, "related": tuple(related),
            "previous_url": previous_url,
        },
    )  # fmt: skip


def render_issue_update(
    run: Run,
    finding: Finding,
    *,
    max_chars: int = 65_000,
    templates_dir: Path | None = None,
    trail: Trail = NO_TRAIL,
    track: str = DEFAULT_TRACK,
    related: Sequence[Finding] = (),
) -> str:
    """The comment on an open issue when its incident recurs: revision, commit, PR, run link, time, evidence."""
    marker = recurrence_marker(finding.fingerprint, trail.run_key or run.run_id, track)
    return _render_capped(
        _environment_for(templates_dir),
        "issue_update.md.j2",
        run,
        max_chars=min(max_chars, GITHUB_COMMENT_LIMIT),
        required=lambda detail: {"marker": marker},
        extra=lambda detail: {"finding": finding, "trail": trail, "track": track, "related": tuple(related)},
    )


def render_recovery(
    run: Run,
    finding: Finding,
    *,
    passes: int,
    templates_dir: Path | None = None,
    trail: Trail = NO_TRAIL,
    track: str = DEFAULT_TRACK,
    episode: int = 0,
) -> str:
    """The comment posted before closing an issue whose incident has not recurred on its track for ``passes``
    runs (its marker names the episode: one recovery comment per episode)."""
    marker = recovery_marker(finding.fingerprint, episode, track)
    env = _environment_for(templates_dir)
    output = _render(
        env,
        "recovery.md.j2",
        _context(run, _LEVELS[0], finding=finding, marker=marker, passes=passes, trail=trail, track=track),
    )
    return _require(output, "recovery.md.j2", [marker])


def issue_title(run: Run, finding: Finding, track: str = DEFAULT_TRACK) -> str:
    """A plain-text issue title (titles are not markdown) within GitHub's 256 characters, naming the track."""
    title = f"{finding.severity.value}: {finding.title} ({run.target.service}, {track})"
    title = markdown.plain_line(title).replace("`", "")
    return title if len(title) <= 256 else title[:255] + "…"


def render_as(run: Run, form: str, *, templates_dir: Path | None = None) -> str:
    """A saved run re-rendered (``golden-path report --format``): ``report``, ``comment``, ``summary`` or
    ``junit`` (JUnit XML, from ``bot.results``)."""
    if form == "junit":
        return to_junit(run)
    if form == "comment":
        return render_comment(run, history=[], templates_dir=templates_dir)
    if form == "summary":
        return render_summary(run, templates_dir=templates_dir)
    return render_report(run, templates_dir=templates_dir)


def check_templates(templates_dir: Path | None) -> None:
    """Render every template against a placeholder run, so a broken user template stops the run *before* the
    probe (and before any traffic change), not after it. Raises ``TemplateError``."""
    if templates_dir is None:
        return
    finding = Finding(
        fingerprint="service:timeout", severity=Severity.P0, kind=Kind.TIMEOUT, step=Step.CONNECT,
        title="Placeholder", cause="Placeholder.", remediation="Placeholder.", users=(1,),
        evidence={"error": "placeholder"}, observed="Placeholder.",
    )  # fmt: skip
    run = Run(
        run_id="preflight", started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:00:01Z",
        duration_ms=1000.0, verdict=Verdict.FAIL, target=Target(url="https://example.invalid", service="service"),
        checks=(), metrics=(), findings=(finding,), impact=Impact(journey="AI chat", blocked=True, summary="."),
    )  # fmt: skip
    render_report(run, templates_dir=templates_dir)
    render_summary(run, templates_dir=templates_dir)
    render_comment(run, history=[], templates_dir=templates_dir)
    render_issue(run, finding, templates_dir=templates_dir)
    render_issue_update(run, finding, templates_dir=templates_dir)
    render_recovery(run, finding, passes=1, templates_dir=templates_dir)
