"""The compact summary a person sees at a terminal, instead of raw markdown."""

import io
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from bot import terminal
from tests import samples

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
