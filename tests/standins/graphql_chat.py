"""A GraphQL chat backend written as a strawberry-graphql team writes one, for the `graphql-ws` profile.

Starlette serves ``/health`` and strawberry's ASGI ``GraphQL`` app at ``/graphql`` (HTTP and WebSocket). The
client speaks graphql-transport-ws: ``connection_init`` carries ``{"Authorization": "Bearer <JWT>"}``, which
``on_ws_connect`` checks (a refusal is strawberry's close 4403 Forbidden); then ``subscribe`` to
``chat(message, threadId)``, which streams ``ChatEvent``s (``delta`` words, then ``done`` with the whole text),
each as a ``next`` message, then ``complete``.

Faults (``fault=``): ``broken-auth`` (every token refused: 4403), ``anonymous`` (a missing token is let in as
"anonymous"), ``stall`` (two deltas, then silence), ``canned``, ``empty``, ``cross-talk`` (events go to every
subscriber: a shared broadcast instead of one stream per subscription), ``close-after-accept`` (the socket is
accepted and closed at once, 1011), ``end-early`` (the subscription ends after two deltas, so ``complete`` comes
without ``done``), ``forget-sessions`` (the conversation lives in the connection's memory, as in one instance's
memory: a reconnect starts it afresh), ``hang-reconnect`` (every WebSocket upgrade after the first is held
unanswered, as by an instance that stopped accepting: for a one-user journey, its reconnect), ``error`` (the
resolver raises after two deltas, as when the LLM provider refuses: strawberry sends a ``next`` carrying
``errors``, then ``complete``).

A conversation is kept per user and thread (``sessions``: what a Redis or Firestore store gives every instance):
each answer ends with what the user said earlier in the thread, so a later turn shows whether it was kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import jwt
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from tests.standins import protocol_faults

VERSION = "graphql-chat-7e1"
FAULTS = (*protocol_faults.SHARED, "forget-sessions", "hang-reconnect", "error")


@strawberry.type
class ChatEvent:
    type: str
    text: str
    thread_id: str


def _answer(message: str, earlier: list[str], fault: str | None) -> str:
    if fault == "canned":
        return f"Agent response for: {message}"
    if fault == "empty":
        return ""
    said = f" Earlier you said: {' / '.join(earlier)}" if earlier else " This is a new conversation."
    return f"2 + 2 = 4. You asked: {message}.{said}"


def create_app(*, secret: str, fault: str | None = None, delay_s: float = 0.01) -> Starlette:
    fault = protocol_faults.checked(fault, FAULTS)
    subscribers: set[asyncio.Queue[ChatEvent]] = set()  # the cross-talk fault's shared broadcast
    sessions: dict[tuple[str, str], list[str]] = {}  # (user, thread) -> what the user said: a shared store

    async def events(message: str, thread_id: str, history: list[str]) -> AsyncGenerator[ChatEvent, None]:
        answer = _answer(message, list(history), fault)
        history.append(message)
        words = answer.split(" ") if answer else []
        for index, word in enumerate(words):
            await asyncio.sleep(delay_s)
            yield ChatEvent(type="delta", text=word if index == 0 else f" {word}", thread_id=thread_id)
            if index == 1 and fault == "stall":
                await asyncio.sleep(3600)
            if index == 1 and fault == "end-early":
                return
            if index == 1 and fault == "error":
                raise RuntimeError("LLM provider returned 401: invalid API key")
        yield ChatEvent(type="done", text=answer, thread_id=thread_id)

    @strawberry.type
    class Query:
        @strawberry.field
        def version(self) -> str:
            return VERSION

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def chat(
            self, info: strawberry.Info, message: str, thread_id: str
        ) -> AsyncGenerator[ChatEvent, None]:
            context = info.context
            store = context.setdefault("memory", {}) if fault == "forget-sessions" else sessions
            history = store.setdefault((context["user"], thread_id), [])
            if fault != "cross-talk":
                async for event in events(message, thread_id, history):
                    yield event
                return
            mine: asyncio.Queue[ChatEvent] = asyncio.Queue()
            subscribers.add(mine)
            try:
                await asyncio.sleep(0.2)  # the other users' subscriptions are open by now
                async for event in events(message, thread_id, history):
                    for queue in subscribers:
                        queue.put_nowait(event)
                while True:
                    event = await mine.get()
                    yield event
                    if event.type == "done" and event.thread_id == thread_id:
                        return
            finally:
                subscribers.discard(mine)

    class ChatGraphQL(GraphQL[Any, None]):
        async def on_ws_connect(self, context: Any) -> Any:
            params = context["connection_params"]
            header = params.get("Authorization", "") if isinstance(params, dict) else ""
            scheme, _, token = str(header).partition(" ")
            if not token and fault == "anonymous":
                context["user"] = "anonymous"
                return None
            if fault == "broken-auth" or scheme != "Bearer":
                raise ConnectionRejectionError()
            try:
                claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
            except jwt.InvalidTokenError:
                raise ConnectionRejectionError() from None
            context["user"] = claims["sub"]
            return None

    schema = strawberry.Schema(query=Query, subscription=Subscription)
    graphql_app = ChatGraphQL(schema, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": VERSION})

    async def accept_and_close(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol=GRAPHQL_TRANSPORT_WS_PROTOCOL)
        await websocket.close(code=1011, reason="internal error")

    class HangAfterTheFirst:  # an ASGI app (not a function, so Starlette passes scope, receive and send)
        upgrades = 0

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            self.upgrades += 1
            if self.upgrades > 1:
                await asyncio.sleep(3600)  # the upgrade is never answered (the client's deadline ends it)
            await graphql_app(scope, receive, send)

    graphql_ws: Any = (
        accept_and_close
        if fault == "close-after-accept"
        else HangAfterTheFirst()
        if fault == "hang-reconnect"
        else graphql_app
    )
    return Starlette(
        routes=[
            Route("/health", health),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_ws),
        ]
    )
