"""The check without credentials against real misbehaving servers: a refusal at any opening step passes, the journey's
events or being served past the first exchange fail, anything else is not verified, with the reason."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from bot import protocol
from bot.config import build_settings
from bot.probe.negative import NegativeOutcome, negative_check
from bot.results import Kind, Status
from bot.settings import Settings
from bot.untrusted import Redactor
from tests.standins import hostile_ws


def _settings(**journey: Any) -> Settings:
    return build_settings(
        {"journey": {"event_timeout_s": 0.5, **journey}, "websocket": {"open_timeout_s": 2}}
    )


def _check(url: str, settings: Settings) -> NegativeOutcome:
    offer = protocol.offer(url, settings.websocket, None, frames=[f.frame for f in settings.journey.send])
    return asyncio.run(negative_check(offer, settings=settings, timeout_s=2, redactor=Redactor()))


async def _error_after_message(connection: ServerConnection) -> None:
    await connection.recv()
    await connection.send(json.dumps({"type": "error", "message": "authentication required"}))
    await hostile_ws.hold(connection)


async def _close_4999_after_message(connection: ServerConnection) -> None:
    await connection.recv()
    await connection.close(4999, "who are you")


async def _ack_then_take(connection: ServerConnection) -> None:
    await connection.recv()  # init, with an empty token
    await connection.send(json.dumps({"type": "ack"}))
    await connection.recv()  # the message, taken
    await hostile_ws.hold(connection)


def test_negative_check__an_error_event_after_the_message_is_a_refusal():
    with hostile_ws.running(_error_after_message) as url:
        outcome = _check(url, _settings())
    assert (outcome.check.status, outcome.check.summary) == (
        Status.PASS,
        "refused without a token: `error` after `start_agent`",
    )


@pytest.mark.parametrize("step", ["connect", "message"])
def test_negative_check__an_auth_close_at_any_opening_step_is_a_refusal(step: str):
    with hostile_ws.running(hostile_ws.close_at(step, 1008)) as url:
        outcome = _check(url, _settings())
    assert outcome.check.status is Status.PASS, outcome.check.summary
    assert outcome.check.summary.startswith("refused without a token (close 1008 after")


def test_negative_check__the_journeys_events_for_an_anonymous_client_fail_it():
    with hostile_ws.running(hostile_ws.complete) as url:
        outcome = _check(url, _settings())
    failure = outcome.check.failure
    assert outcome.check.status is Status.FAIL and failure is not None
    assert failure.kind is Kind.WS_UNAUTHENTICATED_ACCEPTED
    assert (
        failure.message
        == "A connection with no token got the journey's event `agent_started` after `start_agent`."
    )
    assert failure.evidence["frames sent"] == "start_agent"
    assert failure.evidence["token"] == "(none)"


def test_negative_check__silence_is_not_verified_never_a_finding():
    with hostile_ws.running(hostile_ws.silence) as url:
        outcome = _check(url, _settings())
    assert outcome.check.status is Status.NOT_VERIFIED
    assert "neither refused nor served within 0.5 s" in outcome.check.summary


@pytest.mark.parametrize(("codes", "status"), [(None, Status.NOT_VERIFIED), ([4999], Status.PASS)])
def test_negative_check__a_close_code_counts_as_refusal_only_when_configured(
    codes: list[int] | None, status: Status
):
    settings = _settings()
    if codes is not None:
        settings = build_settings(
            {
                "journey": {"event_timeout_s": 0.5},
                "websocket": {"open_timeout_s": 2, "auth_close_codes": codes},
            }
        )
    with hostile_ws.running(_close_4999_after_message) as url:
        outcome = _check(url, settings)
    assert outcome.check.status is status, outcome.check.summary


def test_negative_check__served_past_the_first_exchange_is_accepted():
    send = [
        {"frame": '{"type": "init", "token": "{token}"}', "each": "connection"},
        {"frame": '{"type": "message", "text": "{message}"}', "after": "ack"},
    ]
    settings = _settings(send=send, ignored_events=["ack"])
    with hostile_ws.running(_ack_then_take) as url:
        outcome = _check(url, settings)
    failure = outcome.check.failure
    assert outcome.check.status is Status.FAIL and failure is not None
    assert "served past the first exchange (`ack` answered, then `message` was taken)" in failure.message
    assert failure.evidence["frames sent"] == "init, message"
