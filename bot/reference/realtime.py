"""The reference backend's OpenAI-Realtime-like session (the ``openai-realtime`` profile), with the same faults.

The client creates a conversation item (its text at ``item.content[0].text``), then asks for a response; the
server streams ``response.created``, ``response.output_item.added``, several ``response.output_text.delta``,
``response.output_text.done`` and ``response.done`` (the answer at ``response.output[0].content[0].text``).
Events carry no user id, as in the real protocol. Each reference event name of a fault maps to one step here:
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket

from bot.reference.backend import (
    CLOSE_EARLY_REASON,
    ERROR_EVENT_MESSAGE,
    Backend,
    Connection,
    Frame,
    Run,
    finish_run,
    send,
)

# Reference event (as named in --fault specs) -> the realtime event sent at that step.
STEPS = {
    "agent_started": "response.created",
    "agent_thinking": "response.output_item.added",
    "tool_executing": "response.output_text.delta",
    "tool_completed": "response.output_text.done",
    "agent_completed": "response.done",
}
DELTA_CHARS = 16


def endpoint(backend: Backend) -> Callable[[WebSocket], Awaitable[None]]:
    """The WebSocket route of the realtime session: the backend's handshake, then the session."""

    async def realtime_websocket(websocket: WebSocket) -> None:
        user_id = await backend.handshake(websocket)
        if user_id is not None:
            await RealtimeSession(backend, Connection(websocket, user_id, str(uuid.uuid4()))).serve()

    return realtime_websocket


class RealtimeSession:
    def __init__(self, backend: Backend, connection: Connection) -> None:
        self.backend = backend
        self.connection = connection
        self.text: str | None = None
        self.runs: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        backend, websocket = self.backend, self.connection.websocket
        backend.registry.add(self.connection)
        try:
            session = {"id": f"sess_{uuid.uuid4().hex[:12]}", "modalities": ["text"]}
            await send(websocket, {"type": "session.created", "event_id": _id(), "session": session})
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                run = await self._read(message)
                if run is not None:
                    task = asyncio.create_task(self._run(run))
                    self.runs.add(task)
                    task.add_done_callback(finish_run(self.runs))
        finally:
            backend.registry.remove(self.connection)
            for task in self.runs:
                task.cancel()
            await asyncio.gather(*self.runs, return_exceptions=True)

    async def _read(self, message: Any) -> Run | None:
        websocket = self.connection.websocket
        try:
            frame = json.loads(
                message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            )
        except ValueError as exc:
            await send(websocket, _error(f"invalid JSON: {exc}"))
            return None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "conversation.item.create":
            try:
                text = frame["item"]["content"][0]["text"]
            except (KeyError, IndexError, TypeError):
                text = None
            if not isinstance(text, str) or not text.strip():
                await send(websocket, _error("conversation.item.create: item.content[0].text must be text"))
                return None
            self.text = text
            item = {"id": f"item_{uuid.uuid4().hex[:12]}", "type": "message", "role": "user"}
            await send(websocket, {"type": "conversation.item.created", "event_id": _id(), "item": item})
            return None
        if kind == "response.create":
            if self.text is None:
                await send(websocket, _error("response.create before any conversation.item.create"))
                return None
            run_id = f"resp_{uuid.uuid4().hex[:12]}"
            return Run(user_id=self.connection.user_id, run_id=run_id, thread_id=run_id, text=self.text)
        await send(websocket, _error(f"unknown event type {kind!r}"))
        return None

    async def _run(self, run: Run) -> None:
        """The response's events, bent by the same faults as the reference protocol's."""
        backend, faults, websocket = self.backend, self.backend.faults, self.connection.websocket
        if faults.cross_talk:
            stale = backend.registry.stale_event(not_for=run.user_id)
            if stale is not None:
                await send(websocket, stale)
        answer = backend.answer(run.text)
        order = faults.event_order()
        for step in order:
            if step == "agent_completed" and faults.never_complete:
                return
            await backend.pause(step)
            if step == "tool_executing" and faults.error_event:
                error = _error(ERROR_EVENT_MESSAGE, code="invalid_api_key")
                await backend.emit(self.connection, run, error)
                return
            if step not in faults.drop_events:
                for frame in _frames(step, run.run_id, answer):
                    await backend.emit(self.connection, run, frame)
            if step == "agent_thinking":
                if faults.close_early:
                    await websocket.close(code=1000, reason=CLOSE_EARLY_REASON)
                    return
                await backend.pause("heartbeat")
                if "heartbeat" not in faults.drop_events:
                    limits = [{"name": "tokens", "limit": 1000, "remaining": 990}]
                    await send(websocket, {"type": "rate_limits.updated", "rate_limits": limits})


def _frames(step: str, response_id: str, answer: str) -> list[Frame]:
    name = STEPS[step]
    if name == "response.created":
        return [{"type": name, "event_id": _id(), "response": {"id": response_id, "status": "in_progress"}}]
    if name == "response.output_item.added":
        item = {"id": f"item_{response_id}", "type": "message", "role": "assistant", "content": []}
        return [
            {"type": name, "event_id": _id(), "response_id": response_id, "output_index": 0, "item": item}
        ]
    if name == "response.output_text.delta":
        chunks = [answer[i : i + DELTA_CHARS] for i in range(0, len(answer), DELTA_CHARS)] or [""]
        return [{"type": name, "event_id": _id(), "response_id": response_id, "delta": c} for c in chunks]
    if name == "response.output_text.done":
        return [{"type": name, "event_id": _id(), "response_id": response_id, "text": answer}]
    output = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": answer}]}]
    response = {"id": response_id, "status": "completed", "output": output}
    return [{"type": name, "event_id": _id(), "response": response}]


def _error(message: str, *, code: str = "invalid_request_error") -> Frame:
    return {"type": "error", "event_id": _id(), "error": {"type": code, "message": message}}


def _id() -> str:
    return f"event_{uuid.uuid4().hex[:16]}"
