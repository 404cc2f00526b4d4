"""An OAuth2 token service written as FastAPI teams write one, run as its own process in front of a chat backend.

``POST /oauth/token`` takes a form-encoded client-credentials grant (``grant_type=client_credentials``,
``client_id``, ``client_secret``: RFC 6749 section 4.4, credentials in the body as section 2.3.1 allows) and
answers ``{"access_token": <JWT>, "token_type": "Bearer", "expires_in": N}``; errors are RFC 6749's JSON
(``invalid_client`` 401, ``unsupported_grant_type`` 400). The JWT is HS256 with the key the chat backend checks,
``sub`` the client id. Served by ``python -m uvicorn tests.standins.oauth_service:app`` with its configuration in
the environment: ``OAUTH_CLIENTS`` (JSON {client_id: secret}), ``OAUTH_SIGNING_KEY``, ``OAUTH_EXPIRES_IN``,
``OAUTH_FAULT`` (``wrong-key``: tokens signed with another key, so the backend refuses them) and
``OAUTH_LOG`` (a file each issued grant's client id is appended to, so a test can count logins).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Annotated

import jwt
from fastapi import FastAPI, Form
from fastapi.responses import JSONResponse

app = FastAPI()
CLIENTS: dict[str, str] = json.loads(os.environ.get("OAUTH_CLIENTS", "{}"))
SIGNING_KEY = os.environ.get("OAUTH_SIGNING_KEY", "")
EXPIRES_IN = int(os.environ.get("OAUTH_EXPIRES_IN", "3600"))
FAULT = os.environ.get("OAUTH_FAULT", "")
LOG = os.environ.get("OAUTH_LOG", "")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/oauth/token")
async def token(
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str, Form()],
    client_secret: Annotated[str, Form()],
    scope: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    if grant_type != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    if CLIENTS.get(client_id) != client_secret:
        return JSONResponse({"error": "invalid_client"}, status_code=401)
    now = int(time.time())
    claims = {
        "sub": client_id,
        "iat": now,
        "exp": now + EXPIRES_IN,
        "jti": uuid.uuid4().hex,
        "scope": scope or "chat",
    }
    key = "a-key-the-backend-does-not-know-0123456789" if FAULT == "wrong-key" else SIGNING_KEY
    if LOG:
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(client_id + "\n")
    access_token = jwt.encode(claims, key, algorithm="HS256")
    return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": EXPIRES_IN})
