"""The floor: the same journey as golden-path's (health, HS256 token, WebSocket with the token as a subprotocol,
one message, the five agent events) in a minimal asyncio ``websockets`` client, with nothing else.

    JWT_SECRET_KEY=... python benchmarks/floor.py http://127.0.0.1:8080 --users 200 [--arrivals FILE] [--lean]

Prints one JSON line: journeys completed and failed. ``--arrivals`` writes, per user, each event's arrival after
the message was sent, in ms, next to the server's own stamp when the frame carries one (``server_ms``), and when
the message was sent (``sent_at``, CLOCK_MONOTONIC seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
# What golden-path's profiles send (openai-chat, chainlit): journey.message's default behind a per-user nonce of
# the same shape. The reference backend streams its answer in pieces of the message's length, so a floor sending
# a shorter message would read fewer events than golden-path and compare unlike work.
MESSAGE = "What is 2 + 2? Answer in one sentence."


def nonced(message: str = MESSAGE) -> str:
    return f"[gpn{secrets.token_hex(6)}] {message}"


def tally(outcomes: Sequence[object], users: int) -> int:
    """Print the floor's one JSON line (journeys completed and failed); 0 when every journey completed, else 1."""
    completed = sum(1 for o in outcomes if o is True)
    print(json.dumps({"completed": completed, "failed": users - completed}))
    return 0 if completed == users else 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hs256_token(secret: str, subject: str) -> str:
    now = int(time.time())
    header = _b64(b'{"alg":"HS256","typ":"JWT"}')
    claims = _b64(json.dumps({"sub": subject, "iat": now, "exp": now + 600}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}"


async def _health(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    status = await reader.readline()
    await reader.read()
    writer.close()
    if b" 200 " not in status:
        raise RuntimeError(f"health: {status!r}")


async def _journey(
    ws_url: str, secret: str, user: int, arrivals: list[dict[str, object]] | None, *, lean: bool = False
) -> bool:
    token = hs256_token(secret, f"floor-user-{user}")
    protocols = ["jwt-auth", f"jwt.{_b64(token.encode())}"]
    # The same wire options as golden-path's client: no permessage-deflate (its figures compare equal work).
    # ``lean``: also golden-path's other connect options, which change no byte on the wire of a short journey but
    # skip work websockets does by default: no proxy looked up in the environment, no keepalive ping task.
    extra: dict[str, object] = {"proxy": None, "ping_interval": None} if lean else {}
    async with connect(ws_url, subprotocols=protocols, open_timeout=60, compression=None, **extra) as ws:  # type: ignore[arg-type]
        message = {
            "type": "start_agent",
            "payload": {"user_request": "What is 2 + 2?", "thread_id": f"f{user}"},
        }
        sent = time.monotonic()  # CLOCK_MONOTONIC: the server's stamps are on the same clock
        await ws.send(json.dumps(message))
        seen: dict[str, list[float | None]] = {}
        async with asyncio.timeout(60):
            while len(seen) < len(EVENTS):
                raw = await ws.recv()
                now = time.monotonic()
                frame = json.loads(raw)
                if frame.get("type") in EVENTS:
                    seen[frame["type"]] = [round((now - sent) * 1000, 3), frame.get("server_ms")]
    if arrivals is not None:
        arrivals.append({"user": user, "sent_at": sent, "events": seen})
    return list(seen) == list(EVENTS)


async def main(url: str, users: int, arrivals_path: str | None, lean: bool = False) -> int:
    secret = os.environ["JWT_SECRET_KEY"]
    parts = urlsplit(url)
    await _health(parts.hostname or "127.0.0.1", parts.port or 80)
    ws_url = f"ws://{parts.netloc}/ws"
    arrivals: list[dict[str, object]] | None = [] if arrivals_path else None
    outcomes = await asyncio.gather(
        *(_journey(ws_url, secret, user, arrivals, lean=lean) for user in range(1, users + 1)),
        return_exceptions=True,
    )
    if arrivals_path and arrivals is not None:
        with open(arrivals_path, "w", encoding="utf-8") as out:
            json.dump(arrivals, out)
    return tally(outcomes, users)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--arrivals")
    parser.add_argument(
        "--lean", action="store_true", help="golden-path's connect options: no proxy, no pings"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.url, args.users, args.arrivals, args.lean)))
