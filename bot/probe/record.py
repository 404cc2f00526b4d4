"""What the probe records of one user's journey: raw timings and the event stream as it arrived. Plain data.

The probe (``bot.probe.journey``) fills these while frames arrive, with bounded, constant work per frame; the
judge (``bot.judge``) turns them into checks once the phase is over, so judging one user never delays the
frames other users are receiving.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot import protocol
from bot.results import Failure, Kind, Step

FRAME_EVIDENCE = 10  # the last frames kept as evidence per user
EVIDENCE_CHARS = 2000  # per piece of evidence kept
# The checks after login, in order: skipped with a reason when the journey stops before them.
LATER_STEPS = (
    ("handshake", Step.CONNECT),
    ("message", Step.MESSAGE),
    ("events", Step.AGENT),
    ("isolation", Step.ISOLATION),
    ("answer", Step.ANSWER),
)


def turn_suffix(number: int) -> str:
    """How a turn's checks are named: turn 1's keep their ids (``events``), a later turn's say which turn."""
    return "" if number == 1 else f" (turn {number})"


def later_turns(first: int, last: int) -> list[tuple[str, Step]]:
    """The message, events, isolation and answer checks of turns ``first`` to ``last``, named as theirs."""
    return [(f"{c}{turn_suffix(n)}", s) for n in range(first, last + 1) for c, s in LATER_STEPS[1:]]


@dataclass(slots=True)
class Timings:
    """Raw figures from one user's journey (milliseconds), None when the step was not reached."""

    handshake: float | None = None
    agent_startup: float | None = None  # message sent -> first expected event
    processing: float | None = None  # first expected event -> completion event
    max_event_gap: float | None = None
    total: float | None = None  # login start -> answer
    events: dict[str, float] = field(default_factory=dict)  # event -> ms after the message was sent
    message_sent_at: float | None = None  # loop time (CLOCK_MONOTONIC seconds)
    # Loop time the journey's first connection attempt began (upgrade, stream request, Socket.IO connect): the run's
    # earliest is its first connection after deploy, measured apart from the warm handshake figures.
    connect_started: float | None = None

    def take(self, stream: Stream, completion_event: str) -> None:
        """The figures the stream's arrival stamps give (also for a stream a deadline cut short)."""
        self.message_sent_at = round(stream.sent, 6)
        if not stream.arrivals:
            return
        first = min(stream.arrivals.values())
        self.agent_startup = round((first - stream.sent) * 1000, 2)
        self.events = {name: round((at - stream.sent) * 1000, 3) for name, at in stream.arrivals.items()}
        self.max_event_gap = round(stream.max_gap, 2) if stream.gaps else None
        if stream.completion is not None:
            self.processing = round((stream.arrivals[completion_event] - first) * 1000, 2)


@dataclass(slots=True)
class Stream:
    """What one user's event stream showed so far, bounded; judged even when a deadline cuts it short."""

    sent: float  # loop time the first frame was sent
    arrivals: dict[str, float] = field(default_factory=dict)  # first arrival of each expected event
    order: list[str] = field(default_factory=list)
    others: dict[str, int] = field(default_factory=dict)  # frames that are not expected events, by name
    frames: deque[str] = field(default_factory=lambda: deque(maxlen=FRAME_EVIDENCE))
    leaks: list[str] = field(default_factory=list)
    leak_count: int = 0
    owned: bool = False  # some event named its owner
    owned_by: set[str] = field(
        default_factory=set
    )  # the owner fields (user, run, thread) events named as ours
    own_nonce_seen: bool = False
    answer_parts: list[str] = field(default_factory=list)
    answer_chars: int = 0
    run_id: str | None = None
    completion: protocol.Frame | None = None
    failure: Failure | None = None  # how the stream ended early (error frame, close, stall, deadline)
    last_expected: float = 0.0  # the event deadline runs from here
    last_gap: float = 0.0  # the longest-gap clock (journey.gap: all frames or expected events, repeats too)
    max_gap: float = 0.0
    gaps: int = 0
    judged: bool = False
    ended: str | None = None  # an end event (journey.end_events) that closed the stream before completion
    sent_frames: list[str] = field(default_factory=list)  # the frames this turn sent, by type
    turn: int = 1
    reconnected: bool = False  # this turn, or an earlier one, reconnected (turns[].reconnect)
    cut: bool = False  # the run's deadline, not the stream, ended it

    def evidence(self) -> dict[str, str]:
        others = ", ".join(f"{name} ×{count}" for name, count in self.others.items())
        out = {"events received": ", ".join(self.order) or "(none)", "frames": "\n".join(self.frames)}
        if others:
            out["other frames"] = others
        return out

    def error_event(self, name: str, where: str = "") -> Failure:
        """The `event-error` failure for the error event ``name`` (``where``: e.g. " in the event stream")."""
        return Failure(
            Kind.EVENT_ERROR,
            f"The server sent `{name[:80]}`{where} instead of the agent's events.",
            detail=name[:80],
            evidence=self.evidence() | {"error frame": self.frames[-1] if self.frames else ""},
        )


@dataclass(slots=True)
class Message:
    """One received event as the journey reads it: its raw text, its name when the transport knows it (an SSE
    `event:` field, a sentinel, a Socket.IO event qualified for this run), and its arrival (loop time)."""

    raw: str
    name: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Hooks:
    """The journey's per-event bookkeeping, handed to a transport's receive loop (SSE, Socket.IO): ``take``
    records one event and returns its name when the loop must act on it; ``due`` is the next deadline;
    ``stalled`` the failure when it passes; ``waiting_for`` the event awaited."""

    take: Callable[[Message], str | None]
    due: Callable[[], float]
    stalled: Callable[[], Failure]
    waiting_for: Callable[[], str]
