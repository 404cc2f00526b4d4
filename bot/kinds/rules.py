"""What a kind's record says, as types: how its severity is decided, what the traffic gate does with it, its
words for a finding and its README row. The records themselves are ``bot.kinds.table``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SeverityRule(StrEnum):
    """How a kind's severity is decided (``bot.diagnose.severity_for``)."""

    P0 = "P0"  # wherever it is seen: the revision is unusable or unsafe
    BY_STEP = "by step"  # P0 at the golden path's steps (login and beyond), P1 before them (health, revision)
    P1 = "P1"  # wherever it is seen: the journey works (performance)
    # P1 when the failure's detail is CONFIG_DETAIL (golden-path's configuration is at fault), P0 otherwise
    BY_CAUSE = "by cause"


# The detail of a failure caused by golden-path's own configuration rather than the revision (a too-short
# timeouts.run_s): the kind's BY_CAUSE severity makes it P1, so no P0 issue is filed for it.
CONFIG_DETAIL = "run-s"


class GateClass(StrEnum):
    """What the traffic gate does with a kind under ``gate.fail_on`` (README, "Severity and exit codes")."""

    CORRECTNESS = "correctness"  # fails under `correctness` and `any`; under `p0` only when P0
    PERFORMANCE = "performance"  # a warning under the default `correctness`: shared runners are noisy
    ALWAYS_FAIL = "always-fail"  # the run tested other code than the deploy: fails under every `fail_on`
    WARNING = "warning"  # advice about a setting: a warning under `correctness`, fails only under `any`


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str  # may use {detail}, {step} and {subject} (the failure's subject, else its detail)
    cause: str
    remediation: str


@dataclass(frozen=True, slots=True)
class ReadmeRow:
    """The kind's row in README's troubleshooting table (markdown, after the kind)."""

    meaning: str
    usual_cause: str
    fix: str
