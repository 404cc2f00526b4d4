"""Failures -> Findings: group by fingerprint, assign severity, explain the likely cause and the remedy. Pure.

The knowledge here comes from the failures teams hit when running real-time AI backends on Cloud Run; each
entry says what is most likely wrong and the concrete next step, in plain words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from bot.probe import completeness
from bot.results import CheckResult, Finding, Kind, Severity, Status, Step

# Steps on the golden path at or beyond the WebSocket layer: a failure there blocks users (P0).
P0_STEPS = frozenset({Step.LOGIN, Step.CONNECT, Step.MESSAGE, Step.AGENT, Step.ANSWER, Step.ISOLATION})
# Kinds that are P0 wherever they are seen.
P0_KINDS = frozenset(
    {Kind.REVISION_NOT_READY, Kind.ISOLATION_LEAK, Kind.WS_UNAUTHENTICATED_ACCEPTED, Kind.IAM_DENIED}
)

STEP_ORDER = {step: index for index, step in enumerate(Step)}


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str  # may use {detail}, {step} and {subject} (the failure's subject, else its detail)
    cause: str
    remediation: str


EXPLANATIONS: dict[Kind, Explanation] = {
    Kind.DNS: Explanation(
        "The host name does not resolve",
        "The URL's host name has no DNS record: a typo in the URL, a deleted service, or a domain mapping that "
        "is not set up.",
        "Check the URL; for Cloud Run use the service or tag URL from `gcloud run services describe`.",
    ),
    Kind.CONNECT_REFUSED: Explanation(
        "Connection refused at the {step} step",
        "Nothing is listening at that address and port: the container is not serving, or the URL points at "
        "the wrong port.",
        "Make the server listen on `0.0.0.0:$PORT` (Cloud Run sets `PORT`, default 8080) and check the URL.",
    ),
    Kind.TLS: Explanation(
        "TLS handshake failed at the {step} step",
        "The certificate is invalid for this host, expired, or still being provisioned for a custom domain.",
        "Test the `*.run.app` URL, or wait for the managed certificate of the domain mapping to become active.",
    ),
    Kind.TIMEOUT: Explanation(
        "Timed out at the {step} step",
        "The server accepted the connection but did not answer within the deadline: a blocked event loop, a "
        "cold start beyond the deadline, or an agent that never finishes.",
        "Look at the revision's logs for the request; check for blocking calls in async handlers, and set "
        "`--min-instances` or raise the deadline if this was a cold start.",
    ),
    Kind.HTTP_STATUS: Explanation(
        "{step} answered {subject}",
        "The endpoint answered with an error status: the app is unhealthy, a dependency is down, or the path "
        "is wrong.",
        "Open the revision's logs at the time of the run; check the health endpoint's dependencies "
        "(database, Redis, LLM keys) and the configured path.",
    ),
    Kind.WS_UPGRADE_STATUS: Explanation(
        "WebSocket upgrade answered HTTP {detail}",
        "The WebSocket upgrade never reached a healthy app: a 502/503 from Cloud Run's front end means the "
        "container crashed, is not listening, or something in front of it (a load balancer, an ingress) "
        "does not pass upgrades.",
        "Check the revision's logs for crashes at the time of the upgrade; make sure the server supports "
        "WebSockets (e.g. uvicorn with `websockets` installed), use the `*.run.app` URL or enable WebSocket "
        "support on the load balancer, and raise the request timeout (`--timeout 3600`) for long sessions.",
    ),
    Kind.WS_AUTH_REJECTED: Explanation(
        "WebSocket authentication rejected (HTTP {detail})",
        "The server refused a valid token on the WebSocket upgrade: the JWT secret or key differs between "
        "the token issuer and this revision, the token is read from the wrong place, or the handler closes "
        "before accepting (Starlette answers such a close with HTTP 403).",
        "Compare the JWT secret in the revision's environment/Secret Manager version with the issuer's; "
        "check that the server reads the token where the client offers it (subprotocol `jwt.<base64url>` "
        "or `Authorization` header) and that `accept()` runs before any `close()`.",
    ),
    Kind.WS_SUBPROTOCOL: Explanation(
        "WebSocket subprotocol negotiation failed",
        "The client offers subprotocols (`jwt-auth`, `jwt.<token>`) and the server did not select one of "
        "them. Browsers fail such a connection immediately; Python clients raise "
        "`NegotiationError: no subprotocols supported`.",
        "Accept with the offered protocol, e.g. `await websocket.accept(subprotocol='jwt-auth')`, and make "
        "any proxy in front pass `Sec-WebSocket-Protocol` through.",
    ),
    Kind.WS_CLOSED_EARLY: Explanation(
        "WebSocket closed before {detail}",
        "The server closed the connection before the agent finished: a handler that returns or cleans up "
        "early, a crash in the agent task, or Cloud Run's request timeout.",
        "Find the close code and reason below in the revision's logs; keep the handler alive until the "
        "completion event is sent and check the service's request timeout.",
    ),
    Kind.WS_UNAUTHENTICATED_ACCEPTED: Explanation(
        "WebSocket accepts connections without a token",
        "A connection with no credentials was accepted: authentication is disabled or bypassed on this "
        "revision (for example a development flag left on).",
        "Require a valid token before `accept()` and close with code 1008 otherwise; check the revision's "
        "environment for auth-bypass flags.",
    ),
    Kind.WS_PROTOCOL: Explanation(
        "The WebSocket endpoint does not speak the expected protocol",
        "The server answered with something that is not a valid WebSocket handshake or sent frames that are "
        "not JSON: the path serves another app, or a proxy rewrites the traffic.",
        "Check the WebSocket path and what serves it; the evidence shows what came back.",
    ),
    Kind.LOGIN_FAILED: Explanation(
        "Login failed",
        "No token could be obtained: the login endpoint failed, or the configured secret or key is missing.",
        "Check the login endpoint's logs and the credentials given to golden-path.",
    ),
    Kind.EVENT_MISSING: Explanation(
        "Event `{detail}` never arrived",
        "The agent ran (or started) but did not emit this event to the connection: the event is not sent, "
        "is sent to another connection, or the WebSocket bridge drops it.",
        "Check that the agent emits this event through the connection's WebSocket bridge (and not to a "
        "stale or global connection registry) and that the event name matches the protocol.",
    ),
    Kind.EVENT_ORDER: Explanation(
        "Events arrived out of order",
        "The expected events arrived, but not in order: the UI will show progress incorrectly.",
        "Emit events in order from the agent's lifecycle and await each send.",
    ),
    Kind.EVENT_ERROR: Explanation(
        "The agent sent an error event (`{detail}`)",
        "The agent failed while handling the message and reported it over the WebSocket.",
        "Read the error frame below and the revision's logs for the traceback; common causes are a missing "
        "LLM API key, an unreachable database, or a tool that raised.",
    ),
    Kind.ANSWER_EMPTY: Explanation(
        "The agent's final answer is empty",
        "The completion event arrived without a result: the agent produced nothing or the result is put "
        "under a field the client does not read.",
        "Put the answer in `data.result` (or `final_response`) of the completion event.",
    ),
    Kind.ANSWER_CANNED: Explanation(
        "The agent answered with a canned fallback",
        "The final answer matches a fallback pattern: the real agent did not run (missing LLM key, a mock "
        "left on in this revision, or an exception swallowed into a default message).",
        "Check the revision's environment for the LLM credentials and mock flags; search the logs for the "
        "exception that triggered the fallback.",
    ),
    Kind.SLA_EXCEEDED: Explanation(
        "The journey took longer than the SLA",
        "Users waited longer than the agreed time for an answer.",
        "Use the per-step timings below to find the slow step; check cold starts and the LLM's latency.",
    ),
    Kind.ISOLATION_LEAK: Explanation(
        "A user received another user's events",
        "Events are routed by something other than the connection that asked: a shared or global "
        "connection registry, a thread id reused across users, or a broadcast instead of a send.",
        "Route every event by user and run id to that user's connection only; this is a data leak: stop "
        "traffic to this revision.",
    ),
    Kind.REVISION_NOT_READY: Explanation(
        "The revision did not become ready",
        "Cloud Run could not start the new revision (its reason and message are below): a crashing "
        "container, a missing secret, or a port mismatch. Traffic stays on the previous revision.",
        "Read the reason below and the revision's logs; check the container starts locally with `PORT` set.",
    ),
    Kind.VERSION_SKEW: Explanation(
        "The deployed code is not the expected version",
        "The deploy succeeded but the URL still serves other code: the tested URL routes to the previous "
        "revision (no tag, traffic not moved), or the image was built from another commit.",
        "Deploy with `--tag` and test the tag URL, or move traffic; check the image digest the revision runs.",
    ),
    Kind.WRONG_SERVICE: Explanation(
        "The host serves another service (`{detail}`)",
        "The health endpoint names another service: the domain mapping or load balancer routes this host "
        "to the wrong Cloud Run service.",
        "Fix the domain mapping / URL map so this host routes to the backend service.",
    ),
    Kind.RATE_LIMITED: Explanation(
        "Rate limited (HTTP 429) at the {step} step",
        "The service or a proxy in front of it refused requests for exceeding a rate limit.",
        "Raise the limit for the test identity or lower `journey.users`; check Cloud Armor rules.",
    ),
    Kind.IAM_DENIED: Explanation(
        "Google's front end refused the request (HTTP {detail}): IAM, not the app",
        "The service is private (deployed without `--allow-unauthenticated`) and Cloud Run's front end "
        "refused the request before the app saw it: no Google-signed ID token was sent, or the identity "
        "that sent it lacks `roles/run.invoker` on the service. The app's own authentication was never "
        "reached.",
        "Grant `roles/run.invoker` on the service to {identity} (`gcloud run services add-iam-policy-binding "
        "SERVICE --region REGION --member serviceAccount:EMAIL --role roles/run.invoker`), or enable ID "
        "tokens (`private: true` / `--private`, with Application Default Credentials from "
        "google-github-actions/auth or an `id-token` input).",
    ),
    Kind.REVISION_NOT_TESTED: Explanation(
        "The new revision was not tested",
        "The revision has no tag URL and receives less than 100% of traffic, so only the service URL could be "
        "reached, and it is served (in part or in full) by another revision: what passed may be the old code.",
        "Deploy with `--no-traffic --tag pr-N` (and `tag: pr-N`) so golden-path tests the tag URL, which serves "
        "the new revision alone. Traffic is never moved for an untested revision.",
    ),
    Kind.JOURNEYS_INCOMPLETE: Explanation(
        "Not every journey ran ({subject}): the revision hung at the {detail} step",
        "The run's deadline (`timeouts.run_s`) passed while journeys were still waiting on the revision, though it "
        "left them all the time their SLA allows: the revision stopped answering at that step (a blocked event "
        "loop, a handler awaiting a dependency that never answers, instances saturated). Nothing is known of the "
        "journeys that did not run, so the verdict is `fail` under every `fail-on` and nothing is promoted.",
        "Find the step in the revision's logs at the time of the run and what it waited on; the revision is "
        "promoted only once every configured journey runs to its end.",
    ),
    Kind.PERF_REGRESSION: Explanation(
        "Slower than the serving revision: {subject}",
        "Measured in the same run, with the same users and runner, the new revision's p95 is beyond the "
        "allowed factor of the revision serving users now: the runner's network is the same for both, so "
        "the code or the revision's settings are slower.",
        "Compare the two revisions' settings (CPU, memory, concurrency, min instances) and the slow step's "
        "logs; profile the change under review.",
    ),
    Kind.PERF_TARGET_MISSED: Explanation(
        "Performance target missed: {subject}",
        "The measured p95 is above its target.",
        "Compare with earlier runs in the history; check cold starts (`--min-instances`), CPU allocation "
        "and the slow step's logs.",
    ),
}


def _remediation(explanation: Explanation, check: CheckResult) -> str:
    if check.failure is not None and check.failure.kind is Kind.IAM_DENIED:
        identity = check.failure.evidence.get("identity")
        who = f"`{identity}`" if identity else "the identity golden-path runs as"
        return explanation.remediation.replace("{identity}", who)
    return explanation.remediation


# Where one detail of a kind has a cause of its own. A plain 403 is `ws-auth-rejected` unless the probe found the
# same 403 for no token and for a path that cannot exist (bot.probe.journey._explain_refusals).
DETAIL_EXPLANATIONS: dict[tuple[Kind, str], Explanation] = {
    (Kind.JOURNEYS_INCOMPLETE, completeness.CONFIG_DETAIL): Explanation(
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
    """P0 for anything that blocks the golden path at or beyond the WebSocket layer; P1 otherwise. Journeys that
    did not run because ``timeouts.run_s`` is too short are a configuration problem (P1, still failing the gate)."""
    if kind is Kind.JOURNEYS_INCOMPLETE:
        return Severity.P1 if detail == completeness.CONFIG_DETAIL else Severity.P0
    if kind in P0_KINDS or (step in P0_STEPS and kind is not Kind.PERF_TARGET_MISSED):
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
                cause=explanation.cause,
                remediation=_remediation(explanation, first),
                occurrences=len(group),
                users=users,
                evidence=dict(first.failure.evidence),
                observed=first.failure.message,
            )
        )
    findings.sort(key=lambda f: (f.severity.value, STEP_ORDER[f.step], f.fingerprint))
    return tuple(findings)
