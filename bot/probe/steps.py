"""Request steps: the plain HTTP requests a journey makes before it connects (create a session, log in for a
cookie), with the values they extract by JMESPath, and the per-user values every later template is filled with.

Cookies stay with the user whose answer set them: the shared HTTP client keeps none (``NO_COOKIES``), each
user's cookies travel in its own ``Cookie`` header.
"""

from __future__ import annotations

import http.cookiejar
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from bot import expressions, protocol, untrusted
from bot.probe.http_probe import EVIDENCE_BODY_CHARS, BodyTooLarge, Incomplete, fetch, transport_failure
from bot.probe.record import Hooks, Stream
from bot.results import Failure, Kind
from bot.settings import RequestStepSettings, Settings, StreamTokenSettings
from bot.untrusted import Redactor

if TYPE_CHECKING:
    from bot.probe.journey import UserJourney


def no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that stores nothing: a client shared by every user must never carry one user's cookie to
    another (httpx's client jar would)."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


@dataclass(slots=True)
class UserValues:
    """What one user's templates are filled with, and the cookies its requests carry."""

    values: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)

    def cookie_header(self) -> list[tuple[str, str]]:
        if not self.cookies:
            return []
        return [("Cookie", "; ".join(f"{name}={value}" for name, value in self.cookies.items()))]


def anonymous_user(settings: Settings) -> UserValues:
    """The anonymous client's template values (the negative checks of the SSE and Socket.IO sessions):
    journey.values under the built-in placeholders, with no token and an identity that is nobody's."""
    return UserValues(
        {
            **settings.journey.values,
            "message": settings.journey.message,
            "thread_id": "golden-path-anonymous",
            "user": "anonymous",
            "nonce": protocol.new_nonce(),
            "message_id": protocol.new_uuid(),
            "turn_id": protocol.new_uuid(),
            "token": "",
            "token_b64": "",
        }
    )


def token_headers(way: StreamTokenSettings, token: str | None) -> list[tuple[str, str]]:
    """The token as a header, the way the transport sends it (none without a token)."""
    if token is None or way.header is None:
        return []
    return [(way.header.name, expressions.render_text(way.header.format, {"token": token}))]


def token_query(way: StreamTokenSettings, token: str | None) -> dict[str, str]:
    return {way.query: token} if token is not None and way.query else {}


def header_values(
    headers: Mapping[str, str], values: Mapping[str, str], token: str | None
) -> list[tuple[str, str]]:
    """Configured headers filled in; one that needs a token is left out when there is none."""
    if not headers:
        return []
    out = []
    filled = {**values, **expressions.token_values(token or "")}
    for name, template in headers.items():
        if token is None and ("{token}" in template or "{token_b64}" in template):
            continue
        out.append((name, expressions.render_text(template, filled)))
    return out


@dataclass(frozen=True, slots=True)
class UserRun:
    """What a transport needs for one user's journey: where and how to connect, this user's values and token
    (None: the negative check), the headers every request carries (trace, ID token), the journey's hooks."""

    settings: Settings
    http: httpx.AsyncClient
    base_url: str
    redactor: Redactor
    headers: tuple[tuple[str, str], ...]
    user: UserValues
    token: str | None
    hooks: Callable[[Stream], Hooks]
    hold_s: float = 0.0  # journey.hold_s for the user who holds its connection (user 1), else 0
    deadline: float = math.inf  # loop time of the run's deadline: a hold ends before it
    # A new connection pool like ``http``, this user's own (None: only the shared client, e.g. in a test).
    own_client: Callable[[], httpx.AsyncClient] | None = None
    # The same user's token again for a reconnect, a new one when it is about to expire (None: keep ``token``).
    renew: Callable[[], Awaitable[str | None]] | None = None

    def begin_turn(self, journey: UserJourney, stream: Stream) -> Hooks:
        """A later turn's stream, the journey's from the turn's start (before a reconnect): a deadline meanwhile
        is this turn's, never the completed turn's before it."""
        journey.stream = stream
        return self.hooks(stream)


@dataclass(frozen=True, slots=True)
class StepsOutcome:
    failure: Failure | None = None
    refused: bool = False  # a step was answered 401/403 (the negative check's refusal)
    elapsed_ms: float = 0.0


async def run(
    http: httpx.AsyncClient,
    steps: Sequence[RequestStepSettings],
    *,
    base_url: str,
    user: UserValues,
    token: str | None,
    way: StreamTokenSettings,
    redactor: Redactor,
) -> StepsOutcome:
    """Each step in order; its extracts join ``user.values``, its cookies ``user.cookies``. Stops at the first
    step that fails (a status not in ``ok_statuses``, a transport error, an extract that matches nothing)."""
    for index, step in enumerate(steps):
        path = expressions.render_path(step.path, user.values)
        url = protocol.http_url(base_url, path, query=token_query(way, token) if step.send_token else None)
        headers = [
            *(token_headers(way, token) if step.send_token else []),
            *header_values(step.headers, user.values, token),
            *user.cookie_header(),
        ]
        content = None
        if step.body is not None:
            content = expressions.render(step.body, user.values).encode()
            headers.append(("Content-Type", "application/json"))
        what = f"Request step {index + 1} ({step.name}: {step.method} {path})"
        evidence = {"request": f"{step.method} {redactor.clean(url)}", "step": step.name}
        try:
            response = await fetch(
                http, step.method, url, deadline_s=step.timeout_s, headers=headers, content=content
            )
        except (Incomplete, BodyTooLarge) as exc:
            failure = Failure(Kind.TIMEOUT, f"{what}: {exc}.", detail=step.name, evidence=evidence)
            return StepsOutcome(failure)
        except (httpx.HTTPError, OSError) as exc:
            failure = transport_failure(exc, what=what, detail=step.name)
            return StepsOutcome(
                Failure(failure.kind, failure.message, step.name, evidence | failure.evidence)
            )
        body = response.content.decode("utf-8", errors="replace")
        evidence |= {
            "status": str(response.status_code),
            "body": redactor.clip(body, EVIDENCE_BODY_CHARS),
        }
        if response.status_code not in step.ok_statuses:
            code = response.status_code
            refused = code in (401, 403)
            kind = Kind.STREAM_AUTH_REJECTED if refused else Kind.STREAM_STATUS
            if code == 429:
                kind = Kind.RATE_LIMITED
            failure = Failure(
                kind,
                f"{what} was answered HTTP {code} (expected {', '.join(map(str, step.ok_statuses))}).",
                detail=str(code),
                evidence=evidence,
                subject=f"HTTP {code} at request step {step.name}",
            )
            return StepsOutcome(failure, refused=refused)
        for name, value in response.cookies.items():
            user.cookies[name] = value
        if not step.extract:
            continue
        try:
            document = untrusted.loads(response.content)
        except untrusted.UntrustedJSONError as exc:
            failure = Failure(
                Kind.STREAM_PROTOCOL,
                f"{what}: the answer is {exc}, so {', '.join(step.extract)} cannot be read from it.",
                detail=step.name,
                evidence=evidence,
            )
            return StepsOutcome(failure)
        for name, expression in step.extract.items():
            value = expressions.search(expression, document)
            if isinstance(value, bool) or not isinstance(value, str | int | float) or str(value) == "":
                failure = Failure(
                    Kind.STREAM_PROTOCOL,
                    f"{what}: `{expression}` found {json.dumps(value)[:80] if value is not None else 'nothing'} "
                    f"in the answer, not a value for {{{name}}}.",
                    detail=step.name,
                    evidence=evidence,
                )
                return StepsOutcome(failure)
            user.values[name] = str(value)
    return StepsOutcome()
