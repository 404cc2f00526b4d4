"""Fault injection for the reference backend: which breakage to show, parsed from ``--fault`` specs.

Each fault reproduces one way real deployments break the golden path (DESIGN.md sections 4 and 8), so the probe,
the diagnosis and the report are exercised end to end against a real server instead of mocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.errors import UsageError

# The agent's events, in the order a healthy run sends them (the default profile's expected events).
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
# Frames a fault may also drop or delay: the welcome and the heartbeat.
FRAMES = (*EVENTS, "connection_established", "heartbeat")

STALE_VERSION = "0000000-stale"
MAX_MS = 600_000.0

FAULTS: dict[str, str] = {
    "ws-502": "answer the WebSocket upgrade with HTTP 502 (backend down / upgrades not routed)",
    "ws-403": "refuse every WebSocket, even with a valid token: close before accept (HTTP 403)",
    "rate-limited": "answer the WebSocket upgrade with HTTP 429 and Retry-After: 30",
    "subprotocol-none": "accept the WebSocket without echoing the offered subprotocol (browsers drop it); "
    "when none is offered, select one anyway (the client must refuse it)",
    "accept-unauthenticated": "accept WebSockets without a valid token (a valid token still names the user)",
    "drop-event:NAME": "never send event NAME, e.g. drop-event:tool_executing",
    "delay:NAME=MS": "wait MS extra milliseconds before sending event NAME, e.g. delay:agent_thinking=2000",
    "close-early": "close the WebSocket (1000 'main cleanup') right after agent_thinking (SSE: end the body there)",
    "end-at-once": "close the WebSocket right after accepting it (SSE: a 200 text/event-stream body with no event)",
    "cross-talk": "send every event to every connection, and replay another user's last event to each new run",
    "canned-answer": "answer with the canned fallback 'Agent response for: <message>'",
    "empty-answer": "complete the run with an empty answer",
    "error-event": "send agent_error (LLM provider 401) instead of tool_executing and stop the run",
    "out-of-order": "send tool_completed before tool_executing",
    "never-complete": "never send agent_completed; keep the connection open and silent",
    "hang": "never answer the WebSocket upgrade (the client must time out)",
    "health-503": "answer health checks with 503 (redis down); the WebSocket still works",
    "wrong-service": "answer health checks as the 'frontend' service (the host routes to the wrong service)",
    "stale-version": f"report version '{STALE_VERSION}' in health checks (the old code is serving)",
    "slow-handshake:MS": "wait MS milliseconds before accepting the WebSocket, e.g. slow-handshake:3000",
    "cold-start:MS": "answer the first request (health, an upgrade, a stream, a Socket.IO handshake: whatever "
    "arrives first) MS milliseconds late, as a starting instance does, e.g. cold-start:1500",
    "max-age:MS": "close every WebSocket MS milliseconds after accepting it (1001 'max connection age'; Socket.IO: "
    "a DISCONNECT), as a server or proxy with a connection lifetime does, e.g. max-age:2000",
    "garbage": "answer the WebSocket upgrade with bytes that are not HTTP (needs ReferenceServer/serve_forever)",
    "forget-sessions": "keep a conversation only where it started (SSE and Socket.IO wires; a later turn's answer "
    "names what was said before): ADK's sessions in one connection's memory (`Session not found` on another), "
    "Chainlit's in the Socket.IO connection's (a reconnect starts afresh); the OpenAI and AI SDK routes read only "
    "the last message (the history the client sent is dropped). The WebSocket reference keeps no conversation",
}

# Faults without a parameter: spec name -> Faults field.
_SWITCHES = {
    "ws-502": "ws_502",
    "ws-403": "ws_403",
    "rate-limited": "rate_limited",
    "subprotocol-none": "subprotocol_none",
    "accept-unauthenticated": "accept_unauthenticated",
    "close-early": "close_early",
    "end-at-once": "end_at_once",
    "cross-talk": "cross_talk",
    "canned-answer": "canned_answer",
    "empty-answer": "empty_answer",
    "error-event": "error_event",
    "out-of-order": "out_of_order",
    "never-complete": "never_complete",
    "hang": "hang",
    "health-503": "health_503",
    "wrong-service": "wrong_service",
    "stale-version": "stale_version",
    "garbage": "garbage",
    "forget-sessions": "forget_sessions",
}
# Faults taking milliseconds: spec name -> (Faults field, the example value in its error message).
_DURATIONS = {
    "slow-handshake": ("slow_handshake_ms", "3000"),
    "cold-start": ("cold_start_ms", "1500"),
    "max-age": ("max_age_ms", "2000"),
}


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults a reference backend shows; ``Faults()`` is a healthy backend."""

    ws_502: bool = False
    ws_403: bool = False
    rate_limited: bool = False
    subprotocol_none: bool = False
    accept_unauthenticated: bool = False
    drop_events: frozenset[str] = frozenset()
    delays_ms: tuple[tuple[str, float], ...] = ()  # (frame type, extra ms); several for one frame add up
    close_early: bool = False
    end_at_once: bool = False
    cross_talk: bool = False
    canned_answer: bool = False
    empty_answer: bool = False
    error_event: bool = False
    out_of_order: bool = False
    never_complete: bool = False
    hang: bool = False
    health_503: bool = False
    wrong_service: bool = False
    stale_version: bool = False
    slow_handshake_ms: float = 0.0
    cold_start_ms: float = 0.0
    max_age_ms: float = 0.0
    garbage: bool = False
    forget_sessions: bool = False

    def event_order(self) -> list[str]:
        """The agent's events in the order a run sends them: out-of-order swaps tool_executing and tool_completed."""
        order = list(EVENTS)
        if self.out_of_order:
            order[2], order[3] = order[3], order[2]
        return order

    def extra_delay_ms(self, frame: str) -> float:
        return sum(ms for name, ms in self.delays_ms if name == frame)

    def specs(self) -> tuple[str, ...]:
        """The ``--fault`` specs that build these faults again (for banners and logs); () when healthy."""
        out = [name for name, attr in _SWITCHES.items() if getattr(self, attr)]
        out += [f"drop-event:{name}" for name in sorted(self.drop_events)]
        out += [f"delay:{name}={_format_ms(ms)}" for name, ms in self.delays_ms]
        out += [
            f"{name}:{_format_ms(getattr(self, attr))}"
            for name, (attr, _) in _DURATIONS.items()
            if getattr(self, attr)
        ]
        return tuple(out)


def faults_help() -> str:
    """The faults, one a line: the epilog of ``serve-reference --help``."""
    return "faults:\n" + "\n".join(f"  {name:28} {text}" for name, text in FAULTS.items())


def parse_faults(specs: Sequence[str]) -> Faults:
    """Build ``Faults`` from specs like ``ws-502`` or ``delay:agent_thinking=500``.

    A spec may hold several faults separated by commas, as action inputs do (``"ws-502,close-early"``).

    Raises:
        UsageError: an unknown fault, or a parameter that is missing, extra or malformed.
    """
    faults = Faults()
    for spec in specs:
        for part in spec.split(","):
            if part.strip():
                faults = _apply(faults, part.strip())
    return faults


def _apply(faults: Faults, spec: str) -> Faults:
    name, sep, param = spec.partition(":")
    if name in _SWITCHES:
        if sep:
            raise UsageError(f"fault {spec!r}: {name!r} takes no parameter")
        switch: dict[str, Any] = {_SWITCHES[name]: True}
        return replace(faults, **switch)
    if name == "drop-event":
        frame = _frame(spec, param, example="drop-event:tool_executing")
        return replace(faults, drop_events=faults.drop_events | {frame})
    if name == "delay":
        frame_name, eq, ms_text = param.partition("=")
        frame = _frame(spec, frame_name, example="delay:agent_thinking=500")
        if not eq:
            raise UsageError(f"fault {spec!r}: expected delay:NAME=MS, e.g. delay:agent_thinking=500")
        ms = _milliseconds(spec, ms_text)
        return replace(faults, delays_ms=(*faults.delays_ms, (frame, ms)))
    if name in _DURATIONS:
        attr, example = _DURATIONS[name]
        if not sep:
            raise UsageError(f"fault {spec!r}: expected {name}:MS, e.g. {name}:{example}")
        duration: dict[str, Any] = {attr: _milliseconds(spec, param)}
        return replace(faults, **duration)
    raise UsageError(f"unknown fault {spec!r}; expected one of: {', '.join(FAULTS)}")


def _frame(spec: str, name: str, *, example: str) -> str:
    if not name:
        raise UsageError(f"fault {spec!r}: expected an event name, e.g. {example}")
    if name not in FRAMES:
        raise UsageError(f"fault {spec!r}: unknown event {name!r}; expected one of: {', '.join(FRAMES)}")
    return name


def _milliseconds(spec: str, text: str) -> float:
    try:
        ms = float(text)
    except ValueError:
        ms = math.nan
    if not (0 <= ms <= MAX_MS):  # also rejects nan
        raise UsageError(
            f"fault {spec!r}: expected milliseconds (a number from 0 to {MAX_MS:.0f}), got {text!r}"
        )
    return ms


def _format_ms(ms: float) -> str:
    return str(int(ms)) if ms.is_integer() else str(ms)
