"""Health probes over HTTP (httpx), and the one place transport errors are classified into failure kinds."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bot import iam, untrusted
from bot.expressions import dotted, search
from bot.results import CheckResult, Failure, Kind, Status, Step
from bot.settings import HealthSettings, VersionSettings

FRONT_END_NAMES = frozenset({"frontend", "front-end", "web", "ui", "client", "static", "website"})
EVIDENCE_BODY_CHARS = 2000
# A health or login answer is a few hundred bytes; past this the rest is not read (memory stays bounded
# however long the body, and a body that never ends still ends the check).
MAX_BODY_BYTES = 1024 * 1024
_HOP_HEADERS = ("content-encoding", "transfer-encoding", "content-length")


class BodyTooLarge(Exception):
    """The answer's body went past ``MAX_BODY_BYTES``; ``response`` holds the headers and the first bytes."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        super().__init__(f"body longer than {limit} bytes")
        self.response = response
        self.limit = limit


class Incomplete(Exception):
    """The deadline passed before the whole answer arrived; says how far it got."""

    def __init__(self, deadline_s: float, status: int | None, received: int) -> None:
        got = f"HTTP {status} headers and {received} bytes of the body" if status else "no response headers"
        super().__init__(f"no complete answer within {deadline_s:g} s ({got})")
        self.deadline_s = deadline_s
        self.status = status
        self.received = received


async def fetch(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline_s: float,
    max_bytes: int = MAX_BODY_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """One request under a TOTAL deadline (httpx's timeouts are per read: one byte a second never trips
    them), its body streamed and read once, at most ``max_bytes``.

    Returns a response whose ``.content`` is the whole body. Raises ``Incomplete`` at the deadline,
    ``BodyTooLarge`` past the cap (with the first ``max_bytes``), ``httpx.HTTPError`` for transport errors.
    """
    status: int | None = None
    received = 0
    try:
        async with asyncio.timeout(deadline_s), http.stream(method, url, **kwargs) as response:
            status = response.status_code
            chunks: list[bytes] = []
            async for chunk in response.aiter_bytes():
                room = max_bytes - received
                chunks.append(chunk[:room])
                received += len(chunk)
                if received > max_bytes:
                    raise BodyTooLarge(_complete(response, b"".join(chunks)), max_bytes)
            return _complete(response, b"".join(chunks))
    except TimeoutError:
        raise Incomplete(deadline_s, status, received) from None


def _complete(streamed: httpx.Response, body: bytes) -> httpx.Response:
    # The body is already decoded: drop the headers that would make httpx decode or frame it again.
    headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _HOP_HEADERS]
    return httpx.Response(streamed.status_code, headers=headers, content=body, request=streamed.request)


def transport_failure(exc: BaseException, *, what: str, detail: str = "") -> Failure:
    """A network-level exception -> Failure with the right kind (dns, connect-refused, tls, timeout)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain)
    evidence = {"error": text[:EVIDENCE_BODY_CHARS]}
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text:
        return Failure(Kind.DNS, f"{what}: the host name does not resolve.", detail, evidence)
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in text or "CERTIFICATE" in text:
        return Failure(Kind.TLS, f"{what}: TLS failed.", detail, evidence)
    if any(isinstance(e, TimeoutError | httpx.TimeoutException) for e in chain):
        return Failure(Kind.TIMEOUT, f"{what}: no answer before the deadline.", detail, evidence)
    if any(isinstance(e, httpx.RemoteProtocolError) for e in chain) and "illegal" in text.lower():
        # h11's words for bytes that are not an HTTP response (a garbage status line, another protocol).
        return Failure(
            Kind.HTTP_STATUS, f"{what}: the answer is not HTTP.", "not-http", evidence, subject="not HTTP"
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text.lower():
        return Failure(Kind.CONNECT_REFUSED, f"{what}: connection refused.", detail, evidence)
    return Failure(Kind.CONNECT_REFUSED, f"{what}: the connection failed.", detail, evidence)


@dataclass(frozen=True, slots=True)
class HealthOutcome:
    checks: tuple[CheckResult, ...]
    latencies_ms: tuple[float, ...]
    versions: tuple[str, ...]  # every version-like value of the health body, the configured field first
    # The run's first request to the revision, answered (any status): it may carry the instance's cold start.
    first_ms: float | None = None
    first_request: str = ""


async def check_health(
    *, http: httpx.AsyncClient, base_url: str, settings: HealthSettings, version: VersionSettings
) -> HealthOutcome:
    checks: list[CheckResult] = []
    latencies: list[float] = []
    versions: list[str] = []
    first: tuple[float, str] | None = None
    for path in settings.paths:
        check_id = "health" if len(settings.paths) == 1 else f"health {path}"
        url = base_url + path
        started = time.perf_counter()
        try:
            response = await fetch(http, "GET", url, deadline_s=settings.timeout_s)
        except (httpx.HTTPError, Incomplete, BodyTooLarge) as exc:
            elapsed = (time.perf_counter() - started) * 1000
            broken = _unanswered(exc, path)
            checks.append(CheckResult(check_id, Step.HEALTH, Status.FAIL, round(elapsed, 2), failure=broken))
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if first is None and not checks:
            first = (round(elapsed, 2), f"GET {path}")
        latencies.extend(await _warm_samples(http, url, settings.latency_samples, settings.timeout_s))
        body = _json_or_none(response.content)
        failure = _judge(path, response, body, settings)
        versions.extend(v for v in _versions_of(body, version.field, settings.version) if v not in versions)
        status = Status.FAIL if failure else Status.PASS
        summary = f"GET {path}: HTTP {response.status_code}"
        checks.append(
            CheckResult(check_id, Step.HEALTH, status, round(elapsed, 2), summary=summary, failure=failure)
        )
        if failure is None:
            wrong = _wrong_service(path, body, settings)
            if wrong is not None:
                checks.append(CheckResult(f"{check_id} service", Step.HEALTH, Status.FAIL, failure=wrong))
    return HealthOutcome(tuple(checks), tuple(latencies), tuple(versions), *(first if first else (None, "")))


def _unanswered(exc: Exception, path: str) -> Failure:
    """The health request got no usable answer: past its deadline, a body too large, or a transport error."""
    what = f"GET {path}"
    if isinstance(exc, Incomplete):
        evidence = {"request": what, "deadline": f"{exc.deadline_s:g} s (health.timeout_s)"}
        if exc.status is not None:
            evidence |= {"status": str(exc.status), "body bytes received": str(exc.received)}
        return Failure(Kind.TIMEOUT, f"{what}: {exc}.", detail="health", evidence=evidence)
    if isinstance(exc, BodyTooLarge):
        response = exc.response
        return Failure(
            Kind.HTTP_STATUS,
            f"{what} answered HTTP {response.status_code} with a body over {exc.limit // 1024} KiB; "
            "the rest was not read (a health answer is a few hundred bytes).",
            detail="body-too-large",
            evidence={
                "request": what,
                "status": str(response.status_code),
                "content-type": response.headers.get("content-type", ""),
                # Only the start is decoded: the rest of the kept MiB is never needed as text.
                "body": _start(response.content) + " [cut]",
            },
            subject="health body too large",
        )
    assert isinstance(exc, httpx.HTTPError)
    return transport_failure(exc, what=what, detail="health")


def _start(body: bytes) -> str:
    return body[: EVIDENCE_BODY_CHARS * 4].decode("utf-8", errors="replace")[:EVIDENCE_BODY_CHARS]


async def _warm_samples(http: httpx.AsyncClient, url: str, count: int, deadline_s: float) -> list[float]:
    """API latency from requests on a warm connection: the first request to a new revision carries its cold
    start and TLS set-up, which the check above already judged and users of a serving revision rarely pay."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            await fetch(http, "GET", url, deadline_s=deadline_s)
        except (httpx.HTTPError, Incomplete, BodyTooLarge):
            break  # the check itself already reported what is wrong with this endpoint
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _json_or_none(raw: bytes) -> Any:
    # Bounded parsing: 1,200 nested arrays in a health body are "not a health answer", not a RecursionError.
    try:
        return untrusted.loads(raw)
    except untrusted.UntrustedJSONError:
        return None


def _evidence(path: str, response: httpx.Response) -> dict[str, str]:
    return {
        "request": f"GET {path}",
        "status": str(response.status_code),
        "content-type": response.headers.get("content-type", ""),
        "body": response.text[:EVIDENCE_BODY_CHARS],
    }


def status_evidence(
    evidence: dict[str, str], *, status: str, headers: str, body: str, redactor: untrusted.Redactor
) -> dict[str, str]:
    """``evidence`` with a refused answer's status line, headers and body, each redacted and clipped (the
    WebSocket upgrade's and the stream request's status failures)."""
    return evidence | {
        "status": redactor.clip(status, 200),
        "headers": redactor.clip(headers, EVIDENCE_BODY_CHARS),
        "body": redactor.clip(body, EVIDENCE_BODY_CHARS),
    }


def timeout_hint(status: int) -> str:
    """What an HTTP 504 means in front of Cloud Run (appended to a status failure's message; empty otherwise)."""
    if status != 504:
        return ""
    return (
        " Cloud Run answers 504 when the response has not started within the service's request timeout (the "
        "revision's `timeout`): the server was too slow to answer it, or never did."
    )


def _judge(path: str, response: httpx.Response, body: Any, settings: HealthSettings) -> Failure | None:
    if iam.is_front_end_refusal(response.status_code, response.text):
        return iam.denied(response.status_code, request=f"GET {path}", evidence=_evidence(path, response))
    if response.status_code == 429:
        evidence = _evidence(path, response) | {"retry-after": response.headers.get("retry-after", "")}
        return Failure(Kind.RATE_LIMITED, f"GET {path} was rate limited.", detail="429", evidence=evidence)
    if response.status_code != 200:
        return Failure(
            Kind.HTTP_STATUS,
            f"GET {path} answered HTTP {response.status_code}." + timeout_hint(response.status_code),
            detail=str(response.status_code),
            evidence=_evidence(path, response),
            subject=f"HTTP {response.status_code}",
        )
    if settings.healthy is not None:
        if search(settings.healthy, body) not in (None, False, "", [], {}, 0):
            return None
        return Failure(
            Kind.HTTP_STATUS,
            f"GET {path} answered 200 but `{settings.healthy}` (health.healthy) is not true of its body.",
            detail="unhealthy",
            evidence=_evidence(path, response),
            subject="HTTP 200 but reports itself unhealthy",
        )
    status = dotted(body, "status")
    if not isinstance(status, str) or status.lower() not in settings.ok_statuses:
        return Failure(
            Kind.HTTP_STATUS,
            f"GET {path} answered 200 but its status is {status!r}, not one of {list(settings.ok_statuses)}.",
            detail="unhealthy",
            evidence=_evidence(path, response),
            subject="HTTP 200 but reports itself unhealthy",
        )
    return None


def _wrong_service(path: str, body: Any, settings: HealthSettings) -> Failure | None:
    named = search(settings.service, body) if settings.service else None
    if not isinstance(named, str):
        return None
    expected = settings.expected_service
    wrong = named != expected if expected else named.lower() in FRONT_END_NAMES
    if not wrong:
        return None
    return Failure(
        Kind.WRONG_SERVICE,
        f"GET {path} is answered by a service calling itself {named!r}"
        + (f", not {expected!r}." if expected else "."),
        detail=named[:60],
        evidence={"request": f"GET {path}", "service": named, "body": json.dumps(body)[:EVIDENCE_BODY_CHARS]},
    )


def _versions_of(body: Any, field: str, expression: str | None = None) -> list[str]:
    found = []
    if expression is not None:
        value = search(expression, body)
        return (
            [str(value)]
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value)
            else []
        )
    for path in (field, "version", "commit", "git_sha", "sha"):
        value = dotted(body, path)
        if isinstance(value, str | int) and str(value) and str(value) not in found:
            found.append(str(value))
    return found


def version_check(
    *, expected: str | None, serving: tuple[str, ...], field: str
) -> tuple[CheckResult | None, str | None]:
    """``version-skew`` when none of the health body's version-like fields is the expected one (short SHAs
    match full ones). Returns the check and the version that is serving (the matching one when there is)."""
    first = serving[0] if serving else None
    if not expected:
        return None, first
    if not serving:
        summary = (
            f"not verified: expected version {expected}, but no health body named a version to compare "
            f"(health.version, or '{field}', version, commit, git_sha, sha)"
        )
        return CheckResult("version", Step.REVISION, Status.NOT_VERIFIED, summary=summary), None
    wanted = expected.strip().lower()
    for candidate in serving:
        have = candidate.strip().lower()
        if have == wanted or (
            min(len(have), len(wanted)) >= 7 and (have.startswith(wanted) or wanted.startswith(have))
        ):
            return CheckResult(
                "version", Step.REVISION, Status.PASS, summary=f"serving {candidate}"
            ), candidate
    shown = ", ".join(serving)
    return CheckResult(
        "version",
        Step.REVISION,
        Status.FAIL,
        summary=f"serving {shown}, expected {expected}",
        failure=Failure(
            Kind.VERSION_SKEW,
            f"The health endpoint reports {shown!r}, but {expected!r} was deployed.",
            detail="version",
            evidence={"expected": expected, "serving": shown, "field": field},
        ),
    ), first
