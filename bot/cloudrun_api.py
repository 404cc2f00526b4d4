"""Calling the Cloud Run Admin API v2: the clients, reads that survive its bad moments, every Google error
translated once into a ``CloudRunError`` that names the resource and the fix, and bounded waiting with backoff.

Every read (a service, a revision, a listing, an operation) is retried on 429, 500, 503 and 504 and on a lost
connection, with exponential backoff that honours ``Retry-After``, within ``retry_timeout_s``; a 429 is said to
be "rate limited". The library's own retry is switched off (``retry=None``): it ignores ``Retry-After``, does not
retry 429 or 500, and would replay a write whose answer was lost. Writes are never replayed here: the caller
reads what Cloud Run did instead (``bot.rollout``). ``bot.cloudrun`` resolves revisions through ``Api``;
``google.cloud.run_v2`` is imported lazily (it costs ~0.4 s, and ``--url`` runs never need it).

The time functions are injected (``sleep``, ``clock``) so tests run the backoff without waiting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, NoReturn, TypeVar
from urllib.parse import urlsplit

from bot import waits
from bot.errors import CloudRunError, message_of

if TYPE_CHECKING:
    from google.cloud import run_v2
    from google.longrunning import operations_pb2

T = TypeVar("T")

ADC_HINT = "authenticate with google-github-actions/auth or set GOOGLE_APPLICATION_CREDENTIALS"
MAX_BACKOFF_S = 15.0  # readiness and operation waits
MAX_RETRY_DELAY_S = 4.0  # between retries of one read, unless Retry-After asks for more
FIRST_RETRY_DELAY_S = 0.25
MAX_LISTED_REVISIONS = 200  # enough to find the previous ready revision without paging through history
RETRIED_STATUSES = frozenset({429, 500, 503, 504})

READ_ROLE = "roles/run.viewer (roles/run.developer for promote/rollback)"
WRITE_ROLE = (
    "roles/run.developer (updating a service may also need roles/iam.serviceAccountUser "
    "on its runtime service account)"
)


@dataclass(frozen=True)
class CloudRunClients:
    services: run_v2.ServicesClient
    revisions: run_v2.RevisionsClient

    def close(self) -> None:
        self.services.transport.close()  # type: ignore[no-untyped-call]
        self.revisions.transport.close()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Transient:
    """A failure worth retrying: its words for the log, and how long the server asked us to wait."""

    label: str  # "rate limited" (429) or "unavailable"
    retry_after_s: float | None


def transient(exc: BaseException) -> Transient | None:
    """429, 500, 503, 504 and connection failures (with their Retry-After); None for anything else."""
    import requests
    from google.api_core import exceptions

    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return Transient("unavailable", None)
    if not isinstance(exc, exceptions.GoogleAPICallError) or exc.code not in RETRIED_STATUSES:
        return None
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    label = "rate limited" if exc.code == 429 else "unavailable"
    return Transient(label, retry_after(headers.get("Retry-After")))


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent or garbled."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class Api:
    """One run's access to the Admin API: patient reads, translated errors."""

    clients: CloudRunClients
    retry_timeout_s: float
    progress: Callable[[str], None]
    sleep: Callable[[float], None] = waits.sleep
    clock: Callable[[], float] = waits.clock

    def get_service(self, name: str) -> run_v2.Service:
        return self.read(
            lambda timeout: self.clients.services.get_service(name=name, retry=None, timeout=timeout),
            what="get service",
            resource=name,
            permission="run.services.get",
        )

    def get_revision(self, name: str) -> run_v2.Revision:
        return self.read(
            lambda timeout: self.clients.revisions.get_revision(name=name, retry=None, timeout=timeout),
            what="get revision",
            resource=name,
            permission="run.revisions.get",
        )

    def list_revisions(self, parent: str) -> list[run_v2.Revision]:
        from google.cloud import run_v2

        def listed(timeout: float) -> list[run_v2.Revision]:
            pager = self.clients.revisions.list_revisions(
                request=run_v2.ListRevisionsRequest(parent=parent, page_size=50), retry=None, timeout=timeout
            )
            return _first(pager, MAX_LISTED_REVISIONS)

        return self.read(listed, what="list revisions", resource=parent, permission="run.revisions.list")

    def get_operation(self, name: str, *, service: str) -> operations_pb2.Operation:
        from google.longrunning import operations_pb2

        request = operations_pb2.GetOperationRequest(name=name)
        return self.read(
            lambda timeout: self.clients.services.get_operation(request=request, retry=None, timeout=timeout),
            what="read the traffic change's operation",
            resource=service,
            permission="run.operations.get",
        )

    def read(self, fn: Callable[[float], T], *, what: str, resource: str, permission: str) -> T:
        """``fn(timeout)``, retried while it fails transiently and the retry budget lasts."""
        start = self.clock()
        delay = FIRST_RETRY_DELAY_S
        while True:
            remaining = self.retry_timeout_s - (self.clock() - start)
            try:
                return fn(max(remaining, 1.0))
            except Exception as exc:
                found = transient(exc)
                if found is None:
                    self.reraise(exc, what=what, resource=resource, permission=permission)
                wait = max(delay, found.retry_after_s or 0.0)
                if self.clock() - start + wait > self.retry_timeout_s:
                    raise self.gave_up(exc, found, what=what, resource=resource, wait=wait) from exc
                asked = " as Retry-After asks" if found.retry_after_s else ""
                self.progress(
                    f"Cloud Run API {found.label} ({api_message(exc)}): retrying {what} in {wait:g} s{asked}"
                )
                self.sleep(wait)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)

    def gave_up(
        self, exc: BaseException, found: Transient, *, what: str, resource: str, wait: float
    ) -> CloudRunError:
        budget = f"{self.retry_timeout_s:g} s (cloud_run.retry_timeout_s)"
        if found.retry_after_s is not None and found.retry_after_s > self.retry_timeout_s:
            return CloudRunError(
                f"Cloud Run API {found.label} for {what} on {resource}: it asked to retry after "
                f"{found.retry_after_s:g} s, beyond the retry budget of {budget}: {api_message(exc)}"
            )
        return CloudRunError(
            f"Cloud Run API {found.label} for {what} on {resource} after retrying for {self.retry_timeout_s:g} s: "
            f"{api_message(exc)}"
        )

    def call(self, fn: Callable[[], T], *, what: str, resource: str, permission: str) -> T:
        """Run one call once (a write); every failure leaves as ``CloudRunError`` naming the resource and fix."""
        try:
            return fn()
        except Exception as exc:
            self.reraise(exc, what=what, resource=resource, permission=permission)

    def reraise(self, exc: Exception, *, what: str, resource: str, permission: str) -> NoReturn:
        """Raise the ``CloudRunError`` for ``exc``; an exception that is not an API failure is a bug: re-raised."""
        translated = self.translated(exc, what=what, resource=resource, permission=permission)
        if translated is exc:
            raise exc
        raise translated from exc

    def translated(self, exc: BaseException, *, what: str, resource: str, permission: str) -> BaseException:
        """The ``CloudRunError`` for an API failure; anything that is not one is returned as it is (a bug)."""
        import requests
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions

        role = WRITE_ROLE if permission.endswith(".update") else READ_ROLE
        kind = "revision" if "/revisions/" in resource else "service"
        if isinstance(exc, exceptions.NotFound):
            if kind == "revision":
                return CloudRunError(
                    f"revision {resource} not found: check cloud_run.revision (or deploy it first)"
                )
            service = resource.removesuffix("/revisions") if what == "list revisions" else resource
            return CloudRunError(f"service {service} not found: check project, region and service")
        if isinstance(exc, exceptions.Forbidden):
            return CloudRunError(
                f"Cloud Run API denied {what} on {resource}: the credentials lack {permission}: grant {role} "
                f"(API said: {api_message(exc)})"
            )
        if isinstance(exc, exceptions.Unauthorized):
            return CloudRunError(f"Cloud Run API rejected the credentials (401) for {what}: {ADC_HINT}")
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            # A token that cannot be minted or refreshed (including after a 401 from the API).
            return CloudRunError(
                f"cannot authenticate to the Cloud Run API for {what} ({api_message(exc)}): {ADC_HINT}"
            )
        if isinstance(exc, exceptions.Conflict):  # 409: the etag no longer matches
            return CloudRunError(
                f"service {resource} changed while trying to {what} ({api_message(exc)}): re-run to act on its "
                "current state"
            )
        found = transient(exc)
        if found is not None or isinstance(exc, requests.exceptions.RequestException):
            label = found.label if found is not None else "unavailable"
            return CloudRunError(f"Cloud Run API {label} for {what} on {resource}: {api_message(exc)}")
        if isinstance(exc, exceptions.GoogleAPICallError):
            return CloudRunError(f"Cloud Run API refused {what} on {resource}: {api_message(exc)}")
        return exc


class Waiter:
    """Bounded waiting with exponential backoff (1, 2, 4, ... capped at 15 s or ``max_delay``) and one progress
    line per poll."""

    def __init__(
        self,
        *,
        timeout_s: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        progress: Callable[[str], None],
        max_delay: float = MAX_BACKOFF_S,
    ) -> None:
        self.timeout_s = timeout_s
        self._max_delay = max_delay
        self._sleep, self._clock, self._progress = sleep, clock, progress
        self._start = clock()
        self._delay = 1.0
        self.polls = 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self._start

    def pause(self, what: str, detail: str) -> bool:
        """Sleep before the next poll; False when the time is up."""
        remaining = self.timeout_s - self.elapsed
        if remaining <= 0:
            return False
        self._progress(f"waiting for {what} ({detail}, {self.elapsed:.0f} s elapsed)")
        self._sleep(min(self._delay, remaining))
        self._delay = min(self._delay * 2, self._max_delay)
        self.polls += 1
        return True


def api_message(exc: BaseException) -> str:
    """The API's own message with its status code, or for a transport error what could not be reached."""
    request = getattr(exc, "request", None)
    if request is not None and type(exc).__module__.startswith("requests"):
        # urllib3 nests the useful part ("[Errno 111] Connection refused") deep in a long repr.
        errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
        host = urlsplit(str(getattr(request, "url", ""))).netloc or "the endpoint"
        verb = "cannot connect to" if "Connect" in type(exc).__name__ else "no answer from"
        return f"{verb} {host}: {errno.group(1).strip() if errno else type(exc).__name__}"
    line = message_of(exc)
    code = getattr(exc, "code", None)
    return f"{int(code)} {line}"[:300] if isinstance(code, int) and not line.startswith(str(code)) else line


def _first(items: Iterable[T], limit: int) -> list[T]:
    found: list[T] = []
    for item in items:
        found.append(item)
        if len(found) >= limit:
            break
    return found


def service_path(project: str, region: str, service: str) -> str:
    """The Admin API's full name of a service: ``projects/p/locations/r/services/s``."""
    return f"projects/{project}/locations/{region}/services/{service}"


def last_segment(name: str) -> str:
    """``projects/p/locations/r/services/s/revisions/x`` -> ``x`` (traffic entries use short names)."""
    return name.rsplit("/", 1)[-1]
