"""Isolation needs distinct identities (#19 item 10): when users share one identity, events naming "the" user prove
nothing, so isolation is never `pass` on it. Against real backends on 127.0.0.1: the reference backend's
cross-talk fault, and a Starlette backend that routes events by user, as FastAPI's connection-manager recipe does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import defaultdict

import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot import auth
from bot.auth import Credentials
from bot.config import build_settings
from bot.probe import isolation
from bot.probe.journey import probe
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from bot.results import CheckResult, Status, Step
from bot.settings import AuthSettings
from tests.configs import QUIET_TARGETS
from tests.standins.asgi import AsgiServer

SECRET = "isolation-identities-secret-0123456789abc"
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


class ConnectionManager:
    """FastAPI's recipe, keyed by the authenticated user: every socket of a user gets that user's events."""

    def __init__(self) -> None:
        self.active: dict[str, list[WebSocket]] = defaultdict(list)

    def connect(self, user_id: str, websocket: WebSocket) -> None:
        self.active[user_id].append(websocket)

    def disconnect(self, user_id: str, websocket: WebSocket) -> None:
        with contextlib.suppress(ValueError):
            self.active[user_id].remove(websocket)

    async def send_to_user(self, user_id: str, message: dict[str, object]) -> None:
        for websocket in list(self.active[user_id]):
            with contextlib.suppress(Exception):
                await websocket.send_json(message)


def user_routed_app(secret: str) -> Starlette:
    manager = ConnectionManager()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def login(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("password") != "golden-path":
            return JSONResponse({"detail": "invalid username or password"}, status_code=401)
        claims = {"sub": body["username"], "exp": int(time.time()) + 900}
        return JSONResponse({"access_token": jwt.encode(claims, secret, algorithm="HS256")})

    async def chat(websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols", [])
        token = next((p.removeprefix("jwt.") for p in offered if p.startswith("jwt.")), "")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            user_id = str(jwt.decode(raw, secret, algorithms=["HS256"])["sub"])
        except (ValueError, jwt.InvalidTokenError, KeyError):
            await websocket.close(code=1008)
            return
        await websocket.accept(subprotocol="jwt-auth")
        manager.connect(user_id, websocket)
        try:
            while True:
                message = await websocket.receive_json()
                if message.get("type") != "start_agent":
                    continue
                for name in EVENTS:
                    data: dict[str, object] = {"user_id": user_id}
                    if name == "agent_completed":
                        data["result"] = "The answer is 4."
                    await manager.send_to_user(user_id, {"type": name, "data": data})
                    await asyncio.sleep(0.02)
        except WebSocketDisconnect:
            pass
        finally:
            manager.disconnect(user_id, websocket)

    routes = [
        Route("/health", health),
        Route("/auth/login", login, methods=["POST"]),
        WebSocketRoute("/ws", chat),
    ]
    return Starlette(routes=routes)


def _isolation(url: str, config: dict[str, object], credentials: Credentials) -> list[CheckResult]:
    settings = build_settings({"targets": QUIET_TARGETS, **config}, {"url": url})
    outcome = asyncio.run(probe(settings, base_url=url, credentials=credentials))
    return [c for c in outcome.checks if c.id == "isolation"]


def _shared_token() -> str:
    return auth.mint(AuthSettings(), key=SECRET, algorithm="HS256", subject="shared-account@acme.dev")


TOKEN_MODE = {"auth": {"mode": "token"}, "journey": {"users": 3}}


def test_probe__user_routed_events_under_one_shared_token_are_not_verified_never_pass():
    with AsgiServer(user_routed_app(SECRET)) as server:
        checks = _isolation(server.url, TOKEN_MODE, Credentials(token=_shared_token()))
    assert [c.status for c in checks] == [Status.NOT_VERIFIED] * 3
    assert all("same token (auth.mode token)" in c.summary for c in checks)


def test_probe__user_routed_events_with_distinct_minted_identities_pass():
    """The control: the same backend, each user minted its own subject, events naming the user prove ownership."""
    with AsgiServer(user_routed_app(SECRET)) as server:
        checks = _isolation(server.url, {"journey": {"users": 3}}, Credentials(secret=SECRET))
    assert [c.status for c in checks] == [Status.PASS] * 3


def test_probe__one_login_for_all_users_is_not_verified():
    """A login body naming one account gives every user the same subject: found from the tokens themselves."""
    config = {
        "auth": {"mode": "login", "login": {"body": {"username": "qa@acme.dev", "password": "{password}"}}},
        "journey": {"users": 2},
    }
    with AsgiServer(user_routed_app(SECRET)) as server:
        checks = _isolation(server.url, config, Credentials(password="golden-path"))
    assert [c.status for c in checks] == [Status.NOT_VERIFIED] * 2
    assert all("users 1, 2 share one identity ('qa@acme.dev'" in c.summary for c in checks)


@pytest.mark.parametrize("users", [2, 4])
def test_probe__reference_cross_talk_under_a_shared_token_never_passes(users: int):
    with ReferenceServer(secret=SECRET, faults=parse_faults(["cross-talk"])) as server:
        checks = _isolation(
            server.url,
            {"auth": {"mode": "token"}, "journey": {"users": users}},
            Credentials(token=_shared_token()),
        )
    assert len(checks) == users
    assert Status.PASS not in {c.status for c in checks}
    assert Status.FAIL in {c.status for c in checks}  # the thread ids it sent still catch the leak


def test_indistinct__names_the_users_sharing_a_subject_and_those_without_one():
    found = isolation.indistinct({1: "a", 2: "b", 3: "a", 4: ""})
    assert set(found) == {1, 3, 4}
    assert "users 1, 3 share one identity ('a'" in found[1]
    assert "names no subject" in found[4]
    assert isolation.indistinct({1: "a", 2: "b"}) == {}


def test_rejudged__a_thread_or_nonce_proof_keeps_the_pass():
    passed = CheckResult("isolation", Step.ISOLATION, Status.PASS, user=1, summary="ok")
    why = "users 1, 2 share one identity"
    assert isolation.rejudged([passed], why=why, proofs=frozenset({"user", "thread"})) == [passed]
    assert isolation.rejudged([passed], why=why, proofs=frozenset({"nonce"})) == [passed]
    (verdict,) = isolation.rejudged([passed], why=why, proofs=frozenset({"user", "run"}))
    assert verdict.status is Status.NOT_VERIFIED and why in verdict.summary
    assert isolation.rejudged([passed], why=None, proofs=frozenset({"user"})) == [passed]
