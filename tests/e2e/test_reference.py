"""The reference backend on the wire: a real server on 127.0.0.1, real httpx and websockets clients."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidMessage, InvalidStatus

from bot.errors import ReferenceBackendError, UsageError
from bot.reference.backend import REFERENCE_SERVICE, answer_for
from bot.reference.faults import EVENTS, FAULTS, Faults, parse_faults
from bot.reference.server import ReferenceServer, create_app

SECRET = "golden-path-test-secret-0123456789abcdef"
QUESTION = "What is 2 + 2? Answer in one sentence."
DEADLINE_S = 3.0  # every network wait in this file has one

StartServer = Callable[..., ReferenceServer]


@pytest.fixture(scope="module")
def healthy() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version="abc1234", event_delay_ms=1) as server:
        yield server


@pytest.fixture(scope="module")
def pool() -> Iterator[dict[str, ReferenceServer]]:
    """Servers shared by the tests that only read from them; stopped together, since each stop takes ~0.2 s."""
    servers: dict[str, ReferenceServer] = {}
    yield servers
    with ThreadPoolExecutor(max_workers=max(len(servers), 1)) as executor:
        list(executor.map(ReferenceServer.stop, servers.values()))


@pytest.fixture
def start_server(pool: dict[str, ReferenceServer]) -> Iterator[StartServer]:
    """A reference backend with the given fault specs, from the pool unless the test needs a fresh one."""
    own: list[ReferenceServer] = []

    def start(*specs: str, fresh: bool = False, **kwargs: Any) -> ReferenceServer:
        key = repr((specs, sorted(kwargs.items())))
        if not fresh and key in pool:
            return pool[key]
        server = ReferenceServer(secret=SECRET, faults=parse_faults(specs), event_delay_ms=1, **kwargs)
        server.start()
        if fresh:
            own.append(server)
        else:
            pool[key] = server
        return server

    yield start
    for server in own:
        server.stop()


def token_for(user: str, *, secret: str = SECRET, ttl_s: int = 900) -> str:
    """A token as the probe mints it, with iss and aud the server must accept without checking."""
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + ttl_s, "jti": user, "iss": "ci", "aud": "chat"}
    return jwt.encode({**claims, "token_type": "access"}, secret, algorithm="HS256")


def offer(token: str) -> list[str]:
    return ["jwt-auth", "jwt." + base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()]


def open_ws(
    server: ReferenceServer,
    user: str | None = "alice",
    *,
    open_timeout: float = 5,
    path: str = "/ws",
    **kwargs: Any,
) -> connect:
    subprotocols = offer(token_for(user)) if user is not None else None
    url = server.url.replace("http://", "ws://") + path
    return connect(url, subprotocols=subprotocols, open_timeout=open_timeout, proxy=None, **kwargs)


async def receive(ws: ClientConnection, *, timeout: float = DEADLINE_S) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(frame, dict)
    return frame


async def start_agent(ws: ClientConnection, text: str = QUESTION, thread_id: str = "thread-1") -> None:
    await ws.send(
        json.dumps({"type": "start_agent", "payload": {"user_request": text, "thread_id": thread_id}})
    )


async def frames_until(
    ws: ClientConnection, last: str, *, timeout: float = DEADLINE_S
) -> list[dict[str, Any]]:
    """Frames up to and including the first of type ``last``."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not frames or frames[-1]["type"] != last:
            frames.append(await receive(ws))
    return frames


async def journey(server: ReferenceServer, user: str = "alice", text: str = QUESTION) -> list[dict[str, Any]]:
    """Connect, skip the welcome, ask, and return every frame up to agent_completed."""
    async with open_ws(server, user) as ws:
        assert (await receive(ws))["type"] == "connection_established"
        await start_agent(ws, text)
        return await frames_until(ws, "agent_completed")


def fields(frame: dict[str, Any]) -> dict[str, Any]:
    """An event's fields, wherever this server put them (root, data, or payload)."""
    for key in ("data", "payload"):
        if isinstance(frame.get(key), dict):
            return dict(frame[key])
    return frame


def types(frames: list[dict[str, Any]]) -> list[str]:
    return [frame["type"] for frame in frames if frame["type"] != "heartbeat"]


# HTTP


@pytest.mark.parametrize("path", ["/health", "/api/health"])
def test_health__healthy(healthy: ReferenceServer, path: str) -> None:
    response = httpx.get(healthy.url + path, timeout=DEADLINE_S)
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "service": REFERENCE_SERVICE,
        "version": "abc1234",
        "commit": "abc1234",
    }


def test_health__health_503(start_server: StartServer) -> None:
    server = start_server("health-503")
    for path in ("/health", "/api/health"):
        response = httpx.get(server.url + path, timeout=DEADLINE_S)
        assert response.status_code == 503
        assert response.json() == {"status": "unhealthy", "checks": {"redis": "down"}}


async def test_health__health_503_keeps_websocket(start_server: StartServer) -> None:
    assert types(await journey(start_server("health-503")))[-1] == "agent_completed"


def test_health__wrong_service(start_server: StartServer) -> None:
    response = httpx.get(start_server("wrong-service", version="v2").url + "/health", timeout=DEADLINE_S)
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "service": "frontend", "version": "v2"}


def test_health__stale_version(start_server: StartServer) -> None:
    body = httpx.get(start_server("stale-version", version="v2").url + "/health", timeout=DEADLINE_S).json()
    assert body["version"] == body["commit"] == "0000000-stale"


def test_login__ok(healthy: ReferenceServer) -> None:
    response = httpx.post(
        healthy.url + "/auth/login", json={"username": "bob", "password": "golden-path"}, timeout=DEADLINE_S
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


async def test_login__token_opens_websocket(healthy: ReferenceServer) -> None:
    response = httpx.post(
        healthy.url + "/auth/login", json={"username": "bob", "password": "golden-path"}, timeout=DEADLINE_S
    )
    url = healthy.url.replace("http://", "ws://") + "/ws"
    async with connect(
        url, subprotocols=offer(response.json()["access_token"]), open_timeout=5, proxy=None
    ) as ws:
        assert fields(await receive(ws))["user_id"] == "bob"


def test_login__wrong_password(healthy: ReferenceServer) -> None:
    response = httpx.post(
        healthy.url + "/auth/login", json={"username": "bob", "password": "nope"}, timeout=DEADLINE_S
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid username or password"}


def test_login__not_json(healthy: ReferenceServer) -> None:
    response = httpx.post(healthy.url + "/auth/login", content=b"user=bob", timeout=DEADLINE_S)
    assert response.status_code == 422
    assert "username" in response.json()["detail"]


# The healthy WebSocket session


async def test_websocket__healthy_session(healthy: ReferenceServer) -> None:
    async with open_ws(healthy, "alice") as ws:
        assert ws.subprotocol == "jwt-auth"
        welcome = await receive(ws)
        assert welcome["type"] == "connection_established"
        assert welcome["data"]["user_id"] == "alice"
        assert welcome["data"]["connection_id"]
        await start_agent(ws)
        frames = await frames_until(ws, "agent_completed")
    assert [frame["type"] for frame in frames] == [
        "agent_started",
        "agent_thinking",
        "heartbeat",
        "tool_executing",
        "tool_completed",
        "agent_completed",
    ]
    started, thinking, _, executing, completed_tool, completed = frames
    assert "user_id" in started  # fields at the root,
    assert "user_id" in thinking["data"] and "user_id" in completed["data"]  # under data,
    assert "user_id" in executing["payload"] and "user_id" in completed_tool["payload"]  # and under payload
    run_ids = {fields(frame)["run_id"] for frame in frames if frame["type"] != "heartbeat"}
    assert len(run_ids) == 1
    for frame in frames:
        if frame["type"] != "heartbeat":
            assert fields(frame)["user_id"] == "alice"
            assert fields(frame)["thread_id"] == "thread-1"
    answer = completed["data"]["result"]
    assert answer == answer_for(QUESTION)
    assert answer.endswith("Answer: 4.")
    assert not answer.startswith("Agent response for:")


async def test_websocket__user_message_with_bearer_header(healthy: ReferenceServer) -> None:
    headers = {"Authorization": f"Bearer {token_for('carol')}"}
    async with open_ws(healthy, None, additional_headers=headers) as ws:
        assert ws.subprotocol is None  # nothing offered, nothing echoed
        assert fields(await receive(ws))["user_id"] == "carol"
        await ws.send(
            json.dumps({"type": "user_message", "payload": {"content": "hello there", "thread_id": "t9"}})
        )
        frames = await frames_until(ws, "agent_completed")
    assert types(frames) == list(EVENTS)
    assert fields(frames[-1])["result"].endswith("Answer: your request has 2 words.")


async def test_websocket__query_token(healthy: ReferenceServer) -> None:
    async with open_ws(healthy, None, path=f"/ws?token={token_for('dave')}") as ws:
        assert fields(await receive(ws))["user_id"] == "dave"


async def test_websocket__several_messages_on_one_connection(healthy: ReferenceServer) -> None:
    async with open_ws(healthy) as ws:
        await receive(ws)
        await start_agent(ws, "What is 6 * 7?", thread_id="a")
        first = await frames_until(ws, "agent_completed")
        await start_agent(ws, "What is 9 - 3?", thread_id="b")
        second = await frames_until(ws, "agent_completed")
    assert fields(first[-1])["result"].endswith("Answer: 42.")
    assert fields(second[-1])["result"].endswith("Answer: 6.")
    assert fields(first[0])["run_id"] != fields(second[0])["run_id"]


async def test_websocket__bad_messages_get_error_frames(healthy: ReferenceServer) -> None:
    async with open_ws(healthy) as ws:
        await receive(ws)
        await ws.send("not json")
        assert (await receive(ws))["type"] == "error"
        await ws.send(json.dumps({"type": "teleport"}))
        error = await receive(ws)
        assert error["type"] == "error"
        assert "teleport" in error["data"]["message"]
        await start_agent(ws)  # the connection stayed open
        assert types(await frames_until(ws, "agent_completed"))[-1] == "agent_completed"


@pytest.mark.parametrize(
    "user_token",
    [None, token_for("eve", secret="another-secret-of-at-least-32-bytes!"), token_for("eve", ttl_s=-60)],
    ids=["no-token", "wrong-secret", "expired"],
)
async def test_websocket__unauthenticated_refused(healthy: ReferenceServer, user_token: str | None) -> None:
    subprotocols = offer(user_token) if user_token else None
    url = healthy.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, subprotocols=subprotocols, open_timeout=5, proxy=None):
            pass
    assert caught.value.response.status_code == 403


# Faults, as the probe meets them on the wire


async def test_fault__ws_502(start_server: StartServer) -> None:
    server = start_server("ws-502")
    with pytest.raises(InvalidStatus) as caught:
        async with open_ws(server):
            pass
    assert caught.value.response.status_code == 502
    assert httpx.get(server.url + "/health", timeout=DEADLINE_S).status_code == 200


async def test_fault__ws_403(start_server: StartServer) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with open_ws(start_server("ws-403")):
            pass
    assert caught.value.response.status_code == 403


async def test_fault__rate_limited(start_server: StartServer) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with open_ws(start_server("rate-limited")):
            pass
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "30"


async def test_fault__subprotocol_none(start_server: StartServer) -> None:
    async with open_ws(start_server("subprotocol-none")) as ws:
        assert ws.subprotocol is None
        assert (await receive(ws))["type"] == "connection_established"


async def test_fault__accept_unauthenticated(start_server: StartServer) -> None:
    server = start_server("accept-unauthenticated")
    async with open_ws(server, None) as ws:
        assert fields(await receive(ws))["user_id"] == "anonymous"
    async with open_ws(server, "alice") as ws:
        assert fields(await receive(ws))["user_id"] == "alice"


async def test_fault__drop_event(start_server: StartServer) -> None:
    frames = await journey(start_server("drop-event:tool_executing"))
    assert types(frames) == ["agent_started", "agent_thinking", "tool_completed", "agent_completed"]


async def test_fault__delay(start_server: StartServer) -> None:
    server = start_server("delay:tool_completed=300")
    async with open_ws(server) as ws:
        await receive(ws)
        await start_agent(ws)
        await frames_until(ws, "tool_executing")
        started = time.monotonic()
        await frames_until(ws, "tool_completed")
    assert time.monotonic() - started >= 0.25  # 300 ms extra, less the time tool_executing took to arrive


async def test_fault__close_early(start_server: StartServer) -> None:
    async with open_ws(start_server("close-early")) as ws:
        await receive(ws)
        await start_agent(ws)
        frames = await frames_until(ws, "agent_thinking")
        with pytest.raises(ConnectionClosedOK) as caught:
            await receive(ws)
    assert types(frames) == ["agent_started", "agent_thinking"]
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (1000, "main cleanup")


async def test_fault__cross_talk_sequential_users(start_server: StartServer) -> None:
    server = start_server("cross-talk", fresh=True)  # an empty stale buffer
    first = await journey(server, "alice")
    second = await journey(server, "bob")
    assert {fields(frame).get("user_id") for frame in first} == {"alice", None}  # None: the heartbeat
    assert "alice" in {fields(frame).get("user_id") for frame in second}


async def test_fault__cross_talk_broadcast(start_server: StartServer) -> None:
    server = start_server("cross-talk")
    async with open_ws(server, "frank") as bystander:
        await receive(bystander)
        await journey(server, "alice")
        leaked = await frames_until(bystander, "agent_completed")
    assert {fields(frame)["user_id"] for frame in leaked if frame["type"] != "heartbeat"} == {"alice"}


async def test_fault__canned_answer(start_server: StartServer) -> None:
    frames = await journey(start_server("canned-answer"))
    assert fields(frames[-1])["result"] == f"Agent response for: {QUESTION}"


async def test_fault__empty_answer(start_server: StartServer) -> None:
    frames = await journey(start_server("empty-answer"))
    assert fields(frames[-1])["result"] == ""


async def test_fault__error_event(start_server: StartServer) -> None:
    async with open_ws(start_server("error-event")) as ws:
        await receive(ws)
        await start_agent(ws)
        frames = await frames_until(ws, "agent_error")
        await ws.send(json.dumps({"type": "ping"}))  # the run stopped; the connection did not
        assert (await receive(ws))["type"] == "pong"
    assert types(frames) == ["agent_started", "agent_thinking", "agent_error"]
    assert frames[-1]["data"]["error"] == "LLM provider returned 401: invalid API key"
    assert frames[-1]["data"]["run_id"] == fields(frames[0])["run_id"]


async def test_fault__out_of_order(start_server: StartServer) -> None:
    frames = await journey(start_server("out-of-order"))
    assert types(frames) == [
        "agent_started",
        "agent_thinking",
        "tool_completed",
        "tool_executing",
        "agent_completed",
    ]


async def test_fault__never_complete(start_server: StartServer) -> None:
    async with open_ws(start_server("never-complete")) as ws:
        await receive(ws)
        await start_agent(ws)
        frames = await frames_until(ws, "tool_completed")
        with pytest.raises(TimeoutError):
            await receive(ws, timeout=0.3)
        await ws.send(json.dumps({"type": "ping"}))  # silent, yet open
        assert (await receive(ws))["type"] == "pong"
    assert types(frames) == ["agent_started", "agent_thinking", "tool_executing", "tool_completed"]


async def test_fault__hang(start_server: StartServer) -> None:
    with pytest.raises(TimeoutError):
        async with open_ws(start_server("hang"), open_timeout=1):
            pass


async def test_fault__slow_handshake(start_server: StartServer) -> None:
    server = start_server("slow-handshake:300")
    started = time.monotonic()
    async with open_ws(server) as ws:
        assert time.monotonic() - started >= 0.3
        assert ws.subprotocol == "jwt-auth"


async def test_fault__garbage(start_server: StartServer) -> None:
    server = start_server("garbage")
    with pytest.raises(InvalidMessage):
        async with open_ws(server):
            pass
    assert httpx.get(server.url + "/health", timeout=DEADLINE_S).status_code == 200


async def test_fault__combined(start_server: StartServer) -> None:
    frames = await journey(start_server("drop-event:agent_started", "canned-answer", "stale-version"))
    assert types(frames) == ["agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
    assert fields(frames[-1])["result"].startswith("Agent response for:")


# The server's life cycle


async def test_stop__prompt_with_hanging_connection(start_server: StartServer) -> None:
    server = start_server("hang", fresh=True)
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), DEADLINE_S)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    with pytest.raises(TimeoutError):  # the upgrade is never answered
        await asyncio.wait_for(reader.read(1), 0.2)
    started = time.monotonic()
    await asyncio.to_thread(server.stop)
    assert time.monotonic() - started < 2
    await asyncio.wait_for(reader.read(), DEADLINE_S)  # the server closed the connection
    writer.close()
    await writer.wait_closed()
    server.stop()  # idempotent


async def test_stop__prompt_with_open_session(start_server: StartServer) -> None:
    server = start_server("never-complete", fresh=True)
    async with open_ws(server) as ws:
        await receive(ws)
        await start_agent(ws)
        await frames_until(ws, "tool_completed")
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        assert time.monotonic() - started < 2
        with pytest.raises(ConnectionClosed) as caught:
            await receive(ws)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1012  # service restart


def test_start__port_taken(healthy: ReferenceServer) -> None:
    port = int(healthy.url.rsplit(":", 1)[1])
    with pytest.raises(ReferenceBackendError, match="cannot start the reference backend"):
        ReferenceServer(secret=SECRET, port=port).start()


def test_url__unknown_before_start() -> None:
    with pytest.raises(ReferenceBackendError, match="start"):
        _ = ReferenceServer(secret=SECRET).url


def test_create_app__short_secret() -> None:
    with pytest.raises(UsageError, match="at least 32 bytes"):
        create_app(secret="short")


# Parsing --fault specs


def test_parse_faults__healthy() -> None:
    assert parse_faults([]) == Faults()
    assert Faults().specs() == ()


def test_parse_faults__every_kind() -> None:
    faults = parse_faults(
        ["ws-502,close-early", "drop-event:tool_executing", "delay:agent_thinking=250", "slow-handshake:1500"]
    )
    assert faults.ws_502 and faults.close_early
    assert faults.drop_events == frozenset({"tool_executing"})
    assert faults.extra_delay_ms("agent_thinking") == 250
    assert faults.extra_delay_ms("agent_started") == 0
    assert faults.slow_handshake_ms == 1500
    assert parse_faults(faults.specs()) == faults


def test_parse_faults__every_listed_fault_parses() -> None:
    for spec in FAULTS:
        example = spec.replace("NAME", "agent_thinking").replace("MS", "10")
        assert parse_faults([example]) != Faults(), spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("teleport", "unknown fault 'teleport'; expected one of: ws-502, "),
        ("delay:agent_thinking=abc", "expected milliseconds"),
        ("delay:agent_thinking=-5", "expected milliseconds"),
        ("delay:agent_thinking", "expected delay:NAME=MS"),
        ("delay:nope=5", "unknown event 'nope'"),
        ("drop-event", "expected an event name"),
        ("drop-event:", "expected an event name"),
        ("slow-handshake", "expected slow-handshake:MS"),
        ("slow-handshake:soon", "expected milliseconds"),
        ("ws-502:3", "'ws-502' takes no parameter"),
    ],
)
def test_parse_faults__errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as caught:
        parse_faults([spec])
    assert repr(spec) in str(caught.value)
