"""Bounded under floods (#19 item 8): a peer that floods pings or large frames and never reads what we send cannot
grow the probe's memory past a fixed bound, and closing never waits longer than the close deadline. The flooding
server is raw asyncio on 127.0.0.1 in this process; the probe runs in its own process, which reports its peak RSS
(its own memory only), so the figure is the probe's. The bound is generous; ``make bench`` has the precise one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins.flood_ws import FLOODS, PROBE, Flooder

ROOT = Path(__file__).resolve().parent.parent.parent
GROWTH_BOUND_MIB = 32


@pytest.fixture(params=list(FLOODS))
def flooder(request: pytest.FixtureRequest) -> Iterator[Flooder]:
    with Flooder(FLOODS[request.param]) as server:
        yield server


def test_probe__a_peer_that_floods_and_never_reads_is_bounded_in_memory_and_time(flooder: Flooder):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"http://127.0.0.1:{flooder.port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["growth_mib"] < GROWTH_BOUND_MIB, figures
    # The event deadline (4 s) and the close deadline end the run, not the run's own deadline (120 s).
    assert figures["took_s"] < 60, figures
    assert figures["kinds"], figures  # the stalled journey is a finding
