"""The finding kinds: one frozen record per kind holds every rule the bot applies by kind. Pure data.

Everything that decides by kind reads this table: the severity (``bot.diagnose``), the traffic gate
(``bot.pipeline``), whether a failure means the serving revision is broken (``bot.baseline``), what users lose
(``bot.impact``), the finding's title, cause and remedy, and README's troubleshooting row (a test holds README's
tables equal to it). The records are in ``bot.kinds.table`` (where a kind is added), the types that say what a
record holds in ``bot.kinds.rules``; this module is what the rest of the bot reads.
"""

from __future__ import annotations

from bot.kinds.rules import CONFIG_DETAIL, Explanation, GateClass, ReadmeRow, SeverityRule
from bot.kinds.table import (
    CONVERSATION,
    PRIVATE,
    STREAMS_UNAUTHENTICATED,
    TABLE,
    UNAUTHENTICATED,
    Kind,
    KindInfo,
)

__all__ = [
    "CONFIG_DETAIL",
    "CONVERSATION",
    "KINDS",
    "PRIVATE",
    "STREAMS_UNAUTHENTICATED",
    "UNAUTHENTICATED",
    "Explanation",
    "GateClass",
    "Kind",
    "KindInfo",
    "ReadmeRow",
    "SeverityRule",
    "having",
    "of",
    "troubleshooting_rows",
]

KINDS: dict[Kind, KindInfo] = {info.kind: info for info in TABLE}


def of(kind: Kind) -> KindInfo:
    return KINDS[kind]


def having(*, severity: SeverityRule | None = None, gate: GateClass | None = None) -> frozenset[Kind]:
    """The kinds with this severity rule and/or gate class."""
    return frozenset(
        info.kind
        for info in TABLE
        if (severity is None or info.severity is severity) and (gate is None or info.gate is gate)
    )


def troubleshooting_rows() -> list[str]:
    """README's troubleshooting table rows (markdown), in this table's order."""
    return [
        f"| `{info.kind.value}` | {info.readme.meaning} | {info.readme.usual_cause} | {info.readme.fix} |"
        for info in TABLE
    ]
