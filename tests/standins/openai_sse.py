"""An OpenAI-compatible chat completions server written as Python teams write one: FastAPI with sse-starlette's
``EventSourceResponse`` (as llama-cpp-python's server does), a Bearer JWT checked by a dependency.

``POST /v1/chat/completions`` with ``stream: true`` streams ``chat.completion.chunk`` events, then ``data:
[DONE]``; the answer names what the user said earlier in the ``messages`` it was sent (the server is stateless).
``GET /health`` answers ``{"status": "ok"}``. Each chat request is recorded in ``app.state.requests`` as (the
token's subject, the client's port, the token's ``jti``): which TCP connection and which token carried it, so a
test sees the client's connection reuse, its reconnects and its renewed tokens as the server does.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from sse_starlette import EventSourceResponse


def create_app(*, secret: str) -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    def claims_of(authorization: Annotated[str, Header()] = "") -> dict[str, Any]:
        scheme, _, token = authorization.partition(" ")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": ["sub"]}
            )
        except jwt.InvalidTokenError:
            raise HTTPException(status_code=401, detail="invalid token") from None
        if scheme.lower() != "bearer":
            raise HTTPException(status_code=401, detail="expected a Bearer token")
        return claims

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(
        request: Request, claims: Annotated[dict[str, Any], Depends(claims_of)]
    ) -> EventSourceResponse:
        body = await request.json()
        messages = [m for m in body["messages"] if m["role"] == "user"]
        port = request.client.port if request.client else None
        app.state.requests.append((str(claims["sub"]), port, claims.get("jti")))
        earlier = " / ".join(m["content"] for m in messages[:-1])
        answer = f"You asked: {messages[-1]['content']}." + (f" Earlier: {earlier}" if earlier else "")
        return EventSourceResponse(_chunks(body.get("model", "m"), answer), sep="\n")

    return app


async def _chunks(model: str, answer: str) -> AsyncIterator[dict[str, str]]:
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, str]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model}
        return {"data": json.dumps(body | {"choices": [choice]})}

    yield chunk({"role": "assistant", "content": ""})
    for start in range(0, len(answer), 16):
        yield chunk({"content": answer[start : start + 16]})
    yield chunk({}, finish="stop")
    yield {"data": "[DONE]"}
