"""One user's journey over Server-Sent Events, and the negative check: the request steps, then per turn the stream
request (the message travels in its body) and the events until the completion event, an error event, the end of
the body or a deadline.

The frames are accounted for by the journey (``bot.probe.journey``) through the ``take`` callback, exactly as
WebSocket frames are, so every judge (events, isolation, answer, SLA, metrics) works unchanged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import httpx

from bot import expressions, judge, protocol, untrusted
from bot.probe import hold as holding
from bot.probe import sse
from bot.probe import steps as request_steps
from bot.probe.deadline import MovingDeadline
from bot.probe.record import LATER_STEPS, Hooks, Stream, later_turns, turn_suffix
from bot.results import CheckResult, ConnectionHold, Failure, Kind, Status, Step
from bot.settings import Settings, SseHistorySettings, TurnSettings
from bot.timestamps import elapsed_ms

if TYPE_CHECKING:
    from bot.probe.journey import UserJourney

EVIDENCE_FRAME_CHARS = 1000


def stream_request(
    settings: Settings,
    base_url: str,
    user: request_steps.UserValues,
    token: str | None,
    *,
    earlier: Sequence[Mapping[str, str]] = (),
) -> sse.StreamRequest:
    """The stream request of a turn; ``earlier``: the earlier turns' values (``message``, ``answer``, ``turn``)
    for a body that carries the conversation (``sse.history``)."""
    cfg = settings.sse
    path = expressions.render_path(cfg.path, user.values)
    headers = [
        *request_steps.token_headers(cfg.token, token),
        *request_steps.header_values(cfg.headers, user.values, token),
        *user.cookie_header(),
    ]
    body = expressions.render(cfg.body, user.values) if cfg.body is not None else None
    if body is not None and earlier and cfg.history is not None:
        body = with_history(body, cfg.history, [{**user.values, **turn} for turn in earlier])
    url = protocol.http_url(base_url, path, query=request_steps.token_query(cfg.token, token))
    return sse.StreamRequest(cfg.method, url, tuple(headers), body)


def with_history(body: str, history: SseHistorySettings, earlier: Sequence[Mapping[str, str]]) -> str:
    """The body with the earlier turns' messages (``history.turn`` filled with each turn's values) before the
    items of its list at ``history.at`` (a list there is checked when the settings are read)."""
    document = json.loads(body)
    items = expressions.dotted(document, history.at)
    assert isinstance(items, list), history.at
    items[:0] = [m for values in earlier for m in json.loads(expressions.render(history.turn, values))]
    return json.dumps(document, ensure_ascii=False)


async def open_stream(
    http: httpx.AsyncClient, settings: Settings, request: sse.StreamRequest, redactor: untrusted.Redactor
) -> sse.Opened:
    cfg = settings.sse
    return await sse.open_stream(
        http,
        request,
        timeout_s=cfg.open_timeout_s,
        sentinel=cfg.sentinel,
        body_end_event=cfg.body_end_event,
        event_field=cfg.event_field,
        redactor=redactor,
    )


async def run_journey(journey: UserJourney, run: request_steps.UserRun) -> None:
    """Request steps, then one request per turn whose answer streams that turn's events (the message is its
    body). The turns of a conversation share this user's own connection pool, kept alive between them as a
    browser's is; ``reconnect: true`` closes it and opens a new one (same cookies, same extracted values, the
    token renewed when due). The HTTP clients add the trace and ID-token headers themselves."""
    settings = run.settings
    conversation = settings.journey.conversation
    journey.step = Step.CONNECT
    own = run.own_client is not None and len(conversation) > 1
    http = run.own_client() if own and run.own_client is not None else run.http
    try:
        if settings.journey.requests:
            outcome = await request_steps.run(
                http,
                settings.journey.requests,
                base_url=run.base_url,
                user=run.user,
                token=run.token,
                way=settings.sse.token,
                redactor=run.redactor,
            )
            if outcome.failure is not None:
                journey.add("handshake", Step.CONNECT, Status.FAIL, failure=outcome.failure)
                journey.skip(*LATER_STEPS[1:], why="a request step before the stream failed")
                return
        earlier: list[dict[str, str]] = []  # the completed turns' values, for sse.history
        reconnected = False
        for number, spec in enumerate(conversation, start=1):
            reconnect = number > 1 and spec.reconnect
            reconnected = reconnected or reconnect
            turn = Turn(spec, number, reconnect=reconnect, reconnected=reconnected)
            # A later turn is this turn from its start: a deadline during its reconnect is judged as its own.
            stream = Stream(sent=asyncio.get_running_loop().time(), turn=number, reconnected=reconnected)
            hooks = run.begin_turn(journey, stream) if number > 1 else None
            if reconnect:
                if http is not run.http:
                    await http.aclose()
                http = run.own_client() if run.own_client is not None else run.http
                if run.renew is not None:
                    run = replace(run, token=await run.renew())
            answer = await _turn(journey, run, http, turn, earlier, stream, hooks)
            if answer is None:
                if not journey.streams:
                    return  # turn 1's request failed: no stream to judge after the phase
                journey.skip(
                    *later_turns(number + 1, len(conversation)), why=f"turn {number} did not complete"
                )
                break
            earlier.append({"message": spec.message, "answer": answer, "turn": str(number)})
    finally:
        if http is not run.http:
            await http.aclose()
    journey.received = journey.received or time.perf_counter()
    journey.step = Step.ANSWER


@dataclass(frozen=True, slots=True)
class Turn:
    spec: TurnSettings
    number: int
    reconnect: bool  # this turn opens a new connection
    reconnected: bool  # this turn, or an earlier one, did


async def _turn(
    journey: UserJourney,
    run: request_steps.UserRun,
    http: httpx.AsyncClient,
    turn: Turn,
    earlier: list[dict[str, str]],
    stream: Stream,
    hooks: Hooks | None,
) -> str | None:
    """One turn: its request (turn 1's answer is the ``handshake``, a reconnect's ``reconnect (turn k)``, a
    later turn's its ``message``), then its events into ``stream`` (``hooks``: registered at the turn's start,
    None for turn 1); the answer read when it completed, else None."""
    settings = run.settings
    number, suffix = turn.number, turn_suffix(turn.number)
    run.user.values |= {"message": turn.spec.message, "turn": str(number), "turn_id": protocol.new_uuid()}
    request = stream_request(settings, run.base_url, run.user, run.token, earlier=earlier)
    stream.sent = stream.last_expected = opened_at = asyncio.get_running_loop().time()
    if number == 1:
        journey.timings.connect_started = opened_at
    opening = "handshake" if number == 1 else f"reconnect{suffix}" if turn.reconnect else ""
    journey.step = Step.CONNECT if opening else Step.MESSAGE
    opened = await open_stream(http, settings, request, run.redactor)
    sent = f"sent in the {request.method} body"
    if opened.stream is None:
        assert opened.failure is not None
        stream.judged = True  # nothing was received: the request's check says why
        failure = opened.failure
        if turn.reconnect and opened.status in (404, 410):
            failure = _session_not_found(failure, number)
        if opening:
            journey.add(opening, Step.CONNECT, Status.FAIL, duration_ms=opened.elapsed_ms, failure=failure)
            journey.skip(*later_turns(number, number), why="no stream")
        else:
            journey.add(
                f"message{suffix}", Step.MESSAGE, Status.FAIL, duration_ms=opened.elapsed_ms, failure=failure
            )
            journey.skip(*later_turns(number, number)[1:], why="no stream")
        return None
    answered = f"HTTP {opened.status} text/event-stream"
    if opening:
        if number == 1:
            journey.timings.handshake = opened.elapsed_ms
        journey.add(opening, Step.CONNECT, Status.PASS, duration_ms=opened.elapsed_ms, summary=answered)
        journey.add(f"message{suffix}", Step.MESSAGE, Status.PASS, summary=sent)
    else:
        journey.add(
            f"message{suffix}",
            Step.MESSAGE,
            Status.PASS,
            duration_ms=opened.elapsed_ms,
            summary=f"{sent}; {answered}",
        )
    journey.step = Step.AGENT
    journey.stream = stream
    more = number < len(settings.journey.conversation)
    try:
        hooks = hooks or run.hooks(stream)
        await receive(opened.stream, stream, settings, hooks=hooks, clip=run.redactor.clip)
        if more and stream.completion is not None:
            await opened.stream.drain()  # the connection goes back to the pool for the next turn
        elif not more and run.hold_s:
            journey.received = time.perf_counter()  # the journey's time ends here, not after the hold
            journey.hold = await _hold(opened.stream, stream, run, user=journey.user, opened_at=opened_at)
    finally:
        await opened.stream.aclose()
    if stream.completion is None:
        return None
    # The answer is read here only for the next turn's body (sse.history); the judge reads it after the phase.
    return judge.answer_of(stream, settings.journey)[0] if more and settings.sse.history is not None else ""


async def _hold(
    events: sse.EventStream, stream: Stream, run: request_steps.UserRun, *, user: int, opened_at: float
) -> ConnectionHold:
    """Keep reading a completed journey's stream for ``journey.hold_s`` (within the run's deadline) when it is still
    open, counting `:` comments (the keepalive) and events. A stream that ended with its answer (the sentinel or
    the end of the body, as ADK, OpenAI-compatible and AI SDK streams do) has nothing to hold: said so."""
    wanted = run.hold_s
    if stream.completion is None or stream.failure is not None:
        return holding.not_held(user, wanted, "the journey did not complete on this stream", transport="sse")
    if events.finished:
        return holding.not_held(user, wanted, holding.CLOSED_WITH_ANSWER, transport="sse")
    clock = holding.Clock(user, wanted, opened_at, "sse")
    start = clock.start
    comments, frames = events.comments, 0

    def ended(closed_by: str, reason: str) -> ConnectionHold:
        return clock.ended(closed_by, reason, frames=frames, comments=events.comments - comments)

    try:
        async with asyncio.timeout(max(0.0, min(wanted, run.deadline - start - 1.0))):
            while not events.finished:
                await events.recv()
                frames += 1
    except TimeoutError:
        return ended("", "")
    except sse.EventTooLarge as exc:
        return ended("golden-path", f"the stream sent {exc}")
    except sse.StreamEnded as exc:
        if exc.error:
            return ended("network", f"the body ended unfinished ({run.redactor.clip(exc.error, 200)})")
        return ended("server", "the server ended the response body")
    frames -= 1  # the last was the sentinel or the end of the body, not an event
    what = f"`{run.settings.sse.sentinel}`" if events.sentinel_seen else "the end of the body"
    return ended("server", f"the server ended the stream ({what})")


def _session_not_found(failure: Failure, number: int) -> Failure:
    """A reconnect's stream request answered 404/410 after the earlier turns were served on another connection:
    the session lives where the new connection did not arrive (e.g. ADK's in-memory sessions, another
    instance)."""
    return Failure(
        Kind.SESSION_LOST,
        f"After reconnecting as the same user, turn {number}'s stream request was answered HTTP "
        f"{failure.detail}, although the earlier turns were served: the session is not known where the new "
        "connection arrived.",
        detail=f"turn-{number}",
        evidence=failure.evidence
        | {"reconnected": "as the same user, on a new connection, same session values"},
    )


async def receive(
    events: sse.EventStream,
    stream: Stream,
    settings: Settings,
    *,
    hooks: Hooks,
    clip: Callable[[str, int], str],
) -> None:
    """Read events until the completion event, an error event, the end of the body or a deadline; how the
    stream ended early goes into ``stream.failure``."""
    cfg = settings.journey
    try:
        async with MovingDeadline(hooks.due):  # moved by expected events, read when its timer fires
            while stream.completion is None and stream.failure is None:
                name = hooks.take(await events.recv())
                if name is not None and name in cfg.error_events:
                    stream.failure = stream.error_event(name, " in the event stream")
                    return
    except TimeoutError:
        stream.failure = hooks.stalled()
    except sse.EventTooLarge as exc:
        stream.failure = Failure(
            Kind.STREAM_PROTOCOL, f"The event stream sent {exc}.", detail="line", evidence=stream.evidence()
        )
    except sse.StreamEnded as ended:
        if events.sentinel_seen:
            return  # the server ended the stream on purpose: what is missing is judged as missing
        stream.failure = _ended_early(ended, stream, settings, hooks.waiting_for(), clip)


def _ended_early(
    ended: sse.StreamEnded,
    stream: Stream,
    settings: Settings,
    waiting_for: str,
    clip: Callable[[str, int], str],
) -> Failure:
    if ended.events == 0:
        said = "The response body ended before any event was sent"
    else:
        plural = "s" if ended.events != 1 else ""
        said = f"The response body ended after {ended.events} event{plural}, before `{waiting_for}`"
    if settings.sse.sentinel is not None:
        said += f", with no `{settings.sse.sentinel}`"
    evidence = stream.evidence()
    if ended.error:
        evidence["error"] = clip(ended.error, 300)
    return Failure(
        Kind.STREAM_CLOSED_EARLY, said + ".", detail=settings.journey.completion_event, evidence=evidence
    )


async def negative_check(
    settings: Settings,
    *,
    base_url: str,
    deadline: float,
    redactor: untrusted.Redactor,
    http: httpx.AsyncClient,
) -> CheckResult:
    """The journey's opening without a token: the request steps, then the stream request. A refusal passes: HTTP
    401/403 at any of them, or an error event before any journey event. Only the journey's own events served
    to the anonymous client fail; anything else proves nothing (`not verified`, with what happened)."""
    cfg = settings.journey
    started = time.perf_counter()
    user = request_steps.anonymous_user(settings)

    def result(status: Status, summary: str, failure: Failure | None = None) -> CheckResult:
        return CheckResult("auth-negative", Step.CONNECT, status, elapsed_ms(started), None, summary, failure)

    loop = asyncio.get_running_loop()
    budget = max(0.1, min(settings.sse.open_timeout_s + min(cfg.event_timeout_s, 10), deadline - loop.time()))
    try:
        async with asyncio.timeout(budget):
            if cfg.requests:
                outcome = await request_steps.run(
                    http,
                    cfg.requests,
                    base_url=base_url,
                    user=user,
                    token=None,
                    way=settings.sse.token,
                    redactor=redactor,
                )
                if outcome.refused:
                    assert outcome.failure is not None
                    detail = outcome.failure.detail
                    return result(Status.PASS, f"refused without a token at a request step (HTTP {detail})")
                if outcome.failure is not None:
                    return result(Status.NOT_VERIFIED, f"not verified: {outcome.failure.message}")
            request = stream_request(settings, base_url, user, None)
            opened = await open_stream(http, settings, request, redactor)
            if opened.stream is None:
                failure = opened.failure
                if failure is not None and failure.kind is Kind.STREAM_AUTH_REJECTED:
                    return result(Status.PASS, f"refused without a token (HTTP {failure.detail})")
                what = failure.message if failure else "no stream"
                return result(Status.NOT_VERIFIED, f"not verified: {what}")
            try:
                return await _anonymous_events(opened.stream, settings, request, result, redactor)
            finally:
                await opened.stream.aclose()
    except TimeoutError:
        return result(
            Status.NOT_VERIFIED, "not verified: no refusal and no journey event before the deadline"
        )


async def _anonymous_events(
    events: sse.EventStream,
    settings: Settings,
    request: sse.StreamRequest,
    result: Callable[..., CheckResult],
    redactor: untrusted.Redactor,
) -> CheckResult:
    cfg = settings.journey
    seen = 0
    while True:
        try:
            message = await events.recv()
        except (sse.StreamEnded, sse.EventTooLarge):
            return result(
                Status.NOT_VERIFIED,
                f"not verified: the stream without a token ended after {seen} event(s), none of the journey's",
            )
        seen += 1
        try:
            frame = protocol.parse_frame(message.raw, event_name=cfg.event_name, name=message.name)
        except protocol.FrameError:
            continue
        if frame.name in cfg.error_events:
            return result(
                Status.PASS, f"refused without a token: `{frame.name[:80]}` before any journey event"
            )
        if frame.name in cfg.expected_events and frame.name != settings.sse.sentinel:
            failure = Failure(
                Kind.STREAM_UNAUTHENTICATED_ACCEPTED,
                "A stream request with no token was answered with the journey's own events "
                f"(`{frame.name[:80]}`).",
                evidence=sse.request_evidence(request)
                | {
                    "status": "200",
                    "token": "(none)",
                    "first journey event": redactor.clip(frame.raw, EVIDENCE_FRAME_CHARS),
                },
            )
            return result(Status.FAIL, "served without a token", failure)
