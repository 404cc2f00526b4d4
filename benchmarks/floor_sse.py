"""The SSE floor: the openai-chat journey (health, HS256 token, one streamed chat completion read to `[DONE]`) in
a minimal httpx streaming client, the library golden-path's SSE transport uses, with nothing else.

    JWT_SECRET_KEY=... python benchmarks/floor_sse.py http://127.0.0.1:8080 --users 200

Prints one JSON line: journeys completed and failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import httpx

from benchmarks.floor import hs256_token, nonced, tally


async def _journey(http: httpx.AsyncClient, url: str, secret: str, user: int) -> bool:
    token = hs256_token(secret, f"floor-user-{user}")
    # The openai-chat profile's body: its model value, the message behind a nonce (benchmarks/floor.py).
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": nonced()}]}
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    answer: list[str] = []
    async with asyncio.timeout(60), http.stream("POST", url, json=body, headers=headers) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                return bool(answer)
            choices = json.loads(data).get("choices") or [{}]
            answer.append(choices[0].get("delta", {}).get("content") or "")
    return False


async def main(url: str, users: int) -> int:
    secret = os.environ["JWT_SECRET_KEY"]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(
        trust_env=False, timeout=httpx.Timeout(60, read=None), limits=limits
    ) as http:
        (await http.get(f"{url}/health")).raise_for_status()
        outcomes = await asyncio.gather(
            *(_journey(http, f"{url}/v1/chat/completions", secret, u) for u in range(1, users + 1)),
            return_exceptions=True,
        )
    return tally(outcomes, users)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.url, args.users)))
