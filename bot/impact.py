"""Findings + config -> the business impact a manager reads first. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from bot import kinds
from bot.results import Finding, Impact, Kind, Severity, Step
from bot.settings import ImpactSettings

# What a user can no longer do when a step fails, in the journey's order.
CAPABILITY = {
    Step.REVISION: "reach the new release at all",
    Step.LOGIN: "sign in to the chat",
    Step.CONNECT: "open a live chat connection",
    Step.MESSAGE: "send a message",
    Step.AGENT: "see the agent work on their request",
    Step.ANSWER: "get a real answer from the agent",
    Step.ISOLATION: kinds.PRIVATE,
}


def capability(finding: Finding) -> str | None:
    """The kind's own loss (bot.kinds: the journey works but is unsafe), else the step's."""
    return kinds.of(finding.kind).capability or CAPABILITY.get(finding.step)


def _unsafe(finding: Finding) -> bool:
    return kinds.of(finding.kind).capability is not None


def assess(findings: Sequence[Finding], *, settings: ImpactSettings, journey_name: str) -> Impact:
    journey = settings.journey or journey_name
    untested = next((f for f in findings if f.kind is Kind.JOURNEYS_INCOMPLETE), None)
    if untested is not None:
        return _untested(untested, findings, settings=settings, journey=journey)
    blocking = [f for f in findings if f.severity is Severity.P0]
    if blocking:
        # Lead with what blocks users; a security finding leads only when nothing else is wrong.
        ordered = sorted(blocking, key=_unsafe)
        lost = tuple(dict.fromkeys(c for f in ordered if (c := capability(f)) is not None))
        first = lost[0] if lost else "complete the journey"
        # A journey that works but leaks or lets strangers in is unsafe rather than broken.
        state = "unsafe" if all(_unsafe(f) for f in blocking) else "broken"
        summary = f"The {journey} journey is {state}: {settings.users_description} cannot {first}."
        if settings.arr_at_risk:
            summary += (
                f" {format_money(settings.arr_at_risk, settings.currency)} ARR depends on this journey."
            )
        return Impact(
            journey=journey,
            blocked=True,
            summary=summary,
            arr_at_risk=settings.arr_at_risk,
            currency=settings.currency,
            capabilities_lost=lost,
        )
    if findings:
        count = len(findings)
        summary = (
            f"The {journey} journey works end to end, with {count} non-blocking "
            f"problem{'s' if count != 1 else ''} (health, version, performance or the revision's settings): "
            "no revenue at risk now."
        )
    else:
        summary = f"No impact: the {journey} journey works end to end."
    return Impact(journey=journey, blocked=False, summary=summary, currency=settings.currency)


def _untested(
    untested: Finding, findings: Sequence[Finding], *, settings: ImpactSettings, journey: str
) -> Impact:
    """Journeys that did not run tested nothing: the line says so, never "works end to end"."""
    ran = untested.evidence.get("ran to the end", "?")
    total = untested.evidence.get("journeys", "?")
    summary = (
        f"The {journey} journey was not tested: only {ran} of {total} journeys ran to the end, so whether "
        f"{settings.users_description} can sign in, chat and get an answer on this revision is unknown."
    )
    blocking = [f for f in findings if f.severity is Severity.P0 and f.kind is not Kind.JOURNEYS_INCOMPLETE]
    lost = tuple(dict.fromkeys(c for f in blocking if (c := capability(f)) is not None))
    if lost:
        summary += f" Of those that ran, users could not {lost[0]}."
    if settings.arr_at_risk and (blocking or untested.severity is Severity.P0):
        summary += f" {format_money(settings.arr_at_risk, settings.currency)} ARR depends on this journey."
    return Impact(
        journey=journey,
        blocked=bool(blocking) or untested.severity is Severity.P0,
        summary=summary,
        arr_at_risk=settings.arr_at_risk if blocking or untested.severity is Severity.P0 else None,
        currency=settings.currency,
        capabilities_lost=lost,
    )


def format_money(amount: float, currency: str) -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency)
    figure = f"{amount:,.0f}"
    return f"{symbol}{figure}" if symbol else f"{figure} {currency}"
