"""The seam between the journey and a wire: a session that sends text frames and receives frames stamped with their arrival.

The journey (``bot.probe.journey``) is a small program that the probe interprets the same way over any transport:

    login      an identity per user (``bot.auth``): its token, subject and expiry
    connect    open a ``Session`` as that user (the ``Offer``: URL, subprotocols, headers with the token)
    turn k     send the turn's frames: ``each: connection`` frames once per connection, the others on every turn;
               a frame with ``after: EVENT`` waits until EVENT has arrived on this connection (at once if it has);
               receive until the completion event, an end event, an error event, a close or a deadline;
               the judge (``bot.judge``) turns what was recorded into checks: events, isolation, the answer
               (empty, canned, another user's, ``expect``), latency per turn
    reconnect  (``turns[k].reconnect``) close, open a new session as the same user on the same thread, go on
    close

Over SSE (``bot.probe.sse_session``) a turn is a stream request of its own, in the same session (the request steps
run once; a conversation's turns share the user's own connection pool), and a reconnect is a new pool; over
Socket.IO (``bot.probe.sio``) a turn emits again on the connection (``each: connection`` emits once per
connection) and a reconnect connects again with the same CONNECT auth.

The check without credentials (``bot.probe.negative``) runs the same opening steps anonymously.

A transport provides an opener returning an ``Opened`` (a ``Session``, or the handshake's ``Failure``) and a
``Session``: ``send(text)``, ``receive() -> Received`` (the frame and the loop time it came off the wire, not
when the task got round to it), ``close()``. A close, by the peer or by the client for a protocol violation,
is raised as ``Closed`` with its code and reason. ``bot.probe.websocket`` is the WebSocket transport
(``open_session``); ``bot.probe.journey._connect`` is the one place a user's session is opened (and
``bot.probe.negative`` the one place the anonymous one is), so another transport adds its opener there.

Where each step is configured: ``journey.send`` (frames: ``frame``, ``after``, ``each``), ``journey.turns``
(``message``, ``expect``, ``expect_expression``, ``reconnect``), ``journey.expected_events`` /
``completion_event`` / ``end_events`` / ``error_events`` / ``ignored_events`` (how a turn ends), ``journey.gap``,
``websocket.*`` (the offer, ``auth_close_codes``, ``negative_auth_check``). Frame templates take ``{message}``,
``{thread_id}``, ``{user}``, ``{nonce}``, ``{token}``, ``{token_b64}`` and ``{turn}``; ``{{``/``}}`` are braces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.results import Failure

# A frame and the loop time (CLOCK_MONOTONIC seconds) its last byte was read off the wire. A plain tuple: it is
# made once per frame, for every user.
Received = tuple[str | bytes, float]


class Closed(Exception):
    """The session ended: ``code``/``reason`` the peer's close (None: no close frame, the connection dropped), or
    ``client_code`` when the client closed because the peer broke the protocol, ``violation`` saying how (e.g.
    "a frame over the client's 4 MiB limit")."""

    def __init__(
        self, code: int | None, reason: str = "", *, client_code: int | None = None, violation: str = ""
    ) -> None:
        super().__init__(f"closed ({code if code is not None else client_code})")
        self.code = code
        self.reason = reason
        self.client_code = client_code
        self.violation = violation


class Session(Protocol):
    async def send(self, text: str) -> None:
        """Raises ``Closed``."""

    async def receive(self) -> Received:
        """The next frame. Raises ``Closed``."""

    async def close(self, *, deadline_s: float = ...) -> None:
        """Idempotent; never raises. The close handshake within ``deadline_s`` (by default the transport's own),
        then the connection is aborted."""

    def evidence(self) -> dict[str, str]:
        """What the transport itself noticed about the peer (e.g. a ping flood), for a stalled stream's finding."""

    def pending_close(self) -> Closed | None:
        """The ``Closed`` that ``receive()`` will raise once the wire is down, when the client has already closed
        because the peer broke the protocol and only waits for the peer to end the connection; None otherwise.
        A deadline that passes meanwhile is that close, not a timeout."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A handshake's outcome: a session (``failure`` may still be set, e.g. no subprotocol echoed) or none."""

    session: Session | None
    elapsed_ms: float
    failure: Failure | None
    detail: str = ""  # what was agreed, for the summary (e.g. the subprotocol)
