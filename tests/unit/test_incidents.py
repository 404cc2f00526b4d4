"""bot.incidents: P0 findings grouped by root cause (pure)."""

from __future__ import annotations

from bot import incidents
from bot.results import Finding, Kind, Severity, Step
from tests import samples


def _finding(kind: Kind, step: Step, users: tuple[int, ...], detail: str = "") -> Finding:
    return Finding(
        fingerprint=f"chat-backend:{kind.value}" + (f":{detail}" if detail else ""),
        severity=Severity.P0, kind=kind, step=step, title=kind.value, cause="", remediation="", users=users,
    )  # fmt: skip


def test_incidents__findings_downstream_of_one_failed_step_are_one_incident() -> None:
    login = _finding(Kind.LOGIN_FAILED, Step.LOGIN, (1, 2))
    closed = _finding(Kind.WS_CLOSED_EARLY, Step.AGENT, (1, 2), "agent_completed")
    other_users = _finding(Kind.ANSWER_EMPTY, Step.ANSWER, (3,))
    leak = _finding(Kind.ISOLATION_LEAK, Step.ISOLATION, (1, 2))
    found = incidents.incidents([leak, other_users, closed, login])
    assert [[m.fingerprint for m in i.members] for i in found] == [
        [login.fingerprint, closed.fingerprint],
        [other_users.fingerprint],
        [leak.fingerprint],  # a data leak is an incident of its own
    ]


def test_incidents__events_missing_after_one_stall_are_one_incident() -> None:
    run = samples.stalled()
    assert len([f for f in run.findings if f.severity is Severity.P0]) == 4
    (incident,) = incidents.incidents(run.findings)
    assert incident.root.fingerprint == "chat-backend:event-missing:agent_started"
    assert len(incident.related) == 3
