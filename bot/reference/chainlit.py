"""The reference backend's Chainlit wire: ``POST /auth/header`` (a Bearer token exchanged for Chainlit's
``access_token`` cookie) and a python-socketio server at ``/ws/socket.io``, with the same faults.

Written from Chainlit's own source (``backend/chainlit/socket.py``, ``emitter.py``, ``message.py``,
``server.py``; the React client's ``useChatSession.ts``): the CONNECT auth carries ``sessionId`` and
``clientType``, the cookie carries the user (no valid cookie: ``ConnectionRefusedError("authentication
failed")``, a CONNECT_ERROR); ``connection_successful`` answers ``task_end`` (the connection's own) and may send
a welcome message; ``client_message`` runs a task: ``task_start``, ``first_interaction``, the run and tool
steps (``new_message``), ``stream_start`` and ``stream_token``s, the ``assistant_message`` (``new_message``,
its ``output`` the answer), then ``task_end``. An error is an ``assistant_message`` with ``isError``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any

import socketio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.reference.backend import Answers, Stamps, subject_of, wait_before
from bot.reference.faults import Faults

SOCKET_PATH = "/ws/socket.io"
COOKIE = "access_token"
ERROR_MESSAGE = "LLM provider returned 401: invalid API key"
TOKEN_CHARS = 16


class ChainlitBackend:
    """A Chainlit app's server side: header auth, the Socket.IO session and an ``on_message`` that streams."""

    def __init__(
        self,
        *,
        secret: str,
        faults: Faults,
        answer: Callable[[str], str],
        event_delay_s: float = 0.01,
        stamps: Stamps | None = None,
        ping_interval_s: float = 25,
        ping_timeout_s: float = 20,
    ) -> None:
        self.stamps = stamps  # benchmarks: when each run's message arrived and completed
        self.secret = secret
        self.faults = faults
        self.answers = Answers(faults, answer)  # earlier turns: what cl.chat_context holds
        self.event_delay_s = event_delay_s
        # Engine.IO's keepalive: the server PINGs every ping_interval_s (python-socketio's default 25 s); a client
        # that hears nothing for ping_interval_s + ping_timeout_s (default 20 s) gives the connection up.
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            cors_allowed_origins=[],
            ping_interval=ping_interval_s,
            ping_timeout=ping_timeout_s,
        )
        self.users: dict[str, str] = {}  # sid -> user
        self.threads: dict[str, str] = {}  # sid -> thread id
        self.session_ids: dict[str, str] = {}  # sid -> the client's sessionId (CONNECT auth)
        # What each user said per session: Chainlit restores a WebsocketSession when the client reconnects with
        # its sessionId (here a store every instance reads); under forget-sessions it lives in the Socket.IO
        # connection's memory, so a reconnect starts a new conversation.
        self.conversations: dict[tuple[str, str], list[str]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.sio.on("connect", self.connect)
        self.sio.on("connection_successful", self.connection_successful)
        self.sio.on("client_message", self.client_message)
        self.sio.on("disconnect", self.disconnect)

    def routes(self) -> list[Route | Mount]:
        app = socketio.ASGIApp(self.sio, socketio_path="")
        return [
            Route("/auth/header", self.header_auth, methods=["POST"]),
            Mount(SOCKET_PATH, app=_Faulty(app, self.faults)),
        ]

    # -- HTTP ----------------------------------------------------------------------------------------------

    async def header_auth(self, request: Request) -> Response:
        """Chainlit's ``@cl.header_auth_callback``: the Bearer token names the user; the answer sets the cookie."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = subject_of(token.strip(), self.secret) if scheme.lower() == "bearer" else None
        if self.faults.ws_403 or (user is None and not self.faults.accept_unauthenticated):
            return JSONResponse({"detail": "credentialssignin"}, status_code=401)
        response = JSONResponse({"success": True})
        if user is not None:
            response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="lax", path="/")
        return response

    # -- Socket.IO -----------------------------------------------------------------------------------------

    async def connect(self, sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> bool:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        user = subject_of(cookie[COOKIE].value if COOKIE in cookie else None, self.secret)
        if user is None and not self.faults.accept_unauthenticated:
            raise ConnectionRefusedError("authentication failed")
        if not isinstance(auth, dict) or not auth.get("sessionId"):
            raise ConnectionRefusedError("missing sessionId")
        self.users[sid] = user or "anonymous"
        self.threads[sid] = str(uuid.uuid4())
        self.session_ids[sid] = str(auth["sessionId"])
        if self.faults.end_at_once:
            self._spawn(self.sio.disconnect(sid))
        elif self.faults.max_age_ms:
            self._spawn(self._disconnect_at_max_age(sid))
        return True

    async def _disconnect_at_max_age(self, sid: str) -> None:
        """The max-age fault: the server ends the session at a fixed age (a namespace DISCONNECT)."""
        await asyncio.sleep(self.faults.max_age_ms / 1000)
        await self.sio.disconnect(sid)

    async def disconnect(self, sid: str, *_reason: Any) -> None:
        self.users.pop(sid, None)
        self.threads.pop(sid, None)
        self.session_ids.pop(sid, None)
        if self.faults.forget_sessions:
            self.conversations.pop(("", sid), None)

    async def connection_successful(self, sid: str) -> None:
        await self.sio.emit("task_end", {}, to=sid)  # the connection's own task_end, before any message
        await self.sio.emit("clear_ask", {}, to=sid)
        await self.sio.emit("clear_call_fn", {}, to=sid)
        # on_chat_start: a welcome message, as many Chainlit apps send.
        welcome = self._message(sid, "Hello! Ask me anything.")
        self._spawn(self.sio.emit("new_message", welcome, to=sid))

    async def client_message(self, sid: str, payload: dict[str, Any]) -> None:
        message = payload.get("message") if isinstance(payload, dict) else None
        text = str(message.get("output") or "") if isinstance(message, dict) else ""
        try:  # Chainlit asserts the frontend's message id is a UUID4, and reports the failure as an error
            valid = uuid.UUID(str(message.get("id") if isinstance(message, dict) else "")).version == 4
        except ValueError:
            valid = False
        if not valid:
            await self.sio.emit("task_start", {}, to=sid)
            error = self._message(sid, "AssertionError", author="Error", error=True)
            await self.sio.emit("new_message", error, to=sid)
            await self.sio.emit("task_end", {}, to=sid)
            return
        self._spawn(self._process(sid, text))

    async def _process(self, sid: str, text: str) -> None:
        """``process_message``: task_start, the app's ``on_message`` (a tool step, a streamed answer), task_end."""
        faults = self.faults
        received = time.monotonic()
        user = self.users.get(sid, "anonymous")
        key = ("", sid) if faults.forget_sessions else (user, self.session_ids.get(sid, sid))
        said = self.conversations.setdefault(key, [])
        answer = self.answers.reply(user, text, list(said))
        said.append(text)

        def to(event: str) -> str | None:
            return (
                None if faults.cross_talk and event in ("stream_token", "new_message") else sid
            )  # broadcast bug

        await self._pause("agent_started")
        await self.sio.emit("task_start", {}, to=sid)
        thread = self.threads.get(sid, "")
        await self.sio.emit("first_interaction", {"interaction": text[:60], "thread_id": thread}, to=sid)
        run = self._step(sid, "on_message", "run", text, "")
        await self.sio.emit("new_message", run, to=sid)
        if faults.close_early:
            await self.sio.disconnect(sid)
            return
        await self._pause("agent_thinking")
        if faults.error_event:
            error = self._message(sid, ERROR_MESSAGE, author="Error", error=True)
            await self.sio.emit("new_message", error, to=sid)
            await self.sio.emit("task_end", {}, to=sid)
            return
        if "agent_thinking" not in faults.drop_events:
            tool = self._step(sid, "lookup", "tool", text, answer[:40], parent=run["id"])
            await self.sio.emit("new_message", tool, to=sid)
        await self._pause("tool_executing")
        reply = self._message(sid, "")
        if answer and "tool_executing" not in faults.drop_events:
            await self.sio.emit("stream_start", {**reply, "streaming": True}, to=sid)
            for start in range(0, len(answer), TOKEN_CHARS):
                token = {
                    "id": reply["id"],
                    "token": answer[start : start + TOKEN_CHARS],
                    "isSequence": False,
                    "isInput": False,
                }
                await self.sio.emit("stream_token", token, to=to("stream_token"))
        if faults.never_complete:
            return
        await self._pause("agent_completed")
        if "agent_completed" not in faults.drop_events:
            await self.sio.emit("new_message", {**reply, "output": answer}, to=to("new_message"))
        await self.sio.emit("update_message", {**run, "end": _now()}, to=sid)
        await self.sio.emit("task_end", {}, to=sid)
        if self.stamps is not None:
            self.stamps.run_done(received)

    # -- helpers --------------------------------------------------------------------------------------------

    async def _pause(self, name: str) -> None:
        await wait_before(name, self.faults, self.event_delay_s)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _message(
        self, sid: str, output: str, *, author: str = "Assistant", error: bool = False
    ) -> dict[str, Any]:
        """``Message.to_dict()``."""
        now = _now()
        return {
            "id": str(uuid.uuid4()),
            "threadId": self.threads.get(sid, ""),
            "parentId": None,
            "createdAt": now,
            "command": None,
            "modes": None,
            "start": now,
            "end": now,
            "output": output,
            "name": author,
            "type": "assistant_message",
            "language": None,
            "streaming": False,
            "isError": error,
            "waitForAnswer": False,
            "metadata": {},
            "tags": None,
        }

    def _step(
        self, sid: str, name: str, kind: str, given: str, output: str, parent: str | None = None
    ) -> dict[str, Any]:
        """``Step.to_dict()``."""
        now = _now()
        return {
            "name": name,
            "type": kind,
            "id": str(uuid.uuid4()),
            "threadId": self.threads.get(sid, ""),
            "parentId": parent,
            "streaming": False,
            "metadata": {},
            "tags": None,
            "input": given,
            "isError": False,
            "output": output,
            "createdAt": now,
            "start": now,
            "end": None,
            "language": None,
            "defaultOpen": False,
            "autoCollapse": False,
            "showInput": "json",
            "generation": None,
        }


class _Faulty:
    """The Socket.IO path under the HTTP-level faults (502 from a front end, 429), else the Socket.IO app."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 502 if self.faults.ws_502 else 429 if self.faults.rate_limited else None
        if status is not None and scope["type"] == "http":
            await Response(f"HTTP {status}", status_code=status)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
