"""Redirects (#19 item 2): golden-path never follows one, on the WebSocket upgrade, on health or on login. A 3xx on
the upgrade is `ws-upgrade-status` with the status and the Location, whatever the Location holds, and no credential
ever reaches another origin: a raw asyncio server on 127.0.0.1 answers the redirects, a second one records
whether anything at all reached it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Self

import pytest

from bot import diagnose
from bot.auth import Credentials
from bot.config import build_settings
from bot.probe.journey import probe
from bot.results import Finding, Kind, Severity, Status
from tests.cli_support import check_url_argv, results_json, run_main, write_config

SECRET = "redirect-test-secret-0123456789abcdefghij"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.id-token-for-the-target-only.c2lnbmF0dXJl"
PASSWORD = "login-password-for-the-target-only"
CONFIG = {
    "health": {"paths": []},
    "websocket": {
        "open_timeout_s": 2,
        "token": {"header": {"name": "X-Chat-Token", "format": "Bearer {token}"}},
    },
    "journey": {"event_timeout_s": 1, "sla_s": 5, "users": 1},
    "timeouts": {"connect_s": 2, "request_s": 2, "run_s": 10},
}


class TcpServer:
    """A raw asyncio TCP server on 127.0.0.1 for the length of an ``async with``; ``_handle`` answers each client."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class Recorder(TcpServer):
    """A TCP server that answers nothing and records every byte it receives: the origin a redirect names."""

    def __init__(self) -> None:
        super().__init__()
        self.received = b""
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.received += await reader.read(65536)
        writer.close()


class Redirector(TcpServer):
    """A raw HTTP/1.1 server: every request gets ``status`` with ``location`` (no Location header when None)."""

    def __init__(self, status: int, location: str | None) -> None:
        super().__init__()
        self.status = status
        self.location = location
        self.requests: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        lines = [f"HTTP/1.1 {self.status} Redirect"]
        if self.location is not None:
            lines.append(f"Location: {self.location}")
        lines += ["Content-Length: 0", "Connection: close"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        writer.close()


LOCATIONS: dict[str, Callable[[int], str | None]] = {
    "ws": lambda port: f"ws://127.0.0.1:{port}/ws",
    "wss": lambda port: f"wss://127.0.0.1:{port}/ws",
    "http": lambda port: f"http://127.0.0.1:{port}/ws",
    "https": lambda port: f"https://127.0.0.1:{port}/ws",
    "scheme-relative": lambda port: f"//127.0.0.1:{port}/ws",
    "relative": lambda port: "/moved/ws",
    "garbage": lambda port: "::not a [uri]:: %%%",
    "missing": lambda port: None,
}


def _findings(checks: tuple, kind: Kind) -> list[Finding]:
    return [f for f in diagnose.diagnose(checks, service="chat") if f.kind is kind]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("form", list(LOCATIONS))
def test_probe__a_redirected_upgrade_is_ws_upgrade_status_and_sends_nothing_elsewhere(status: int, form: str):
    async def scenario() -> tuple[tuple, Redirector, Recorder, str | None]:
        async with Recorder() as elsewhere:
            location = LOCATIONS[form](elsewhere.port)
            async with Redirector(status, location) as target:
                settings = build_settings(CONFIG, {"url": target.url})
                outcome = await probe(
                    settings,
                    base_url=target.url,
                    credentials=Credentials(secret=SECRET),
                    extra_headers={"X-Serverless-Authorization": f"Bearer {ID_TOKEN}"},
                )
                await asyncio.sleep(0.05)  # anything sent elsewhere has arrived by now
        return outcome.checks, target, elsewhere, location

    checks, target, elsewhere, location = asyncio.run(scenario())

    (finding,) = _findings(checks, Kind.WS_UPGRADE_STATUS)
    assert finding.fingerprint == f"chat:ws-upgrade-status:{status}"
    assert finding.severity is Severity.P0
    assert finding.title == f"WebSocket upgrade redirected (HTTP {status})"
    assert "wss://" in finding.remediation
    assert finding.evidence["location"] == (location if location is not None else "(none)")
    # The upgrade of the user and the one without a token, each answered once: never a second request.
    assert len(target.requests) == 2
    negative = next(c for c in checks if c.id == "auth-negative")
    assert negative.status is Status.NOT_VERIFIED
    assert elsewhere.connections == 0 and elsewhere.received == b""


def test_probe__a_redirected_login_and_health_follow_nothing():
    """health and login (httpx, follow_redirects=False) answer 307 to another origin: nothing, the password
    least of all, goes there."""

    async def scenario() -> tuple[tuple, Recorder]:
        elsewhere = Recorder()
        async with elsewhere, Redirector(307, f"http://127.0.0.1:{elsewhere.port}/auth/login") as target:
            config = {**CONFIG, "health": {"paths": ["/health"]}, "auth": {"mode": "login"}}
            settings = build_settings(config, {"url": target.url})
            outcome = await probe(settings, base_url=target.url, credentials=Credentials(password=PASSWORD))
            await asyncio.sleep(0.05)
        return outcome.checks, elsewhere

    checks, elsewhere = asyncio.run(scenario())

    kinds = {(f.kind, f.step.value) for f in diagnose.diagnose(checks, service="chat")}
    assert (Kind.LOGIN_FAILED, "login") in kinds
    assert (Kind.HTTP_STATUS, "health") in kinds
    assert elsewhere.connections == 0 and elsewhere.received == b""


def test_main__an_http_location_on_the_upgrade_is_a_finding_not_a_crash(tmp_path: Path):
    """websockets raised InvalidURI for an http:// Location while following it: exit 3 and no results.json."""

    async def serve_and_check() -> tuple[int, str, int]:
        async with (
            Recorder() as elsewhere,
            Redirector(302, f"http://127.0.0.1:{elsewhere.port}/ws") as target,
        ):
            argv = check_url_argv(target.url, write_config(tmp_path, json.dumps(CONFIG)), tmp_path)
            code, _out, err = await asyncio.to_thread(run_main, argv, {"JWT_SECRET_KEY": SECRET})
            return code, err, elsewhere.connections

    code, err, reached = asyncio.run(serve_and_check())

    assert code == 1, err
    assert "Traceback" not in err
    (finding,) = [f for f in results_json(tmp_path)["findings"] if f["kind"] == "ws-upgrade-status"]
    assert finding["evidence"]["location"].startswith("http://127.0.0.1:")
    assert reached == 0
