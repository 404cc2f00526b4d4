"""Benchmark: memory of a health check against a body that never ends (1 GiB, chunked, from another process).

The health body is read once, streamed, and cut at 1 MiB (``bot.probe.http_probe.MAX_BODY_BYTES``): the peak traced
memory of the check must stay a small multiple of that cap, whatever the server sends (measured here: about
2x, the kept MiB and its joined copy).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tracemalloc

import httpx

from bot.config import build_settings
from bot.probe.http_probe import MAX_BODY_BYTES, check_health

# The server runs in its own process, so only the client's memory is traced.
SERVER = r"""
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        try:
            for _ in range(1024 ** 3 // len(chunk)):
                conn.sendall(framed)
        except OSError:
            pass
"""


async def _peak_bytes(port: int) -> int:
    settings = build_settings({"url": f"http://127.0.0.1:{port}", "health": {"latency_samples": 1}})
    tracemalloc.start()
    async with httpx.AsyncClient(trust_env=False) as http:
        outcome = await check_health(
            http=http, base_url=settings.url or "", settings=settings.health, version=settings.version
        )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    failure = outcome.checks[0].failure
    assert failure is not None and failure.detail == "body-too-large", failure
    return peak


def health_body_peak_mib() -> float:
    """Peak traced memory of one health check against an endless body, in units of the 1 MiB cap."""
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        asyncio.run(_peak_bytes(port))  # warm-up: lazy imports inside httpx/httpcore are not the body's cost
        return asyncio.run(_peak_bytes(port)) / MAX_BODY_BYTES
    finally:
        server.kill()
        server.wait()
