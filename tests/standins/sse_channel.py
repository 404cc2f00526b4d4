"""A FastAPI chat backend whose event stream stays open after the answer, written as FastAPI teams write one with
sse-starlette: ``POST /api/chat`` (Bearer JWT) streams the run's events (``event: agent_started`` ...
``event: agent_completed``, JSON data with the owner ids and the result), then keeps the stream open for the next
run, with sse-starlette's keepalive comments (``: ping``) every ``ping_s``. ``max_age_s`` ends the body at that
age (a server-side stream lifetime). ``flood_after_s`` sends, that long after the answer, one 5 MiB event (a
runaway debug dump). ``/health`` answers ``{"status": "healthy"}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


def create_app(
    *, secret: str, ping_s: float = 15, max_age_s: float | None = None, flood_after_s: float | None = None
) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy", "service": "sse-channel"}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.InvalidTokenError:
            return JSONResponse({"detail": "not authenticated"}, status_code=401)
        if scheme.lower() != "bearer":
            return JSONResponse({"detail": "not authenticated"}, status_code=401)
        body = await request.json()
        user, thread = str(claims["sub"]), str(body.get("thread_id", ""))
        message = str(body.get("message", ""))

        async def events() -> AsyncIterator[dict[str, Any]]:
            for name in EVENTS:
                data: dict[str, Any] = {"type": name, "user_id": user, "thread_id": thread}
                if name == "agent_completed":
                    data["result"] = f"Here is what I found about {message}."
                yield {"event": name, "data": json.dumps(data)}
                await asyncio.sleep(0.005)
            # The channel stays open for the next run; sse-starlette sends `: ping` comments meanwhile.
            if flood_after_s is not None:
                await asyncio.sleep(flood_after_s)
                yield {"event": "debug", "data": "x" * (5 * 1024 * 1024)}
            if max_age_s is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(max_age_s)

        return EventSourceResponse(events(), ping=ping_s)

    return app
