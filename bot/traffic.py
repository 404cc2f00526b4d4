"""Traffic plans for the gate (pure): which split to ask Cloud Run for, from what the service reports.

The gate's first duty is to move only the traffic it owns. Promotion sends 100% to the tested revision. A
rollback moves only the tested revision's own share, and only onto a revision that served users before this run
(``traffic-before``) or onto the one a configured known-good tag names: never onto a revision that merely carries
another tag (another PR's preview), never onto one that never had traffic. Both keep every tag as it is, so tag
URLs keep working; a split the run never touched (a canary of someone else) stays as it is.

Entries name revisions by their short name; ``revision=None`` is LATEST (the service's latest ready revision).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Entry:
    """One traffic target of the service's spec."""

    revision: str | None  # None: LATEST
    percent: int = 0
    tag: str = ""


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a rollback sends the tested revision's share, and why that revision is trusted."""

    revision: str
    why: str  # "served before this run (chat-00001 90%)" or "carries the known-good tag stable"


class NoRollbackTarget(Exception):
    """No revision is known to have served users: a rollback would guess. ``str()`` is the one-line reason."""


def shares(entries: Iterable[Entry], latest_ready: str) -> dict[str, int]:
    """Revision -> percent the entries send it (LATEST resolved to ``latest_ready``)."""
    found: dict[str, int] = {}
    for entry in entries:
        name = entry.revision or latest_ready
        if name and entry.percent:
            found[name] = found.get(name, 0) + entry.percent
    return found


def describe(traffic: Mapping[str, int]) -> str:
    """``a 90%, b 10%`` (sorted by name), or ``no traffic``."""
    return ", ".join(f"{rev} {pct}%" for rev, pct in sorted(traffic.items())) or "no traffic"


def promote(entries: Iterable[Entry], tested: str) -> tuple[Entry, ...]:
    """100% to ``tested``; every tag kept (at 0%), the tested revision's own tag on its 100% entry."""
    first = Entry(tested, 100)
    kept: list[Entry] = []
    for entry in entries:
        if not entry.tag:
            continue
        if entry.revision == tested and not first.tag:
            first = replace(first, tag=entry.tag)  # one entry carries both the 100% and the tag
            continue
        kept.append(replace(entry, percent=0))
    return (first, *kept)


def rollback_destination(
    *, tested: str, before: Mapping[str, int], known_good: Destination | None
) -> Destination:
    """The revision a rollback may send traffic to.

    A configured known-good tag wins (the team vouches for it); else the revision that served the largest share
    before this run other than the tested one. Raises ``NoRollbackTarget`` when neither exists.
    """
    if known_good is not None:
        return known_good
    others = {name: pct for name, pct in before.items() if name != tested and pct > 0}
    if not others:
        raise NoRollbackTarget(
            f"no revision other than {tested} served traffic before this run (traffic before: "
            f"{describe(before)}) and no known-good tag is configured: set cloud_run.rollback_to (e.g. "
            "stable, a tag on a revision that served users)"
        )
    best = max(sorted(others), key=lambda name: others[name])
    return Destination(best, f"served {others[best]}% before this run")


def rollback(
    entries: Iterable[Entry], *, tested: str, latest_ready: str, destination: str
) -> tuple[Entry, ...]:
    """The tested revision's share moved onto ``destination``; every other entry and every tag as it was.

    An entry reaching the tested revision (by name, or LATEST while it is the latest ready revision) drops to
    0%, kept when it carries a tag, removed otherwise. Returns the entries unchanged when the tested revision
    receives no traffic (there is nothing to roll back).
    """
    listed = list(entries)
    moved = 0
    kept: list[Entry] = []
    for entry in listed:
        reaches_tested = entry.revision == tested or (entry.revision is None and latest_ready == tested)
        if reaches_tested and entry.percent:
            moved += entry.percent
            if entry.tag:
                kept.append(replace(entry, percent=0))
            continue
        kept.append(entry)
    if not moved:
        return tuple(listed)
    named = [i for i, e in enumerate(kept) if e.revision == destination]
    serving = [i for i in named if kept[i].percent]
    if serving or named:
        at = (serving or named)[0]
        kept[at] = replace(kept[at], percent=kept[at].percent + moved)
    else:
        kept.insert(0, Entry(destination, moved))
    return tuple(kept)
