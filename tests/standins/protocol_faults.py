"""The faults the protocol stand-ins (fastapi_realtime, graphql_chat) share, and the check of a requested one: a
misspelt fault must fail the test that asks for it, never run a healthy backend instead."""

from __future__ import annotations

SHARED = (
    "broken-auth",
    "anonymous",
    "stall",
    "canned",
    "empty",
    "cross-talk",
    "close-after-accept",
    "end-early",
)


def checked(fault: str | None, known: tuple[str, ...]) -> str | None:
    """``fault`` when it is one of ``known`` (or None); else a ValueError naming the faults there are."""
    if fault is not None and fault not in known:
        raise ValueError(f"unknown fault {fault!r}; expected one of: {', '.join(known)}")
    return fault
