"""The table of finding kinds: the ``Kind`` ids and one frozen ``KindInfo`` record per kind. Pure data.

Adding a kind: its member of ``Kind`` and its ``KindInfo`` here, the check that emits it, that check's test, and
README's rows. The severity is the kind's own rule, never only the step it was seen at: a performance kind
seen at the connect step stays a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.kinds.rules import Explanation, GateClass, ReadmeRow, SeverityRule


class Kind(StrEnum):
    """The failure taxonomy (DESIGN.md section 4). Values are stable ids used in fingerprints."""

    DNS = "dns"
    CONNECT_REFUSED = "connect-refused"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http-status"
    WS_UPGRADE_STATUS = "ws-upgrade-status"
    WS_AUTH_REJECTED = "ws-auth-rejected"
    WS_SUBPROTOCOL = "ws-subprotocol"
    WS_CLOSED_EARLY = "ws-closed-early"
    WS_UNAUTHENTICATED_ACCEPTED = "ws-unauthenticated-accepted"
    WS_PROTOCOL = "ws-protocol"  # garbage instead of HTTP / frames that are not JSON
    # The same failures on the other transports (SSE, Socket.IO): transport-neutral names, the WebSocket ones kept.
    STREAM_STATUS = "stream-status"  # the stream request (or a request step) answered an HTTP error
    STREAM_AUTH_REJECTED = "stream-auth-rejected"  # 401/403 on opening the stream, a Socket.IO CONNECT_ERROR
    STREAM_CLOSED_EARLY = "stream-closed-early"  # the body ended / the socket disconnected before completion
    STREAM_UNAUTHENTICATED_ACCEPTED = "stream-unauthenticated-accepted"
    STREAM_PROTOCOL = "stream-protocol"  # not text/event-stream, events that do not match the profile
    LOGIN_FAILED = "login-failed"
    EVENT_MISSING = "event-missing"
    EVENT_ORDER = "event-order"
    EVENT_ERROR = "event-error"
    ANSWER_EMPTY = "answer-empty"
    ANSWER_CANNED = "answer-canned"
    ANSWER_UNEXPECTED = "answer-unexpected"  # a turn's `expect` / `expect_expression` did not hold
    SESSION_LOST = "session-lost"  # after a reconnect, the conversation was forgotten
    SLA_EXCEEDED = "sla-exceeded"
    ISOLATION_LEAK = "isolation-leak"
    REVISION_NOT_READY = "revision-not-ready"
    VERSION_SKEW = "version-skew"
    WRONG_SERVICE = "wrong-service"
    IAM_DENIED = "iam-denied"  # Google's front end refused the request before the app saw it
    REVISION_NOT_TESTED = "revision-not-tested"  # only a URL shared with other revisions could be reached
    JOURNEYS_INCOMPLETE = (
        "journeys-incomplete"  # the run's deadline cut journeys short or never let them start
    )
    PERF_REGRESSION = "perf-regression"  # slower than the serving revision measured in the same run
    RATE_LIMITED = "rate-limited"
    PERF_TARGET_MISSED = "perf-target-missed"
    # The revision's settings break long connections (bot.realtime): judged before anything is probed.
    REQUEST_TIMEOUT_SHORT = "request-timeout-short"
    HTTP2_END_TO_END = "http2-end-to-end"
    SESSION_AFFINITY_OFF = "session-affinity-off"


@dataclass(frozen=True, slots=True)
class KindInfo:
    kind: Kind
    severity: SeverityRule
    gate: GateClass
    explanation: Explanation
    readme: ReadmeRow
    # What users can no longer do when the harm is not the step it was seen at: the journey works but is unsafe.
    capability: str | None = None
    # False: the failure says something about the revision's speed, not that its journey failed.
    breaks_baseline: bool = True
    # True: always a P0 incident of its own (``bot.issues.incidents``): never the root cause of other findings,
    # never filed under another finding's root cause (a data leak or an open door is its own problem).
    own_incident: bool = False


PRIVATE = "trust that their conversation stays private (other users may see their events)"
UNAUTHENTICATED = "rely on the chat being closed to strangers (it accepts connections without a token)"
STREAMS_UNAUTHENTICATED = (
    "rely on the chat being closed to strangers (it streams answers to clients without a token)"
)
CONVERSATION = "continue a conversation after their connection drops (the backend forgets it on reconnect)"

TABLE: tuple[KindInfo, ...] = (
    KindInfo(
        Kind.DNS,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The host name does not resolve",
            "The URL's host name has no DNS record: a typo in the URL, a deleted service, or a domain "
            "mapping that is not set up.",
            "Check the URL; for Cloud Run use the service or tag URL from `gcloud run services describe`.",
        ),
        ReadmeRow(
            "the host name does not resolve",
            "a typo in the URL, a deleted service, a domain mapping not set up",
            "use the service or tag URL from `gcloud run services describe`",
        ),
    ),
    KindInfo(
        Kind.CONNECT_REFUSED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Connection refused at the {step} step",
            "Nothing is listening at that address and port: the container is not serving, or the URL "
            "points at the wrong port.",
            "Make the server listen on `0.0.0.0:$PORT` (Cloud Run sets `PORT`, default 8080) and check "
            "the URL.",
        ),
        ReadmeRow(
            "nothing listens at that address",
            "the container does not listen on `$PORT`, or the URL has the wrong port",
            "listen on `0.0.0.0:$PORT`; check the URL",
        ),
    ),
    KindInfo(
        Kind.TLS,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "TLS handshake failed at the {step} step",
            "The certificate is invalid for this host, expired, or still being provisioned for a custom "
            "domain.",
            "Test the `*.run.app` URL, or wait for the managed certificate of the domain mapping to "
            "become active.",
        ),
        ReadmeRow(
            "the TLS handshake failed",
            "an invalid or expired certificate, or a custom domain's certificate still provisioning",
            "test the `*.run.app` URL, or wait for the managed certificate",
        ),
    ),
    KindInfo(
        Kind.TIMEOUT,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Timed out at the {step} step",
            "The server accepted the connection but did not answer within the deadline: a blocked event "
            "loop, a cold start beyond the deadline, or an agent that never finishes.",
            "Look at the revision's logs for the request; check for blocking calls in async handlers, "
            "and set `--min-instances` or raise the deadline if this was a cold start.",
        ),
        ReadmeRow(
            "connected, but no answer within the deadline",
            "a blocked event loop, a cold start, an agent that never finishes",
            "read the revision's logs; no blocking calls in async handlers; `--min-instances` or a "
            "longer deadline",
        ),
    ),
    KindInfo(
        Kind.HTTP_STATUS,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "{step} answered {subject}",
            "The endpoint answered with an error status: the app is unhealthy, a dependency is down, or "
            "the path is wrong.",
            "Open the revision's logs at the time of the run; check the health endpoint's dependencies "
            "(database, Redis, LLM keys) and the configured path.",
        ),
        ReadmeRow(
            "health (or an API) answered an error status",
            "the app or a dependency (database, Redis, LLM key) is down, or the path is wrong",
            "read the logs at the run's time; check the health endpoint's dependencies and `health.paths`",
        ),
    ),
    KindInfo(
        Kind.WS_UPGRADE_STATUS,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "WebSocket upgrade answered HTTP {detail}",
            "The WebSocket upgrade never reached a healthy app: a 502/503 from Cloud Run's front end "
            "means the container crashed, is not listening, or something in front of it (a load "
            "balancer, an ingress) does not pass upgrades.",
            "Check the revision's logs for crashes at the time of the upgrade; make sure the server "
            "supports WebSockets (e.g. uvicorn with `websockets` installed), use the `*.run.app` URL or "
            "enable WebSocket support on the load balancer, and raise the request timeout (`--timeout "
            "3600`) for long sessions.",
        ),
        ReadmeRow(
            "the WebSocket upgrade got an HTTP error (502/503)",
            "the container crashed or is not listening, or a proxy does not pass upgrades",
            "check the logs for crashes; serve WebSockets (uvicorn with `websockets`); use the "
            "`*.run.app` URL or enable upgrades on the load balancer",
        ),
    ),
    KindInfo(
        Kind.WS_AUTH_REJECTED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "WebSocket authentication rejected (HTTP {detail})",
            "The server refused a valid token on the WebSocket upgrade: the JWT secret or key differs "
            "between the token issuer and this revision, the token is read from the wrong place, or the "
            "handler closes before accepting (Starlette answers such a close with HTTP 403).",
            "Compare the JWT secret in the revision's environment/Secret Manager version with the "
            "issuer's; check that the server reads the token where the client offers it ({token travels "
            "in}) and that `accept()` runs before any `close()`.",
        ),
        ReadmeRow(
            "a valid token was refused (401/403)",
            "the JWT secret differs between issuer and revision, the token is read from elsewhere, or "
            "`close()` before `accept()`",
            "compare the secrets; read the token where it is offered; `accept()` before any `close()`",
        ),
    ),
    KindInfo(
        Kind.WS_SUBPROTOCOL,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "WebSocket subprotocol negotiation failed",
            "The client offers subprotocols ({offered subprotocols}) and the server did not select "
            "one of them. Browsers fail such a connection immediately; Python clients raise "
            "`NegotiationError: no subprotocols supported`.",
            "Accept with the offered protocol, e.g. `await websocket.accept(subprotocol='jwt-auth')`, "
            "and make any proxy in front pass `Sec-WebSocket-Protocol` through.",
        ),
        ReadmeRow(
            "none of the offered subprotocols was echoed",
            "the server accepts without `subprotocol=`, or a proxy strips `Sec-WebSocket-Protocol`",
            '`await websocket.accept(subprotocol="jwt-auth")`; let the header through the proxy',
        ),
    ),
    KindInfo(
        Kind.WS_CLOSED_EARLY,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "WebSocket closed before {detail}",
            "The server closed the connection before the agent finished: a handler that returns or "
            "cleans up early, a crash in the agent task, or Cloud Run's request timeout.",
            "Find the close code and reason below in the revision's logs; keep the handler alive until "
            "the completion event is sent and check the service's request timeout.",
        ),
        ReadmeRow(
            "the socket closed before the completion event",
            "the handler returns or cleans up early, the agent task crashed, or the request timeout",
            "find the close code and reason in the logs; keep the handler alive until completion",
        ),
    ),
    KindInfo(
        Kind.WS_UNAUTHENTICATED_ACCEPTED,
        SeverityRule.P0,
        GateClass.CORRECTNESS,
        Explanation(
            "WebSocket accepts connections without a token",
            "A connection with no credentials was accepted: authentication is disabled or bypassed on "
            "this revision (for example a development flag left on).",
            "Require a valid token ({token travels in}) before serving anything, and refuse otherwise "
            "(HTTP 401/403 on the upgrade, or close with 1008 or 4403); check the revision's environment "
            "for auth-bypass flags.",
        ),
        ReadmeRow(
            "a connection without a token was accepted",
            "authentication disabled or bypassed on this revision",
            "require a valid token before `accept()`, close 1008 otherwise; remove bypass flags",
        ),
        capability=UNAUTHENTICATED,
        own_incident=True,
    ),
    KindInfo(
        Kind.WS_PROTOCOL,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The WebSocket endpoint does not speak the expected protocol",
            "The server answered with something that is not a valid WebSocket handshake or sent frames "
            "that are not JSON: the path serves another app, or a proxy rewrites the traffic.",
            "Check the WebSocket path and what serves it; the evidence shows what came back.",
        ),
        ReadmeRow(
            "the endpoint does not speak WebSocket/JSON",
            "the path serves another app, or a proxy rewrites traffic",
            "check `websocket.path` and what serves it",
        ),
    ),
    KindInfo(
        Kind.STREAM_STATUS,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Opening the stream: {subject}",
            "The request that opens the event stream (or a request step before it) never reached a healthy "
            "handler: 404/405 mean the path or method is not the streaming route, 422 a body the route does "
            "not accept, 502/503 a container that crashed or is not listening.",
            "Check the configured path, method and body against the server's routes (the evidence shows the "
            "answer); for 5xx read the revision's logs at the time of the request.",
        ),
        ReadmeRow(
            "the request opening an SSE stream (or a request step before it) answered an HTTP error",
            "a wrong path or method (404/405), a body the route refuses (422), a crashed container (502/503)",
            "check `sse.path`, `sse.method`, `sse.body` and the request steps against the server's routes",
        ),
    ),
    KindInfo(
        Kind.STREAM_AUTH_REJECTED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Stream authentication rejected: {subject}",
            "The server refused a valid token when the event stream was opened (HTTP 401/403 on the stream "
            "request or a request step before it): the secret or key differs between the token issuer and "
            "this revision, or the token is read from another place than where it is sent.",
            "Compare the JWT secret in the revision's environment with the issuer's; check that the server "
            "reads the token where the client sends it (the header or query named in the evidence).",
        ),
        ReadmeRow(
            "a valid token was refused when the stream was opened (401/403 on the stream request or a "
            "request step)",
            "the JWT secret differs, or the token is read from elsewhere than `sse.token` sends it",
            "compare the secrets; read the token where it is sent",
        ),
    ),
    KindInfo(
        Kind.STREAM_CLOSED_EARLY,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The stream ended before {detail}",
            "The server ended the event stream before the agent finished: a handler that returns early, a "
            "crash in the agent task, a proxy cutting long responses, or Cloud Run's request timeout.",
            "Read the revision's logs at the time of the run for an exception in the streaming handler; keep "
            "the response open until the last event is sent, and check the service's request timeout.",
        ),
        ReadmeRow(
            "the response body ended before the completion event (or before any event)",
            "the handler returns or crashes early, a proxy cuts long responses, the request timeout",
            "read the logs for the streaming handler's exception; keep the response open until the last event",
        ),
    ),
    KindInfo(
        Kind.STREAM_UNAUTHENTICATED_ACCEPTED,
        SeverityRule.P0,
        GateClass.CORRECTNESS,
        Explanation(
            "The event stream serves clients without a token",
            "A client with no credentials received the journey's own events: authentication is disabled or "
            "bypassed on this revision's streaming route (for example a development flag left on).",
            "Require a valid token on the streaming route (and on the requests before it) and answer 401 "
            "otherwise; check the revision's environment for auth-bypass flags.",
        ),
        ReadmeRow(
            "a stream request without a token got the journey's own events",
            "authentication disabled or bypassed on the streaming route",
            "require a valid token on the route and on the request steps before it (401 otherwise)",
        ),
        capability=STREAMS_UNAUTHENTICATED,
    ),
    KindInfo(
        Kind.STREAM_PROTOCOL,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The stream does not speak the expected protocol",
            "The streaming route answered something other than the configured transport (e.g. JSON instead "
            "of `text/event-stream`), or sent events that do not match the profile, or a request step's "
            "answer lacks the value to extract.",
            "Check `transport`, the path and what serves it; the evidence shows what came back.",
        ),
        ReadmeRow(
            "the stream is not `text/event-stream`, or its events do not match the profile",
            "the path serves JSON or another app; a request step's answer lacks the value to extract",
            "check `transport`, `sse.path` and the profile; the evidence shows what came back",
        ),
    ),
    KindInfo(
        Kind.LOGIN_FAILED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Login failed",
            "No token could be obtained: the login endpoint failed, or the configured secret or key is "
            "missing.",
            "Check the login endpoint's logs ({url}) and the credentials given to golden-path.",
        ),
        ReadmeRow(
            "no token could be obtained",
            "the login endpoint failed, or the secret or key is missing",
            "check the login endpoint's logs and the credentials given to golden-path",
        ),
    ),
    KindInfo(
        Kind.EVENT_MISSING,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Event `{detail}` never arrived",
            "The agent ran (or started) but did not emit this event to the connection: the event is not "
            "sent, is sent to another connection, or the WebSocket bridge drops it.",
            "Check that the agent emits this event through the connection's WebSocket bridge (and not "
            "to a stale or global connection registry) and that the event name matches the protocol.",
        ),
        ReadmeRow(
            "an expected event never arrived",
            "the event is not sent, sent to another connection, or dropped by the bridge",
            "emit it through this connection's WebSocket bridge; check the event name",
        ),
    ),
    KindInfo(
        Kind.EVENT_ORDER,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Events arrived out of order",
            "The expected events arrived, but not in order: the UI will show progress incorrectly.",
            "Emit events in order from the agent's lifecycle and await each send.",
        ),
        ReadmeRow(
            "events arrived out of order",
            "events sent from concurrent tasks without awaiting",
            "emit in lifecycle order and await each send",
        ),
    ),
    KindInfo(
        Kind.EVENT_ERROR,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The agent sent an error event (`{detail}`)",
            "The agent failed while handling the message and reported it over the WebSocket.",
            "Read the error frame below and the revision's logs for the traceback; common causes are a "
            "missing LLM API key, an unreachable database, or a tool that raised.",
        ),
        ReadmeRow(
            "the agent sent an error event",
            "a missing LLM key, an unreachable database, a tool that raised",
            "read the error frame and the logs' traceback",
        ),
    ),
    KindInfo(
        Kind.ANSWER_EMPTY,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The agent's final answer is empty",
            "The completion event arrived without a result: the agent produced nothing or the result is "
            "put under a field the client does not read.",
            "Put the answer where golden-path reads it ({answer expression}), or point "
            "`journey.answer.expression` at where the server puts it.",
        ),
        ReadmeRow(
            "the completion carried no answer",
            "the agent produced nothing, or the answer is under another field",
            "put it in `data.result` (or `final_response`)",
        ),
    ),
    KindInfo(
        Kind.ANSWER_CANNED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The agent answered with a canned fallback",
            "The final answer matches a fallback pattern: the real agent did not run (missing LLM key, "
            "a mock left on in this revision, or an exception swallowed into a default message).",
            "Check the revision's environment for the LLM credentials and mock flags; search the logs "
            "for the exception that triggered the fallback.",
        ),
        ReadmeRow(
            "the answer is a canned fallback",
            "the real agent did not run: missing LLM key, a mock left on, a swallowed exception",
            "check the revision's environment and the logs for the exception",
        ),
    ),
    KindInfo(
        Kind.ANSWER_UNEXPECTED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The answer is not what the turn expects",
            "The answer arrived, but it does not match the turn's `expect` (or its `expect_expression` is "
            "false): the agent answered something else, or the answer's shape changed.",
            "Compare the answer in the evidence with `journey.turns[].expect`; check the revision's prompt, "
            "model and tools for the change.",
        ),
        ReadmeRow(
            "a turn's answer does not match its `expect`",
            "the agent answered something else, or the answer's shape changed",
            "compare the answer with `journey.turns[].expect`; check prompt, model and tools",
        ),
    ),
    KindInfo(
        Kind.SESSION_LOST,
        SeverityRule.P0,
        GateClass.CORRECTNESS,
        Explanation(
            "The conversation was lost on reconnect",
            "After the client reconnected as the same user to the same thread, the answer no longer shows "
            "what the conversation held before: the session lives in one instance's memory, and Cloud Run "
            "routed the new connection elsewhere (or restarted the instance).",
            "Keep sessions in a store every instance reads (Redis/Memorystore, Firestore, a database) keyed by "
            "the thread, not in process memory; session affinity is only best effort.",
        ),
        ReadmeRow(
            "a reconnect forgot the conversation",
            "sessions kept in one instance's memory; the reconnect reached another instance",
            "keep sessions in a shared store keyed by thread (Redis, Firestore)",
        ),
        capability=CONVERSATION,
    ),
    KindInfo(
        Kind.SLA_EXCEEDED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The journey took longer than the SLA",
            "Users waited longer than the agreed time for an answer.",
            "Use the per-step timings below to find the slow step; check cold starts and the LLM's latency.",
        ),
        ReadmeRow(
            "the journey took longer than `journey.sla_s`",
            "a cold start, a slow LLM, a slow step",
            "use the per-step timings to find the slow step",
        ),
    ),
    KindInfo(
        Kind.ISOLATION_LEAK,
        SeverityRule.P0,
        GateClass.CORRECTNESS,
        Explanation(
            "A user received another user's events",
            "Events are routed by something other than the connection that asked: a shared or global "
            "connection registry, a thread id reused across users, or a broadcast instead of a send.",
            "Route every event by user and run id to that user's connection only; this is a data leak: "
            "stop traffic to this revision.",
        ),
        ReadmeRow(
            "a user received another user's events",
            "a global connection registry, a reused thread id, broadcast instead of send",
            "route every event by user and run id; stop traffic to this revision",
        ),
        capability=PRIVATE,
        own_incident=True,
    ),
    KindInfo(
        Kind.REVISION_NOT_READY,
        SeverityRule.P0,
        GateClass.CORRECTNESS,
        Explanation(
            "The revision is not ready",
            "Cloud Run reports the new revision not ready, in its own words below: it could not start, or its "
            "Ready condition turned False while it was being tested (a container that exited, a failed health "
            "check). Usual causes: a crashing container, a missing secret, a port mismatch, an out-of-memory "
            "kill.",
            "Read the reason below and the revision's logs; check the container starts locally with "
            "`PORT` set.",
        ),
        ReadmeRow(
            "Cloud Run could not start the revision, or its Ready condition turned False during the probe (the "
            'finding carries Cloud Run\'s reason and message, e.g. "Container called exit(1).")',
            "a crashing container, a missing secret, a port mismatch, an out-of-memory kill",
            "read the revision's reason and logs; run the container locally with `PORT` set",
        ),
    ),
    KindInfo(
        Kind.VERSION_SKEW,
        SeverityRule.BY_STEP,
        GateClass.ALWAYS_FAIL,
        Explanation(
            "The deployed code is not the expected version",
            "The deploy succeeded but the URL still serves other code: the tested URL routes to the "
            "previous revision (no tag, traffic not moved), or the image was built from another commit.",
            "Deploy with `--tag` and test the tag URL, or move traffic; check the image digest the "
            "revision runs.",
        ),
        ReadmeRow(
            "the URL serves other code than expected",
            "the URL routes to the previous revision (no tag, no traffic), or the image is from another "
            "commit",
            "deploy with `--tag` and test the tag URL (input `tag`); check the image digest",
        ),
    ),
    KindInfo(
        Kind.WRONG_SERVICE,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "The host serves another service (`{detail}`)",
            "The health endpoint names another service: the domain mapping or load balancer routes this "
            "host to the wrong Cloud Run service.",
            "Fix the domain mapping / URL map so this host routes to the backend service.",
        ),
        ReadmeRow(
            "the health body names another service",
            "a domain mapping or URL map routes the host to the wrong service",
            "fix the mapping so the host reaches the backend",
        ),
    ),
    KindInfo(
        Kind.RATE_LIMITED,
        SeverityRule.BY_STEP,
        GateClass.CORRECTNESS,
        Explanation(
            "Rate limited (HTTP 429) at the {step} step",
            "The service or a proxy in front of it refused requests for exceeding a rate limit.",
            "Raise the limit for the test identity or lower `journey.users`; check Cloud Armor rules.",
        ),
        ReadmeRow(
            "HTTP 429",
            "a rate limit or Cloud Armor rule hits the test identity",
            "raise the limit for it, or lower `journey.users`",
        ),
    ),
    KindInfo(
        Kind.IAM_DENIED,
        SeverityRule.P0,
        GateClass.CORRECTNESS,
        Explanation(
            "Google's front end refused the request (HTTP {detail}): IAM, not the app",
            "The service is private (deployed without `--allow-unauthenticated`) and Cloud Run's front "
            "end refused the request before the app saw it: no Google-signed ID token was sent, or the "
            "identity that sent it lacks `roles/run.invoker` on the service. The app's own "
            "authentication was never reached.",
            "Grant `roles/run.invoker` on the service to {identity} (`gcloud run services "
            "add-iam-policy-binding SERVICE --region REGION --member serviceAccount:EMAIL --role "
            "roles/run.invoker`), or enable ID tokens (`private: true` / `--private`, with Application "
            "Default Credentials from google-github-actions/auth or an `id-token` input).",
        ),
        ReadmeRow(
            "Google's front end refused the request before the app saw it (401/403 page)",
            "the service is private and golden-path's identity lacks `roles/run.invoker`, or no ID "
            "token was sent",
            "grant `roles/run.invoker` on the service to the identity named in the finding; set "
            "`private: true`",
        ),
    ),
    KindInfo(
        Kind.REVISION_NOT_TESTED,
        SeverityRule.BY_STEP,
        GateClass.ALWAYS_FAIL,
        Explanation(
            "The new revision was not tested",
            "The revision has no tag URL and receives less than 100% of traffic, so only the service "
            "URL could be reached, and it is served (in part or in full) by another revision: what "
            "passed may be the old code.",
            "Deploy with `--no-traffic --tag pr-N` (and `tag: pr-N`) so golden-path tests the tag URL, "
            "which serves the new revision alone. Traffic is never moved for an untested revision.",
        ),
        ReadmeRow(
            "only the service URL could be reached while the new revision has less than 100% of traffic",
            "the revision was deployed without a tag, so other revisions answer that URL",
            "deploy with `--no-traffic --tag pr-N` and pass `tag`; golden-path then tests the tag URL",
        ),
    ),
    KindInfo(
        Kind.JOURNEYS_INCOMPLETE,
        SeverityRule.BY_CAUSE,
        GateClass.ALWAYS_FAIL,
        Explanation(
            "Not every journey ran ({subject}): the revision hung at the {detail} step",
            "The run's deadline (`timeouts.run_s`) passed while journeys were still waiting on the revision, "
            "though it left them all the time their SLA allows: the revision stopped answering at that step (a "
            "blocked event loop, a handler awaiting a dependency that never answers, instances saturated). "
            "Nothing is known of the journeys that did not run, so the verdict is `fail` under every `fail-on` "
            "and nothing is promoted.",
            "Find the step in the revision's logs at the time of the run and what it waited on; the revision "
            "is promoted only once every configured journey runs to its end.",
        ),
        ReadmeRow(
            "not every configured journey ran to its end: the run's deadline (`timeouts.run_s`) cut some short "
            "or never let them start",
            "`run_s` shorter than health plus one `journey.sla_s` per phase of users (P1, a configuration "
            "problem), or the revision hung at the step named (P0)",
            "raise `timeouts.run_s` to the `run_s needed` in the evidence, or lower `journey.users`; otherwise "
            "read the revision's logs at that step",
        ),
    ),
    KindInfo(
        Kind.PERF_REGRESSION,
        SeverityRule.P1,
        GateClass.PERFORMANCE,
        Explanation(
            "Slower than the serving revision: {subject}",
            "Measured in the same run, with the same users and runner, the new revision's p95 is beyond "
            "the allowed factor of the revision serving users now: the runner's network is the same for "
            "both, so the code or the revision's settings are slower.",
            "Compare the two revisions' settings (CPU, memory, concurrency, min instances) and the slow "
            "step's logs; profile the change under review.",
        ),
        ReadmeRow(
            "a p95 is more than `baseline.max_ratio` times (and `baseline.min_delta_ms` over) the "
            "serving revision's, measured in the same run",
            "a slower code path, a new dependency call, less CPU or memory on the new revision",
            "compare the two columns in the report; profile the slower step",
        ),
        breaks_baseline=False,
    ),
    KindInfo(
        Kind.PERF_TARGET_MISSED,
        SeverityRule.P1,
        GateClass.PERFORMANCE,
        Explanation(
            "Performance target missed: {subject}",
            "The measured p95 is above its target.",
            "Compare with earlier runs in the history; check cold starts (`--min-instances`), CPU "
            "allocation and the slow step's logs.",
        ),
        ReadmeRow(
            "a p95 is above its target",
            "noise on a shared runner, cold starts, CPU allocation, a slow step",
            "compare with the history; `--min-instances`; `fail-on: any` makes it fail the job",
        ),
        breaks_baseline=False,
    ),
    KindInfo(
        Kind.REQUEST_TIMEOUT_SHORT,
        SeverityRule.P1,
        GateClass.CORRECTNESS,
        Explanation(
            "Cloud Run's request timeout cuts sessions: {subject}",
            "A WebSocket or a stream is one HTTP request on Cloud Run, so the service's request timeout (default "
            "300 s, at most 3600 s) ends it: users are disconnected mid-conversation and must reconnect. The "
            "revision's timeout is shorter than the session length expected (`cloud_run.min_session_s`).",
            "Raise the request timeout: {command} (Cloud Run docs: Using WebSockets, Request timeout); make "
            "clients reconnect anyway. Lower `cloud_run.min_session_s` if sessions really are shorter.",
        ),
        ReadmeRow(
            "the revision's request timeout is shorter than `cloud_run.min_session_s` (900 s)",
            "deployed with Cloud Run's default 300 s timeout",
            "`gcloud run services update SERVICE --timeout=900` (the command in the finding has the value)",
        ),
        breaks_baseline=False,
    ),
    KindInfo(
        Kind.HTTP2_END_TO_END,
        SeverityRule.P1,
        GateClass.CORRECTNESS,
        Explanation(
            "End-to-end HTTP/2 is on for a WebSocket service",
            "The ingress container's port is named `h2c`, so Cloud Run forwards requests as HTTP/2 cleartext; "
            "Google's guidance for WebSockets on Cloud Run is not to enable end-to-end HTTP/2 (the WebSocket "
            "upgrade is an HTTP/1.1 mechanism).",
            "Turn end-to-end HTTP/2 off: {command} (Cloud Run docs: Using WebSockets, Using HTTP/2).",
        ),
        ReadmeRow(
            "the ingress container's port is named `h2c` (end-to-end HTTP/2) on a WebSocket service",
            "`--use-http2` at deploy, or a port named `h2c` in the service YAML",
            "`gcloud run services update SERVICE --no-use-http2`",
        ),
        breaks_baseline=False,
    ),
    KindInfo(
        Kind.SESSION_AFFINITY_OFF,
        SeverityRule.P1,
        GateClass.WARNING,
        Explanation(
            "Session affinity is off while several instances serve",
            "The journey reconnects (or polls, as Socket.IO does) and the revision may run several instances "
            "without session affinity, so a user's next connection may reach an instance that does not hold "
            "their session. Affinity is best effort: share session state between instances as well.",
            "Turn session affinity on: {command} (Cloud Run docs: Session affinity).",
        ),
        ReadmeRow(
            "session affinity is off while max instances > 1, for a journey that reconnects or polls",
            "Cloud Run's default (affinity off) on a service that keeps sessions in memory",
            "`gcloud run services update SERVICE --session-affinity`; share session state between instances",
        ),
        breaks_baseline=False,
    ),
)
