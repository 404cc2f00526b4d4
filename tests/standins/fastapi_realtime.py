"""A FastAPI chat backend in the OpenAI-Realtime shape, written as FastAPI teams write one.

``/v1/realtime`` needs two query parameters: ``model`` (declared with FastAPI's ``Query``; without it, or with a
model it does not serve, FastAPI refuses the upgrade: HTTP 403) and ``token`` (a JWT read from the query, since
browsers cannot set headers on a WebSocket). The handler accepts, checks the token and closes with 1008 when it
is not valid, sends ``session.created``, then answers ``conversation.item.create`` + ``response.create`` with a
stream of ``response.output_text.delta`` events and ``response.done``. ``/healthz`` answers ``{"ok": true, ...}``.

Faults (``fault=``): ``broken-auth`` (every token refused: close 1008), ``anonymous`` (no token is let in),
``stall`` (two deltas, then silence), ``canned``, ``empty``, ``cross-talk`` (every event to every open socket),
``close-after-accept`` (close 1011 right after accept), ``end-early`` (the response ends after two deltas:
``response.done`` with status ``incomplete`` and no ``response.output_text.done``), ``pause`` (a 0.6 s stall
between two deltas, well within the event timeout: the longest gap shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated, Any

import jwt
from fastapi import FastAPI, Query, WebSocket, WebSocketDisconnect, status

from tests.standins import protocol_faults

VERSION = "realtime-fastapi-3c2"
MODELS = r"^gpt-4o(-mini)?$"
FAULTS = (*protocol_faults.SHARED, "pause")


def create_app(*, secret: str, fault: str | None = None, delay_s: float = 0.005) -> FastAPI:
    fault = protocol_faults.checked(fault, FAULTS)
    app = FastAPI()
    sockets: set[WebSocket] = set()  # the cross-talk fault's broadcast list

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "version": VERSION}

    def user_of(token: str | None) -> str | None:
        if token is None:
            return "anonymous" if fault == "anonymous" else None
        if fault == "broken-auth":
            return None
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
        except jwt.InvalidTokenError:
            return None
        return str(claims["sub"])

    async def send(websocket: WebSocket, event: dict[str, Any]) -> None:
        await asyncio.sleep(delay_s)
        targets = list(sockets) if fault == "cross-talk" else [websocket]
        for target in targets:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # a peer that left
                await target.send_json(event)

    async def respond(websocket: WebSocket, text: str, model: str) -> None:
        answer = {"canned": "Agent response for: " + text, "empty": ""}.get(
            fault or "", f"{text} -> 4 ({model})"
        )
        response_id = f"resp_{uuid.uuid4().hex[:8]}"
        await send(websocket, {"type": "response.created", "response": {"id": response_id, "model": model}})
        chunks = [answer[i : i + 8] for i in range(0, len(answer), 8)]
        for index, chunk in enumerate(chunks):
            await send(
                websocket, {"type": "response.output_text.delta", "response_id": response_id, "delta": chunk}
            )
            if index == 1 and fault == "stall":
                await asyncio.sleep(3600)
            if index == 1 and fault == "pause":
                await asyncio.sleep(0.6)
            if index == 1 and fault == "end-early":
                partial = "".join(chunks[:2])
                output = [{"type": "message", "content": [{"type": "output_text", "text": partial}]}]
                done = {"id": response_id, "status": "incomplete", "output": output}
                await send(websocket, {"type": "response.done", "response": done})
                return
        await send(
            websocket, {"type": "response.output_text.done", "response_id": response_id, "text": answer}
        )
        output = [{"type": "message", "content": [{"type": "output_text", "text": answer}]}]
        done = {"id": response_id, "status": "completed", "output": output}
        await send(websocket, {"type": "response.done", "response": done})

    @app.websocket("/v1/realtime")
    async def realtime(
        websocket: WebSocket,
        model: Annotated[str, Query(pattern=MODELS)],
        token: Annotated[str | None, Query()] = None,
    ) -> None:
        await websocket.accept()
        if fault == "close-after-accept":
            await websocket.close(code=status.WS_1011_INTERNAL_ERROR)
            return
        user = user_of(token)
        if user is None:
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="invalid token")
            return
        sockets.add(websocket)
        try:
            await websocket.send_json({"type": "session.created", "session": {"model": model, "user": user}})
            text = ""
            while True:
                event = await websocket.receive_json()
                if event.get("type") == "conversation.item.create":
                    text = event["item"]["content"][0]["text"]
                elif event.get("type") == "response.create":
                    await respond(websocket, text, model)
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(websocket)

    return app
