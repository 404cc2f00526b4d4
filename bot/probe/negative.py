"""The check without credentials: the journey's opening steps, run anonymously, must be refused.

A server may refuse at the upgrade (HTTP 401/403), by a close with an authorisation code
(``websocket.auth_close_codes``: 1008, 4001, 4003, 4401, 4403) or by an error event, at any step: graphql-ws
servers accept the upgrade and refuse at ``connection_init`` (4403), as the protocol prescribes. So the anonymous
client does what a user does up to the first expected event: it upgrades without a token, sends the first turn's
frames (those waiting for an event once it arrives, e.g. ``subscribe`` after ``connection_ack``) with the token
placeholders empty, and reads what comes back. Only the journey's own events reaching it, or being served past the
first exchange (an answer to one frame, then another frame taken), is ``ws-unauthenticated-accepted``. A close with
another code, or silence, proves nothing either way: ``not verified``, with the reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot import expressions, protocol
from bot.probe import websocket as ws_probe
from bot.probe.transport import Closed, Session
from bot.results import CheckResult, Failure, Kind, Status, Step
from bot.settings import Settings
from bot.untrusted import Redactor

WAIT_S = (
    5.0  # silence, after the last frame sent or received, that ends the check (bounded by event_timeout_s)
)
FRAME_CHARS = 300
CLOSE_S = 0.25  # the close handshake of the connection without a token, then it is aborted


@dataclass(frozen=True, slots=True)
class NegativeOutcome:
    check: CheckResult
    refusal: tuple[int, str] | None = None  # (status, body) of an upgrade refused over HTTP


def skipped(why: str) -> NegativeOutcome:
    """The check not run, with the reason (``disabled``: websocket.negative_auth_check is false)."""
    return NegativeOutcome(_check(Status.SKIP, why))


def anonymous_values(settings: Settings) -> dict[str, str]:
    """The placeholders of the anonymous client's frames: no token, an identity that is nobody's."""
    return {
        "message": settings.journey.conversation[0].message,
        "thread_id": "golden-path-anonymous",
        "user": "anonymous",
        "nonce": "gpn000000000000",
        "token": "",
        "token_b64": "",
        "turn": "1",
    }


async def negative_check(
    offer: protocol.Offer,
    *,
    settings: Settings,
    timeout_s: float,
    redactor: Redactor,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> NegativeOutcome:
    """Upgrade without credentials, then the first turn's frames; a refusal at any step passes."""
    opened = await ws_probe.open_session(
        offer, timeout_s=timeout_s, require_echo=False, redactor=redactor, extra_headers=extra_headers
    )
    if opened.session is None:
        failure = opened.failure
        if failure is not None and failure.kind is Kind.WS_AUTH_REJECTED:
            summary = f"refused without a token (HTTP {failure.detail})"
            return NegativeOutcome(_check(Status.PASS, summary), ws_probe.refusal_of(failure))
        what = failure.message if failure else "no connection"
        return NegativeOutcome(_check(Status.NOT_VERIFIED, f"not verified: {what}"))
    try:
        return await _converse(opened.session, offer=offer, settings=settings, redactor=redactor)
    finally:
        # The verdict is already taken: a polite close must not spend the check's budget (a tenth of run_s).
        # On a burst of frames left unread, websockets reads the close reply only after its queue drains.
        await opened.session.close(deadline_s=CLOSE_S)


async def _converse(
    session: Session, *, offer: protocol.Offer, settings: Settings, redactor: Redactor
) -> NegativeOutcome:
    cfg = settings.journey
    values = anonymous_values(settings)
    waiting = [f for f in cfg.send if f.after is not None]
    sent: list[str] = []
    answered = False  # the server answered a frame we sent (the first exchange)
    served_past = ""  # a frame taken after that answer: the anonymous client is being served
    wait_s = min(WAIT_S, cfg.event_timeout_s)
    step = "the upgrade"
    try:
        for frame in (f for f in cfg.send if f.after is None):
            await session.send(expressions.render(frame.frame, values))
            sent.append(expressions.frame_type(frame.frame))
            step = f"`{sent[-1]}`"
        while True:
            async with asyncio.timeout(wait_s):
                data, _ = await session.receive()
            text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
            try:
                name = protocol.parse_frame(data, event_name=cfg.event_name).name
            except protocol.FrameError:
                name = ""
            if name in cfg.error_events:
                summary = f"refused without a token: `{name[:80]}` after {step}"
                return NegativeOutcome(_check(Status.PASS, summary))
            if name in cfg.expected_events:
                return _accepted(
                    f"A connection with no token got the journey's event `{name[:80]}` after {step}.",
                    offer=offer,
                    sent=sent,
                    frame=redactor.clip(text, FRAME_CHARS),
                )
            answered = answered or bool(sent)
            for frame in [f for f in waiting if f.after == name]:
                waiting.remove(frame)
                await session.send(expressions.render(frame.frame, values))
                sent.append(expressions.frame_type(frame.frame))
                step = f"`{sent[-1]}`"
                if answered and not served_past:
                    served_past = f"`{name[:80]}` answered, then `{sent[-1]}` was taken"
    except Closed as closed:
        code = closed.code if closed.code is not None else closed.client_code
        if code in settings.websocket.auth_close_codes:
            return NegativeOutcome(
                _check(Status.PASS, f"refused without a token (close {code} after {step})")
            )
        reason = redactor.clip(closed.reason, 120) or "no reason"
        summary = (
            f"not verified: the connection without a token was accepted, then closed with {code or 1006} "
            f"({reason}) after {step}, which is not an authentication refusal"
        )
        return NegativeOutcome(_check(Status.NOT_VERIFIED, summary))
    except TimeoutError:
        pass
    if served_past:
        return _accepted(
            f"A connection with no token was served past the first exchange ({served_past}) and still open "
            f"after {wait_s:g} s.",
            offer=offer,
            sent=sent,
        )
    summary = (
        f"not verified: the connection without a token stayed open after {step}, neither refused nor served "
        f"within {wait_s:g} s"
    )
    return NegativeOutcome(_check(Status.NOT_VERIFIED, summary))


def _accepted(message: str, *, offer: protocol.Offer, sent: list[str], frame: str = "") -> NegativeOutcome:
    evidence = ws_probe.offer_evidence(offer) | {
        "status": "101",
        "token": "(none)",
        "frames sent": ", ".join(sent) or "(none)",
    }
    if frame:
        evidence["frame received"] = frame
    failure = Failure(Kind.WS_UNAUTHENTICATED_ACCEPTED, message, evidence=evidence)
    return NegativeOutcome(_check(Status.FAIL, "accepted without a token", failure))


def _check(status: Status, summary: str, failure: Failure | None = None) -> CheckResult:
    return CheckResult("auth-negative", Step.CONNECT, status, None, None, summary, failure)
