"""Which journeys ran to their end, and what stopped the rest: a verdict speaks only for journeys that ran. Pure.

A journey the run's deadline (``timeouts.run_s``) cut short, or never let start, tested nothing: the run gets one
``journeys-incomplete`` check that fails the gate under every ``fail-on`` (``bot.pipeline.exit_code``). Its cause
decides its severity. When ``run_s`` is shorter than the time health took plus what the configured journeys may
take within their SLA (one ``journey.sla_s`` per phase of users), the deadline is a configuration problem (P1,
detail ``run-s``, no P0 issue), and the journeys' own checks that it cut are `not verified`, never blamed on the
revision. Otherwise the run left the journeys all the time their SLA allows and the revision did not answer in
it: the step where they stopped hung (P0, its issue is filed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from bot.kinds import CONFIG_DETAIL
from bot.results import JOURNEY_STEPS, CheckResult, Failure, Kind, Status, Step

# Evidence key of every failure the run's deadline caused (and of the journeys check): how such checks are found.
RUN_DEADLINE = "run deadline"
CHECK_ID = "journeys"


class End(StrEnum):
    RAN = "ran"  # reached its end by itself: completion, an error, a close, a step's own deadline
    CUT = "cut"  # the run's deadline stopped it mid-step
    NOT_STARTED = "not started"  # the run's deadline passed before its turn


@dataclass(frozen=True, slots=True)
class JourneyEnd:
    user: int
    end: End
    step: Step  # where a cut journey stopped; LOGIN for one that never started


def run_deadline_evidence(run_s: float) -> dict[str, str]:
    """The mark a failure caused by the run's deadline carries in its evidence."""
    return {RUN_DEADLINE: f"{run_s:g} s (timeouts.run_s)"}


def judge(
    ends: Sequence[JourneyEnd],
    *,
    run_s: float,
    sla_s: float,
    phases: int,
    before_users_s: float,
    shown: Mapping[str, str] | None = None,
) -> CheckResult | None:
    """The ``journeys`` check when some journey did not run to its end; None when every one did.

    ``before_users_s``: the seconds the run spent before the first journey could start (health). ``shown``: what
    the first cut journey's stream showed, kept in the evidence (a deadline never drops it).
    """
    unfinished = [e for e in ends if e.end is not End.RAN]
    if not unfinished:
        return None
    total, ran = len(ends), len(ends) - len(unfinished)
    cut = [e for e in unfinished if e.end is End.CUT]
    waiting = [e for e in unfinished if e.end is End.NOT_STARTED]
    needed_s = before_users_s + max(phases, 1) * sla_s
    config = run_s < needed_s
    stopped_at = min((e.step for e in unfinished), key=_step_order)
    parts = []
    if cut:
        steps = ", ".join(s.value for s in sorted({e.step for e in cut}, key=_step_order))
        parts.append(
            f"{_count(len(cut))} cut by the run's deadline ({run_s:g} s, timeouts.run_s) at the {steps} step"
        )
    if waiting:
        parts.append(
            f"{_count(len(waiting))} never started: the run's deadline passed before {_their(waiting)} turn"
        )
    message = f"{ran} of {total} journeys ran to the end; " + " and ".join(parts) + "."
    if config:
        message += (
            f" timeouts.run_s ({run_s:g} s) is too short for the users configured: the run spent "
            f"{before_users_s:.1f} s before the first journey, and {max(phases, 1)} phase(s) of journeys may each "
            f"take up to journey.sla_s ({sla_s:g} s): {math.ceil(needed_s)} s in all."
        )
    else:
        message += (
            f" The run left them the time their SLA allows (journey.sla_s, {sla_s:g} s): the revision did not "
            f"answer at the {stopped_at.value} step."
        )
    evidence = {
        "journeys": str(total),
        "ran to the end": str(ran),
        "cut by the run's deadline": _users(cut),
        "never started": _users(waiting),
        **run_deadline_evidence(run_s),
        "before the first journey": f"{before_users_s:.1f} s (health)",
        "the journeys may take": f"{max(phases, 1)} phase(s) × {sla_s:g} s (journey.sla_s)",
        "run_s needed": f"at least {math.ceil(needed_s)} s",
        **(shown or {}),
    }
    failure = Failure(
        Kind.JOURNEYS_INCOMPLETE,
        message,
        detail=CONFIG_DETAIL if config else stopped_at.value,
        evidence={k: v for k, v in evidence.items() if v},
        subject=f"{ran} of {total} journeys ran",
    )
    summary = f"{ran} of {total} journeys ran to the end"
    return CheckResult(CHECK_ID, stopped_at, Status.FAIL, None, None, summary, failure)


def spared(checks: Iterable[CheckResult], journeys: CheckResult | None) -> list[CheckResult]:
    """A journey's checks that a too-short ``run_s`` (not the revision) failed become `not verified`."""
    found = list(checks)
    if journeys is None or journeys.failure is None or journeys.failure.detail != CONFIG_DETAIL:
        return found
    return [
        replace(
            check,
            status=Status.NOT_VERIFIED,
            summary="not verified: cut by the run's deadline (timeouts.run_s is too short), not by the revision",
        )
        if check.user is not None
        and check.status is Status.FAIL
        and check.failure is not None
        and RUN_DEADLINE in check.failure.evidence
        else check
        for check in found
    ]


def shown_by(checks: Iterable[CheckResult], user: int) -> dict[str, str]:
    """What a cut journey showed before the deadline (its stream's evidence), keyed by the user."""
    for check in checks:
        failure = check.failure
        if check.status is Status.FAIL and failure is not None and RUN_DEADLINE in failure.evidence:
            return {
                f"user {user}: {k}": v
                for k, v in failure.evidence.items()
                if k not in (RUN_DEADLINE, "deadline")
            }
    return {}


def completed(samples_total_ms: Iterable[float | None], users: int) -> bool:
    """Every configured user's journey reached its completion event (the gate promotes nothing else)."""
    totals = list(samples_total_ms)
    return users > 0 and len(totals) >= users and all(t is not None for t in totals)


def _step_order(step: Step) -> int:
    return JOURNEY_STEPS.index(step) if step in JOURNEY_STEPS else len(JOURNEY_STEPS)


def _count(n: int) -> str:
    return f"{n} was" if n == 1 else f"{n} were"


def _their(ends: Sequence[JourneyEnd]) -> str:
    return "its" if len(ends) == 1 else "their"


def _users(ends: Sequence[JourneyEnd]) -> str:
    if not ends:
        return ""
    shown = ", ".join(str(e.user) for e in ends[:20]) + (", ..." if len(ends) > 20 else "")
    return f"{len(ends)} (user{'s' if len(ends) != 1 else ''} {shown})"
