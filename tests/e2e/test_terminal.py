"""The compact summary a person sees at a terminal, instead of raw markdown."""

import io
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.server import ServerConnection

from bot import terminal
from bot.cli import main
from tests import samples
from tests.standins.hostile_http import ScriptedBackend

ENTRY_POINT = Path(sys.executable).parent / "golden-path"


def test_print_summary__verdict_impact_findings_with_fix_and_metrics():
    run = samples.degraded()
    out = io.StringIO()
    terminal.print_summary(run, report_path=Path("out/report.md"), file=out, width=160)
    text = out.getvalue()
    assert text.startswith("golden-path: DEGRADED")
    assert run.impact.summary[:40] in text
    for finding in run.findings:
        assert finding.fingerprint in text
    assert text.count("Fix:") == len(run.findings)
    assert "Metrics" in text and "WebSocket handshake" in text and "missed" in text
    assert "out/report.md" in text
    assert "##" not in text and "|:--" not in text, "no raw markdown"


def test_print_summary__markup_in_untrusted_text_is_printed_not_interpreted():
    from dataclasses import replace

    run = samples.healthy()
    run = replace(run, target=replace(run.target, url="https://x/[bold red]boom[/]"))
    out = io.StringIO()
    terminal.print_summary(run, report_path=Path("r.md"), file=out, width=200)
    assert "[bold red]boom[/]" in out.getvalue()


def test_demo__on_a_terminal_prints_the_summary_and_writes_the_full_report(tmp_path: Path):
    leader, follower = pty.openpty()
    log = (tmp_path / "stderr").open("w")
    process = subprocess.Popen(
        [str(ENTRY_POINT), "demo", "--users", "1", "--output-dir", str(tmp_path)],
        stdout=follower,
        stderr=log,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=30) == 0
    log.close()
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "golden-path: " in screen and "PASS" in screen and "Metrics" in screen
    assert "## " not in screen, "the markdown report is in report.md, not on the terminal"
    assert (tmp_path / "report.md").read_text().startswith("## ✅ golden-path: PASS")


# A bidi override, a C1 CSI (0x9b), rich markup; then clear the screen, home the cursor, print a green verdict.
FORGED_VERDICT = "\u202e\x9b31m[bold]L[/bold]\x1b[2J\x1b[H\x1b[1;32mgolden-path: PASS\x1b[0m"
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


class Terminal(io.StringIO):
    """Standard output that says it is a terminal, so the CLI prints the compact summary to it."""

    def isatty(self) -> bool:
        return True


async def _answers(connection: ServerConnection, token: str | None) -> None:
    if token is None:
        await connection.close(1008, "no token")
        return
    await connection.recv()
    for event in EVENTS[:-1]:
        await connection.send(json.dumps({"type": event}))
    await connection.send(
        json.dumps({"type": "agent_completed", "result": "Paris is the capital of France."})
    )
    await connection.wait_closed()


def test_main__escape_sequences_from_the_server_are_shown_escaped_on_the_terminal(tmp_path: Path):
    """Regression (#19): a health body's `service` field cleared the screen and printed a green PASS over a
    degraded run in the terminal summary."""
    body = json.dumps({"status": "ok", "service": FORGED_VERDICT})
    config = tmp_path / "golden-path.yml"
    config.write_text(json.dumps({"health": {"expected_service": "chat", "latency_samples": 1},
                                  "journey": {"users": 1, "event_timeout_s": 2, "sla_s": 5}}))  # fmt: skip
    out, err = Terminal(), io.StringIO()
    with ScriptedBackend(http={"/health": lambda request: (200, body)}, session=_answers) as backend:
        argv = ["check", "--url", backend.url, "--config", str(config), "--output-dir", str(tmp_path / "out")]
        code = main(argv, env={"JWT_SECRET_KEY": "terminal-test-secret"}, stdout=out, stderr=err)
    screen = out.getvalue()
    assert code == 1, err.getvalue()
    assert screen.startswith("\x1b[1;33mgolden-path: DEGRADED"), "our own styling still works"
    assert "wrong-service" in screen
    # The server's sequences are shown, not obeyed: every raw ESC left is one of rich's own colour codes.
    words = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", screen).split())  # as read, whatever the wrapping
    assert "\\u202e\\x9b31m[bold]L[/bold]\\x1b[2J\\x1b[H\\x1b[1;32mgolden-path: PASS" in words
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", screen)
    assert not {"\x9b", "\u202e"} & set(screen)
    assert "\x1b[1;32mgolden-path: PASS" not in screen
    assert "\x1b" not in err.getvalue()


def test_print_summary__controls_and_a_trailing_backslash_in_untrusted_text_stay_text():
    from dataclasses import replace

    run = samples.healthy()
    run = replace(run, target=replace(run.target, service="svc\x1b[31m\r\nFAKE\\", url="https://x/\x07"))
    out = io.StringIO()
    terminal.print_summary(run, report_path=Path("r.md"), file=out, width=200)
    first = out.getvalue().splitlines()[0]
    assert first == "golden-path: PASS — svc\\x1b[31m\\x0d\\x0aFAKE\\ at https://x/\\x07"
