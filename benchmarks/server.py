"""The reference backend in its own process for the benchmarks, recording when it sent each event.

    JWT_SECRET_KEY=... python benchmarks/server.py PORT

``GET /bench/stats`` answers the runs completed (and when, CLOCK_MONOTONIC seconds) and each event's send
time as CLOCK_MONOTONIC seconds, per thread id; ``POST /bench/reset`` forgets them.
"""

from __future__ import annotations

import os
import sys

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.reference.backend import Stamps
from bot.reference.server import bind, create_app, uvicorn_config


def main(port: int) -> None:
    stamps = Stamps()
    app = create_app(secret=os.environ["JWT_SECRET_KEY"], version="bench", stamps=stamps)

    async def stats(request: Request) -> JSONResponse:
        completed = stamps.completed
        return JSONResponse(
            {
                "completed": len(completed),
                "first_received": stamps.first_received,
                "first_completed": min(completed, default=None),
                "last_completed": max(completed, default=None),
                "sent_at": stamps.sent_at,
            }
        )

    async def reset(request: Request) -> JSONResponse:
        stamps.sent.clear()
        stamps.sent_at.clear()
        stamps.completed.clear()
        stamps.first_received = None
        return JSONResponse({"reset": True})

    app.router.routes.extend([Route("/bench/stats", stats), Route("/bench/reset", reset, methods=["POST"])])
    server = uvicorn.Server(uvicorn_config(app, own_logging=True))
    server.run(sockets=[bind("127.0.0.1", port)])


if __name__ == "__main__":
    main(int(sys.argv[1]))
