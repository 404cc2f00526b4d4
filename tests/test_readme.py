"""README promises a user reads before trusting the gate: every failure kind is explained and placed in the policy."""

import re
from pathlib import Path

from markdown_it import MarkdownIt

from bot.results import Kind

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


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


def test_readme__troubleshooting_has_one_row_per_failure_kind():
    rows = table_after("## Troubleshooting")
    kinds = [row[0].strip("`") for row in rows]
    assert sorted(kinds) == sorted(kind.value for kind in Kind)
    assert all(len(row) == 4 and all(cell.strip() for cell in row) for row in rows)


def test_readme__severity_table_places_every_kind_under_each_fail_on():
    rows = table_after("### Severity and exit codes")
    named = {kind for row in rows for kind in re.findall(r"`([a-z0-9-]+)`", row[0])}
    assert named == {kind.value for kind in Kind}
    assert all(len(row) == 5 for row in rows)
