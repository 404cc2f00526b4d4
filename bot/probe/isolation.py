"""Isolation needs distinct identities: events that name their user prove nothing when users share one. Pure.

golden-path mints a distinct subject per user (``auth.subject_prefix``-N-run) and logs each user in with its own
``{user}``; but ``auth.mode: token``, or a login body naming one account for all, gives every user the same
identity. Then an event naming "the" user may be another user's, so ownership must come from something this user
alone holds: the thread id it sent, or the nonce the server echoed. A run id is learnt from the stream itself: it
tells one run from another in the same stream, not whose run it is. Without either, isolation is `not verified`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace

from bot.results import CheckResult, Status

# Ownership this user alone holds, whatever its identity: the thread id it sent, its nonce echoed back.
OWN_PROOFS = frozenset({"thread", "nonce"})


def indistinct(subjects: Mapping[int, str], *, one_token: bool = False) -> dict[int, str]:
    """Users whose events cannot be told apart by the user they name, each with the reason. ``one_token``: the
    configuration gives every user of the run the same token (``auth.mode: token`` with several users), which a
    shard of one user cannot see for itself."""
    counts = Counter(s for s in subjects.values() if s)
    found = {}
    for user, subject in subjects.items():
        if one_token:
            found[user] = (
                "every user runs with the same token (auth.mode token), so an event naming the user cannot tell "
                "them apart"
            )
        elif not subject:
            found[user] = (
                "the token names no subject (`sub`), so an event naming a user cannot be matched to this one"
            )
        elif counts[subject] > 1:
            shared = [u for u, s in subjects.items() if s == subject]
            who = ", ".join(str(u) for u in shared[:10]) + (", ..." if len(shared) > 10 else "")
            found[user] = (
                f"users {who} share one identity ({subject[:80]!r}: auth.mode token, or one login for all), so an "
                "event naming the user cannot tell them apart"
            )
    return found


def rejudged(checks: Iterable[CheckResult], *, why: str | None, proofs: frozenset[str]) -> list[CheckResult]:
    """The user's checks with an isolation `pass` that rested on the user's identity alone made `not verified`."""
    found = list(checks)
    if why is None or proofs & OWN_PROOFS:
        return found
    summary = (
        f"not verified: {why}; the events carry no thread id of this user's and the server echoed no nonce of "
        "its (send one with {nonce} in journey.send)"
    )
    return [
        replace(check, status=Status.NOT_VERIFIED, summary=summary)
        if (check.id == "isolation" or check.id.startswith("isolation (turn "))
        and check.status is Status.PASS
        else check
        for check in found
    ]
