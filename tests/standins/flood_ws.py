"""A peer that floods and never reads, on 127.0.0.1: raw asyncio, so nothing in it answers a ping or reads a pong.

``Flooder(chunk)`` answers the WebSocket upgrade with 101 (echoing `jwt-auth`), then writes ``chunk`` forever and
never reads again: the client's pongs, its message and its close frame pile up on its side. ``FLOODS`` holds the
two floods the tests and ``make bench`` use: the largest pings a server may send, and text frames just under the
probe's 4 MiB limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import struct
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PING = b"\x89\x7d" + b"p" * 125  # the largest ping a server may send: every pong echoes its 125 bytes
BIG = json.dumps({"type": "heartbeat", "pad": "x" * (4 * 2**20 - 64)}).encode()  # just under the 4 MiB limit


def _text_frame(payload: bytes) -> bytes:
    return b"\x81\x7f" + struct.pack("!Q", len(payload)) + payload


FLOODS = {"pings": PING * 512, "4 MiB frames": _text_frame(BIG)}


class Flooder:
    """Answers the upgrade with 101 (echoing `jwt-auth`), then writes ``chunk`` forever and never reads."""

    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="flooder")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(Exception):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            key = next(
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: jwt-auth\r\n\r\n"
                ).encode()
            )
            while True:  # never reads again: the pongs, the message and the close pile up on the client
                writer.write(self.chunk)
                await writer.drain()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.transport.abort()
        self.loop.run_until_complete(server.wait_closed())
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))

    def __enter__(self) -> Flooder:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# The probe against a flooder, in its own process (its peak RSS is its own): prints growth, time and kinds.
PROBE = """
import asyncio, json, resource, sys, time
from bot import diagnose
from bot.auth import Credentials
from bot.probe.journey import probe
from bot.config import build_settings
url = sys.argv[1]
config = {"health": {"paths": []}, "websocket": {"negative_auth_check": False, "open_timeout_s": 5},
          "journey": {"users": 1, "event_timeout_s": 4, "sla_s": 600}, "timeouts": {"run_s": 120}}
settings = build_settings(config, {"url": url})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
outcome = asyncio.run(probe(settings, base_url=url, credentials=Credentials(secret="x" * 40)))
took = time.monotonic() - started
kinds = sorted({f.kind.value for f in diagnose.diagnose(outcome.checks, service="flood")})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_mib": (after - before) / 1024, "took_s": took, "kinds": kinds}))
"""
