"""The reference backend's Server-Sent Events routes: an OpenAI-compatible chat completions stream, Google ADK's
API server (sessions and ``/run_sse``) and the Vercel AI SDK's UI message stream, with the same faults.

Each wire is the real one: the OpenAI stream is served by sse-starlette (as llama-cpp-python and other
OpenAI-compatible Python servers do) and read by the official ``openai`` client in the tests; the ADK and AI SDK
streams reproduce, byte for byte apart from ids and text, what ADK 2.13's ``adk api_server`` and ``ai`` 7.0's
``toUIMessageStreamResponse()`` sent when recorded (``tests/fixtures/adk``, ``tests/fixtures/ai-sdk``, each
with how it was recorded). Each reference event of a fault maps to one step of each stream (``STEPS``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.reference.backend import Answers, Stamps, subject_of, wait_before
from bot.reference.faults import Faults

OPENAI_PATH = "/v1/chat/completions"
ADK_SESSIONS_PATH = "/apps/{app}/users/{user}/sessions"
ADK_RUN_PATH = "/run_sse"
AI_SDK_PATH = "/api/chat"
ERROR_MESSAGE = "LLM provider returned 401: invalid API key"
DELTA_CHARS = 16
_COMPACT = (",", ":")  # pydantic_core.to_json and JSON.stringify write no spaces
AI_SDK_HEADERS = {
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-accel-buffering": "no",
    "x-vercel-ai-ui-message-stream": "v1",
}
# What each reference event (as named in --fault specs) is in each stream.
STEPS = {
    "openai-chat": {
        "agent_started": "the first chunk (role)",
        "agent_thinking": "(nothing)",
        "tool_executing": "the content chunks",
        "tool_completed": "the finish chunk",
        "agent_completed": "[DONE]",
    },
    "adk": {
        "agent_started": "the functionCall event",
        "agent_thinking": "the functionResponse event",
        "tool_executing": "the partial text event",
        "tool_completed": "(nothing)",
        "agent_completed": "the final text event",
    },
    "ai-sdk": {
        "agent_started": "start, start-step",
        "agent_thinking": "tool-input-available",
        "tool_executing": "tool-output-available, finish-step, start-step, text-start",
        "tool_completed": "text-delta..., text-end",
        "agent_completed": "finish-step, finish, [DONE]",
    },
}


class StreamBackend:
    """The SSE handlers, sharing the secret, the faults and the recent messages (for the cross-talk fault)."""

    def __init__(
        self,
        *,
        secret: str,
        faults: Faults,
        answer: Callable[[str], str],
        event_delay_s: float = 0.01,
        stamps: Stamps | None = None,
    ) -> None:
        self.stamps = stamps  # benchmarks: when each run's request arrived and completed
        self.secret = secret
        self.faults = faults
        self.answers = Answers(faults, answer)
        self.event_delay_s = event_delay_s
        # (app, user, session id) -> what the user said in it (a shared session service: every instance reads
        # it); under forget-sessions the key starts with the connection (one instance's in-memory sessions).
        self.sessions: dict[tuple[str, ...], list[str]] = {}

    def routes(self) -> list[Route]:
        return [
            Route(OPENAI_PATH, self.openai_chat, methods=["POST"]),
            Route(ADK_SESSIONS_PATH, self.adk_session, methods=["POST"]),
            Route(ADK_RUN_PATH, self.adk_run, methods=["POST"]),
            Route(AI_SDK_PATH, self.ai_sdk_chat, methods=["POST"]),
        ]

    # -- shared --------------------------------------------------------------------------------------------

    def subject(self, request: Request) -> str | None:
        """The bearer token's subject, None when there is no valid token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return subject_of(token.strip(), self.secret) if scheme.lower() == "bearer" else None

    async def refusal(
        self, request: Request, error: Callable[[int, str], Response]
    ) -> tuple[str, Response | None]:
        """(the user, None) when the request may stream; else the answer a broken or strict server gives."""
        faults = self.faults
        if faults.hang:
            while not await request.is_disconnected():
                await asyncio.sleep(0.1)
            return "", Response(status_code=499)
        if faults.ws_502:
            return "", _bad_gateway()
        if faults.rate_limited:
            return "", error(429, "Rate limit reached for requests")
        user = self.subject(request)
        if faults.ws_403:
            return "", error(401, "Incorrect API key provided.")
        if user is None and not faults.accept_unauthenticated:
            return "", error(401, "Missing or invalid bearer token.")
        if faults.slow_handshake_ms:
            await asyncio.sleep(faults.slow_handshake_ms / 1000)
        return user or "anonymous", None

    def session_key(self, request: Request, app: str, user: str, session_id: str) -> tuple[str, ...]:
        """Where an ADK session lives: the shared store, or (forget-sessions) this connection's memory."""
        key = (app, user, session_id)
        if self.faults.forget_sessions:
            return (repr(request.client), *key)
        return key

    def earlier(self, texts: list[str]) -> list[str]:
        """What the user said before in a conversation the client sends whole (forget-sessions: dropped)."""
        return [] if self.faults.forget_sessions else texts

    async def pause(self, name: str) -> None:
        await wait_before(name, self.faults, self.event_delay_s)

    async def stall(self, request: Request) -> None:
        """The never-complete fault: silent from now on, until the client leaves."""
        while not await request.is_disconnected():
            await asyncio.sleep(0.1)

    def sends(self, name: str) -> bool:
        return name not in self.faults.drop_events

    # -- OpenAI-compatible chat completions ----------------------------------------------------------------

    async def openai_chat(self, request: Request) -> Response:
        user, refused = await self.refusal(request, _openai_error)
        if refused is not None:
            return refused
        body = await _json(request)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            return _openai_error(400, "'messages' must be a non-empty array")
        text = _text_of(messages[-1].get("content"))
        model = str(body.get("model") or "reference")
        said = [
            _text_of(m.get("content"))
            for m in messages[:-1]
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        answer = self.answers.reply(user, text, self.earlier(said))
        events = self._openai_events(request, model, answer, time.monotonic())
        return EventSourceResponse(events, ping=15, sep="\n")

    async def _openai_events(
        self, request: Request, model: str, answer: str, received: float
    ) -> AsyncIterator[dict[str, str]]:
        faults = self.faults
        if faults.end_at_once:
            return
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, str]:
            body = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            return {"data": json.dumps(body, separators=_COMPACT)}

        await self.pause("agent_started")
        if self.sends("agent_started"):
            yield chunk({"role": "assistant", "content": ""})
        await self.pause("agent_thinking")
        if faults.close_early:
            return
        await self.pause("tool_executing")
        if faults.error_event:
            error = {
                "message": ERROR_MESSAGE,
                "type": "server_error",
                "param": None,
                "code": "invalid_api_key",
            }
            yield {"data": json.dumps({"error": error}, separators=_COMPACT)}
            return
        if self.sends("tool_executing"):
            for start in range(0, len(answer), DELTA_CHARS):
                yield chunk({"content": answer[start : start + DELTA_CHARS]})
        await self.pause("tool_completed")
        if self.sends("tool_completed"):
            yield chunk({}, finish="stop")
        if faults.never_complete:
            await self.stall(request)
            return
        await self.pause("agent_completed")
        if self.sends("agent_completed"):
            yield {"data": "[DONE]"}
            if self.stamps is not None:
                self.stamps.run_done(received)

    # -- Google ADK API server ------------------------------------------------------------------------------

    async def adk_session(self, request: Request) -> Response:
        user, refused = await self.refusal(request, _adk_error)
        if refused is not None:
            return refused
        app, path_user = request.path_params["app"], request.path_params["user"]
        if user != "anonymous" and path_user != user:
            return _adk_error(403, f"user {path_user!r} is not the token's subject")
        session_id = str(uuid.uuid4())
        now = time.time()
        self.sessions[self.session_key(request, app, path_user, session_id)] = []
        session = {
            "id": session_id,
            "appName": app,
            "userId": path_user,
            "state": {},
            "events": [],
            "lastUpdateTime": now,
        }
        return Response(json.dumps(session, separators=_COMPACT), media_type="application/json")

    async def adk_run(self, request: Request) -> Response:
        user, refused = await self.refusal(request, _adk_error)
        if refused is not None:
            return refused
        body = await _json(request)
        if not isinstance(body, dict):
            return _adk_error(422, "expected a JSON object")
        app = body.get("appName") or body.get("app_name")
        path_user = body.get("userId") or body.get("user_id")
        session_id = body.get("sessionId") or body.get("session_id")
        said = self.sessions.get(self.session_key(request, str(app), str(path_user), str(session_id)))
        if said is None:
            return _adk_error(404, f"Session not found: {session_id}")
        if user != "anonymous" and path_user != user:
            return _adk_error(403, f"user {path_user!r} is not the token's subject")
        message = body.get("newMessage") or body.get("new_message") or {}
        parts = message.get("parts") if isinstance(message, dict) else None
        text = "".join(str(p.get("text") or "") for p in parts or [] if isinstance(p, dict))
        answer = self.answers.reply(str(user), text, list(said))
        said.append(text)  # the session's events: the next run sees this message
        events = self._adk_events(request, str(app), text, answer)
        return StreamingResponse(events, media_type="text/event-stream; charset=utf-8")

    async def _adk_events(self, request: Request, app: str, text: str, answer: str) -> AsyncIterator[str]:
        faults = self.faults
        if faults.end_at_once:
            return
        invocation = f"e-{uuid.uuid4()}"

        def event(content: dict[str, Any], *, partial: bool = False) -> str:
            body: dict[str, Any] = {"content": content}
            if partial:
                body["partial"] = True
            body |= {
                "invocationId": invocation,
                "author": app,
                "actions": {
                    "stateDelta": {},
                    "artifactDelta": {},
                    "requestedAuthConfigs": {},
                    "requestedToolConfirmations": {},
                },
                "nodeInfo": {"path": ""},
                "id": str(uuid.uuid4()),
                "timestamp": time.time(),
            }
            return f"data: {json.dumps(body, separators=_COMPACT)}\n\n"

        await self.pause("agent_started")
        if self.sends("agent_started"):
            call = {"id": "call-1", "args": {"query": text}, "name": "lookup"}
            yield event({"parts": [{"functionCall": call}], "role": "model"})
        await self.pause("agent_thinking")
        if faults.error_event:
            error = f"RuntimeError: {ERROR_MESSAGE}"
            details = {"error_type": "RuntimeError", "error_message": ERROR_MESSAGE, "timestamp": time.time()}
            yield f"data: {json.dumps({'error': error, 'error_details': details})}\n\n"
            return
        if self.sends("agent_thinking"):
            result = {"id": "call-1", "name": "lookup", "response": {"result": answer[:40]}}
            yield event({"parts": [{"functionResponse": result}], "role": "user"})
        if faults.close_early:
            return
        await self.pause("tool_executing")
        if self.sends("tool_executing"):
            yield event({"parts": [{"text": answer[:DELTA_CHARS]}], "role": "model"}, partial=True)
        if faults.never_complete:
            await self.stall(request)
            return
        await self.pause("agent_completed")
        if self.sends("agent_completed"):
            yield event({"parts": [{"text": answer}], "role": "model"})

    # -- Vercel AI SDK UI message stream --------------------------------------------------------------------

    async def ai_sdk_chat(self, request: Request) -> Response:
        user, refused = await self.refusal(request, _plain_error)
        if refused is not None:
            return refused
        body = await _json(request)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            return _plain_error(400, "messages must be a non-empty array of UI messages")
        text = _ui_text(messages[-1])
        said = [_ui_text(m) for m in messages[:-1] if isinstance(m, dict) and m.get("role") == "user"]
        answer = self.answers.reply(user, text, self.earlier(said))
        return StreamingResponse(
            self._ai_sdk_parts(request, text, answer), media_type="text/event-stream", headers=AI_SDK_HEADERS
        )

    async def _ai_sdk_parts(self, request: Request, text: str, answer: str) -> AsyncIterator[str]:
        faults = self.faults
        if faults.end_at_once:
            return

        def part(**fields: Any) -> str:
            return f"data: {json.dumps(fields, separators=_COMPACT)}\n\n"

        await self.pause("agent_started")
        if self.sends("agent_started"):
            yield part(type="start") + part(type="start-step")
        if faults.close_early:
            return
        await self.pause("agent_thinking")
        if self.sends("agent_thinking"):
            yield part(
                type="tool-input-available", toolCallId="call-1", toolName="lookup", input={"query": text}
            )
        await self.pause("tool_executing")
        if self.sends("tool_executing"):
            yield (
                part(type="tool-output-available", toolCallId="call-1", output={"result": answer[:40]})
                + part(type="finish-step")
                + part(type="start-step")
                + part(type="text-start", id="text-1")
            )
        await self.pause("tool_completed")
        if self.sends("tool_completed"):
            for index, start in enumerate(range(0, len(answer), DELTA_CHARS)):
                yield part(type="text-delta", id="text-1", delta=answer[start : start + DELTA_CHARS])
                if index == 0 and faults.error_event:
                    yield part(type="error", errorText="An error occurred.")  # and the stream goes on
            yield part(type="text-end", id="text-1")
        if faults.never_complete:
            await self.stall(request)
            return
        await self.pause("agent_completed")
        if self.sends("agent_completed"):
            yield part(type="finish-step") + part(type="finish", finishReason="stop") + "data: [DONE]\n\n"


def _bad_gateway() -> Response:
    """What Cloud Run's front end answers while the container is down."""
    return Response("upstream connect error or disconnect/reset before headers", status_code=502)


def _openai_error(status: int, message: str) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


def _adk_error(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


def _plain_error(status: int, message: str) -> Response:
    return Response(message, status_code=status, media_type="text/plain")


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _ui_text(message: dict[str, Any]) -> str:
    """A UI message's text: its `text` parts joined."""
    parts = message.get("parts")
    return "".join(
        str(p.get("text") or "") for p in parts or [] if isinstance(p, dict) and p.get("type") == "text"
    )


def _text_of(content: Any) -> str:
    """OpenAI message content: a string, or a list of parts with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""
