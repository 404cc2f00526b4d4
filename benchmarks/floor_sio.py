"""The Socket.IO floor: the chainlit journey (health, HS256 token exchanged at /auth/header for the cookie,
Socket.IO at /ws/socket.io, connection_successful, client_message, task_start ... task_end) in a minimal
python-socketio client, the library golden-path's Socket.IO transport uses, with nothing else.

    JWT_SECRET_KEY=... python benchmarks/floor_sio.py http://127.0.0.1:8080 --users 200

Prints one JSON line: journeys completed and failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid

import httpx
import socketio

from benchmarks.floor import hs256_token, nonced, tally


async def _journey(http: httpx.AsyncClient, url: str, secret: str, user: int) -> bool:
    token = hs256_token(secret, f"floor-user-{user}")
    login = await http.post(f"{url}/auth/header", headers={"Authorization": f"Bearer {token}"})
    cookie = f"access_token={login.cookies['access_token']}"
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    events: asyncio.Queue[str] = asyncio.Queue()

    async def any_event(event: str, *_args: object) -> None:
        events.put_nowait(event)

    client.on("*", any_event)
    try:
        async with asyncio.timeout(60):
            await client.connect(
                url,
                headers={"Cookie": cookie},
                auth={"clientType": "webapp", "sessionId": str(uuid.uuid4())},
                socketio_path="/ws/socket.io",
                wait_timeout=30,
            )
            await client.emit("connection_successful")
            while await events.get() != "task_end":
                pass
            message = {"id": str(uuid.uuid4()), "type": "user_message", "output": nonced()}
            await client.emit("client_message", {"message": message, "fileReferences": []})
            while await events.get() != "task_start":
                pass
            while await events.get() != "task_end":
                pass
            return True
    finally:
        await client.disconnect()


async def main(url: str, users: int) -> int:
    secret = os.environ["JWT_SECRET_KEY"]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(trust_env=False, timeout=60, limits=limits) as http:
        (await http.get(f"{url}/health")).raise_for_status()
        outcomes = await asyncio.gather(
            *(_journey(http, url, secret, u) for u in range(1, users + 1)), return_exceptions=True
        )
    return tally(outcomes, users)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.url, args.users)))
