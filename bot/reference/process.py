"""The reference backend in its own process, for the demo: a real backend never shares the checker's interpreter,
so a busy checker cannot slow the backend's answers (and a busy backend cannot skew the checker's clock)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import httpx

from bot.errors import ReferenceBackendError

START_DEADLINE_S = 20.0  # a cold interpreter importing starlette/uvicorn on a busy laptop: a few seconds
STOP_DEADLINE_S = 5.0
PORT_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it: try another


class ReferenceProcess:
    """``python -m bot serve-reference`` on a free 127.0.0.1 port, waited for with a deadline."""

    def __init__(self, *, secret: str, faults: Sequence[str] = (), version: str = "dev") -> None:
        self._secret = secret
        self._faults = list(faults)
        self._version = version
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (the process writes it until __exit__ closes it)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self._process.pid if self._process else 0

    def start(self) -> None:
        """Return once the backend answers HTTP. Raises ``ReferenceBackendError`` with its last words."""
        for _attempt in range(PORT_ATTEMPTS):
            self.port = _free_port()
            command = [sys.executable, "-m", "bot", "serve-reference", "--port", str(self.port),
                       "--version", self._version]  # fmt: skip
            for fault in self._faults:
                command += ["--fault", fault]
            env = {**os.environ, "JWT_SECRET_KEY": self._secret, "PYTHONUNBUFFERED": "1"}
            self._process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
            )
            if self._wait_until_serving():
                return
            if self._process.poll() is None:  # alive but silent past the deadline
                self.stop()
                break
        raise ReferenceBackendError(
            f"the reference backend did not start within {START_DEADLINE_S:.0f} s: {self._last_words()}"
        )

    def _wait_until_serving(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + START_DEADLINE_S
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False  # exited: the port was taken, or it failed to start
                with contextlib.suppress(httpx.TransportError):
                    client.get(f"{self.url}/health")  # any HTTP answer (health-503 is a fault) means serving
                    return True
                time.sleep(0.05)
        return False

    def _last_words(self) -> str:
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_DEADLINE_S)

    def __enter__(self) -> ReferenceProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self._log.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
