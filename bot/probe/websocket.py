"""The WebSocket handshake, its classification into failure kinds, and the negative (no token) check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    NegotiationError,
)
from websockets.typing import Subprotocol

from bot import iam
from bot.probe.http import EVIDENCE_BODY_CHARS, transport_failure
from bot.protocol import Offer
from bot.results import Failure, Kind

AUTH_CLOSE_CODES = frozenset({1008, 4001, 4003, 4401, 4403})
# How long an unauthenticated connection may stay open before we call it accepted.
NEGATIVE_GRACE_S = 1.0


@dataclass(frozen=True, slots=True)
class Handshake:
    connection: ClientConnection | None
    elapsed_ms: float
    failure: Failure | None
    subprotocol: str | None = None


def _offer_evidence(offer: Offer) -> dict[str, str]:
    # Offered subprotocols may carry the token (jwt.<base64url>): record only their shape, never the value.
    shown = [p if not p.startswith("jwt.") else "jwt.<token>" for p in offer.subprotocols]
    return {
        "url": offer.url.split("?", 1)[0],
        "offered subprotocols": ", ".join(shown) or "(none)",
        "token offered in": ", ".join(name for name, _ in offer.headers if name.lower() == "authorization")
        or "(no header)",
    }


async def open_connection(
    offer: Offer,
    *,
    timeout_s: float,
    require_echo: bool = True,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> Handshake:
    """Connect and classify the outcome; a returned connection is open and owned by the caller.

    ``require_echo``: offered subprotocols must get one echoed back, as browsers demand.
    ``extra_headers``: sent on the upgrade but not part of the offer (e.g. a Cloud Run ID token).
    """
    started = time.perf_counter()
    evidence = _offer_evidence(offer)
    try:
        connection = await connect(
            offer.url,
            subprotocols=[Subprotocol(p) for p in offer.subprotocols] or None,
            additional_headers=[*offer.headers, *extra_headers],
            open_timeout=timeout_s,
            proxy=None,
            ping_interval=None,
            close_timeout=2,
            max_size=2**22,
        )
    except InvalidStatus as exc:
        elapsed = _ms(started)
        return Handshake(None, elapsed, _status_failure(exc, offer, evidence))
    except NegotiationError as exc:
        failure = Failure(
            Kind.WS_SUBPROTOCOL,
            f"Subprotocol negotiation failed: {exc}.",
            detail="negotiation",
            evidence=evidence | {"error": f"NegotiationError: {exc}"},
        )
        return Handshake(None, _ms(started), failure)
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
            evidence=evidence | {"error": " <- ".join(chain)[:EVIDENCE_BODY_CHARS]},
        )
        return Handshake(None, _ms(started), failure)
    except (OSError, TimeoutError) as exc:
        failure = transport_failure(exc, what="WebSocket upgrade")
        failure = Failure(
            failure.kind, failure.message, detail="upgrade", evidence=evidence | failure.evidence
        )
        return Handshake(None, _ms(started), failure)
    elapsed = _ms(started)
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


def _status_failure(exc: InvalidStatus, offer: Offer, evidence: dict[str, str]) -> Failure:
    response = exc.response
    code = response.status_code
    body = response.body.decode("utf-8", errors="replace") if response.body else ""
    evidence = evidence | {
        "status": f"{code} {response.reason_phrase}",
        "headers": "\n".join(f"{k}: {v}" for k, v in response.headers.raw_items())[:EVIDENCE_BODY_CHARS],
        "body": body[:EVIDENCE_BODY_CHARS],
    }
    if iam.is_front_end_refusal(code, body):
        return iam.denied(code, request="WebSocket upgrade", evidence=evidence)
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
        f"The upgrade was answered with HTTP {code} instead of 101.",
        str(code),
        evidence,
    )


async def negative_check(
    offer: Offer, *, timeout_s: float, extra_headers: Sequence[tuple[str, str]] = ()
) -> tuple[bool | None, Failure | None, str]:
    """Connect without credentials. Returns (refused?, failure, summary); refused None means inconclusive."""
    handshake = await open_connection(offer, timeout_s=timeout_s, extra_headers=extra_headers)
    if handshake.connection is None:
        failure = handshake.failure
        if failure is not None and failure.kind is Kind.WS_AUTH_REJECTED:
            return True, None, f"refused without a token (HTTP {failure.detail})"
        what = failure.message if failure else "no connection"
        return None, None, f"inconclusive: {what}"
    connection = handshake.connection
    try:
        # A server may accept and then close with a policy-violation code: that is a refusal too.
        async with asyncio.timeout(NEGATIVE_GRACE_S):
            while True:
                await connection.recv()
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        if code in AUTH_CLOSE_CODES:
            return True, None, f"refused without a token (close {code})"
        reason = exc.rcvd.reason if exc.rcvd else ""
        return True, None, f"closed without a token (close {code} {reason})".strip()
    except TimeoutError:
        pass
    finally:
        await connection.close()
    failure = Failure(
        Kind.WS_UNAUTHENTICATED_ACCEPTED,
        f"A connection with no token was accepted and still open after {NEGATIVE_GRACE_S:.0f} s.",
        evidence=_offer_evidence(offer) | {"status": "101", "token": "(none)"},
    )
    return False, failure, "accepted without a token"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
