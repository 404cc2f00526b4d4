"""README promises a user reads before trusting the gate: every failure kind is explained and placed in the policy."""

import re
from pathlib import Path

from markdown_it import MarkdownIt

from bot import kinds, realtime
from bot.kinds import GateClass, SeverityRule
from bot.results import Kind

README = (Path(__file__).resolve().parent.parent.parent / "README.md").read_text()


def table_after(heading: str) -> list[list[str]]:
    """The rows (cells as text) of the first table after ``heading``."""
    section = README[README.index(heading) :]
    tokens = MarkdownIt().enable("table").parse(section)
    rows, row, inside = [], [], False
    for token in tokens:
        if token.type == "table_close":
            break
        if token.type == "tr_open":
            row, inside = [], True
        elif token.type == "tr_close":
            rows.append(row)
        elif inside and token.type == "inline":
            row.append(token.content)
    return rows[1:]


def table_lines_after(heading: str) -> list[str]:
    """The body rows of the first table after ``heading``, as README spells them."""
    lines = README[README.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| ---"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            break
        body.append(line)
    return body


def test_readme__troubleshooting_table_is_the_table_of_kinds():
    assert table_lines_after("## Troubleshooting") == kinds.troubleshooting_rows()
    rows = table_after("## Troubleshooting")
    assert sorted(row[0].strip("`") for row in rows) == sorted(kind.value for kind in Kind)
    assert all(len(row) == 4 and all(cell.strip() for cell in row) for row in rows)


def test_readme__severity_table_places_every_kind_under_each_fail_on():
    rows = table_after("### Severity and exit codes")
    named = {kind for row in rows for kind in re.findall(r"`([a-z0-9-]+)`", row[0])}
    assert named == {kind.value for kind in Kind}
    assert all(len(row) == 5 for row in rows)


def test_readme__severity_table_says_what_the_table_of_kinds_decides():
    """Each kind's row: its severity (a kind that goes by step may be listed at either), and what each
    `fail-on` does with it (a warning for performance, a failure under every `fail-on` for always-fail)."""
    rows = table_after("### Severity and exit codes")
    for kind in Kind:
        info = kinds.of(kind)
        (row,) = [row for row in rows if f"`{kind.value}`" in row[0]]
        severity, correctness, _any, p0 = row[1:]
        if info.severity is not SeverityRule.BY_STEP:
            assert severity == info.severity.value, kind
        warns = info.gate in (GateClass.PERFORMANCE, GateClass.WARNING)
        assert correctness.startswith("**0**") == warns, kind
        assert ("always" in p0) == (info.gate is GateClass.ALWAYS_FAIL), kind


def test_readme__cloud_run_settings_table_is_the_table_of_rules():
    assert table_lines_after("### Cloud Run settings for real-time") == realtime.readme_rows()
    rows = table_after("### Cloud Run settings for real-time")
    assert all(row[3].strip("<>").startswith("https://cloud.google.com/run/docs/") for row in rows)
