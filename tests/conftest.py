"""Suite-wide set-up: no test may reach beyond 127.0.0.1, and no test sleeps through the bot's own waits.

google-auth looks for a GCE metadata server at 169.254.169.254 when Application Default Credentials are not
configured (the Logging reader and ID tokens ask for them). Point it at a closed loopback port before google-auth
is imported (it reads these at import time), so "no metadata server" is answered locally and at once: the port
refuses the connection, and one detection attempt (``GCE_METADATA_DETECT_RETRIES``, google-auth's documented
knob; its default of 3 sleeps about 1 s then 2 s between attempts) is all it makes.

``waits.set_testing()`` zeroes the bot's settles, back-offs and polls (stamina's testing mode): a test that is
about a wait asserts the wait requested (``waits.recorded()``), and one whose subject is real waiting (concurrent
writers meeting within a settle) waits for real inside ``with waits.set_testing(False):``.

``make unit`` runs the suite on pytest-xdist workers (``-n auto``): twice as many workers as usable cores, since
most of a test's wall time is waiting on a peer (a deadline against a server that never answers, a server's
shutdown), and those waits overlap. Every worker is its own process (this module runs in each); tests bind port 0
on 127.0.0.1 and write under ``tmp_path``, so nothing is shared between workers. A test about a verdict on a real
backend sets its performance targets out of the way (``tests/configs.py``): with twice as many workers as cores, a
loopback handshake can take longer than the production target of 50 ms.
"""

from __future__ import annotations

import os

import pytest

from bot import waits

# Each worker imports and collects the whole suite (about 5 s of CPU here) before it runs a test: many more workers
# buy little. On a shared 2-core machine, in the same hour: 4 workers took 77-135 s of wall time for 70-93 s of CPU,
# 8 workers 104-139 s for 98-110 s.
MAX_WORKERS = 8

NO_METADATA_SERVER = {
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
    "GCE_METADATA_DETECT_RETRIES": "1",
}
for _name, _value in NO_METADATA_SERVER.items():
    os.environ[_name] = _value
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)

waits.set_testing()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per core this process may run on (a container's share, not the host's count)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(2 * cores, MAX_WORKERS))
