"""Progress lines: phases start and end, and a heartbeat names what is awaited and for how long."""

import re
import time

import pytest

from bot import pipeline
from bot.auth import Credentials
from bot.config import build_settings
from bot.progress import Progress
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer

SECRET = "progress-test-secret-0123456789abcdefghij"


def test_phase__says_when_it_starts_and_how_long_it_took():
    lines: list[str] = []
    with Progress(lines.append).phase("report"):
        pass
    assert lines[0] == "phase report: started"
    assert re.fullmatch(r"phase report: done in \d+\.\d s", lines[1])


def test_phase__says_it_failed_and_lets_the_error_through():
    lines: list[str] = []
    with pytest.raises(RuntimeError), Progress(lines.append).phase("publish"):
        raise RuntimeError("GitHub down")
    assert lines[-1].startswith("phase publish: failed after ")


def test_waiting__ticks_with_elapsed_time_and_what_is_awaited_until_the_wait_ends():
    lines: list[str] = []
    with Progress(lines.append, heartbeat_s=0.05).waiting("revision chat-00002 to become ready"):
        time.sleep(0.4)
    ticks = [line for line in lines if line.startswith("still awaiting")]
    assert len(ticks) >= 3
    assert all(
        re.fullmatch(r"still awaiting revision chat-00002 to become ready \(\d+\.\d s elapsed\)", t)
        for t in ticks
    )
    count = len(lines)
    time.sleep(0.2)
    assert len(lines) == count, "no tick after the wait ended"


def test_execute__the_probe_phase_has_a_heartbeat_naming_the_users_awaited(tmp_path):
    lines: list[str] = []
    slow = parse_faults(["delay:agent_thinking=600"])
    with ReferenceServer(secret=SECRET, faults=slow) as backend:
        settings = build_settings({"url": backend.url, "journey": {"users": 2}, "output_dir": str(tmp_path)})
        run = pipeline.execute(
            settings,
            credentials=Credentials(secret=SECRET),
            context=pipeline.RunContext(),
            cloud_run=None,
            log=lines.append,
            progress=Progress(lines.append, heartbeat_s=0.1),
        )
    assert run.verdict.value in ("pass", "degraded")
    assert "phase probe: started" in lines and any(line.startswith("phase probe: done in") for line in lines)
    start = lines.index("phase probe: started")
    ticks = [line for line in lines[start:] if line.startswith("still awaiting the journeys of 2 users at ")]
    assert ticks, lines
