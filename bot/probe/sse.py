"""Server-Sent Events: the stream request, its classification into failure kinds, and an exact event parser.

The parser follows the WHATWG "server-sent events" interpretation rules (html.spec.whatwg.org, section 9.2.6):
lines end at CRLF, LF or CR (also split across reads); a leading BOM is dropped; `:` lines are comments
(keep-alives); `data:` lines join with LF; `event:` and `id:` fields (an `id` holding NUL is ignored); a field
without a colon is a field with an empty value; one space after the colon is dropped; a blank line dispatches
the event, unless its data buffer is empty; an event the body cuts off without its blank line is discarded.
httpx-sse (0.4) was not used: it dispatches an event with empty data on every blank line once an `id` was seen,
so keep-alive blank lines after an `id:` would count as events.

Each event carries the loop time at which the bytes that completed it were read (its arrival), like
``StampedConnection`` does for WebSocket frames.
"""

from __future__ import annotations

import asyncio
import codecs
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx

from bot import iam, tracing
from bot.probe.http_probe import EVIDENCE_BODY_CHARS, status_evidence, timeout_hint, transport_failure
from bot.probe.record import Message
from bot.results import Failure, Kind
from bot.timestamps import elapsed_ms
from bot.untrusted import Redactor

MAX_LINE_CHARS = 4 * 1024 * 1024  # one event's line; longer is a protocol failure, never unbounded memory
_NO_REDACTION = Redactor()
END_OF_BODY = "(end of body)"
DRAIN_S = (
    1.0  # after a turn's completion, the rest of its body is read this long at most (``EventStream.drain``)
)
DRAIN_BYTES = 64 * 1024


class Event(NamedTuple):
    """One dispatched server-sent event (a NamedTuple: built once per event, in a third of a frozen dataclass's
    time)."""

    data: str
    event: str = ""  # the `event:` field; empty when the server named none (the spec's default, "message")
    id: str = ""
    at: float = 0.0  # loop time the bytes completing it were read


class EventTooLarge(ValueError):
    """A line longer than ``MAX_LINE_CHARS``."""


@dataclass(slots=True)
class EventStreamParser:
    """Bytes in, dispatched events out (WHATWG rules, see the module docstring). Pure: no I/O."""

    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    _pending: str = ""  # text after the last line end
    _cr: bool = False  # the last chunk ended with CR: an LF at the start of the next belongs to it
    _started: bool = False
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _last_id: str = ""
    comments: int = 0  # `:` comment lines seen (a stream's keepalive)

    def feed(self, chunk: bytes, at: float = 0.0) -> list[Event]:
        """The events ``chunk`` completes, each stamped ``at``.

        Raises:
            EventTooLarge: a line without an end went past ``MAX_LINE_CHARS``.
        """
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._cr and text.startswith("\n"):
            text = text[1:]
        self._cr = False
        text = self._pending + text
        events: list[Event] = []
        if "\r" not in text:  # the usual stream: lines end at LF alone, so a split finds them all
            *lines, self._pending = text.split("\n")
            for line in lines:
                event = self._line(line, at)
                if event is not None:
                    events.append(event)
            return self._checked(events)
        start = 0
        length = len(text)
        while start < length:
            cr = text.find("\r", start)
            lf = text.find("\n", start)
            ends = [p for p in (cr, lf) if p >= 0]
            if not ends:
                break
            end = min(ends)
            line = text[start:end]
            if text[end] == "\r":
                if end + 1 < length:
                    start = end + 2 if text[end + 1] == "\n" else end + 1
                else:
                    start = end + 1
                    self._cr = True
            else:
                start = end + 1
            event = self._line(line, at)
            if event is not None:
                events.append(event)
        self._pending = text[start:]
        return self._checked(events)

    def _checked(self, events: list[Event]) -> list[Event]:
        if len(self._pending) > MAX_LINE_CHARS:
            raise EventTooLarge(
                f"a line longer than {MAX_LINE_CHARS // (1024 * 1024)} MiB without a line end"
            )
        return events

    def _line(self, line: str, at: float) -> Event | None:
        if not line:
            return self._dispatch(at)
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None  # `retry` and unknown fields are ignored

    def _dispatch(self, at: float) -> Event | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(data="\n".join(data), event=event, id=self._last_id, at=at)


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What the client sends to open the stream: the token in ``headers`` (never shown), the body as JSON text."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: str | None


def request_evidence(request: StreamRequest) -> dict[str, str]:
    """The request's shape for evidence: the URL and the names of the headers, never their values."""
    names = [name for name, _ in request.headers if name.lower() not in tracing.HEADER_NAMES]
    return {
        "request": f"{request.method} {request.url}",
        "token offered in": ", ".join(names) or "(no header)",
    }


class StreamEnded(Exception):
    """The body ended (or the server closed it) before the journey was complete."""

    def __init__(self, events: int, error: str = "") -> None:
        super().__init__(error or "the body ended")
        self.events = events
        self.error = error


class EventStream:
    """An open event stream: ``recv()`` returns each event (then the sentinel or the end of the body, when the
    profile names them events) and raises ``StreamEnded`` once nothing more can come."""

    def __init__(
        self,
        response: httpx.Response,
        *,
        sentinel: str | None,
        body_end_event: str | None,
        event_field: bool,
    ) -> None:
        self.response = response
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        self._parser = EventStreamParser()
        self._queue: deque[Event] = deque()
        self._sentinel = sentinel
        self._body_end_event = body_end_event
        self._event_field = event_field
        self.events = 0  # dispatched so far
        self.finished = False  # the sentinel or the end of the body was returned: nothing more comes
        self.sentinel_seen = False  # the server ended the stream on purpose
        self._loop = asyncio.get_running_loop()

    async def recv(self) -> Message:
        """The next event.

        Raises:
            StreamEnded: the body ended (with no event the profile reads as the end), or the connection broke.
            EventTooLarge: a line past the limit.
        """
        while not self._queue:
            if self.finished:
                raise StreamEnded(self.events)
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self.finished = True
                if self._body_end_event is not None and self.events:
                    return Message(END_OF_BODY, self._body_end_event, self._loop.time())
                raise StreamEnded(self.events) from None
            except httpx.HTTPError as exc:
                self.finished = True
                raise StreamEnded(self.events, f"{type(exc).__name__}: {exc}") from None
            self._queue.extend(self._parser.feed(chunk, self._loop.time()))
        event = self._queue.popleft()
        self.events += 1
        if self._sentinel is not None and event.data.strip() == self._sentinel:
            self.finished = self.sentinel_seen = True
            return Message(event.data, self._sentinel, event.at)
        name = event.event if self._event_field and event.event else None
        return Message(event.data, name, event.at)

    @property
    def comments(self) -> int:
        """The `:` comment lines (keepalives) read so far."""
        return self._parser.comments

    async def drain(self, *, limit_s: float = DRAIN_S, limit_bytes: int = DRAIN_BYTES) -> None:
        """Read what is left of the body once the journey has what it needs (after a sentinel: the chunked
        ending), so the connection goes back to the pool for the next turn, as a browser's does. Bounded in time
        and bytes: a body that goes on is closed with its connection."""
        read = 0
        try:
            async with asyncio.timeout(limit_s):
                async for chunk in self._chunks:
                    read += len(chunk)
                    if read > limit_bytes:
                        return
        except (TimeoutError, httpx.HTTPError):
            pass

    async def aclose(self) -> None:
        await self.response.aclose()


@dataclass(frozen=True, slots=True)
class Opened:
    stream: EventStream | None
    elapsed_ms: float
    failure: Failure | None
    status: int | None = None


async def open_stream(
    http: httpx.AsyncClient,
    request: StreamRequest,
    *,
    timeout_s: float,
    sentinel: str | None,
    body_end_event: str | None,
    event_field: bool = True,
    redactor: Redactor = _NO_REDACTION,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Opened:
    """Send the stream request and classify its answer; a returned stream is open and owned by the caller.

    Within ``timeout_s`` the answer's status and headers must arrive. 401/403 is ``stream-auth-rejected`` (or
    ``iam-denied`` for Google's front end), 429 ``rate-limited``, any other status that is not 2xx
    ``stream-status``, a 2xx that is not ``text/event-stream`` ``stream-protocol``. The body of a refused
    request is read (bounded) as evidence.
    """
    started = time.perf_counter()
    headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-store"), *request.headers]
    if request.body is not None:
        headers.append(("Content-Type", "application/json"))
    built = http.build_request(
        request.method,
        request.url,
        headers=[*headers, *extra_headers],
        content=request.body.encode() if request.body is not None else None,
        # The event deadlines of the journey bound the stream; httpx's per-read timeout would cut a slow agent.
        timeout=httpx.Timeout(timeout_s, read=None),
    )
    response: httpx.Response | None = None
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.send(built, stream=True)
            status = response.status_code
            if not 200 <= status < 300:
                body = await _bounded_body(response)
                await response.aclose()
                failure = _status_failure(response, body, request_evidence(request), redactor)
                return Opened(None, elapsed_ms(started), failure, status)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        if response is not None:
            await response.aclose()
        failure = transport_failure(exc, what="Stream request")
        evidence = request_evidence(request) | failure.evidence
        failure = Failure(failure.kind, failure.message, "request", evidence)
        return Opened(None, elapsed_ms(started), failure)
    elapsed = elapsed_ms(started)
    content_type = response.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "text/event-stream":
        body = await _bounded_body(response, deadline_s=timeout_s)
        await response.aclose()
        failure = Failure(
            Kind.STREAM_PROTOCOL,
            f"The stream request was answered {status} with {content_type or 'no Content-Type'}, not "
            "text/event-stream.",
            detail="content-type",
            evidence=request_evidence(request)
            | {
                "status": str(status),
                "content type": redactor.clip(content_type or "(none)", 200),
                "body": redactor.clip(body, EVIDENCE_BODY_CHARS),
            },
        )
        return Opened(None, elapsed, failure, status)
    stream = EventStream(response, sentinel=sentinel, body_end_event=body_end_event, event_field=event_field)
    return Opened(stream, elapsed, None, status)


async def _bounded_body(response: httpx.Response, *, deadline_s: float = 2.0, limit: int = 64 * 1024) -> str:
    """At most ``limit`` bytes of a refused answer's body, within ``deadline_s`` (evidence, never a hang)."""
    received = bytearray()
    try:
        async with asyncio.timeout(deadline_s):
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) >= limit:
                    break
    except (TimeoutError, httpx.HTTPError):
        pass
    return bytes(received[:limit]).decode("utf-8", errors="replace")


def _status_failure(
    response: httpx.Response, body: str, evidence: dict[str, str], redactor: Redactor
) -> Failure:
    code = response.status_code
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
    status = f"{code} {response.reason_phrase}"
    evidence = status_evidence(evidence, status=status, headers=headers, body=body, redactor=redactor)
    if iam.is_front_end_refusal(code, body):
        return iam.denied(code, request="stream request", evidence=evidence)
    if code in (401, 403):
        return Failure(
            Kind.STREAM_AUTH_REJECTED,
            f"The stream request with a valid token was refused with HTTP {code}.",
            str(code),
            evidence,
            subject=f"HTTP {code} on {evidence['request'].split('?', 1)[0]}",
        )
    if code == 429:
        return Failure(Kind.RATE_LIMITED, "The stream request was rate limited (HTTP 429).", "429", evidence)
    return Failure(
        Kind.STREAM_STATUS,
        f"The stream request was answered with HTTP {code}." + timeout_hint(code),
        str(code),
        evidence,
        subject=f"HTTP {code} on {evidence['request'].split('?', 1)[0]}",
    )
