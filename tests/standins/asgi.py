"""Serving a test backend as its team would: an ASGI app under uvicorn on 127.0.0.1, in a thread or in its own process.

``AsgiServer(app)`` runs uvicorn in a daemon thread with its own event loop; ``AsgiProcess("module:app", env)``
runs ``python -m uvicorn module:app`` in a separate process (a separate service, e.g. an auth service), on its own
port, and waits until it answers HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any, Self

import httpx
import uvicorn

from bot.reference.server import PromptServer

START_S = 20.0  # a cold interpreter importing FastAPI on a busy machine takes seconds
PORT_ATTEMPTS = 3
STOP_S = 5.0


def _config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        ws="websockets-sansio",
        loop="asyncio",
        lifespan="off",
        access_log=False,
        log_level="warning",
        log_config=None,
        timeout_graceful_shutdown=1,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AsgiServer:
    """``with AsgiServer(app) as server: server.url``: uvicorn in a thread, stopped on exit."""

    def __init__(self, app: Any) -> None:
        self._server = PromptServer(_config(app))
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="asgi-standin", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        # A handler still asleep (a stalled stream) is cancelled at shutdown: uvicorn says so by raising here.
        with self._sock, contextlib.suppress(asyncio.CancelledError):
            self._server.run(sockets=[self._sock])

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + START_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test backend on {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.exit()
        self._thread.join(STOP_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(STOP_S)


class AsgiProcess:
    """``python -m uvicorn MODULE:APP`` in its own process on a free port, with ``env`` added to its environment."""

    def __init__(self, app: str, *, env: Mapping[str, str] = {}, ready_path: str = "/") -> None:
        self._app = app
        self._env = dict(env)
        self._ready_path = ready_path
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        # The port is free when chosen and taken by uvicorn a moment later: another test worker may bind it in
        # between. uvicorn then exits ("address already in use"), and another port is tried.
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            if self._start():
                return self
            if "already in use" not in self._last_words():
                break
        why = self._last_words()
        self.__exit__()
        raise RuntimeError(f"{self._app} did not start on {self.url}: {why}")

    def _start(self) -> bool:
        command = [sys.executable, "-m", "uvicorn", self._app, "--host", "127.0.0.1", "--port", str(self.port),
                   "--log-level", "warning", "--ws", "websockets-sansio", "--lifespan", "off"]  # fmt: skip
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, **self._env, "PYTHONPATH": root, "PYTHONUNBUFFERED": "1"}
        self._log.seek(0)
        self._log.truncate()
        self._process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + START_S
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False
                with contextlib.suppress(httpx.TransportError):
                    client.get(self.url + self._ready_path)
                    return True
                time.sleep(0.05)
        return False

    def _last_words(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_S)
        self._log.close()
