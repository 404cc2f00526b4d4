"""What one of our P0 issues says about itself, read and written without I/O. Pure.

An issue is ours when its body carries ``report.issue_marker(fingerprint, track)`` as a whole line; its hidden
``<!-- golden-path:state {...} -->`` line keeps what the lifecycle (``bot.issues``) must remember between runs:
the finding it was opened for, the recovery streak, the episode, the canonical issue of a duplicate we closed.
This module reads a listed issue (plain JSON) into a ``Tracked`` record and writes the state line back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from bot import report
from bot.errors import TemplateError
from bot.results import Finding, Kind, Severity, Step

TRACKING_LABEL = "golden-path"
DECLINED = frozenset({"not_planned", "duplicate"})  # a person's "won't fix": never reopened
_STATE = re.compile(r"(?m)^<!-- golden-path:state (\{.*\}) -->[ \t]*$")
_DUPLICATE = re.compile(r"(?m)^> Duplicate of #(\d+)\b")
_PLACEHOLDER = "GOLDENPATHFINGERPRINTPLACEHOLDER"
_E = TypeVar("_E", Kind, Step)


@dataclass(frozen=True, slots=True)
class Tracked:
    """One of our issues, as listed (plain JSON: no lazy completion)."""

    number: int
    url: str
    html_url: str
    title: str
    body: str
    state: str
    state_reason: str | None
    marker_fingerprint: str  # the fingerprint as written in the marker
    track: str = report.DEFAULT_TRACK
    data: dict[str, Any] = field(default_factory=dict)  # the hidden state line
    marked: bool = True  # False: recognised by its title, its marker line was removed by hand

    @property
    def duplicate_of(self) -> int | None:
        """The issue this one was closed as a duplicate of *by golden-path* (a concurrent run's copy)."""
        value = self.data.get("duplicate_of")
        if isinstance(value, int):
            return value
        match = _DUPLICATE.search(self.body)
        return int(match.group(1)) if match and self.state_reason == "not_planned" else None

    @property
    def declined(self) -> bool:
        """Closed by a person as not planned or duplicate (not one of our own duplicate closes)."""
        return self.state == "closed" and self.state_reason in DECLINED and self.duplicate_of is None

    @property
    def episode(self) -> int:
        value = self.data.get("episode")
        return value if isinstance(value, int) else 0


def tracked(item: Mapping[str, Any], match: re.Match[str] | None) -> Tracked:
    """A listed issue (GitHub's JSON) as a record; ``match`` is ``marker_pattern()``'s match in its body."""
    body = str(item.get("body") or "")
    track = unquote(match.group(2)) if match and match.group(2) else report.DEFAULT_TRACK
    return Tracked(
        number=int(item["number"]),
        url=str(item.get("url") or ""),
        html_url=str(item.get("html_url") or ""),
        title=str(item.get("title") or ""),
        body=body,
        state=str(item.get("state") or "open"),
        state_reason=item.get("state_reason"),
        marker_fingerprint=match.group(1) if match else "",
        track=track,
        data=read_state(body),
    )


def tracking_label(labels: Iterable[str]) -> str | None:
    names = list(labels)
    for name in names:
        if name.lower() == TRACKING_LABEL:
            return name
    return names[0] if names else None


# -- the hidden marker -----------------------------------------------------------------------------------------


def marker_pattern() -> re.Pattern[str]:
    """Our marker as a whole line: group 1 is the fingerprint as written in it, group 2 the track (if any)."""
    before, found, after = report.issue_marker(_PLACEHOLDER).partition(_PLACEHOLDER)
    if not found:
        raise TemplateError("report.issue_marker() does not include the fingerprint")
    return re.compile(
        r"(?m)^[ \t]*" + re.escape(before) + r"(\S+?)(?: track=(\S+?))?" + re.escape(after) + r"[ \t]*\r?$"
    )


def marker_prefix() -> str:
    """The marker's text before the fingerprint (what a search for every fingerprint of a service starts with)."""
    return report.issue_marker(_PLACEHOLDER).partition(_PLACEHOLDER)[0]


def marker_fingerprint(fingerprint: str) -> str:
    """The fingerprint as it appears inside the marker (percent-encoded, possibly shortened with a digest)."""
    match = marker_pattern().search(report.issue_marker(fingerprint))
    assert match is not None
    return match.group(1)


# -- the hidden state line -------------------------------------------------------------------------------------


def read_state(body: str | None) -> dict[str, Any]:
    match = _STATE.search(body or "")
    if not match:
        return {}
    try:
        data = json.loads(match.group(1))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def with_state(body: str | None, state: Mapping[str, Any]) -> str:
    # "<" and ">" are escaped inside the JSON strings so the HTML comment cannot be closed early.
    encoded = json.dumps(dict(state), sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    line = f"<!-- golden-path:state {encoded} -->"
    text = body or ""
    if _STATE.search(text):
        return _STATE.sub(lambda _: line, text, count=1)
    return f"{text.rstrip()}\n\n{line}\n"


def new_state(finding: Finding) -> dict[str, Any]:
    return {
        "fingerprint": finding.fingerprint,
        "kind": finding.kind.value,
        "step": finding.step.value,
        "title": finding.title,
        "passes": 0,
    }


def finding_from(item: Tracked) -> Finding:
    """The finding an issue was opened for, rebuilt from its state line (best effort for older issues)."""
    state = item.data
    fingerprint = str(state.get("fingerprint") or unquote(item.marker_fingerprint))
    kind_part = [*fingerprint.split(":"), ""][1]
    kind = _enum(Kind, state.get("kind"), _enum(Kind, kind_part, Kind.EVENT_ERROR))
    step = _enum(Step, state.get("step"), Step.CONNECT)
    title = str(state.get("title") or item.title)
    return Finding(
        fingerprint=fingerprint,
        severity=Severity.P0,
        kind=kind,
        step=step,
        title=title,
        cause="",
        remediation="",
        occurrences=0,
    )


def _enum(cls: type[_E], value: Any, default: _E) -> _E:
    try:
        return cls(value)
    except ValueError:
        return default
