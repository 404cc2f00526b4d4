"""The reference backend's GraphQL subscriptions (the ``graphql-ws`` profile), served by strawberry-graphql.

The wire is graphql-transport-ws as strawberry speaks it: the client offers the ``graphql-transport-ws``
subprotocol, sends ``connection_init`` with ``{"Authorization": "Bearer <JWT>"}`` (strawberry answers
``connection_ack``, or closes 4403 Forbidden), then ``subscribe``s to ``chat(message, threadId)``; each
``ChatEvent`` (``delta`` chunks of the answer, then ``done`` with the whole of it) arrives as a ``next`` message,
then ``complete``. ``ping``/``pong`` are the protocol's keep-alive; an error raised mid-subscription is a
``next`` carrying ``errors``, an invalid operation an ``error`` message.

The same faults bend it where they apply. Before strawberry sees the upgrade: ``hang``, ``ws-502``,
``rate-limited``, ``cold-start`` (as for every WebSocket of the reference backend), ``slow-handshake`` and
``end-at-once``. At ``connection_init``: ``ws-403`` refuses every token (4403), ``accept-unauthenticated`` lets a
missing or invalid one in as ``anonymous``. ``subprotocol-none`` accepts without echoing the subprotocol;
``max-age`` and ``close-early`` close the socket under the app, as a proxy or a cleanup would. Each reference
event name of a fault maps to one step of a run (``STEPS``); ``heartbeat`` is the server's ``ping``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from bot.reference.backend import CLOSE_EARLY_REASON, ERROR_EVENT_MESSAGE, Backend, Registry, Run

PATH = "/graphql"
# Reference event (as named in --fault specs) -> the chat event sent at that step (None: a step that sends none).
STEPS: dict[str, str | None] = {
    "agent_started": None,
    "agent_thinking": None,
    "tool_executing": "delta",
    "tool_completed": None,
    "agent_completed": "done",
}
DELTA_WORDS = 3
PING = '{"type":"ping"}'
_CONNECTION = "golden_path.connection"  # the scope key that carries a socket's Connection to the resolvers


class ProviderError(Exception):
    """The agent's LLM provider failed (the error-event fault): strawberry sends it as the ``next`` message's
    ``errors``, as a resolver's exception is."""


@strawberry.type
class ChatEvent:
    type: str
    text: str
    thread_id: str


@strawberry.type
class Query:
    @strawberry.field
    def version(self, info: strawberry.Info) -> str:
        server: GraphQLChat = info.context["server"]
        return server.backend.version


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def chat(
        self, info: strawberry.Info, message: str, thread_id: str
    ) -> AsyncGenerator[ChatEvent, None]:
        server: GraphQLChat = info.context["server"]
        async for event in server.subscription(
            info.context["user"], message, thread_id, info.context["connection"]
        ):
            yield event


SCHEMA = strawberry.Schema(query=Query, subscription=Subscription)


class Connection:
    """One socket's raw ASGI ``send``, which the faults may close under the app, as a proxy's connection
    lifetime or a cleanup does: what the app sends after that goes nowhere."""

    def __init__(self, send: Send, backend: Backend) -> None:
        self._send = send
        self.backend = backend
        self.closed = False
        self.ager: asyncio.Task[None] | None = None

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        if message["type"] == "websocket.close":
            self.closed = True
        await self._send(message)
        if message["type"] == "websocket.accept" and self.backend.faults.max_age_ms:
            self.ager = asyncio.create_task(self._close_at_max_age())

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def ping(self) -> None:
        await self.send({"type": "websocket.send", "text": PING})

    async def _close_at_max_age(self) -> None:
        await asyncio.sleep(self.backend.faults.max_age_ms / 1000)
        await self.close(1001, "max connection age")


class GraphQLChat(GraphQL[dict[str, Any], None]):
    """strawberry's ASGI GraphQL app for the chat schema, with the backend's secret, faults and answers."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(SCHEMA, graphql_ide=None, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
        self.backend = backend
        # The cross-talk fault: a broadcast every open subscription reads, and each user's last event.
        self.subscribers: set[asyncio.Queue[ChatEvent]] = set()
        self.recent = Registry()

    def routes(self) -> list[BaseRoute]:
        return [Route(PATH, self, methods=["GET", "POST"]), WebSocketRoute(PATH, self)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """strawberry's app; an upgrade first meets the faults of the upgrade, then strawberry's session."""
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        backend, faults = self.backend, self.backend.faults
        if await backend.refuse_upgrade(WebSocket(scope, receive, send)):
            return
        if faults.slow_handshake_ms:
            await asyncio.sleep(faults.slow_handshake_ms / 1000)
        connection = Connection(send, backend)
        if faults.end_at_once:
            websocket = WebSocket(scope, receive, connection.send)
            await websocket.accept(subprotocol=GRAPHQL_TRANSPORT_WS_PROTOCOL)
            await websocket.close(code=1000, reason="done")
            return
        try:
            await super().__call__({**scope, _CONNECTION: connection}, receive, connection.send)
        finally:
            if connection.ager is not None:
                connection.ager.cancel()

    async def create_websocket_response(self, request: WebSocket, subprotocol: str | None) -> WebSocket:
        echo = None if self.backend.faults.subprotocol_none else subprotocol
        await request.accept(subprotocol=echo)
        return request

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return {
            "request": request,
            "response": response,
            "server": self,
            "connection": request.scope.get(_CONNECTION),
        }

    async def on_ws_connect(self, context: dict[str, Any]) -> None:
        """``connection_init``: the token in its payload names the user; a refusal is strawberry's 4403."""
        params = context["connection_params"]
        header = params.get("Authorization", "") if isinstance(params, dict) else ""
        scheme, _, token = str(header).partition(" ")
        user = self.backend.user_for(token.strip() or None) if scheme.lower() == "bearer" else None
        faults = self.backend.faults
        if faults.ws_403 or (user is None and not faults.accept_unauthenticated):
            raise ConnectionRejectionError()
        context["user"] = user or "anonymous"

    async def subscription(
        self, user: str, text: str, thread_id: str, connection: Connection
    ) -> AsyncGenerator[ChatEvent, None]:
        """One subscription's events, bent by the same faults as the reference protocol's."""
        backend, faults = self.backend, self.backend.faults
        run = Run(
            user_id=user, run_id=str(uuid.uuid4()), thread_id=thread_id, text=text, received=time.monotonic()
        )
        mine: asyncio.Queue[ChatEvent] = asyncio.Queue()
        if faults.cross_talk:
            self.subscribers.add(mine)
            stale = self.recent.stale_event(not_for=user)
            if stale is not None:
                yield ChatEvent(**stale)
        try:
            async for event in self._events(run, connection):
                if not faults.cross_talk:
                    yield event
                    continue
                self.recent.remember(user, {"type": event.type, "text": event.text, "thread_id": thread_id})
                for queue in self.subscribers:  # the bug: every open subscription gets it
                    queue.put_nowait(event)
                while not mine.empty():
                    yield mine.get_nowait()
        finally:
            self.subscribers.discard(mine)
        if backend.stamps is not None:
            backend.stamps.run_done(run.received)

    async def _events(self, run: Run, connection: Connection) -> AsyncGenerator[ChatEvent, None]:
        backend, faults = self.backend, self.backend.faults
        answer = backend.answer(run.text)
        order = faults.event_order()
        for step in order:
            if step == "agent_completed" and faults.never_complete:
                # Silent from now on, the subscription open: the client must time out (strawberry cancels this
                # when the client leaves).
                await asyncio.Event().wait()
            await backend.pause(step)
            if step == "tool_executing" and faults.error_event:
                raise ProviderError(ERROR_EVENT_MESSAGE)
            if step not in faults.drop_events:
                for event in _chat_events(STEPS[step], answer, run.thread_id):
                    yield event
            if step == "agent_thinking":
                if faults.close_early:
                    await connection.close(1000, CLOSE_EARLY_REASON)
                    await asyncio.Event().wait()  # strawberry cancels the subscription when the client leaves
                await backend.pause("heartbeat")
                if "heartbeat" not in faults.drop_events:
                    await connection.ping()


def _chat_events(name: str | None, answer: str, thread_id: str) -> list[ChatEvent]:
    if name is None:
        return []
    if name == "done":
        return [ChatEvent(type="done", text=answer, thread_id=thread_id)]
    words = answer.split(" ")
    chunks = (
        [" ".join(words[i : i + DELTA_WORDS]) for i in range(0, len(words), DELTA_WORDS)] if answer else []
    )
    return [
        ChatEvent(type="delta", text=chunk if i == 0 else f" {chunk}", thread_id=thread_id)
        for i, chunk in enumerate(chunks)
    ]
