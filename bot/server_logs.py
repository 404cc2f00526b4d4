"""The revision's own logs under each finding: Cloud Logging read once per run, grouped, tied to the findings.

At most two ``entries.list`` calls per run, one page each, within one time budget: the revision's entries of
severity WARNING or above in the run's window, and every entry carrying one of the run's trace ids (Cloud Run
copies the ``traceparent`` / ``X-Cloud-Trace-Context`` of a request into its request log and the app's log
lines). Entries whose messages differ only in numbers, ids and timestamps form one group. A group goes under a
finding when it carries the trace id of one of the finding's users, or, without a trace, when it happened while
the finding's journeys ran.

Logs explain; they never judge: whatever happens here (no permission, Logging down, a slow answer), the verdict
and the exit code stay what the probe found, and the report says why the logs are missing and what to grant.
Log text is outside text: redacted here, escaped when rendered.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

from bot import hosts, timestamps, waits
from bot.errors import message_of
from bot.results import FindingLogs, LogGroup, RequestLog, Run, ServerLogs, Step, UserTrace
from bot.settings import LogsSettings
from bot.tracing import cloud_trace_name
from bot.untrusted import Redactor

if TYPE_CHECKING:
    import requests

MAX_API_CALLS = 2
LOGGING_READ_SCOPE = "https://www.googleapis.com/auth/logging.read"
VIEWER_ROLE = "roles/logging.viewer"
EXPLORER = "https://console.cloud.google.com/logs/query"
WINDOW_MARGIN = timedelta(
    seconds=5
)  # clocks differ a little, and the last entries are written after the answer
MAX_TRACES_IN_LINK = 10  # a Logs Explorer link stays under 2,000 characters
MAX_FILTER_CHARS = 19_000  # the API refuses a filter over 20,000 characters (hundreds of load users' traces)
MAX_REQUESTS_PER_FINDING = 5
EXAMPLE_CHARS = 300
DETAILS_CHARS = 3_000

# Cloud Run's system log line when it starts an instance of the revision ("Starting new instance. Reason:
# AUTOSCALING - ...", severity INFO, log run.googleapis.com/varlog/system): counted, never grouped.
INSTANCE_START = "Starting new instance"

SEVERITIES = {
    "DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400,
    "ERROR": 500, "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800,
}  # fmt: skip
WARNING = SEVERITIES["WARNING"]


# -- reading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    entries: tuple[Any, ...]  # google.cloud.logging LogEntry objects
    more: bool  # the API had more than one page (or a full page) for this filter


class LogsUnavailable(Exception):
    """Cloud Logging could not be read; ``denied`` when it refused (403), with the message to show."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


class Reader(Protocol):
    """What ``collect`` needs: one page per filter, and how many API calls were made."""

    @property
    def calls(self) -> int: ...

    def list_page(self, filter_: str, *, page_size: int) -> Page: ...


class CallBudgetSpent(Exception):
    """The transport refused a request beyond the run's call or time budget (raised inside the library)."""


def _budgeted_session(credentials: Any, *, max_calls: int, budget_s: float) -> requests.Session:
    """A google-auth ``AuthorizedSession`` that sends at most ``max_calls`` requests, each with a timeout that
    ends within ``budget_s`` of the first: the library pages on its own, so the cap lives in the transport."""
    from google.auth.transport.requests import AuthorizedSession

    class BudgetedSession(AuthorizedSession):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(credentials)  # type: ignore[no-untyped-call]
            self.sent = 0
            self.allowed = 0  # raised by one for each page the reader asks for
            self.deadline: float | None = None

        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            now = time.monotonic()
            self.deadline = self.deadline or now + budget_s
            left = self.deadline - now
            if self.sent >= min(self.allowed, max_calls) or left <= 0:
                raise CallBudgetSpent(f"{self.sent} call(s) made, {max(left, 0):.1f} s left")
            self.sent += 1
            kwargs["timeout"] = min(left, float(kwargs.get("timeout") or left))
            return super().request(method, url, *args, **kwargs)  # type: ignore[no-untyped-call]

    return BudgetedSession()


class CloudLogging:
    """The real ``google-cloud-logging`` client over its HTTP transport, created on the first call (the
    library costs time to import, and most runs pass and never need it)."""

    def __init__(self, *, project: str, endpoint: str | None, budget_s: float) -> None:
        self.project = project
        self.endpoint = endpoint
        self.budget_s = budget_s
        self._client: Any = None
        self._session: Any = None

    @property
    def calls(self) -> int:
        return int(self._session.sent) if self._session is not None else 0

    def _connect(self) -> Any:
        if self._client is None:
            from google.cloud import logging as cloud_logging

            credentials = _credentials(self.endpoint)
            self._session = _budgeted_session(credentials, max_calls=MAX_API_CALLS, budget_s=self.budget_s)
            options = {"api_endpoint": self.endpoint.rstrip("/")} if self.endpoint else None
            self._client = cloud_logging.Client(  # type: ignore[no-untyped-call]
                project=self.project,
                credentials=credentials,
                _http=self._session,
                _use_grpc=False,  # the HTTP transport: one code path, the one the tests exercise
                client_options=options,
            )
        return self._client

    def list_page(self, filter_: str, *, page_size: int) -> Page:
        """One page of entries, oldest first. Raises ``LogsUnavailable``."""
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        from requests import RequestException, Timeout

        entries: list[Any] = []
        try:
            client = self._connect()
            self._session.allowed += 1
            for entry in client.list_entries(
                resource_names=[f"projects/{self.project}"],
                filter_=filter_,
                order_by="timestamp asc",
                page_size=page_size,
                max_results=page_size,
            ):
                entries.append(entry)
        except CallBudgetSpent:
            if self._session.allowed > MAX_API_CALLS:
                raise LogsUnavailable(f"this run's {MAX_API_CALLS} Cloud Logging calls are spent") from None
            if not entries and self._session.sent < self._session.allowed:
                raise LogsUnavailable(
                    f"Cloud Logging did not answer within the {self.budget_s:g} s budget"
                ) from None
            return Page(tuple(entries), more=True)  # the next page was not fetched: one call per query
        except api_exceptions.Forbidden as exc:
            raise LogsUnavailable(_denied(self.project, exc), denied=True) from None
        except api_exceptions.Unauthorized as exc:
            raise LogsUnavailable(
                f"Cloud Logging refused the credentials (HTTP 401: {message_of(exc, 200)})", denied=True
            ) from None
        except api_exceptions.GoogleAPICallError as exc:
            raise LogsUnavailable(f"Cloud Logging answered HTTP {exc.code}: {message_of(exc, 200)}") from None
        except Timeout:
            raise LogsUnavailable(
                f"Cloud Logging did not answer within the {self.budget_s:g} s budget"
            ) from None
        except (RequestException, auth_exceptions.GoogleAuthError, ValueError, OSError) as exc:
            raise LogsUnavailable(f"Cloud Logging could not be reached: {type(exc).__name__}") from None
        return Page(tuple(entries), more=len(entries) >= page_size)


def _credentials(endpoint: str | None) -> Any:
    """Anonymous credentials only for a stand-in on loopback; Application Default Credentials otherwise."""
    if endpoint is not None and hosts.is_local_http(endpoint):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _project = google.auth.default(scopes=[LOGGING_READ_SCOPE])
    except DefaultCredentialsError:
        raise LogsUnavailable(
            "no Google Cloud credentials for Cloud Logging (Application Default Credentials): authenticate "
            f"the job (e.g. google-github-actions/auth) with a principal that has {VIEWER_ROLE}"
        ) from None
    return credentials


def _denied(project: str, exc: Exception) -> str:
    return (
        f"Cloud Logging refused to list entries (HTTP 403: {message_of(exc, 200)}): grant {VIEWER_ROLE} on project "
        f"{project} to the identity this job runs as"
    )


# -- the run's logs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Where:
    """The Cloud Run revision whose logs are read."""

    project: str
    region: str | None
    service: str
    revision: str


def wanted(run: Run, settings: LogsSettings) -> bool:
    """Logs are read on runs with findings (``mode: auto``), on every run (``always``), or never."""
    return settings.mode == "always" or (settings.mode == "auto" and bool(run.findings))


def not_read(reason: str) -> ServerLogs:
    return ServerLogs(status="not-read", message=f"Server logs were not read: {reason}.")


def collect(
    run: Run,
    *,
    where: Where | None,
    reader: Reader | None,
    settings: LogsSettings,
    redactor: Redactor,
    websocket_path: str = "/ws",
) -> ServerLogs | None:
    """The revision's logs for ``run``, or why they are missing; None when this run does not look at logs."""
    if not wanted(run, settings):
        return None
    if where is None or reader is None:
        return not_read(
            "the target was given as a URL, without Cloud Run coordinates (project, region, service)"
        )
    start, end = window(run)
    # The run's last entries reach Cloud Logging a few seconds after they happen.
    waits.sleep(settings.settle_s, "logs settle")
    revision = revision_filter(where)
    span = f'timestamp>="{timestamps.rfc3339(start)}" AND timestamp<="{timestamps.rfc3339(end)}"'
    trace_ids, traces_cut = _queried_traces(run, where.project, room=MAX_FILTER_CHARS - len(span) - 10)
    queries = [f'{revision} AND {span} AND (severity>=WARNING OR textPayload:"{INSTANCE_START}")']
    if trace_ids:
        queries.append(f"{span} AND {_trace_filter(where.project, trace_ids)}")
    base = ServerLogs(
        status="read",
        message="",
        window_start=timestamps.rfc3339(start),
        window_end=timestamps.rfc3339(end),
        explorer_url=explorer_url(where.project, _link_query(where, trace_ids), start, end),
    )
    entries: dict[str, _Entry] = {}
    truncated = traces_cut
    cut_short = (
        f" (the traces of {len(run.traces) - len(trace_ids)} users were not queried)" if traces_cut else ""
    )
    for answered, query in enumerate(queries):
        try:
            page = reader.list_page(query, page_size=settings.page_size)
        except LogsUnavailable as exc:
            if exc.denied or not answered:
                status = "denied" if exc.denied else "unavailable"
                message = f"Server logs were not read: {exc}."
                return replace(base, status=status, message=message, api_calls=reader.calls)
            truncated, cut_short = True, f"{cut_short} ({exc})"
            break
        truncated = truncated or page.more
        for raw in page.entries:
            entry = _entry(raw, redactor)
            entries.setdefault(entry.key, entry)
    ordered = sorted(entries.values(), key=lambda e: e.at)
    starts = sum(1 for e in ordered if e.trace_id is None and e.message.startswith(INSTANCE_START))
    by_trace = {t.trace_id: t for t in run.traces}
    findings = tuple(
        _finding_logs(run, index, ordered, by_trace, where, settings, websocket_path, start, end)
        for index in range(len(run.findings))
    )
    shown = sum(len(f.groups) for f in findings)
    message = (
        f"Read {len(ordered)} entr{'y' if len(ordered) == 1 else 'ies'} of revision {where.revision} "
        f"in {reader.calls} call{'s' if reader.calls != 1 else ''}"
        + (f" (more were available: see the link){cut_short}" if truncated else "")
        + (f"; {shown} group{'s' if shown != 1 else ''} tied to findings" if run.findings else "")
        + "."
    )
    return replace(
        base,
        message=message,
        api_calls=reader.calls,
        entries=len(ordered),
        truncated=truncated,
        instance_starts=starts,
        groups=group([e for e in ordered if e.severity >= WARNING], limit=settings.top_groups),
        findings=findings,
    )


def _queried_traces(run: Run, project: str, *, room: int) -> tuple[list[str], bool]:
    """The trace ids that fit in one filter: the findings' users first, then everyone else; and whether some
    had to be left out."""
    in_findings = [run.trace_id(user) for finding in run.findings for user in finding.users]
    ordered = list(dict.fromkeys([t for t in in_findings if t] + [t.trace_id for t in run.traces]))
    chosen: list[str] = []
    used = 2
    for trace_id in ordered:
        cost = len(f'trace="{cloud_trace_name(project, trace_id)}" OR ')
        if used + cost > room:
            return chosen, True
        chosen.append(trace_id)
        used += cost
    return chosen, False


def window(run: Run) -> tuple[datetime, datetime]:
    """The run's window with a margin on both sides (our clock and Google's differ a little)."""
    start = timestamps.parse(run.started_at)
    firsts = [timestamps.parse(t.first_request_at) for t in run.traces if t.first_request_at]
    start = min([start, *firsts]) - WINDOW_MARGIN
    end = (
        timestamps.parse(run.finished_at) + timedelta(seconds=1) + WINDOW_MARGIN
    )  # finished_at has whole seconds
    return start, end


def revision_filter(where: Where) -> str:
    """Every entry the revision logged (its service, revision and, when known, region)."""
    parts = [
        'resource.type="cloud_run_revision"',
        f'resource.labels.service_name="{_quoted(where.service)}"',
        f'resource.labels.revision_name="{_quoted(where.revision)}"',
    ]
    if where.region:
        parts.append(f'resource.labels.location="{_quoted(where.region)}"')
    return " AND ".join(parts)


def _link_query(where: Where, trace_ids: Sequence[str]) -> str:
    """The revision's warnings and errors, plus (for a handful of traces) everything those requests logged."""
    shown = sorted(trace_ids)[:MAX_TRACES_IN_LINK]
    if not shown:
        return f"{revision_filter(where)} AND severity>=WARNING"
    return f"{revision_filter(where)} AND (severity>=WARNING OR {_trace_filter(where.project, shown)})"


def _trace_filter(project: str, trace_ids: Sequence[str]) -> str:
    names = " OR ".join(f'trace="{cloud_trace_name(project, t)}"' for t in trace_ids)
    return f"({names})"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def explorer_url(project: str, query: str, start: datetime, end: datetime) -> str:
    """A Logs Explorer link showing ``query`` over the window."""
    time_range = f"{timestamps.rfc3339(start)}/{timestamps.rfc3339(end)}"
    return (
        f"{EXPLORER};query={quote(query, safe='')};timeRange={quote(time_range, safe='')}"
        f"?project={quote(project, safe='')}"
    )


# -- entries -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    at: datetime
    severity: int
    severity_name: str
    message: str  # redacted; may span lines
    trace_id: str | None
    method: str = ""
    url: str = ""
    status: int | None = None
    latency_ms: float | None = None

    @property
    def is_request(self) -> bool:
        return bool(self.method or self.status is not None)


def _entry(raw: Any, redactor: Redactor) -> _Entry:
    """A library ``LogEntry`` (text, JSON or request log) as what we show; every text redacted."""
    at = raw.timestamp if isinstance(raw.timestamp, datetime) else datetime.now(UTC)
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    name = str(raw.severity or "DEFAULT").upper()
    trace = str(raw.trace or "")
    trace_id = trace.rsplit("/", 1)[-1] if trace else None
    http = raw.http_request if isinstance(raw.http_request, dict) else {}
    method = str(http.get("requestMethod") or "")
    url = redactor.clip(str(http.get("requestUrl") or ""), 500)
    status = _int(http.get("status"))
    message = redactor.clean(_message(raw.payload))
    if not message and (method or status is not None):
        message = f"{method} {urlsplit(url).path or url} → HTTP {status if status is not None else '?'}"
    key = str(raw.insert_id or f"{at.isoformat()}|{trace}|{message[:200]}")
    return _Entry(
        key=key,
        at=at,
        severity=SEVERITIES.get(name, 0),
        severity_name=name,
        message=message,
        trace_id=trace_id,
        method=method,
        url=url,
        status=status,
        latency_ms=_latency_ms(http.get("latency")),
    )


_MESSAGE_KEYS = ("message", "msg", "textPayload", "error", "exception", "event")


def _message(payload: Any) -> str:
    if payload is None:
        return ""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        for key in _MESSAGE_KEYS:
            value = payload.get(key)
            if isinstance(value, str) and value:
                extra = payload.get("stack_trace") or payload.get("traceback") or payload.get("exc_info")
                return f"{value}\n{extra}" if isinstance(extra, str) and extra else value
        return json.dumps(payload, sort_keys=True, default=str)[:2_000]
    return str(payload)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _latency_ms(value: Any) -> float | None:
    """``"0.123456s"`` (the JSON form of a Duration) in milliseconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return round(float(value[:-1]) * 1000, 1)
        except ValueError:
            return None
    return None


# -- grouping ----------------------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# 8+ hex characters, whatever they happen to be: a random 10-character hex id is all digits one time in a hundred
# and must not make a group of its own (a decimal number that long is an id as well).
_HEX_ID = re.compile(r"\b[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def pattern(message: str) -> str:
    """The message's shape: timestamps, UUIDs, hex ids and numbers replaced; a multi-line message (a
    traceback) is its first line and its last (the exception)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    shape = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    shape = _TIMESTAMP.sub("<time>", shape)
    shape = _UUID.sub("<id>", shape)
    shape = _HEX_ID.sub("<id>", shape)
    return _NUMBER.sub("<n>", shape)[:EXAMPLE_CHARS]


def group(entries: Iterable[_Entry], *, limit: int, matched_by: str = "") -> tuple[LogGroup, ...]:
    """The ``limit`` largest groups, most severe first, then most frequent, then earliest."""
    groups: dict[str, list[_Entry]] = {}
    for entry in entries:
        key = (
            f"{entry.method} {pattern(urlsplit(entry.url).path)} → {entry.status}"
            if entry.is_request and entry.message.startswith(entry.method or "\0")
            else pattern(entry.message)
        )
        groups.setdefault(key, []).append(entry)
    ranked = sorted(
        groups.items(), key=lambda item: (-max(e.severity for e in item[1]), -len(item[1]), item[1][0].at)
    )
    result = []
    for key, members in ranked[:limit]:
        worst = max(members, key=lambda e: e.severity)
        example = members[0].message.strip()
        first_line, _, rest = example.partition("\n")
        result.append(
            LogGroup(
                pattern=key,
                severity=worst.severity_name,
                count=len(members),
                first_at=timestamps.rfc3339(members[0].at),
                example=first_line[:EXAMPLE_CHARS],
                details=rest.strip("\n")[:DETAILS_CHARS],
                trace_ids=tuple(dict.fromkeys(e.trace_id for e in members if e.trace_id)),
                matched_by=matched_by,
            )
        )
    return tuple(result)


# -- findings ----------------------------------------------------------------------------------------------------


def _finding_logs(
    run: Run,
    index: int,
    entries: list[_Entry],
    by_trace: dict[str, UserTrace],
    where: Where,
    settings: LogsSettings,
    websocket_path: str,
    start: datetime,
    end: datetime,
) -> FindingLogs:
    finding = run.findings[index]
    mine = {run.trace_id(user) for user in finding.users} - {None}
    ours = set(by_trace)
    traced = [
        e
        for e in entries
        if e.trace_id in mine and (not e.is_request or (e.status or 0) >= 400 or e.severity >= WARNING)
    ]
    timed = [
        e
        for e in entries
        if e.trace_id not in ours and e.severity >= WARNING and _first_in_window(run, e, index)
    ]
    # Request logs get their own table (beside the client's view), not a group.
    groups = group([e for e in traced if not e.is_request], limit=settings.top_groups, matched_by="trace")
    room = settings.top_groups - len(groups)
    if room > 0:
        groups += group(timed, limit=room, matched_by="time")
    requests = tuple(
        RequestLog(
            trace_id=e.trace_id or "",
            user=by_trace[e.trace_id].user if e.trace_id in by_trace else None,
            method=e.method,
            url=e.url,
            status=e.status,
            latency_ms=e.latency_ms,
            at=timestamps.rfc3339(e.at),
            client_view=_client_view(finding.evidence, finding.title),
        )
        for e in entries
        if e.is_request
        and e.trace_id in mine
        and ((e.status or 0) >= 400 or (finding.step is Step.CONNECT and _path(e.url) == websocket_path))
    )[:MAX_REQUESTS_PER_FINDING]
    return FindingLogs(
        fingerprint=finding.fingerprint,
        explorer_url=explorer_url(where.project, _link_query(where, [t for t in mine if t]), start, end),
        groups=groups,
        requests=requests,
    )


def _first_in_window(run: Run, entry: _Entry, index: int) -> bool:
    """An entry without one of our traces goes to the first finding (in report order) whose journeys were
    running when it was written: from the first request of its users (the run's start when it has none)."""
    start, end = window(run)
    if not start <= entry.at <= end:
        return False
    for position, finding in enumerate(run.findings):
        firsts = [
            timestamps.parse(t.first_request_at)
            for t in run.traces
            if t.user in finding.users and t.first_request_at
        ]
        began = min(firsts) - WINDOW_MARGIN if firsts else start
        if entry.at >= began:
            return position == index
    return False


def _client_view(evidence: dict[str, str], title: str) -> str:
    for key in ("status", "close code", "error"):
        if evidence.get(key):
            prefix = "HTTP " if key == "status" else f"{key}: "
            return f"{prefix}{evidence[key]}"[:200]
    return title[:200]


def _path(url: str) -> str:
    return urlsplit(url).path or url


# -- time ----------------------------------------------------------------------------------------------------
