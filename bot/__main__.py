"""The ``golden-path`` command (and ``python -m bot``).

Start-up is most of a one-user run's time. The imports a probing command needs (pydantic, httpx, pyjwt, the
probe) allocate objects that live until exit, and the cyclic collector walks them again and again while they
load (about 50 ms, a tenth of a one-user run). So they load with the collector off, are then frozen out of its
walks (which also lightens every collection during a 1,000-user probe), and the collector is back on before
any command runs. ``--help``, ``--version`` and the light commands import none of it.

The collector then runs after every 25,000 net new objects rather than 700 (``gc.set_threshold``): a thousand
users' journeys keep thousands of objects alive at once, and the default ran about 300 collections in a
1,000-user run (gen1 and gen2 ones walking every live journey), a tenth of its CPU. Garbage cycles are still
collected (a flood of frames stays bounded); each young collection takes a few ms instead of a fraction of one.

httpx imports its own command-line client (click, rich's progress bars, pygments: about 35 ms) whenever click is
installed, and uvicorn (the reference backend) installs it. We never run that client: marking the module absent
makes httpx fall back to its documented stub (``httpx.main`` then says to install ``httpx[cli]``).
"""

from __future__ import annotations

import gc
import sys

_PROBING = frozenset({"check", "demo", "action", "merge"})
_THRESHOLDS = (25_000, 20, 10)  # gc.set_threshold: young collections, then how many of each before the older


def run() -> int:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    if _PROBING.intersection(sys.argv[1:2]):
        gc.disable()
        try:
            import bot.pipeline  # noqa: F401  (the heavy imports, once, collector off)
        finally:
            gc.freeze()
            gc.set_threshold(*_THRESHOLDS)
            gc.enable()
    from bot.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
