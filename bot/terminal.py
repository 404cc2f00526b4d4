"""A compact run summary for a person at a terminal (verdict, impact, findings with their fix, metrics).

The full markdown report is for GitHub (report.md, the step summary, the PR comment); printed raw on a
terminal it reads as markup. Text from the system under test goes through ``rich.markup.escape`` and is
printed as plain text, so it cannot restyle the terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot import markdown
from bot.results import Run, Severity, Status, Verdict

VERDICT_STYLE = {Verdict.PASS: "bold green", Verdict.DEGRADED: "bold yellow", Verdict.FAIL: "bold red"}


def print_summary(run: Run, *, report_path: Path, file: TextIO, width: int | None = None) -> None:
    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    style = VERDICT_STYLE[run.verdict]
    console.print(
        f"[{style}]golden-path: {run.verdict.value.upper()}[/] — {escape(run.target.service)} "
        f"at {escape(run.target.url)}"
    )
    console.print(f"[bold]Impact:[/] {escape(run.impact.summary)}")
    for finding in run.findings:
        colour = "red" if finding.severity is Severity.P0 else "yellow"
        console.print(
            f"[{colour}]{finding.severity.value}[/] {escape(finding.title)}  [dim]{escape(finding.fingerprint)}[/]"
        )
        console.print(f"    [bold]Fix:[/] {escape(finding.remediation)}")
    if run.metrics:
        table = Table(title="Metrics", title_justify="left", show_edge=False)
        for column, justify in (("Metric", "left"), ("p50", "right"), ("p95", "right"),
                                ("Target (p95)", "right"), ("Status", "left")):  # fmt: skip
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for metric in run.metrics:
            status = {Status.PASS: "[green]pass[/]", Status.FAIL: "[yellow]missed[/]"}.get(
                metric.status, "[dim]not measured[/]"
            )
            if metric.status is Status.PASS and metric.target is None:
                status = "measured"  # no target to pass or miss
            table.add_row(
                escape(metric.label),
                escape(markdown.measure(metric.p50, metric.unit)),
                escape(markdown.measure(metric.p95, metric.unit)),
                escape(markdown.measure(metric.target, metric.unit)),
                status,
            )
        console.print(table)
    console.print(f"[dim]Full report: {escape(str(report_path))}[/]")
