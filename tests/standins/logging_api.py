"""A local stand-in for the Cloud Logging API v2 ``entries:list`` (REST/JSON), reached by the real
``google-cloud-logging`` client over its HTTP transport.

It evaluates the subset of the Logging query language golden-path writes (``AND``, parenthesised ``OR`` lists,
``=``, ``>=``, ``<=``, ``>``, ``<``, ``:`` on dotted fields, severities by rank, timestamps as times) and answers
400 ``INVALID_ARGUMENT`` to anything else, as the real API does to a filter it cannot parse. It models what the
real service does that hurts: pages (``nextPageToken``), the empty first page with a token that a slow search
returns, 403 ``PERMISSION_DENIED`` without ``roles/logging.viewer``, 5xx, and latency.

``front(app)`` wraps an ASGI app the way Cloud Run's front end does for logging: every request gets a request
log (``httpRequest`` with status and latency, ``trace`` from ``X-Cloud-Trace-Context`` or ``traceparent``),
and a failed WebSocket upgrade makes the app log a Python traceback carrying the request's trace, as an app with
structured logging does.

Entry shapes follow real Cloud Run entries (request logs under ``run.googleapis.com/requests``, text on
``run.googleapis.com/stdout`` and ``stderr``, ``jsonPayload`` from structured logging).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.standins.loopback import LoopbackServer

Entry = dict[str, Any]
SEVERITY_RANK = {
    "DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400,
    "ERROR": 500, "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800,
}  # fmt: skip
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 503: "UNAVAILABLE"}  # fmt: skip
DENIED = "Permission 'logging.logEntries.list' denied on resource (or it may not exist)."


@dataclass(frozen=True)
class ListCall:
    """One ``entries:list`` request as received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class LoggingStandIn(LoopbackServer):
    """``POST /v2/entries:list`` over a list of entries; tests add entries, inject errors and read the calls."""

    thread_name = "logging-standin"

    def __init__(self, *, project: str = "p", region: str = "europe-west1") -> None:
        self.project = project
        self.region = region
        self.entries: list[Entry] = []
        self.calls: list[ListCall] = []
        self.delay_s = 0.0
        self.sparse_first_page = False  # a slow search: the first page comes back empty, with a page token
        self._errors: list[tuple[int, str] | None] = []
        self.received: list[dict[str, str]] = []  # headers of requests that passed through front()
        self._lock = threading.Lock()
        super().__init__(_handler_for(self))

    @property
    def url(self) -> str:
        return self.origin

    def inject(self, status: int, message: str = "", *, times: int = 100, after: int = 0) -> None:
        """Answer ``status`` to ``times`` calls, starting after ``after`` calls answered normally."""
        default = DENIED if status == 403 else "The service is currently unavailable."
        self._errors = [None] * after + [(status, message or default)] * times

    def add(self, entry: Entry) -> Entry:
        with self._lock:
            self.entries.append(entry)
        return entry

    # -- entry builders (real Cloud Run shapes) -----------------------------------------------------------

    def resource(self, service: str, revision: str) -> dict[str, Any]:
        return {
            "type": "cloud_run_revision",
            "labels": {
                "project_id": self.project,
                "service_name": service,
                "revision_name": revision,
                "configuration_name": service,
                "location": self.region,
            },
        }

    def _base(self, service: str, revision: str, log: str, severity: str, at: datetime | None) -> Entry:
        moment = at or datetime.now(UTC)
        return {
            "insertId": uuid.uuid4().hex[:24],
            "resource": self.resource(service, revision),
            "timestamp": _rfc3339(moment),
            "receiveTimestamp": _rfc3339(moment + timedelta(milliseconds=40)),
            "severity": severity,
            "labels": {"instanceId": "00f46b9285" + "c7" * 20},
            "logName": f"projects/{self.project}/logs/run.googleapis.com%2F{log}",
        }

    def request_log(
        self,
        service: str,
        revision: str,
        *,
        method: str,
        url: str,
        status: int,
        latency_s: float,
        trace_id: str | None,
        span_id: str = "",
        at: datetime | None = None,
    ) -> Entry:
        severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
        entry = self._base(service, revision, "requests", severity, at)
        entry["httpRequest"] = {
            "requestMethod": method,
            "requestUrl": url,
            "requestSize": "512",
            "status": status,
            "responseSize": "130",
            "userAgent": "Python/3.11 websockets/15.0",
            "remoteIp": "203.0.113.7",
            "serverIp": "216.239.32.53",
            "latency": f"{latency_s:.6f}s",
            "protocol": "HTTP/1.1",
        }
        if trace_id:
            entry["trace"] = f"projects/{self.project}/traces/{trace_id}"
            entry["spanId"] = span_id or "1234567890123456"
            entry["traceSampled"] = True
        return self.add(entry)

    def text(
        self, service: str, revision: str, text: str, *, severity: str = "DEFAULT", stream: str = "stdout",
        trace_id: str | None = None, at: datetime | None = None,
    ) -> Entry:  # fmt: skip
        entry = self._base(service, revision, stream, severity, at)
        entry["textPayload"] = text
        if trace_id:
            entry["trace"] = f"projects/{self.project}/traces/{trace_id}"
        return self.add(entry)

    def instance_start(
        self, service: str, revision: str, *, reason: str = "AUTOSCALING", at: datetime | None = None
    ) -> Entry:
        """Cloud Run's own line when it starts an instance (log ``varlog/system``, severity INFO, no trace)."""
        why = {
            "AUTOSCALING": "Instance started due to configured scaling factors (e.g. CPU utilization, request "
            "throughput, etc.) or no existing capacity for current traffic.",
            "DEPLOYMENT": "Instance started due to traffic shifting between revisions due to deployment, traffic "
            "split adjustment, or deployment health check.",
        }[reason]
        entry = self._base(service, revision, "varlog%2Fsystem", "INFO", at)
        entry["textPayload"] = f"Starting new instance. Reason: {reason} - {why}"
        return self.add(entry)

    def structured(
        self, service: str, revision: str, payload: dict[str, Any], *, severity: str = "INFO",
        trace_id: str | None = None, at: datetime | None = None,
    ) -> Entry:  # fmt: skip
        entry = self._base(service, revision, "stdout", severity, at)
        entry["jsonPayload"] = payload
        if trace_id:  # Cloud Run lifts `logging.googleapis.com/trace` out of the JSON line into `trace`
            entry["trace"] = f"projects/{self.project}/traces/{trace_id}"
        return self.add(entry)

    # -- the API -----------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "Invalid JSON payload received.")
        with self._lock:
            self.calls.append(ListCall(path, request, headers))
            injected = self._errors.pop(0) if self._errors else None
            entries = list(self.entries)
        if self.delay_s:
            time.sleep(self.delay_s)
        if injected is not None:
            return _error(*injected)
        if method != "POST" or path.split("?")[0] != "/v2/entries:list":
            return _error(404, f"no route for {method} {path}")
        names = request.get("resourceNames") or []
        if names != [f"projects/{self.project}"]:
            return _error(403, DENIED)
        if len(request.get("filter", "")) > 20_000:
            return _error(400, "filter: the query is too long (maximum 20000 characters)")
        page_size = int(request.get("pageSize") or 50)
        if not 1 <= page_size <= 1000:
            return _error(400, f"page_size must be between 1 and 1000, got {page_size}")
        try:
            matches = [e for e in entries if evaluate(request.get("filter", ""), e)]
        except FilterError as exc:
            return _error(400, f"Unparseable filter: {exc}")
        descending = str(request.get("orderBy", "")).lower().endswith("desc")
        matches.sort(key=lambda e: e["timestamp"], reverse=descending)
        token = request.get("pageToken") or ""
        if self.sparse_first_page and not token:
            return 200, {"nextPageToken": "offset:0"}
        offset = int(token.removeprefix("offset:")) if token else 0
        page = matches[offset : offset + page_size]
        answer: dict[str, Any] = {"entries": page} if page else {}
        if offset + page_size < len(matches):
            answer["nextPageToken"] = f"offset:{offset + page_size}"
        return 200, answer

    # -- Cloud Run's front end, for an ASGI app -------------------------------------------------------------

    def front(self, app: Any, *, service: str, revision: str, host: str) -> Callable[..., Awaitable[None]]:
        """``app`` behind a stand-in of Cloud Run's front end: a request log per request, with its trace."""

        async def wrapped(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            trace_id, span_id = _trace_of(headers)
            seen: dict[str, int] = {}
            started = time.perf_counter()

            async def observe(message: MutableMapping[str, Any]) -> None:
                kind = message["type"]
                if kind in ("http.response.start", "websocket.http.response.start"):
                    seen.setdefault("status", int(message["status"]))
                elif kind == "websocket.accept":
                    seen.setdefault("status", 101)
                elif kind == "websocket.close":
                    seen.setdefault("status", 403)  # a close before accept is answered 403
                await send(message)

            try:
                await app(scope, receive, observe)
            finally:
                status = seen.get("status", 500)
                scheme = "wss" if scope["type"] == "websocket" else "https"
                url = f"{scheme}://{host}{scope.get('path', '/')}"
                method = "GET" if scope["type"] == "websocket" else scope.get("method", "GET")
                self.received.append({"path": scope.get("path", "/"), **headers})
                self.request_log(
                    service, revision, method=method, url=url, status=status,
                    latency_s=time.perf_counter() - started, trace_id=trace_id, span_id=span_id,
                )  # fmt: skip
                if scope["type"] == "websocket" and status >= 500:
                    self.structured(
                        service, revision,
                        {"message": _traceback(seen=status), "logger": "uvicorn.error",
                         "logging.googleapis.com/spanId": span_id},
                        severity="ERROR", trace_id=trace_id,
                    )  # fmt: skip

        return wrapped


def _trace_of(headers: dict[str, str]) -> tuple[str | None, str]:
    """Cloud Run reads ``X-Cloud-Trace-Context`` (``TRACE/SPAN;o=1``), else W3C ``traceparent``."""
    cloud = headers.get("x-cloud-trace-context")
    if cloud and "/" in cloud:
        trace, _, rest = cloud.partition("/")
        return trace, rest.split(";")[0]
    parent = headers.get("traceparent", "").split("-")
    if len(parent) == 4:
        return parent[1], str(int(parent[2], 16))
    return None, ""


def _traceback(*, seen: int) -> str:
    pool = uuid.uuid4().hex[:10]
    waited = 1500 + int(time.perf_counter() * 1000) % 97
    return (
        "Exception in ASGI application\n"
        "Traceback (most recent call last):\n"
        '  File "/app/main.py", line 88, in websocket_endpoint\n'
        "    session = await agent_pool.acquire(timeout=1.5)\n"
        '  File "/app/agents/pool.py", line 41, in acquire\n'
        '    raise TimeoutError(f"agent pool {self.id} exhausted after {waited} ms")\n'
        f"TimeoutError: agent pool {pool} exhausted after {waited} ms (upgrade answered {seen})"
    )


# -- the filter language (the subset golden-path writes) ------------------------------------------------------


class FilterError(ValueError):
    pass


_TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<kw>AND|OR)\b|(?P<cmp>[A-Za-z_][\w.]*)\s*(?P<op>>=|<=|!=|=|>|<|:)\s*'
                    r'(?P<val>"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.:+-]+))')  # fmt: skip


def evaluate(filter_: str, entry: Entry) -> bool:
    """Whether ``entry`` matches: a conjunction of comparisons and parenthesised OR lists of comparisons."""
    tokens = _tokens(filter_)
    position = 0

    def comparison() -> bool:
        nonlocal position
        kind, value = tokens[position]
        if kind != "cmp":
            raise FilterError(f"expected a comparison at {value!r}")
        position += 1
        return _compare(entry, *value)

    def term() -> bool:
        nonlocal position
        kind, _ = tokens[position]
        if kind != "lp":
            return comparison()
        position += 1
        result = comparison()
        while tokens[position] == ("kw", "OR"):
            position += 1
            result = comparison() or result
        if tokens[position][0] != "rp":
            raise FilterError("expected ')'")
        position += 1
        return result

    if not tokens:
        return True
    tokens.append(("end", ""))
    result = term()
    while tokens[position] == ("kw", "AND"):
        position += 1
        result = term() and result
    if tokens[position][0] != "end":
        raise FilterError(f"unexpected {tokens[position][1]!r}")
    return result


def _tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"cannot parse at {text[position : position + 30]!r}")
        if match.group("lp"):
            tokens.append(("lp", "("))
        elif match.group("rp"):
            tokens.append(("rp", ")"))
        elif match.group("kw"):
            tokens.append(("kw", match.group("kw")))
        else:
            raw = match.group("val")
            value = json.loads(raw) if raw.startswith('"') else raw
            tokens.append(("cmp", (match.group("cmp"), match.group("op"), value)))
        position = match.end()
        while position < len(text) and text[position] == " ":
            position += 1
    return tokens


def _compare(entry: Entry, field: str, op: str, value: str) -> bool:
    actual: Any = entry
    for part in field.split("."):
        actual = actual.get(part) if isinstance(actual, dict) else None
    if actual is None:
        return op == "!="
    if field == "severity":
        left, right = SEVERITY_RANK.get(str(actual), 0), SEVERITY_RANK[value]
    elif field in ("timestamp", "receiveTimestamp"):
        left, right = _time(str(actual)), _time(value)
    else:
        left, right = str(actual), value
    if op == ":":
        return str(right).lower() in str(left).lower()
    return {
        "=": left == right, "!=": left != right, ">=": left >= right,
        "<=": left <= right, ">": left > right, "<": left < right,
    }[op]  # fmt: skip


def _time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"not a timestamp: {value!r}") from None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    }


def _handler_for(standin: LoggingStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = standin.handle(self.command, self.path, body, headers)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
