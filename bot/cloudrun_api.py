"""Calling the Cloud Run Admin API: the clients, one short retry, every Google error translated once into a
``CloudRunError`` that names the resource and the fix, and bounded waiting with backoff.

``bot.cloudrun`` resolves revisions and moves traffic through ``Api``; ``google.cloud.run_v2`` is imported
lazily (it costs ~0.4 s, and ``--url`` runs never need it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from bot.errors import CloudRunError, message_of

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud import run_v2

T = TypeVar("T")

ADC_HINT = "authenticate with google-github-actions/auth or set GOOGLE_APPLICATION_CREDENTIALS"
MAX_BACKOFF_S = 15.0
MAX_LISTED_REVISIONS = 200  # enough to find the previous ready revision without paging through history

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


@dataclass(frozen=True)
class Api:
    clients: CloudRunClients
    retry_timeout_s: float
    progress: Callable[[str], None]

    def retry(self) -> Retry:
        """Retry only what is transient (503, 504, connection errors), within the retry budget."""
        import requests
        from google.api_core import exceptions
        from google.api_core.retry import Retry, if_exception_type

        return Retry(
            predicate=if_exception_type(
                exceptions.ServiceUnavailable,
                exceptions.DeadlineExceeded,
                exceptions.GatewayTimeout,
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
            ),
            initial=0.25,
            maximum=4.0,
            multiplier=2.0,
            timeout=self.retry_timeout_s,
            on_error=lambda exc: self.progress(f"Cloud Run API unavailable ({api_message(exc)}): retrying"),
        )

    def get_service(self, name: str) -> run_v2.Service:
        return self.call(
            lambda: self.clients.services.get_service(
                name=name, retry=self.retry(), timeout=self.retry_timeout_s
            ),
            what="get service",
            resource=name,
            permission="run.services.get",
        )

    def get_revision(self, name: str) -> run_v2.Revision:
        return self.call(
            lambda: self.clients.revisions.get_revision(
                name=name, retry=self.retry(), timeout=self.retry_timeout_s
            ),
            what="get revision",
            resource=name,
            permission="run.revisions.get",
        )

    def list_revisions(self, parent: str) -> list[run_v2.Revision]:
        from google.cloud import run_v2

        def listed() -> list[run_v2.Revision]:
            pager = self.clients.revisions.list_revisions(
                request=run_v2.ListRevisionsRequest(parent=parent, page_size=50),
                retry=self.retry(),
                timeout=self.retry_timeout_s,
            )
            return _first(pager, MAX_LISTED_REVISIONS)

        return self.call(listed, what="list revisions", resource=parent, permission="run.revisions.list")

    def call(self, fn: Callable[[], T], *, what: str, resource: str, permission: str) -> T:
        """Run one API call; every failure leaves as ``CloudRunError`` naming the resource and the fix."""
        import concurrent.futures

        import requests
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions

        role = WRITE_ROLE if permission.endswith(".update") else READ_ROLE
        kind = "revision" if "/revisions/" in resource else "service"
        try:
            return fn()
        except exceptions.NotFound as exc:
            if kind == "revision":
                raise CloudRunError(
                    f"revision {resource} not found: check cloud_run.revision (or deploy it first)"
                ) from exc
            service = resource.removesuffix("/revisions") if what == "list revisions" else resource
            raise CloudRunError(f"service {service} not found: check project, region and service") from exc
        except exceptions.Forbidden as exc:
            raise CloudRunError(
                f"Cloud Run API denied {what} on {resource}: the credentials lack {permission}: grant {role} "
                f"(API said: {api_message(exc)})"
            ) from exc
        except exceptions.Unauthorized as exc:
            raise CloudRunError(
                f"Cloud Run API rejected the credentials (401) for {what}: {ADC_HINT}"
            ) from exc
        except auth_exceptions.GoogleAuthError as exc:
            # A token that cannot be minted or refreshed (including after a 401 from the API).
            raise CloudRunError(
                f"cannot authenticate to the Cloud Run API for {what} ({api_message(exc)}): {ADC_HINT}"
            ) from exc
        except exceptions.RetryError as exc:
            cause = exc.cause if exc.cause is not None else exc
            raise CloudRunError(
                f"Cloud Run API unavailable for {what} on {resource} after retrying for "
                f"{self.retry_timeout_s:g} s: {api_message(cause)}"
            ) from exc
        except (
            exceptions.ServiceUnavailable,
            exceptions.DeadlineExceeded,
            exceptions.GatewayTimeout,
            requests.exceptions.RequestException,
        ) as exc:
            raise CloudRunError(
                f"Cloud Run API unavailable for {what} on {resource}: {api_message(exc)}"
            ) from exc
        except concurrent.futures.TimeoutError as exc:
            raise CloudRunError(
                f"Cloud Run did not finish the traffic change on {resource} in time: check the service's "
                "traffic in the console before re-running"
            ) from exc
        except exceptions.Conflict as exc:  # 409: the etag no longer matches
            raise CloudRunError(
                f"service {resource} changed while trying to {what} ({api_message(exc)}): re-run to act on its "
                "current state"
            ) from exc
        except exceptions.GoogleAPICallError as exc:
            raise CloudRunError(f"Cloud Run API refused {what} on {resource}: {api_message(exc)}") from exc


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
