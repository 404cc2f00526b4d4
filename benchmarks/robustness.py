"""Robustness figures for `make bench` (issues #10 and #11): bounded memory against hostile peers, and the GitHub
request budget of a steady-state failing run after many earlier incidents.

7. hostile health body: peak traced memory of a health check against an endless chunked body (1 MiB cap).
8. flood: peak RSS of the probe (its own process) while a hostile server sends 200,000 of another user's events
   to each of 5 users, against the same probe on a quiet server; the isolation finding must survive the flood.
8b. never-reading peer: peak RSS growth of the probe (its own process) and the run's time while a raw server floods
   pings (125-byte payloads) or 4 MiB text frames and never reads a byte back (#19 item 8).
9. GitHub cost: the requests a steady-state publish makes (comment and issue exist, same failure) after 20
   earlier incidents, counted by the client (``github.RequestCounter``) and checked against the stand-in's log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
missed: list[str] = []


def line(name: str, value: float, target: float, unit: str = "x", *, lower_is_better: bool = True) -> None:
    ok = value <= target if lower_is_better else value >= target
    if not ok:
        missed.append(name)
    sign = "<=" if lower_is_better else ">="
    print(f"{name:58} {value:8.2f}{unit}   target {sign} {target:g}{unit}   {'ok' if ok else 'MISSED'}")


def hostile_health_body() -> None:
    from hostile import health_body_peak_mib  # benchmarks/hostile.py

    line("memory: health check vs an endless 1 GiB body, peak MiB", health_body_peak_mib(), 4, " MiB")


def github_cost() -> None:
    sys.path.insert(0, str(ROOT))  # the stand-in lives under tests/
    from dataclasses import replace

    from bot import github, publish, report
    from bot.settings import GitHubSettings
    from tests import samples
    from tests.standins.github_api import GitHubStandIn

    with GitHubStandIn(repo="acme/chat-backend") as standin:
        for n in range(20):
            body = report.issue_marker(f"chat-backend:event-missing:e{n}") + "\nan earlier incident\n"
            standin.add_issue(title=f"incident {n}", body=body, labels=("P0", "golden-path"), state="closed")
        pr = standin.add_pull(head_sha="0" * 40)
        settings = GitHubSettings(publish=True, settle_s=0)
        run = samples.run("ws-upgrade-status")
        counts = []
        for attempt in range(2):
            counter = github.RequestCounter()
            gh = github.client(token=standin.token, base_url=standin.api_url, retries=2, counter=counter)
            before = len(standin.requests)
            publish.publish(
                gh=gh,
                repo_name="acme/chat-backend",
                run=replace(run, run_id=f"r{attempt}"),
                pr=pr,
                settings=settings,
            )
            assert counter.total == len(standin.requests) - before
            counts.append(counter.total)
    line(
        f"GitHub: requests of a steady-state publish after 20 incidents (first run {counts[0]})",
        counts[1],
        6,
        "",
    )


FLOOD_EVENTS = 200_000
FLOOD_USERS = 5
FLOOD_GROWTH_MIB = 16  # the bound README states: a flood may not grow the probe's peak RSS by more than this
# The server runs in its own process (its memory is not the probe's), the probe in another that reports its RSS.
_FLOOD_SERVER = """
import sys
from tests.standins import hostile_ws
count = int(sys.argv[1])
behaviour = hostile_ws.small_frames(count, foreign=True) if count else hostile_ws.complete
with hostile_ws.running(behaviour) as url:
    print(url, flush=True)
    sys.stdin.read()
"""
_FLOOD_PROBE = """
import asyncio, json, resource, sys
from bot import diagnose
from bot.auth import Credentials
from bot.probe.journey import probe
from bot.config import build_settings
url, users = sys.argv[1], int(sys.argv[2])
config = {"health": {"paths": []}, "websocket": {"negative_auth_check": False},
          "journey": {"users": users, "event_timeout_s": 300, "sla_s": 600}, "timeouts": {"run_s": 900}}
settings = build_settings(config, {"url": url})
outcome = asyncio.run(probe(settings, base_url=url, credentials=Credentials(secret="x" * 40)))
kinds = sorted({f.kind.value for f in diagnose.diagnose(outcome.checks, service="bench")})
print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "kinds": kinds}))
"""


def _flood_run(events: int) -> tuple[float, list[str], float]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    server = subprocess.Popen(
        [sys.executable, "-c", _FLOOD_SERVER, str(events)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _FLOOD_PROBE, url, str(FLOOD_USERS)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        took = time.perf_counter() - started
    finally:
        server.communicate("", timeout=30)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["rss_kib"] / 1024, figures["kinds"], took


def flood() -> None:
    quiet_mib, _, _ = _flood_run(0)
    flood_mib, kinds, took = _flood_run(FLOOD_EVENTS)
    line(
        f"flood: {FLOOD_EVENTS:,} foreign events x {FLOOD_USERS} users in {took:.0f} s; peak RSS {flood_mib:.0f} MiB, "
        f"growth over a quiet run ({quiet_mib:.0f} MiB)",
        flood_mib - quiet_mib,
        FLOOD_GROWTH_MIB,
        " MiB",
    )
    line(
        "flood: isolation-leak finding kept (1 = yes)",
        float("isolation-leak" in kinds),
        1,
        "",
        lower_is_better=False,
    )


NEVER_READING_BOUND_MIB = 32  # README: a peer that floods and never reads grows the probe by less than this
NEVER_READING_TIME_S = 4 + 2 + 2  # journey.event_timeout_s of the run + the close deadline + slack


def never_reading_peer() -> None:
    sys.path.insert(0, str(ROOT))  # the stand-in lives under tests/
    from tests.standins.flood_ws import FLOODS, PROBE, Flooder

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, chunk in FLOODS.items():
        with Flooder(chunk) as server:
            done = subprocess.run(
                [sys.executable, "-c", PROBE, f"http://127.0.0.1:{server.port}"],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        line(
            f"never-reading peer, {name}: probe peak RSS growth",
            figures["growth_mib"],
            NEVER_READING_BOUND_MIB,
            " MiB",
        )
        line(
            f"never-reading peer, {name}: run time (event deadline 4 s)",
            figures["took_s"],
            NEVER_READING_TIME_S,
            " s",
        )


def main() -> list[str]:
    """Print the three figures; return the names of the targets missed."""
    print("\n7-9. Robustness: memory against hostile peers, GitHub requests of a failing steady state")
    hostile_health_body()
    flood()
    never_reading_peer()
    github_cost()
    return missed
