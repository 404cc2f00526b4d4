"""Failures -> Findings: group by fingerprint, assign severity, explain the likely cause and the remedy. Pure.

The knowledge here comes from the failures teams hit when running real-time AI backends on Cloud Run; each
entry says what is most likely wrong and the concrete next step, in plain words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from bot import kinds
from bot.kinds import Explanation, SeverityRule
from bot.results import CheckResult, Finding, Kind, Severity, Status, Step

# Steps on the golden path at or beyond the WebSocket layer: a failure there blocks users (P0) for a kind whose
# severity goes by step (bot.kinds.SeverityRule.BY_STEP).
P0_STEPS = frozenset({Step.LOGIN, Step.CONNECT, Step.MESSAGE, Step.AGENT, Step.ANSWER, Step.ISOLATION})
# Kinds that are P0 wherever they are seen.
P0_KINDS = kinds.having(severity=SeverityRule.P0)

STEP_ORDER = {step: index for index, step in enumerate(Step)}

EXPLANATIONS: dict[Kind, Explanation] = {kind: info.explanation for kind, info in kinds.KINDS.items()}


# What a `{name}` in a cause or remediation reads when the failure's evidence has no such entry.
FILL_DEFAULTS = {
    "identity": "the identity golden-path runs as",
    "token travels in": "the subprotocol `jwt.<base64url>` or the `Authorization` header",
    "offered subprotocols": "`jwt-auth`, `jwt.<token>`",
    "answer expression": "`data.result` or `final_response` on the completion event",
    "url": "`auth.login`",
    "command": "`gcloud run services update SERVICE` with the flag named in the finding",
}
_FILL = re.compile(r"\{([a-z][a-z ]*)\}")
_CODE_SHAPED = frozenset(
    {"identity", "url", "command"}
)  # evidence values shown as code; the others are already words


def _filled(text: str, evidence: Mapping[str, str]) -> str:
    """``{name}`` in an explanation replaced by the failure's own evidence (the configured path, where the token
    travels, the answer expression), so the words fit this backend, not the reference protocol."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in FILL_DEFAULTS:
            return match.group()
        value = evidence.get(name)
        if not value:
            return FILL_DEFAULTS[name]
        value = value[:300]
        return "`" + value.replace("`", "'") + "`" if name in _CODE_SHAPED else value

    return _FILL.sub(one, text)


def _remediation(explanation: Explanation, check: CheckResult) -> str:
    evidence = check.failure.evidence if check.failure is not None else {}
    return _filled(explanation.remediation, evidence)


# Where one detail of a kind has a cause of its own. A plain 403 is `ws-auth-rejected` unless the probe found the
# same 403 for no token and for a path that cannot exist (bot.probe.journey._explain_refusals).
DETAIL_EXPLANATIONS: dict[tuple[Kind, str], Explanation] = {
    (Kind.JOURNEYS_INCOMPLETE, kinds.CONFIG_DETAIL): Explanation(
        "Not every journey ran ({subject}): timeouts.run_s is too short",
        "`timeouts.run_s` is shorter than the time health took plus what the configured journeys may take within "
        "`journey.sla_s` (one SLA per phase of users), so the run's deadline cut journeys that were still inside "
        "their SLA, or never let them start. A configuration problem, not the revision's (no P0 issue is filed); "
        "but nothing is known of the journeys that did not run, so the verdict is `fail` under every `fail-on` "
        "and nothing is promoted.",
        "Raise `timeouts.run_s` (input `run-timeout`) to at least the `run_s needed` in the evidence, or lower "
        "`journey.users` / `journey.sla_s`.",
    ),
    (Kind.WS_UPGRADE_STATUS, "403"): Explanation(
        "WebSocket path probably not routed (the same HTTP 403 on every upgrade)",
        "The upgrade with a valid token, the one without a token and one to a path that cannot exist all got "
        "the same 403: no WebSocket route is registered at this path (Starlette and FastAPI answer 403 for an "
        "unknown WebSocket route), or the server refuses every upgrade before it reads the token.",
        "Check `websocket.path` against the server's WebSocket routes, including any path prefix or proxy "
        "rewrite; if the route exists, check where the handler reads the token and compare the JWT secret in "
        "the revision with the issuer's.",
    ),
}


# A redirect on the upgrade: browsers fail it, so the status is the finding, whatever the Location says.
REDIRECT = Explanation(
    "WebSocket upgrade redirected (HTTP {detail})",
    "The upgrade was answered with a redirect: the front end (a load balancer, an ingress, the app's HTTPS or "
    "trailing-slash redirect, a domain mapping) redirects WebSocket upgrades. Browsers fail a WebSocket upgrade "
    "answered 3xx, so real users cannot connect; golden-path does not follow it, and sends no credential to the "
    "Location.",
    "Serve `wss://` on the final host and path: point `websocket.path` (and the URL) at what the `Location` names, "
    "or stop the front end redirecting upgrades (e.g. a `/ws` -> `/ws/` or `http` -> `https` rule).",
)
DETAIL_EXPLANATIONS |= {(Kind.WS_UPGRADE_STATUS, str(code)): REDIRECT for code in range(300, 400)}


def severity_for(kind: Kind, step: Step, detail: str = "") -> Severity:
    """The kind's own rule (``bot.kinds``): P0 always, P1 always, P0 at the golden path's steps, or by cause
    (P1 when the failure's detail says the configuration is at fault, e.g. ``run-s``)."""
    rule = kinds.of(kind).severity
    if rule is SeverityRule.BY_CAUSE:
        return Severity.P1 if detail == kinds.CONFIG_DETAIL else Severity.P0
    if rule is SeverityRule.P0 or (rule is SeverityRule.BY_STEP and step in P0_STEPS):
        return Severity.P0
    return Severity.P1


def service_key(service: str) -> str:
    """The service as it opens a fingerprint: percent-encoded, so it never contains ':' and ``chat`` cannot
    claim ``chat:canary``'s fingerprints (plain names such as ``chat-backend`` are unchanged)."""
    return quote(service, safe="-._~")


def fingerprint_service_key(fingerprint: str) -> str:
    """The ``service_key`` a fingerprint starts with."""
    return fingerprint.split(":", 1)[0]


def fingerprint(service: str, kind: Kind, detail: str = "") -> str:
    return f"{service_key(service)}:{kind.value}" + (f":{detail}" if detail else "")


def diagnose(checks: Iterable[CheckResult], *, service: str) -> tuple[Finding, ...]:
    """Every failed check becomes (part of) one Finding per fingerprint; ordered P0 first, then by step."""
    grouped: dict[str, list[CheckResult]] = {}
    for check in checks:
        if check.status is Status.FAIL and check.failure is not None:
            key = fingerprint(service, check.failure.kind, check.failure.detail)
            grouped.setdefault(key, []).append(check)

    findings = []
    for key, group in grouped.items():
        first = group[0]
        assert first.failure is not None
        kind, detail = first.failure.kind, first.failure.detail
        explanation = DETAIL_EXPLANATIONS.get((kind, detail), EXPLANATIONS[kind])
        step_label = first.step.value
        users = tuple(sorted({c.user for c in group if c.user is not None}))
        findings.append(
            Finding(
                fingerprint=key,
                severity=severity_for(kind, first.step, detail),
                kind=kind,
                step=first.step,
                title=explanation.title.format(
                    detail=detail or "?",
                    step=step_label,
                    subject=first.failure.subject or detail or "?",
                ),
                cause=_filled(explanation.cause, first.failure.evidence),
                remediation=_remediation(explanation, first),
                occurrences=len(group),
                users=users,
                evidence=dict(first.failure.evidence),
                observed=first.failure.message,
            )
        )
    findings.sort(key=lambda f: (f.severity.value, STEP_ORDER[f.step], f.fingerprint))
    return tuple(findings)
