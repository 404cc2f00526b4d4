"""One incident per root cause: a run's P0 findings grouped by what caused them. Pure.

Findings at a later step whose users all failed at an earlier step (all users when that failure is run-wide)
are downstream of it; findings of one kind at one step are symptoms of one failure (every event missing after
the same stall, one handshake failing users in several ways). Such findings form one incident; its root, the
earliest of them, names it (``bot.issues`` files one issue under the root's fingerprint, listing the others).
Kinds marked ``own_incident`` in ``bot.kinds`` (an isolation leak, an unauthenticated WebSocket) are never
grouped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot import diagnose, kinds
from bot.results import Finding, Severity


@dataclass(frozen=True, slots=True)
class Incident:
    """P0 findings that share one root cause; the root comes first and names the incident."""

    members: tuple[Finding, ...]

    @property
    def root(self) -> Finding:
        return self.members[0]

    @property
    def related(self) -> tuple[Finding, ...]:
        return self.members[1:]


def incidents(findings: Iterable[Finding]) -> tuple[Incident, ...]:
    """Group the P0 findings by root cause (rules: module doc), in the order of their roots."""
    groups: list[list[Finding]] = []
    ordered = sorted(
        (f for f in findings if f.severity is Severity.P0),
        key=lambda f: (diagnose.STEP_ORDER[f.step], f.fingerprint),
    )
    for finding in ordered:
        home = None if kinds.of(finding.kind).own_incident else next(
            (g for g in groups if not kinds.of(g[0].kind).own_incident and _downstream(finding, g[0])), None
        )  # fmt: skip
        if home is None:
            groups.append([finding])
        elif all(m.fingerprint != finding.fingerprint for m in home):
            home.append(finding)
    return tuple(Incident(tuple(g)) for g in groups)


def _downstream(finding: Finding, root: Finding) -> bool:
    """True when ``finding`` follows from ``root``: the same kind at the same step (another symptom of one
    failure), or a later step reached only by users that already failed at ``root`` (all users when the root
    is run-wide)."""
    covered = not root.users or (bool(finding.users) and set(finding.users) <= set(root.users))
    if finding.step is root.step:
        return finding.kind is root.kind and (covered or set(finding.users) & set(root.users) != set())
    return diagnose.STEP_ORDER[finding.step] > diagnose.STEP_ORDER[root.step] and covered
