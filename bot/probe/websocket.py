"""The WebSocket transport: the handshake and its classification into failure kinds, and the session over it.

``open_session`` gives a ``bot.probe.transport.Opened`` whose session sends text frames, receives them with the
loop time they came off the socket, and reports every close as ``transport.Closed``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    NegotiationError,
)
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from bot import iam, tracing
from bot.probe.http_probe import EVIDENCE_BODY_CHARS, status_evidence, timeout_hint, transport_failure
from bot.probe.transport import Closed, Opened, Received
from bot.protocol import Offer
from bot.results import Failure, Kind
from bot.timestamps import elapsed_ms
from bot.untrusted import Redactor

AUTH_CLOSE_CODES = frozenset({1008, 4001, 4003, 4401, 4403})
# Closes the client itself sends when the server breaks the protocol: never the server's close.
CLIENT_CLOSES = {
    1009: "a frame over the client's 4 MiB limit",
    1007: "a text frame that is not valid UTF-8",
    1002: "a frame that breaks the WebSocket protocol",
}
MAX_FRAME_BYTES = 2**22
# Frames read ahead of recv() before reading pauses (it resumes once they are all taken): with 4 MiB frames about
# 12 MiB wait at most (websockets' default of 16 let a flood of large frames grow the probe by 80 MiB). Small frames
# read in one go are all queued whatever the limit: it bounds bytes only for large ones, which is what matters.
MAX_QUEUE = 2
# Our own bytes (pongs, the message, the close) a peer may leave unread before we stop reading from it: websockets
# answers every ping at once without flow control, so a peer flooding pings and never reading grew the probe by
# hundreds of MiB.
WRITE_BACKLOG_BYTES = 2**20
# How long close() may wait for the close handshake (and for a peer that never reads to take our close frame)
# before the transport is aborted.
CLOSE_DEADLINE_S = 2.0
_NO_REDACTION = Redactor()


_TEXT, _BINARY, _CONT, _PING = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PING


class UpgradeWithoutRedirects(connect):
    """``connect`` that never follows a redirect. websockets 17 follows up to 10 by default
    (``WEBSOCKETS_MAX_REDIRECTS``, read once at import; 0 would refuse every upgrade) and, across origins, drops
    only Authorization and Cookie: the offered subprotocols (``jwt.<token>``) and custom headers (an ID token in
    X-Serverless-Authorization) would go to whatever host the ``Location`` names. Browsers fail an upgrade
    answered 3xx, so a redirect is the answer under test: its ``InvalidStatus`` is raised as it came, whatever the
    ``Location`` holds (another scheme, a relative path, garbage, nothing)."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


class StampedConnection(ClientConnection):
    """A client connection that notes, on the loop's clock, when each message's last frame was read off the
    socket. ``recv()`` returns a message only when this user's task next runs, which under a thousand users can
    be many other frames later: the arrival recorded is when the bytes came in, not when we got round to them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arrivals: deque[float] = deque()
        self.pings = 0
        self.stopped_reading = (
            False  # the peer left WRITE_BACKLOG_BYTES of ours unread: we stopped reading it
        )

    def process_event(self, event: Any) -> None:
        if type(event) is Frame:  # not the handshake's Response
            opcode = event.opcode  # compared by identity: an Opcode's hash is a Python call, once per frame
            if event.fin and (opcode is _TEXT or opcode is _BINARY or opcode is _CONT):
                self._arrivals.append(self.loop.time())
            elif opcode is _PING:
                self.pings += 1
        super().process_event(event)

    def flood_evidence(self) -> dict[str, str]:
        """What a peer that floods us and does not read showed, for a finding's evidence; empty otherwise."""
        if not self.stopped_reading:
            return {}
        return {
            "pings received": f"{self.pings:,}",
            "client stopped reading": f"the server left over {WRITE_BACKLOG_BYTES // 2**20} MiB of the client's "
            "frames (pongs, the message) unread, so the client stopped reading from it",
        }

    def arrival(self) -> float:
        """When the message ``recv()`` just returned was read off the socket (loop time)."""
        return self._arrivals.popleft() if self._arrivals else self.loop.time()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # may write pongs: websockets answers each ping at once, unthrottled
        if self.transport.get_write_buffer_size() > WRITE_BACKLOG_BYTES:
            # The peer does not read what we send: stop reading from it (its pings among the rest) until it does.
            self.stopped_reading = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.transport.is_closing():
            self.transport.resume_reading()

    async def close(
        self, code: int = 1000, reason: str = "", *, deadline_s: float = CLOSE_DEADLINE_S
    ) -> None:
        """The close handshake within ``deadline_s``, then the transport is aborted: a peer that never reads
        would otherwise hold close() (waiting to write the close frame) until the run's deadline."""
        try:
            async with asyncio.timeout(deadline_s):
                await super().close(code, reason)
        except TimeoutError:
            self.transport.abort()


class WebSocketSession:
    """A ``transport.Session`` over an open connection: closes come out as ``transport.Closed``."""

    __slots__ = ("_connection",)

    def __init__(self, connection: StampedConnection) -> None:
        self._connection = connection

    @property
    def connection(self) -> StampedConnection:
        """The WebSocket itself, for what only a WebSocket does (pings while a connection is held)."""
        return self._connection

    async def send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except ConnectionClosed as exc:
            raise closed_of(exc) from None

    async def receive(self) -> Received:
        try:
            data = await self._connection.recv()
        except ConnectionClosed as exc:
            raise closed_of(exc) from None
        return data, self._connection.arrival()

    async def close(self, *, deadline_s: float = CLOSE_DEADLINE_S) -> None:
        await self._connection.close(deadline_s=deadline_s)

    def evidence(self) -> dict[str, str]:
        return self._connection.flood_evidence()

    def pending_close(self) -> Closed | None:
        # Once the client fails the connection (a frame over its limit: 1009), websockets discards what follows
        # and recv() waits for the server's TCP close, up to close_timeout: a server still pushing a 50 MB frame
        # reads our close late.
        sent = self._connection.protocol.close_sent
        if sent is None or self._connection.protocol.close_rcvd is not None or sent.code not in CLIENT_CLOSES:
            return None
        return closed_of(ConnectionClosedError(None, sent))


def closed_of(exc: ConnectionClosed) -> Closed:
    """websockets' close as the transport's: the peer's code and reason, or the client's own protocol close."""
    sent, rcvd = exc.sent, exc.rcvd
    if rcvd is None and sent is not None and sent.code in CLIENT_CLOSES:
        return Closed(None, sent.reason, client_code=sent.code, violation=CLIENT_CLOSES[sent.code])
    if rcvd is None:
        return Closed(None, "no close frame (connection dropped)")
    return Closed(rcvd.code, rcvd.reason)


@dataclass(frozen=True, slots=True)
class Handshake:
    connection: StampedConnection | None
    elapsed_ms: float
    failure: Failure | None
    subprotocol: str | None = None


def offer_evidence(offer: Offer) -> dict[str, str]:
    """What the upgrade offered, as evidence: the full URL and the subprotocols with the token shown as <token>,
    and where the token travels (header, subprotocol, query, a frame), never its value."""
    shown = offer.shown_subprotocols or tuple(
        p if not p.startswith("jwt.") else "jwt.<token>" for p in offer.subprotocols
    )
    return {
        "url": offer.display_url,
        "offered subprotocols": ", ".join(shown) or "(none)",
        "token travels in": offer.token_travel
        or ", ".join(name for name, _ in offer.headers if name.lower() not in tracing.HEADER_NAMES)
        or "(no header)",
    }


async def open_connection(
    offer: Offer,
    *,
    timeout_s: float,
    require_echo: bool = True,
    redactor: Redactor = _NO_REDACTION,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Handshake:
    """Connect and classify the outcome; a returned connection is open and owned by the caller.

    ``require_echo``: offered subprotocols must get one echoed back, as browsers demand. Text the server sent
    (status body, headers) is redacted by ``redactor`` before it is cut and kept.
    ``extra_headers``: sent on the upgrade but not part of the offer (e.g. a Cloud Run ID token).
    """
    started = time.perf_counter()
    evidence = offer_evidence(offer)
    try:
        connection = await UpgradeWithoutRedirects(
            offer.url,
            subprotocols=[Subprotocol(p) for p in offer.subprotocols] or None,
            additional_headers=[*offer.headers, *extra_headers],
            open_timeout=timeout_s,
            proxy=None,
            ping_interval=None,
            close_timeout=CLOSE_DEADLINE_S,
            max_size=MAX_FRAME_BYTES,
            max_queue=MAX_QUEUE,
            # No permessage-deflate: 64 KiB read from the socket could inflate into hundreds of thousands of
            # frames that websockets queues at once (a flood of small frames grew the probe by 30+ MiB).
            compression=None,
            create_connection=StampedConnection,
        )
    except InvalidStatus as exc:
        elapsed = elapsed_ms(started)
        return Handshake(None, elapsed, _status_failure(exc, offer, evidence, redactor))
    except NegotiationError as exc:
        failure = Failure(
            Kind.WS_SUBPROTOCOL,
            f"Subprotocol negotiation failed: {exc}.",
            detail="negotiation",
            evidence=evidence | {"error": f"NegotiationError: {exc}"},
        )
        return Handshake(None, elapsed_ms(started), failure)
    except (InvalidMessage, InvalidHandshake) as exc:
        # websockets puts what it actually received (e.g. "HTTP/1.0 404") in the cause chain.
        chain = [f"{type(exc).__name__}: {exc}"]
        cause = exc.__cause__ or exc.__context__
        while cause is not None and len(chain) < 4:
            chain.append(f"{type(cause).__name__}: {cause}")
            cause = cause.__cause__ or cause.__context__
        failure = Failure(
            Kind.WS_PROTOCOL,
            "The upgrade answer is not a valid WebSocket handshake.",
            evidence=evidence | {"error": redactor.clip(" <- ".join(chain), EVIDENCE_BODY_CHARS)},
        )
        return Handshake(None, elapsed_ms(started), failure)
    except (OSError, TimeoutError) as exc:
        failure = transport_failure(exc, what="WebSocket upgrade")
        failure = Failure(
            failure.kind, failure.message, detail="upgrade", evidence=evidence | failure.evidence
        )
        return Handshake(None, elapsed_ms(started), failure)
    elapsed = elapsed_ms(started)
    assert isinstance(connection, StampedConnection)  # create_connection above
    echoed = connection.subprotocol
    if require_echo and offer.subprotocols and echoed is None:
        failure = Failure(
            Kind.WS_SUBPROTOCOL,
            "The server accepted the upgrade without selecting any of the offered subprotocols; browsers "
            "close such a connection at once.",
            detail="no-echo",
            evidence=evidence | {"echoed subprotocol": "(none)", "status": "101"},
        )
        return Handshake(connection, elapsed, failure, None)
    return Handshake(connection, elapsed, None, echoed)


async def open_session(
    offer: Offer,
    *,
    timeout_s: float,
    require_echo: bool = True,
    redactor: Redactor = _NO_REDACTION,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Opened:
    """``open_connection`` as the transport seam's ``Opened``; a failure with a session still open (no
    subprotocol echoed) leaves closing it to the caller."""
    handshake = await open_connection(
        offer, timeout_s=timeout_s, require_echo=require_echo, redactor=redactor, extra_headers=extra_headers
    )
    session = WebSocketSession(handshake.connection) if handshake.connection is not None else None
    agreed = f"101 Switching Protocols, subprotocol {handshake.subprotocol or '(none offered)'}"
    return Opened(session, handshake.elapsed_ms, handshake.failure, agreed)


def _status_failure(
    exc: InvalidStatus, offer: Offer, evidence: dict[str, str], redactor: Redactor
) -> Failure:
    response = exc.response
    code = response.status_code
    body = response.body.decode("utf-8", errors="replace") if response.body else ""
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.raw_items())
    status = f"{code} {response.reason_phrase}"
    evidence = status_evidence(evidence, status=status, headers=headers, body=body, redactor=redactor)
    if iam.is_front_end_refusal(code, body):
        return iam.denied(code, request="WebSocket upgrade", evidence=evidence)
    if 300 <= code < 400:
        location = response.headers.get("Location")
        shown = redactor.clip(location, 500) if location is not None else "(none)"
        return Failure(
            Kind.WS_UPGRADE_STATUS,
            f"The upgrade was answered with a redirect (HTTP {code}) instead of 101; browsers fail a WebSocket "
            "upgrade answered 3xx, and golden-path does not follow it (nothing was sent to the Location).",
            str(code),
            evidence | {"location": shown},
        )
    hint = transport_hint(
        code, response.headers.get("content-type", ""), response.headers.get("allow", ""), body
    )
    if hint:
        failure = _status_kind(code, offer, evidence)
        return Failure(
            failure.kind,
            f"{failure.message} {hint}",
            failure.detail,
            evidence | {"looks like": hint},
            failure.subject,
        )
    return _status_kind(code, offer, evidence)


def transport_hint(code: int, content_type: str, allow: str, body: str) -> str:
    """Which transport an endpoint that refused the WebSocket upgrade looks like, in one sentence, or ''."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/event-stream":
        return "It answered `text/event-stream`: this is a Server-Sent Events endpoint, set `transport: sse`."
    lowered = body.lower()
    if "socket.io" in lowered or "engine.io" in lowered:
        return "It answered as a Socket.IO server: set `transport: socketio`."
    methods = {m.strip().upper() for m in allow.split(",") if m.strip()}
    if code == 405 and methods and "GET" not in methods:
        return (
            f"The path accepts only {', '.join(sorted(methods))}: a streaming HTTP endpoint (Server-Sent Events) "
            "looks like this, set `transport: sse` if it is one."
        )
    return ""


async def plain_http_hint(http: httpx.AsyncClient, url: str, *, timeout_s: float) -> str:
    """What a plain GET of a WebSocket path says about the transport it serves ('' when nothing): a POST-only
    streaming route answers 405, an SSE route text/event-stream, a Socket.IO server names itself."""
    body = b""
    try:
        async with asyncio.timeout(timeout_s), http.stream("GET", url) as answer:
            if not answer.headers.get("content-type", "").startswith("text/event-stream"):
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > 4096:
                        break
    except (httpx.HTTPError, OSError, TimeoutError):
        return ""
    return transport_hint(
        answer.status_code,
        answer.headers.get("content-type", ""),
        answer.headers.get("allow", ""),
        body.decode("utf-8", errors="replace"),
    )


def _status_kind(code: int, offer: Offer, evidence: dict[str, str]) -> Failure:
    if code in (401, 403):
        return Failure(
            Kind.WS_AUTH_REJECTED,
            f"The upgrade with a valid token was refused with HTTP {code}.",
            str(code),
            evidence,
        )
    if code == 429:
        return Failure(Kind.RATE_LIMITED, "The upgrade was rate limited (HTTP 429).", "429", evidence)
    if code == 400 and offer.subprotocols:
        return Failure(
            Kind.WS_SUBPROTOCOL,
            "The upgrade was refused with HTTP 400 while offering subprotocols: the server supports none of them.",
            "400",
            evidence,
        )
    return Failure(
        Kind.WS_UPGRADE_STATUS,
        f"The upgrade was answered with HTTP {code} instead of 101." + timeout_hint(code),
        str(code),
        evidence,
    )


def refusal_of(failure: Failure | None) -> tuple[int, str] | None:
    """(status, body) of an upgrade refused over HTTP, from its failure; None for anything else."""
    if failure is None or not failure.detail.isdigit() or "status" not in failure.evidence:
        return None
    return int(failure.detail), failure.evidence.get("body", "")


async def upgrade_refusal(
    offer: Offer, *, timeout_s: float, redactor: Redactor, extra_headers: Sequence[tuple[str, str]] = ()
) -> tuple[int, str] | None:
    """(status, body) when the upgrade is refused over HTTP, None when it is accepted or gets no HTTP answer."""
    handshake = await open_connection(
        offer, timeout_s=timeout_s, require_echo=False, redactor=redactor, extra_headers=extra_headers
    )
    if handshake.connection is not None:
        await handshake.connection.close()
        return None
    return refusal_of(handshake.failure)
