"""A compact run summary for a person at a terminal (verdict, impact, findings with their fix, metrics).

The full markdown report is for GitHub (report.md, the step summary, the PR comment); printed raw on a
terminal it reads as markup. Text from the system under test is shown with its control characters escaped
(``\\x1b``: an ESC sequence could clear the screen and print a forged verdict) and as ``rich.text.Text``, never
as markup (``[bold]`` is printed, not obeyed); the finished summary passes the redactor before it is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot import markdown
from bot.results import Run, Severity, Status, Verdict
from bot.untrusted import Redactor, show_controls

VERDICT_STYLE = {Verdict.PASS: "bold green", Verdict.DEGRADED: "bold yellow", Verdict.FAIL: "bold red"}


def _plain(text: str, style: str = "") -> Text:
    """Outside text as a rich ``Text``: never parsed as markup (``[bold]`` is printed), controls shown escaped."""
    return Text(show_controls(text), style=style)


def print_summary(
    run: Run, *, report_path: Path, file: TextIO, width: int | None = None, redactor: Redactor | None = None
) -> None:
    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    with console.capture() as captured:
        _print(console, run, report_path=report_path)
    file.write(redactor.clean(captured.get()) if redactor else captured.get())
    file.flush()


def _print(console: Console, run: Run, *, report_path: Path) -> None:
    verdict = f"golden-path: {run.verdict.value.upper()}"
    service, url = run.target.service, run.target.url
    console.print(
        Text.assemble((verdict, VERDICT_STYLE[run.verdict]), " — ", _plain(service), " at ", _plain(url))
    )
    console.print(Text.assemble(("Impact:", "bold"), " ", _plain(run.impact.summary)))
    for finding in run.findings:
        colour = "red" if finding.severity is Severity.P0 else "yellow"
        title, fingerprint = _plain(finding.title), _plain(finding.fingerprint, "dim")
        console.print(Text.assemble((finding.severity.value, colour), " ", title, "  ", fingerprint))
        console.print(Text.assemble("    ", ("Fix:", "bold"), " ", _plain(finding.remediation)))
    if run.metrics:
        table = Table(title="Metrics", title_justify="left", show_edge=False)
        for column, justify in (("Metric", "left"), ("p50", "right"), ("p95", "right"),
                                ("Target (p95)", "right"), ("Status", "left")):  # fmt: skip
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for metric in run.metrics:
            status = {Status.PASS: Text("pass", "green"), Status.FAIL: Text("missed", "yellow")}.get(
                metric.status, Text("not measured", "dim")
            )
            if metric.status is Status.PASS and metric.target is None:
                status = Text("measured")  # no target to pass or miss
            table.add_row(
                _plain(metric.label),
                _plain(markdown.measure(metric.p50, metric.unit)),
                _plain(markdown.measure(metric.p95, metric.unit)),
                _plain(markdown.measure(metric.target, metric.unit)),
                status,
            )
        console.print(table)
    console.print(Text.assemble(("Full report: ", "dim"), _plain(str(report_path), "dim")))
