"""`make bench`: golden-path against the floor (benchmarks/floor.py, a minimal asyncio websockets client doing
the same journey) and Artillery 2.0.34 when installed, side by side in one run.

Every figure is the median of ROUNDS interleaved rounds (tools alternate within a round, so a noisy 2-core
machine slows each alike), printed with its spread (min-max). Every server runs in its own process
(benchmarks/server.py: the reference backend, stamping when it sent each event); every client is a fresh process.

1. --help / --version time
2. overhead to verdict for one user (process start to exit) against the floor and Artillery
3. 1,000 users: journeys per second counted at the server, CPU per extra journey, peak RSS
4. timing honesty at 200 users: recorded arrival minus the server's send stamp (absolute, CLOCK_MONOTONIC), excess
   over the floor's at p95
5. GitHub requests per steady-state publishing run, against tests/standins/github_api.py
6. the Dockerfile's install replayed, against a plain `pip install .`
7-9. robustness (benchmarks/robustness.py): memory against an endless health body and a flood of foreign
   events, and GitHub requests of a failing steady state after 20 earlier incidents
10. each transport at 1,000 users (SSE: the openai-chat profile; Socket.IO: the chainlit profile) against a bare
   client of the same library doing the same journey (benchmarks/floor_sse.py on httpx, floor_sio.py on
   python-socketio): journeys/s counted at the server, CPU per extra journey, peak RSS

Environment: BENCH_ROUNDS (default 3), BENCH_ONLY (the figures to run, e.g. "3,4"; default all: 7-9 run
together), ARTILLERY (path to the artillery binary; default benchmarks/node_modules/.bin/artillery, then PATH).
Exits 0: the figures are reported, not gated.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PYTHON = sys.executable
SECRET = "benchmark-secret-0123456789abcdefghijklmnop"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ONLY = {int(n) for n in os.environ.get("BENCH_ONLY", "").replace(",", " ").split()}


def wanted(figure: int) -> bool:
    return not ONLY or figure in ONLY


BIG = 1000
HONESTY_USERS = 200
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
GP_CONFIG = (
    "journey: {event_timeout_s: 120, sla_s: 300}\n"
    "websocket: {open_timeout_s: 120}\n"
    "timeouts: {connect_s: 120, request_s: 120, run_s: 600}\n"
)


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float  # user + system of the process and the children it waited for
    max_rss_mb: float
    code: int
    started: float  # time.monotonic() when it was started (CLOCK_MONOTONIC, comparable with the server's)


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Sample:
    """Run a process to its exit; wall time, CPU (its own and its waited-for children's) and peak RSS."""
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        print(f"    ({argv[0]} ... exited {process.returncode}: {error.strip()[-300:]})")
    return Sample(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        process.returncode,
        started,
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], unit: str = "", digits: int = 0) -> str:
    return f"{median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "ok" if ok else "MISSED"


# -- the server --------------------------------------------------------------------------------------------------


class Server:
    """benchmarks/server.py in its own process."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [PYTHON, str(BENCH / "server.py"), str(self.port)],
            env={**os.environ, "JWT_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("bench: the reference backend did not start")

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}/bench/stats", timeout=30) as answer:
            data: dict[str, object] = json.load(answer)
            return data

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/bench/reset", method="POST")
        urllib.request.urlopen(request, timeout=30).close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# -- the tools ---------------------------------------------------------------------------------------------------


def artillery_binary() -> str | None:
    given = os.environ.get("ARTILLERY")
    local = BENCH / "node_modules" / ".bin" / "artillery"
    for candidate in (given, str(local) if local.exists() else None, shutil.which("artillery")):
        if candidate:
            return candidate
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _token() -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({"sub": "artillery", "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


class Tools:
    def __init__(self, server: Server, work: Path) -> None:
        self.server = server
        self.work = work
        self.config = work / "golden-path.yml"
        self.config.write_text(GP_CONFIG)
        self.artillery = artillery_binary()

    def golden_path(self, users: int, out: str, config: Path | None = None) -> list[str]:
        return [
            PYTHON, "-m", "bot", "check", "--url", self.server.url, "--users", str(users), "--config",
            str(config or self.config), "--output-dir", str(self.work / out), "--quiet", "--no-publish",
        ]  # fmt: skip

    def floor(
        self, users: int, arrivals: Path | None = None, script: str = "floor.py", *, lean: bool = False
    ) -> list[str]:
        extra = ["--arrivals", str(arrivals)] if arrivals else []
        return [
            PYTHON,
            str(BENCH / script),
            self.server.url,
            "--users",
            str(users),
            *extra,
            *(["--lean"] * lean),
        ]

    def artillery_script(self, users: int) -> Path:
        script = self.work / f"artillery-{users}.yml"
        token = _token()
        script.write_text(
            json.dumps(
                {
                    "config": {
                        "target": f"ws://127.0.0.1:{self.server.port}/ws",
                        "processor": str(BENCH / "artillery" / "journey.js"),
                        "ws": {"subprotocols": ["jwt-auth", f"jwt.{_b64(token.encode())}"]},
                        "phases": [{"duration": 1, "arrivalCount": users}],
                    },
                    "scenarios": [{"engine": "ws", "flow": [{"function": "journey"}]}],
                }
            )
        )
        return script

    def artillery_argv(self, users: int) -> list[str]:
        assert self.artillery is not None
        return [self.artillery, "run", "--quiet", str(self.artillery_script(users))]


ENV = {"JWT_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT), "ARTILLERY_DISABLE_TELEMETRY": "true"}


# -- 1. start-up -------------------------------------------------------------------------------------------------


def startup() -> None:
    print("\n1. Start-up: process start to exit (median of rounds, min-max)")
    runs: dict[str, list[float]] = {
        "python -c pass": [],
        "golden-path --version": [],
        "golden-path --help": [],
    }
    argv = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "golden-path --version": [PYTHON, "-m", "bot", "--version"],
        "golden-path --help": [PYTHON, "-m", "bot", "--help"],
    }
    for _ in range(ROUNDS * 2):
        for name, command in argv.items():
            runs[name].append(measure(command, env=ENV, cwd=ROOT).wall_s * 1000)
    bare = median(runs["python -c pass"])
    for name, values in runs.items():
        ratio = median(values) / bare
        target = (
            ""
            if name.startswith("python")
            else f"  {ratio:.1f}x bare python, target <= 10x {verdict(ratio <= 10)}"
        )
        print(f"   {name:28} {spread(values, ' ms')}{target}")


# -- 2. one user -------------------------------------------------------------------------------------------------


def one_user(tools: Tools) -> dict[str, float]:
    print("\n2. Overhead to verdict for one user (process start to exit, same journey, same server)")
    commands: dict[str, Callable[[int], list[str]]] = {
        "golden-path": lambda r: tools.golden_path(1, f"one-{r}"),
        "floor": lambda r: tools.floor(1),
    }
    if tools.artillery:
        commands["artillery"] = lambda r: tools.artillery_argv(1)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for r in range(ROUNDS):
        for name, command in commands.items():
            sample = measure(command(r), env=ENV, cwd=tools.work)
            walls[name].append(sample.wall_s * 1000)
            cpus[name].append(sample.cpu_s * 1000)
    gp, floor = median(walls["golden-path"]), median(walls["floor"])
    for name, values in walls.items():
        print(f"   {name:28} {spread(values, ' ms')}")
    print(f"   golden-path / floor          {gp / floor:.2f}x   target <= 3x   {verdict(gp / floor <= 3)}")
    if "artillery" in walls:
        ratio = gp / median(walls["artillery"])
        print(f"   golden-path / artillery      {ratio:.2f}x   (lower is better)")
    else:
        print(
            "   artillery                    skipped: not installed (cd benchmarks && "
            "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm i artillery@2.0.34)"
        )
    return {name: median(values) for name, values in cpus.items()}


# -- 3. 1,000 users ----------------------------------------------------------------------------------------------


def at_server(tools: Tools, argv: list[str]) -> tuple[Sample, int, float]:
    """Run ``argv`` against the freshly reset reference server: the sample, the journeys the server counted
    completed, and journeys per second from the first message's arrival to the last completion."""
    tools.server.reset()
    sample = measure(argv, env=ENV, cwd=tools.work)
    stats = tools.server.stats()
    done = int(stats["completed"])  # type: ignore[call-overload]
    first = float(stats["first_received"] or sample.started)  # type: ignore[arg-type]
    last = float(stats["last_completed"] or time.monotonic())  # type: ignore[arg-type]
    return sample, done, done / max(last - first, 1e-6)


LEAN = "floor-lean"


def thousand(tools: Tools, cpu_one: dict[str, float]) -> None:
    print(
        f"\n3. {BIG:,} users at once: journeys per second counted at the server, CPU per extra journey, peak RSS"
    )
    commands: dict[str, Callable[[int], list[str]]] = {
        "golden-path": lambda r: tools.golden_path(BIG, f"big-{r}"),
        "floor": lambda r: tools.floor(BIG),
        LEAN: lambda r: tools.floor(BIG, lean=True),
    }
    if tools.artillery:
        commands["artillery"] = lambda r: tools.artillery_argv(BIG)
    cpu_one = {
        **cpu_one,
        LEAN: median(
            [measure(tools.floor(1, lean=True), env=ENV, cwd=tools.work).cpu_s * 1000 for _ in range(ROUNDS)]
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, list[float]] = {name: [] for name in commands}
    counted: dict[str, list[int]] = {name: [] for name in commands}
    for r in range(ROUNDS):
        for name, command in commands.items():
            sample, done, rate = at_server(tools, command(r))
            rates[name].append(rate)
            cpu[name].append((sample.cpu_s * 1000 - cpu_one[name]) / (BIG - 1))
            rss[name].append(sample.max_rss_mb)
            counted[name].append(done)
    for name in commands:
        all_counted = all(c == BIG for c in counted[name])
        print(
            f"   {name:12} {spread(rates[name], ' j/s')}   CPU/journey {spread(cpu[name], ' ms', 2)}   "
            f"peak RSS {spread(rss[name], ' MB')}   journeys counted {min(counted[name])}-{max(counted[name])}"
            f"{'' if all_counted else ' (NOT ALL)'}"
        )
    gp = median(rates["golden-path"])
    floor_ratio = gp / median(rates["floor"])
    print(
        f"   golden-path / floor j/s      {floor_ratio:.2f}x   target >= 0.9x   {verdict(floor_ratio >= 0.9)}"
    )
    if "artillery" in rates:
        art_ratio = gp / median(rates["artillery"])
        print(
            f"   golden-path / artillery j/s  {art_ratio:.2f}x   target >= 2.5x   {verdict(art_ratio >= 2.5)}"
        )
    cpu_ratio = median(cpu["golden-path"]) / median(cpu["floor"])
    print(
        f"   CPU per extra journey, golden-path / floor   {cpu_ratio:.2f}x   target <= 1.3x   {verdict(cpu_ratio <= 1.3)}"
    )
    lean_ratio = median(cpu["golden-path"]) / median(cpu[LEAN])
    print(
        f"   CPU per extra journey, golden-path / {LEAN}   {lean_ratio:.2f}x   (for reference: the floor with "
        "golden-path's connect options, no proxy lookup and no keepalive ping task)"
    )
    peak = median(rss["golden-path"])
    print(f"   golden-path peak RSS         {peak:.0f} MB   target < 150 MB   {verdict(peak < 150)}")


# -- 10. each transport at 1,000 users -------------------------------------------------------------------------

TRANSPORTS = (("SSE", "openai-chat", "floor_sse.py"), ("Socket.IO", "chainlit", "floor_sio.py"))
# The profile's request steps with the same deadline as every other wait here (a step's own default is 10 s):
# with 1,000 users on 2 shared cores, chainlit's POST /auth/header can queue longer than 10 s, and golden-path
# then fails those users (honestly: exit 1, a `timeout` finding) while the floor waits up to 60 s.
REQUESTS = {
    "chainlit": ", requests: [{name: header-auth, method: POST, path: /auth/header, extract: {}, timeout_s: 120}]"
}


def journeys_passed(results: Path) -> tuple[int, list[str]]:
    """Users whose every check passed in golden-path's results.json, and its findings (kind, step, count,
    what was observed), so a figure is never computed over runs that failed users without saying so."""
    run = json.loads(results.read_text())
    users: dict[int, bool] = {}
    for check in run["checks"]:
        if check.get("user") is not None:
            users[check["user"]] = users.get(check["user"], True) and check["status"] == "pass"
    findings = [
        f"{f['kind']} at {f['step']} x{f.get('occurrences') or 1}: {str(f.get('observed', ''))[:120]}"
        for f in run["findings"]
        if f["severity"] == "P0"
    ]
    return sum(users.values()), findings


def per_transport(tools: Tools) -> None:
    print(
        f"\n10. {BIG:,} users per transport against a bare client of the same library (journeys/s at the server)"
    )
    for label, profile, floor in TRANSPORTS:
        config = tools.work / f"golden-path-{profile}.yml"
        config.write_text(
            f"journey: {{profile: {profile}, event_timeout_s: 120, sla_s: 300{REQUESTS.get(profile, '')}}}\n"
            "sse: {open_timeout_s: 120}\nsocketio: {open_timeout_s: 120}\n"
            "timeouts: {connect_s: 120, request_s: 120, run_s: 600}\n"
        )

        def bare(users: int, _out: str, floor: str = floor) -> list[str]:
            return tools.floor(users, script=floor)

        commands: dict[str, Callable[[int, str], list[str]]] = {
            "golden-path": functools.partial(tools.golden_path, config=config),
            "floor": bare,
        }
        one = {name: measure(command(1, f"{profile}-one"), env=ENV, cwd=tools.work).cpu_s * 1000
               for name, command in commands.items()}  # fmt: skip
        rates: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        rss: dict[str, list[float]] = {name: [] for name in commands}
        counted: dict[str, list[int]] = {name: [] for name in commands}
        for r in range(ROUNDS):
            for name, command in commands.items():
                sample, done, rate = at_server(tools, command(BIG, f"{profile}-big-{r}"))
                rates[name].append(rate)
                cpu[name].append((sample.cpu_s * 1000 - one[name]) / (BIG - 1))
                rss[name].append(sample.max_rss_mb)
                counted[name].append(done)
                if name == "golden-path":
                    passed, findings = journeys_passed(tools.work / f"{profile}-big-{r}" / "results.json")
                    if passed != done or findings:
                        false_pass = "  FALSE PASS" if passed > done else ""
                        print(
                            f"     round {r + 1}: golden-path passed {passed} journeys (exit {sample.code}), "
                            f"the server counted {done}{false_pass}"
                        )
                        for finding in findings:
                            print(f"       {finding}")
                elif sample.code != 0:
                    print(f"     round {r + 1}: the floor exited {sample.code}, the server counted {done}")
        print(f"   {label} ({profile})")
        for name in commands:
            print(
                f"     {name:12} {spread(rates[name], ' j/s')}   CPU/journey {spread(cpu[name], ' ms', 2)}   "
                f"peak RSS {spread(rss[name], ' MB')}   journeys counted {min(counted[name])}-{max(counted[name])}"
            )
        ratio = median(rates["golden-path"]) / max(median(rates["floor"]), 1e-6)
        cpu_ratio = median(cpu["golden-path"]) / max(median(cpu["floor"]), 1e-6)
        peak = median(rss["golden-path"])
        print(f"     golden-path / floor j/s  {ratio:.2f}x   target >= 0.9x   {verdict(ratio >= 0.9)}")
        print(
            f"     CPU per journey ratio    {cpu_ratio:.2f}x   target <= 1.3x   {verdict(cpu_ratio <= 1.3)}"
        )
        print(f"     golden-path peak RSS     {peak:.0f} MB   target < 150 MB   {verdict(peak < 150)}")


# -- 4. timing honesty -------------------------------------------------------------------------------------------


def _gaps(client: dict[int, dict[str, float]], server: dict[int, dict[str, float]]) -> list[float]:
    """Per event: the client's recorded arrival minus the server's send stamp, both absolute CLOCK_MONOTONIC
    (system-wide on Linux), in ms. Nothing but the frame's trip and how late the client recorded it."""
    gaps = []
    for user, arrivals in client.items():
        sent = server.get(user, {})
        gaps += [(arrivals[e] - sent[e]) * 1000 for e in EVENTS if e in arrivals and e in sent]
    return gaps


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)] if ordered else float("nan")


def _by_user(sent: dict[str, dict[str, float]], prefix: str) -> dict[int, dict[str, float]]:
    found = {}
    for thread, events in sent.items():
        if thread.startswith(prefix):
            found[int(thread.rsplit("-", 1)[-1].removeprefix("f"))] = events
    return found


def _absolute(sent_at: float | None, events: dict[str, float]) -> dict[str, float]:
    """Arrivals in ms after the message, made absolute (seconds) with the message's own monotonic stamp."""
    return {} if sent_at is None else {e: sent_at + ms / 1000 for e, ms in events.items()}


def honesty(tools: Tools) -> None:
    print(
        f"\n4. Timing honesty at {HONESTY_USERS} users: each event's recorded arrival minus the server's send stamp "
        "(CLOCK_MONOTONIC, one clock for both processes)"
    )
    excess, gp_p95s, floor_p95s = [], [], []
    for r in range(ROUNDS + 2):  # cheap, and noisy: two rounds more
        tools.server.reset()
        measure(tools.golden_path(HONESTY_USERS, f"honest-{r}"), env=ENV, cwd=tools.work)
        run = json.loads((tools.work / f"honest-{r}" / "results.json").read_text())
        gp_client = {s["user"]: _absolute(s.get("message_sent_at"), s["events"]) for s in run["samples"]}
        gp_server = _by_user(tools.server.stats()["sent_at"], "golden-path-")  # type: ignore[arg-type]
        tools.server.reset()
        arrivals = tools.work / f"floor-arrivals-{r}.json"
        measure(tools.floor(HONESTY_USERS, arrivals), env=ENV, cwd=tools.work)
        floor_client = {
            a["user"]: _absolute(a["sent_at"], {e: v[0] for e, v in a["events"].items()})
            for a in json.loads(arrivals.read_text())
        }
        floor_server = _by_user(tools.server.stats()["sent_at"], "f")  # type: ignore[arg-type]
        gp_gaps, floor_gaps = _gaps(gp_client, gp_server), _gaps(floor_client, floor_server)
        if len(gp_gaps) < HONESTY_USERS * len(EVENTS) or len(floor_gaps) < HONESTY_USERS * len(EVENTS):
            print(f"    (round {r}: events matched golden-path {len(gp_gaps)}, floor {len(floor_gaps)})")
        gp_p95, floor_p95 = _p95(gp_gaps), _p95(floor_gaps)
        gp_p95s.append(gp_p95)
        floor_p95s.append(floor_p95)
        excess.append(gp_p95 - floor_p95)
    print(f"   golden-path gap p95          {spread(gp_p95s, ' ms', 2)}")
    print(f"   floor gap p95                {spread(floor_p95s, ' ms', 2)}")
    value = median(excess)
    print(
        f"   excess over the floor at p95 {spread(excess, ' ms', 2)}   target <= 2 ms   {verdict(value <= 2)}"
    )


# -- 5. GitHub requests ------------------------------------------------------------------------------------------


def github_requests(tools: Tools) -> None:
    print("\n5. GitHub requests per steady-state publishing run (the PR comment exists; stand-in REST v3)")
    sys.path.insert(0, str(ROOT))
    from tests.standins.github_api import GitHubStandIn

    counts = []
    with GitHubStandIn(repo="acme/chat-backend") as github:
        pr = github.add_pull(head_sha="abc1234def")
        for r in range(ROUNDS + 1):
            event = tools.work / "event.json"
            event.write_text(
                json.dumps({"action": "synchronize", "number": pr, "pull_request": {"number": pr}})
            )
            env = {
                **ENV,
                "GITHUB_ACTIONS": "true",
                "GITHUB_TOKEN": github.token,
                "GITHUB_REPOSITORY": "acme/chat-backend",
                "GITHUB_API_URL": github.api_url,
                "GITHUB_SERVER_URL": github.server_url,
                "GITHUB_EVENT_NAME": "pull_request",
                "GITHUB_EVENT_PATH": str(event),
                "GITHUB_SHA": "abc1234def",
                "GITHUB_RUN_ID": str(100 + r),
                "GITHUB_OUTPUT": str(tools.work / "gh-output"),
                "GITHUB_STEP_SUMMARY": str(tools.work / "gh-summary"),
            }
            before = len(github.requests)
            argv = [*tools.golden_path(1, f"gh-{r}")[:-1], "--publish", "--service", "chat-backend"]
            measure(argv, env=env, cwd=tools.work)
            if r:  # the first run creates the comment; the rest are the steady state
                counts.append(len(github.requests) - before)
    value = median(counts)
    print(f"   requests per run             {spread(counts)}   target <= 6   {verdict(value <= 6)}")


# -- 6. install --------------------------------------------------------------------------------------------------


def _replay_dockerfile(image: Path) -> list[str]:
    """The Dockerfile's COPY lines done into ``image``; its RUN lines returned, to be timed."""
    runs = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        instruction, _, rest = line.partition(" ")
        if instruction == "COPY" and "--from" not in rest:
            *sources, dest = rest.split()
            for source in sources:
                target = image / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True) if dest.endswith("/") else None
                    shutil.copy(ROOT / source, target)
        elif instruction == "RUN":
            runs.append(rest)
    return runs


def install(work: Path) -> None:
    print("\n6. The Dockerfile's install replayed in a clean virtualenv, against a plain `pip install .`")
    rounds = max(2, ROUNDS - 1)  # each install takes tens of seconds
    times: dict[str, list[float]] = {"Dockerfile RUN lines": [], "plain pip install .": []}
    failures: dict[str, str] = {}
    for r in range(rounds):
        for name in times:
            image = work / f"image-{r}-{len(times[name])}-{name.split()[0]}"
            image.mkdir(parents=True)
            # The build's tools (pip, then uv) live beside the image: the Dockerfile makes its own `venv` inside it.
            venv = image.parent / f"{image.name}-tools"
            subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
            env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
            if name.startswith("Dockerfile"):
                commands = _replay_dockerfile(image)
            else:
                shutil.copytree(ROOT / "bot", image / "bot")
                shutil.copytree(ROOT / "templates", image / "templates")
                shutil.copy(ROOT / "pyproject.toml", image)
                shutil.copy(ROOT / "README.md", image)
                commands = ["pip install --no-cache-dir --quiet ."]
            started = time.monotonic()
            for command in commands:
                done = subprocess.run(command, shell=True, cwd=image, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    failures[name] = f"`{command}` exited {done.returncode}: {done.stderr.strip()[-200:]}"
            times[name].append(time.monotonic() - started)
            shutil.rmtree(image, ignore_errors=True)
            shutil.rmtree(venv, ignore_errors=True)
    for name, values in times.items():
        note = f"   not measured: {failures[name]}" if name in failures else ""
        print(f"   {name:28} {spread(values, ' s', 1)}{note}")
    uses_uv = "uv " in (ROOT / "Dockerfile").read_text()
    ratio = median(times["Dockerfile RUN lines"]) / median(times["plain pip install ."])
    print(f"   Dockerfile ({'uv' if uses_uv else 'pip'}) / plain pip   {ratio:.2f}x")


def main() -> int:
    started = time.monotonic()
    print(f"golden-path benchmarks: {ROUNDS} interleaved rounds per figure; median (min-max)")
    with tempfile.TemporaryDirectory(prefix="golden-path-bench-") as tmp:
        work = Path(tmp)
        server = Server()
        try:
            tools = Tools(server, work)
            if tools.artillery is None:
                print("Artillery: not installed, its columns are skipped (see --help of this script).")
            if wanted(1):
                startup()
            if wanted(2) or wanted(3):  # 3 needs 2's CPU for one user
                cpu_one = one_user(tools)
            if wanted(3):
                thousand(tools, cpu_one)
            if wanted(4):
                honesty(tools)
            if wanted(5):
                github_requests(tools)
            if wanted(10):
                per_transport(tools)
        finally:
            server.stop()
        if wanted(6):
            install(work)
    if wanted(7) or wanted(8) or wanted(9):
        sys.path.insert(0, str(BENCH))
        import robustness  # benchmarks/robustness.py: hostile peers' memory bounds, GitHub's request budget

        robustness_missed = robustness.main()
        if robustness_missed:
            print(f"missed: {', '.join(robustness_missed)}")
    print(f"\nbench took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
