"""`golden-path demo` N times in a row (default 20) while a CPU-bound process keeps another core busy.

The demo must pass every time on a laptop or a shared runner; prints the count and exits 1 on any miss.
Usage: python benchmarks/demo_under_load.py [RUNS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOG = "while True: pass"


def main(runs: int = 20) -> int:
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    passed, verdicts = 0, []
    try:
        with tempfile.TemporaryDirectory() as out:
            for number in range(1, runs + 1):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "bot", "demo", "--quiet", "--output-dir", out],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                verdict = json.loads((Path(out) / "results.json").read_text())["verdict"]
                verdicts.append(verdict)
                passed += done.returncode == 0 and verdict == "pass"
                print(
                    f"run {number:2}: exit {done.returncode}, verdict {verdict}, {time.perf_counter() - started:.1f} s"
                )
    finally:
        hog.kill()
        hog.wait()
    print(f"demo under load: {passed}/{runs} runs passed with a CPU-bound process on another core")
    return 0 if passed == runs else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
