"""Tests for bot.report: snapshots of every sample, hostile strings, size caps, markdown well-formedness,
the hidden history, and user templates.

Snapshots live in tests/snapshots/*.md. After an intended change, regenerate and review the diff:
``UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_report.py``. A missing snapshot fails; it is never created
silently.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot import markdown, report
from bot.diagnose import diagnose
from bot.errors import TemplateError
from bot.impact import assess
from bot.results import CheckResult, Failure, Kind, Run, Status, Step, verdict_for
from bot.settings import ImpactSettings
from tests import samples

SNAPSHOTS = Path(__file__).parent.parent / "snapshots"
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
ALLOWED_HTML = re.compile(
    r"^(<details><summary>[^<>]*</summary>|</details>|<sub>|</sub>|<!-- golden-path:[^\n]* -->)$"
)


def assert_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
        return
    if not path.exists():
        pytest.fail(f"snapshot {path} is missing: run UPDATE_SNAPSHOTS=1 pytest {__file__} and review it")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (UPDATE_SNAPSHOTS=1 to accept)"


def tokens(text: str) -> list[Token]:
    """All tokens, inline children included."""
    out = []
    for token in MARKDOWN.parse(text):
        out.append(token)
        out.extend(token.children or [])
    return out


def unescaped_pipes(line: str) -> int:
    """Cell separators in a table line, as GitHub counts them (``\\|`` is a pipe inside a cell)."""
    return len(re.findall(r"(?<!\\)\|", line.replace("\\\\", "")))


def assert_tables_well_formed(text: str) -> int:
    """Every table row has the header's columns, and no stray row sits outside a table."""
    lines = text.split("\n")
    table_lines: set[int] = set()
    parsed = MARKDOWN.parse(text)
    count = 0
    for index, token in enumerate(parsed):
        if token.type != "table_open":
            continue
        count += 1
        assert token.map is not None
        start, end = token.map
        table_lines.update(range(start, end))
        columns = unescaped_pipes(lines[start])
        for number in range(start, end):
            assert unescaped_pipes(lines[number]) == columns, (
                f"row {number + 1} breaks its table: {lines[number]!r}"
            )
        close = next(i for i in range(index, len(parsed)) if parsed[i].type == "table_close")
        header = sum(1 for t in parsed[index:close] if t.type == "th_open")
        rows = [t for t in parsed[index:close] if t.type == "tr_open"]
        cells = [t for t in parsed[index:close] if t.type in ("th_open", "td_open")]
        assert len(cells) == header * len(rows)
    fences = [t.map for t in parsed if t.type == "fence" and t.map]
    in_fence = {n for start, end in fences for n in range(start, end)}
    stray = [n for n, line in enumerate(lines) if line.startswith("|") and n not in table_lines | in_fence]
    assert not stray, f"table rows outside a table: {[lines[n] for n in stray]}"
    return count


MERMAID_LINE = re.compile(
    r"^    (?:"
    r'(?P<node>\w+)\["[^"\n]*"\]'
    r"|(?P<src>\w+) (?:-->|-\.->) (?P<dst>\w+)"
    r"|class (?P<members>\w+(?:,\w+)*) (?P<cls>pass|fail|skip|unverified)"
    r"|classDef (?:pass|fail|skip|unverified) [\w#:,. -]+"
    r")$"
)


def assert_mermaid_well_formed(text: str) -> list[str]:
    """Exactly one mermaid fence: a left-to-right flowchart whose nodes are defined, linked in order and each
    coloured by exactly one status class. Returns the node ids in order."""
    fences = [t for t in MARKDOWN.parse(text) if t.type == "fence" and t.info.strip() == "mermaid"]
    assert len(fences) == 1
    first, *rest = fences[0].content.rstrip("\n").split("\n")
    assert first == "flowchart LR"
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    classes: dict[str, str] = {}
    for line in rest:
        match = MERMAID_LINE.match(line)
        assert match, f"unexpected mermaid line {line!r}"
        if match["node"]:
            nodes.append(match["node"])
        elif match["src"]:
            edges.append((match["src"], match["dst"]))
        elif match["members"]:
            for member in match["members"].split(","):
                assert member not in classes, f"{member} has two classes"
                classes[member] = match["cls"]
    assert edges == list(itertools.pairwise(nodes))
    assert set(classes) == set(nodes)
    assert [n for n in nodes if n in ("Login", "Connect", "Message", "Agent", "Answer")] == [
        "Login",
        "Connect",
        "Message",
        "Agent",
        "Answer",
    ]
    return nodes


def text_outside_code(text: str) -> str:
    """What GitHub shows as prose (where mentions and references are live)."""
    return "\n".join(t.content for t in tokens(text) if t.type in ("text", "html_inline", "html_block"))


def assert_inert(text: str, *, markers: int) -> None:
    """Nothing in ``text`` can notify, inject HTML, link away, close our fences or forge our markers."""
    assert text.count("<!--") == markers, "only our own hidden lines may open an HTML comment"
    prose = text_outside_code(text)
    assert not re.search(r"@[A-Za-z0-9]", prose), "a mention would notify"
    assert not re.search(r"#\d|\bGH-\d", prose, re.IGNORECASE), "a reference would cross-link an issue"
    for token in tokens(text):
        if token.type in ("html_inline", "html_block"):
            assert ALLOWED_HTML.match(token.content.strip()), f"untrusted HTML: {token.content!r}"
        assert token.type != "image"
        if token.type == "link_open":
            assert str(token.attrs["href"]).startswith("https://"), token.attrs
    assert "\x1b" not in text and "\u202e" not in text
    assert_tables_well_formed(text)


def run_with_findings(count: int, *, evidence_chars: int, keys: int = 5) -> Run:
    """A run with ``count`` distinct P0 findings, each carrying big evidence."""
    checks = [
        CheckResult(
            "events",
            Step.AGENT,
            Status.FAIL,
            500.0,
            1,
            f"event_{n} never arrived",
            Failure(
                Kind.EVENT_MISSING,
                f"agent_completed arrived without event_{n}.",
                detail=f"event_{n}",
                evidence={f"frame_{k}": f"{n}:{k}:" + "x" * evidence_chars for k in range(keys)},
            ),
        )
        for n in range(count)
    ]
    findings = diagnose(checks, service="chat-backend")
    base = samples.healthy()
    return replace(
        base,
        checks=(*base.checks, *checks),
        findings=findings,
        verdict=verdict_for(findings),
        impact=assess(findings, settings=samples.IMPACT, journey_name="AI chat"),
    )


# -- snapshots -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", samples.NAMES)
def test_render_report__snapshot(name: str) -> None:
    assert_snapshot(f"report-{name}", report.render_report(samples.run(name)))


def test_render_report__snapshot_hostile() -> None:
    assert_snapshot("report-hostile", report.render_report(samples.hostile()))


def test_render_comment__snapshot() -> None:
    earlier = [report.HistoryEntry.from_run(samples.run(n)) for n in ("healthy", "degraded")]
    earlier[1] = replace(earlier[1], started_at="2025-06-03T15:02:40Z", revision="chat-backend-00043-kap")
    run = replace(samples.run("ws-auth-rejected"), started_at="2025-06-03T16:10:00Z")
    assert_snapshot("comment-ws-auth-rejected", report.render_comment(run, history=earlier))


def test_render_issue__snapshot() -> None:
    run = samples.run("ws-closed-early")
    assert_snapshot("issue-ws-closed-early", report.render_issue(run, run.findings[0]))


def test_render_issue_update__snapshot() -> None:
    run = samples.run("ws-closed-early")
    assert_snapshot("issue-update-ws-closed-early", report.render_issue_update(run, run.findings[0]))


def test_render_recovery__snapshot() -> None:
    finding = samples.run("ws-closed-early").findings[0]
    assert_snapshot("recovery-ws-closed-early", report.render_recovery(samples.healthy(), finding, passes=3))


def test_render_summary__snapshot() -> None:
    assert_snapshot("summary-degraded", report.render_summary(samples.degraded()))


# -- content ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", samples.NAMES)
def test_render_report__first_three_lines_tell_a_manager(name: str) -> None:
    run = samples.run(name)
    verdict, impact, next_step = report.render_report(run).split("\n")[:3]
    assert verdict.startswith(
        ("## ✅ golden-path: PASS", "## ⚠️ golden-path: DEGRADED", "## ❌ golden-path: FAIL")
    )
    assert run.target.service in verdict
    assert impact == f"- **Impact:** {run.impact.summary}"
    assert next_step.startswith("- **Next step:** ")
    if run.verdict.value == "fail":
        assert f"({run.p0_count} P0)" in verdict
        assert "$1,200,000 ARR" in impact
        assert run.findings[0].title.split("`")[0] in next_step
    elif any(c.status.value == "not verified" for c in run.checks):
        assert "could not be verified" in next_step and "not verified)" in verdict
    elif run.verdict.value == "pass":
        assert "Nothing to do" in next_step
    else:
        assert "no revenue at risk" in impact


def test_render_report__sections_in_order() -> None:
    text = report.render_report(samples.run("ws-auth-rejected"))
    headings = [line for line in text.split("\n") if line.startswith("### ")]
    assert headings == ["### Journey", "### Findings", "### Metrics", "### Revision"]
    assert text.index("<details><summary>Evidence") > text.index("- **Fix:**")


def test_render_report__no_cloud_run_facts_are_not_invented() -> None:
    text = report.render_report(samples.no_cloud_run())
    assert "Not a Cloud Run target" in text
    for word in ("**Revision:**", "**Image:**", "**Traffic", "**Created:**"):
        assert word not in text
    assert "ARR" not in text


def test_render_report__revision_age_is_relative_to_the_run() -> None:
    text = report.render_report(samples.healthy())
    assert "- **Created:** 2025-06-03 14:17 UTC, 3 min before this run finished" in text


def test_render_report__degraded_shows_the_skew_without_contradiction() -> None:
    text = report.render_report(samples.degraded())
    assert "serving `9c0d3b2`, expected `4f2a9c1` ❌" in text
    assert "| WebSocket handshake | 5 | 80 ms | 119 ms | 119 ms | ≤ 50 ms | ❌ fail |" in text


def test_journey__step_status_from_checks() -> None:
    steps = {s.label: s for s in report.journey(samples.run("ws-auth-rejected"))}
    assert [steps[n].status for n in ("Login", "Connect", "Message")] == [
        Status.PASS,
        Status.FAIL,
        Status.SKIP,
    ]
    connect = steps["Connect"]
    assert (connect.passed, connect.failed, connect.total) == (
        0,
        5,
        5,
    )  # the skipped negative check is not counted
    assert steps["Health"].slowest_ms == 38.2


def test_render_report__why_the_revision_died_is_on_its_node_and_cannot_break_the_diagram() -> None:
    run = samples.revision_not_ready()
    hostile = 'exit(1)"] --> Pwned["@octocat <img src=x> #1 `code` ]]'
    checks = tuple(
        replace(c, failure=replace(c.failure, evidence={**c.failure.evidence, "message": hostile}))
        if c.failure is not None and c.failure.kind is Kind.REVISION_NOT_READY
        else c
        for c in run.checks
    )

    text = report.render_report(replace(run, checks=checks))

    node = next(line for line in text.splitlines() if line.strip().startswith('Revision["'))
    assert node.strip() == 'Revision["❌ Revision: exit(1) -- Pwned octocat img src x 1 code"]'
    assert "Pwned" not in assert_mermaid_well_formed(text)


# -- markdown is well formed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", samples.NAMES)
def test_render_report__markdown_is_well_formed(name: str) -> None:
    text = report.render_report(samples.run(name))
    assert assert_tables_well_formed(text) >= 2  # journey, checks (and metrics when measured)
    nodes = assert_mermaid_well_formed(text)
    assert ("Revision" in nodes) == (name != "no-cloud-run")


def test_render_comment__markdown_is_well_formed() -> None:
    history = [report.HistoryEntry.from_run(samples.healthy())] * 3
    text = report.render_comment(samples.run("event-missing"), history=history)
    assert assert_tables_well_formed(text) == 4  # + history
    assert_mermaid_well_formed(text)


# -- hostile strings -------------------------------------------------------------------------------------------


def test_render_report__hostile_strings_are_inert() -> None:
    assert_inert(report.render_report(samples.hostile()), markers=0)


def test_render_comment__hostile_strings_are_inert() -> None:
    run = samples.hostile()
    text = report.render_comment(run, history=[])
    assert_inert(text, markers=2)
    assert text.startswith(report.comment_marker("chat-backend") + "\n")
    assert report.decode_history(text) == [report.HistoryEntry.from_run(run)]


def test_render_issue__hostile_strings_are_inert() -> None:
    run = samples.hostile()
    text = report.render_issue(run, run.findings[0])
    assert_inert(text, markers=1)
    assert report.has_marker(text, report.issue_marker(run.findings[0].fingerprint))
    forged = report.issue_marker("chat-backend:ws-closed-early:agent_completed")
    assert forged in samples.HOSTILE_TEXT and not report.has_marker(text, forged)


@pytest.mark.parametrize("render", ["issue_update", "summary", "recovery"])
def test_render_issue_update__and_other_texts_are_inert(render: str) -> None:
    run = samples.hostile()
    if render == "issue_update":
        assert_inert(report.render_issue_update(run, run.findings[0]), markers=1)
    elif render == "recovery":
        assert_inert(report.render_recovery(run, run.findings[0], passes=2), markers=1)
    else:
        assert_inert(report.render_summary(run), markers=0)


def test_render_report__hostile_evidence_stays_inside_its_fence() -> None:
    text = report.render_report(samples.hostile())
    fences = [t for t in MARKDOWN.parse(text) if t.type == "fence"]
    assert [t.info for t in fences] == ["mermaid", "text"]
    evidence = fences[1].content
    assert "```" in evidence and "<script>alert(1)</script>" in evidence and "@acme/security-team" in evidence
    assert "<!--" not in evidence and "<!\u200b-- golden-path:issue" in evidence
    assert "… (6,000 more characters)" in evidence


def test_escape__mentions_and_references_do_not_notify() -> None:
    assert markdown.escape("@octocat and @acme/team") == "@\u2060octocat and @\u2060acme/team"
    assert markdown.escape("see #12, acme/x#3 and GH-4") == "see #\u206012, acme/x#\u20603 and GH-\u20604"
    assert markdown.escape("mail a@b.c") == "mail a@\u2060b.c"
    assert markdown.escape("&#64;octocat") == "&amp;#\u206064;octocat"


def test_escape__html_and_markers_are_inert() -> None:
    assert markdown.escape("<script>x</script>") == "&lt;script>x&lt;/script>"
    assert (
        markdown.escape("<!-- golden-path:issue fingerprint=a -->")
        == "&lt;!-- golden-path:issue fingerprint=a -->"
    )
    assert markdown.escape("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)>"


def test_escape__links_images_and_autolinks_are_inert() -> None:
    assert markdown.escape("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert markdown.escape("![i](https://e.x/i.png)") == "!\\[i\\](https:/\u2060/e.x/i.png)"
    assert markdown.escape("www.evil.example") == "www\u2060.evil.example"


def test_escape__table_cells_cannot_break() -> None:
    assert markdown.escape("a | b\nc\r\nd") == "a \\| b c d"
    assert markdown.escape("\\|") == "\\\\\\|"


def test_escape__emphasis_code_and_block_starts() -> None:
    assert markdown.escape("**b** _e_ ~s~ `c`") == "\\*\\*b\\*\\* \\_e\\_ \\~s\\~ \\`c\\`"
    assert markdown.escape("snake_case_name") == "snake_case_name"
    assert markdown.escape("# h") == "\\# h"
    assert markdown.escape("> q") == "\\> q"
    assert markdown.escape("- i") == "\\- i"
    assert markdown.escape("1. i") == "1\\. i"
    assert markdown.escape("0.1.0") == "0.1.0"
    assert markdown.escape("-5 ms") == "-5 ms"


def test_escape__control_and_bidi_characters_are_visible() -> None:
    assert markdown.escape("\x1b[31mred\u202e") == "\\\\x1b\\[31mred\\\\u202e"


def test_escape__truncates_visibly() -> None:
    assert markdown.escape("x" * 510) == "x" * 500 + "… (10 more characters)"
    assert markdown.escape("abc", 2) == "ab… (1 more characters)"
    assert markdown.escape(None) == ""


def test_code_block__fence_is_longer_than_any_backtick_run() -> None:
    block = markdown.code_block("a\n````\nb", "json")
    assert block == "`````json\na\n````\nb\n`````"
    assert markdown.code_block("plain") == "```\nplain\n```"
    assert markdown.code_block("x", "evil\n```") == "```evil\nx\n```"


def test_code_block__markers_cannot_be_forged() -> None:
    block = markdown.code_block("<!-- golden-path:history v1 W10= -->")
    assert "<!--" not in block
    assert report.decode_history(block) == []


def test_code__span_is_safe_and_table_ready() -> None:
    assert markdown.code("a`b") == "``a`b``"
    assert markdown.code("`x") == "`` `x ``"
    assert markdown.code("a|b", table=True) == "`a\\|b`"
    assert markdown.code("<!--") == "`<!\u200b--`"
    assert markdown.code("") == ""


def test_inline__keeps_our_code_and_escapes_the_rest() -> None:
    assert markdown.inline("Use `accept()` for @bob <b>") == "Use `accept()` for @\u2060bob &lt;b>"


def test_link__only_http_urls_become_links() -> None:
    assert markdown.link("https://x.example/a b(c)", "run") == "[run](https://x.example/a%20b%28c%29)"
    assert markdown.link("javascript:alert(1)", "run") == "run"
    assert markdown.link(None, "run") == "run"


# -- size ------------------------------------------------------------------------------------------------------


def test_render_report__cut_note_mentions_history_only_when_cut() -> None:
    text = report.render_comment(run_with_findings(60, evidence_chars=100), history=[], max_chars=5_000)
    assert "older runs" not in text and "passing metrics, the findings'" in text


def test_render_comment__drops_evidence_first_to_fit() -> None:
    run = run_with_findings(12, evidence_chars=2_000)
    assert len(report.render_report(run)) > 65_000
    text = report.render_comment(run, history=[])
    assert len(text) <= 65_000
    note = (
        "> ✂️ Evidence omitted to fit GitHub's comment limit: see the artifacts of the [workflow run](https://"
    )
    assert note in text
    assert "<details><summary>Evidence" not in text
    for finding in run.findings:
        assert finding.title.replace("`", "") in text.replace("`", "")
        assert finding.remediation in text
    assert "| Step | Status |" in text  # details are kept while evidence suffices


def test_render_comment__cuts_details_then_findings_but_keeps_the_headline() -> None:
    run = run_with_findings(60, evidence_chars=100)
    history = [report.HistoryEntry.from_run(samples.healthy())] * 9
    text = report.render_comment(run, history=history, max_chars=5_000)
    assert len(text) <= 5_000
    lines = text.split("\n")
    assert lines[0] == report.comment_marker("chat-backend")
    assert lines[1] == "## ❌ golden-path: FAIL — chat-backend (60 P0)"
    assert lines[2].startswith("- **Impact:** ") and lines[3].startswith("- **Next step:** ")
    assert (
        "> ✂️ Evidence, the journey table, passing metrics, older runs, the findings' causes and fixes and "
        in text
    )
    assert (
        "later findings omitted to fit GitHub's comment limit: see the artifacts of the [workflow run]"
        in text
    )
    assert "| When |" not in text
    assert report.decode_history(text) == [report.HistoryEntry.from_run(run)]  # the last resort: 1 saved run


def test_render_comment__keeps_the_saved_history_while_cutting_the_visible_one() -> None:
    run = run_with_findings(60, evidence_chars=100)
    history = [
        replace(report.HistoryEntry.from_run(samples.healthy()), started_at=f"2025-06-0{d}T10:00Z")
        for d in range(1, 10)
    ]
    text = report.render_comment(run, history=history, max_chars=12_000)
    assert len(text) <= 12_000 and "older runs" in text and "later findings" in text
    assert len(report.decode_history(text)) == 10
    assert "more findings not shown" in text
    assert run.findings[0].title.replace("`", "") in text.replace("`", "")
    assert report.decode_history(text)[-1] == report.HistoryEntry.from_run(run)


def test_render_comment__a_template_that_cannot_fit_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "comment.md.j2").write_text("{{ marker }}\n{{ 'x' * 6000 }}\n{{ history_data }}\n")
    with pytest.raises(TemplateError, match="over the limit of 5,000"):
        report.render_comment(samples.healthy(), history=[], max_chars=5_000, templates_dir=tmp_path)


def test_render_issue__fits_github_limit() -> None:
    run = run_with_findings(1, evidence_chars=5_000, keys=30)
    for text in (report.render_issue(run, run.findings[0]), report.render_issue_update(run, run.findings[0])):
        assert len(text) <= 65_000
        assert "Evidence omitted to fit GitHub's comment limit" in text
    assert report.has_marker(text, report.recurrence_marker(run.findings[0].fingerprint, run.run_id))


def test_evidence__long_values_are_cut_visibly() -> None:
    block = markdown.evidence({"body": "x" * 5_000, "empty": "", "lines": "a\nb"})
    assert block.split("\n") == [
        "```text",
        "body:",
        "  " + "x" * 4_000,
        "  … (1,000 more characters)",
        "empty: (empty)",
        "lines:",
        "  a",
        "  b",
        "```",
    ]


# -- markers and history ---------------------------------------------------------------------------------------


def test_comment_marker__sanitises_the_service() -> None:
    assert report.comment_marker("chat-backend") == "<!-- golden-path:comment service=chat-backend -->"
    marker = report.comment_marker("x --> <!-- @y\n")
    assert marker == "<!-- golden-path:comment service=x%20--%3E%20%3C%21--%20%40y%0A -->"


def test_issue_marker__distinct_fingerprints_stay_distinct() -> None:
    assert (
        report.issue_marker("svc:ws-auth-rejected:403")
        == "<!-- golden-path:issue fingerprint=svc:ws-auth-rejected:403 -->"
    )
    assert report.issue_marker("svc:a b") != report.issue_marker("svc:a_b")
    long = report.issue_marker("svc:event-missing:" + "e" * 500)
    assert len(long) < 260 and long != report.issue_marker("svc:event-missing:" + "e" * 499)


def test_has_marker__only_whole_lines_count() -> None:
    marker = report.comment_marker("svc")
    assert report.has_marker(f"text\n{marker}\nmore", marker)
    assert not report.has_marker(f"quoted: {marker}", marker)
    assert not report.has_marker(markdown.code_block(marker), marker)


def test_encode_history__round_trip() -> None:
    entries = [report.HistoryEntry.from_run(samples.run(n)) for n in ("healthy", "ws-auth-rejected")]
    line = report.encode_history(entries)
    assert line.startswith("<!-- golden-path:history v1 ") and line.count("-->") == 1
    assert report.decode_history(f"# comment\n\n{line}\n") == entries
    assert entries[1].p0_count == 1 and entries[1].handshake_ms is None and entries[0].total_ms == 680.1


def test_encode_history__never_contains_a_comment_end() -> None:
    entry = replace(report.HistoryEntry.from_run(samples.healthy()), revision="--> <!-- -->", commit="-->")
    line = report.encode_history([entry] * 3)
    assert line.count("-->") == 1
    assert report.decode_history(line) == [entry] * 3


def _history_line(payload: object) -> str:
    return "<!-- golden-path:history v1 " + base64.b64encode(json.dumps(payload).encode()).decode() + " -->"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "no history here",
        "<!-- golden-path:history v1 !!!not-base64!!! -->",
        "<!-- golden-path:history v1 bm90IGpzb24= -->",  # "not json"
        _history_line([1, 2]),
        _history_line({"v": 2, "runs": []}),
        _history_line({"v": 1, "runs": "nope"}),
        "quoted <!-- golden-path:history v1 W10= --> mid-line",
    ],
)
def test_decode_history__absent_or_corrupt_is_empty(body: str) -> None:
    assert report.decode_history(body) == []


def test_decode_history__drops_only_invalid_entries() -> None:
    good = {"revision": "r", "commit": None, "verdict": "pass", "started_at": "2025-06-03T14:21:07Z",
            "total_ms": 600, "handshake_ms": None, "p0_count": 0, "run_url": None}  # fmt: skip
    bad = [
        {**good, "verdict": "great"},
        {**good, "p0_count": -1},
        {**good, "p0_count": True},
        {**good, "total_ms": "fast"},
        {**good, "revision": 7},
        {**good, "started_at": None},
        "not an entry",
    ]
    entries = report.decode_history(_history_line({"v": 1, "runs": [*bad, good]}))
    assert entries == [report.HistoryEntry("r", None, "pass", "2025-06-03T14:21:07Z", 600.0, None, 0, None)]


def test_render_comment__keeps_the_newest_history_newest_first() -> None:
    base = report.HistoryEntry.from_run(samples.healthy())
    history = [replace(base, started_at=f"2025-06-0{d}T10:00:00Z", run_url=None) for d in range(1, 7)]
    text = report.render_comment(samples.run("answer-canned"), history=history, history_limit=4)
    kept = report.decode_history(text)
    assert [e.started_at for e in kept[:3]] == [h.started_at for h in history[-3:]]
    assert kept[-1] == report.HistoryEntry.from_run(samples.run("answer-canned"))
    lines = text.split("\n")
    start = lines.index("| When | Revision | Commit | Verdict | P0 | Journey p95 | Handshake p95 |") + 2
    rows = lines[start : lines.index("", start)]
    assert rows[0].startswith("| [2025-06-03 14:21 UTC](https://github.com/") and "(this run)" in rows[0]
    assert [r.split(" ")[1] for r in rows[1:]] == ["2025-06-06", "2025-06-05", "2025-06-04"]


def test_render_comment__history_survives_the_next_comment() -> None:
    first = report.render_comment(samples.healthy(), history=[])
    second_run = replace(samples.run("ws-subprotocol"), run_id="2", started_at="2025-06-04T09:00:00Z")
    second = report.render_comment(second_run, history=report.decode_history(first))
    assert [e.verdict for e in report.decode_history(second)] == ["pass", "fail"]
    again = report.render_comment(second_run, history=report.decode_history(second))
    assert [e.verdict for e in report.decode_history(again)] == ["pass", "fail"]  # a re-render adds nothing


def test_render_comment__history_limit_zero_keeps_none() -> None:
    text = report.render_comment(samples.healthy(), history=[], history_limit=0)
    assert report.decode_history(text) == [] and report.encode_history([]) in text


def test_history_entry__from_run_without_metrics() -> None:
    entry = report.HistoryEntry.from_run(replace(samples.healthy(), metrics=()))
    assert entry.total_ms is None and entry.handshake_ms is None and entry.verdict == "pass"


# -- user templates --------------------------------------------------------------------------------------------


def test_render_report__user_template_replaces_ours(tmp_path: Path) -> None:
    (tmp_path / "report.md.j2").write_text(
        "custom: {{ run.verdict.value }} {{ run.target.service | escape }}\n"
    )
    assert report.render_report(samples.healthy(), templates_dir=tmp_path) == "custom: pass chat-backend\n"


def test_render_report__user_template_extends_ours(tmp_path: Path) -> None:
    (tmp_path / "report.md.j2").write_text(
        '{% extends "builtin/report.md.j2" %}\n{% block footer %}Ask #oncall-chat in Slack.\n{% endblock %}\n'
    )
    text = report.render_report(samples.healthy(), templates_dir=tmp_path)
    assert text.startswith("## ✅ golden-path: PASS — chat-backend\n")
    assert text.endswith("Ask #oncall-chat in Slack.\n") and "<sub>golden-path" not in text
    comment = report.render_comment(samples.healthy(), history=[], templates_dir=tmp_path)
    assert "Ask #oncall-chat in Slack." in comment and comment.startswith(
        report.comment_marker("chat-backend")
    )


def test_render_report__user_template_is_refused_an_internal_attribute_of_a_type_it_read_before(
    tmp_path: Path,
) -> None:
    """The sandbox remembers its verdict per (type, attribute): a safe read of a type never opens its internals,
    and a refused attribute stays refused when asked again."""
    (tmp_path / "report.md.j2").write_text(
        "{{ run.target.service }} {{ run.target.revision }}\n{% for _ in [1, 2] %}{{ run.target.__class__ }}"
        "{% endfor %}\n"
    )
    for _ in range(2):
        with pytest.raises(
            TemplateError, match="access to attribute '__class__' of 'Target' object is unsafe"
        ):
            report.render_report(samples.healthy(), templates_dir=tmp_path)


def test_render_issue__user_template_overrides_a_block(tmp_path: Path) -> None:
    (tmp_path / "issue.md.j2").write_text(
        '{% extends "builtin/issue.md.j2" %}{% block fix %}\nSee the runbook.\n{% endblock %}'
    )
    run = samples.run("answer-canned")
    text = report.render_issue(run, run.findings[0], templates_dir=tmp_path)
    assert "See the runbook." in text and "### Fix" not in text


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        (
            "comment.md.j2",
            "{{ history_data }}\nno marker\n",
            "did not output the hidden line '<!-- golden-path:comment",
        ),
        (
            "comment.md.j2",
            "{{ marker }}\nno history\n",
            "did not output the hidden line '<!-- golden-path:history",
        ),
        ("issue.md.j2", "no marker\n", "did not output the hidden line '<!-- golden-path:issue"),
        ("issue_update.md.j2", "{{ marker | code }}\n", "did not output the hidden line"),
        ("recovery.md.j2", "closing\n", "did not output the hidden line"),
    ],
)
def test_render__missing_marker_is_an_error(tmp_path: Path, name: str, source: str, message: str) -> None:
    (tmp_path / name).write_text(source)
    run = samples.run("event-error")
    renders = {
        "comment.md.j2": lambda: report.render_comment(run, history=[], templates_dir=tmp_path),
        "issue.md.j2": lambda: report.render_issue(run, run.findings[0], templates_dir=tmp_path),
        "issue_update.md.j2": lambda: report.render_issue_update(
            run, run.findings[0], templates_dir=tmp_path
        ),
        "recovery.md.j2": lambda: report.render_recovery(
            run, run.findings[0], passes=1, templates_dir=tmp_path
        ),
    }
    with pytest.raises(TemplateError, match=re.escape(message)):
        renders[name]()


def test_render_report__a_symbolic_link_leaving_the_templates_dir_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("GITHUB_TOKEN=ghs_notForReports0123456789\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.md.j2").write_text('{% include "env.txt" %}\n')
    (templates / "env.txt").symlink_to(secrets)
    with pytest.raises(TemplateError, match=r"env\.txt' is a symbolic link to .*secrets\.env.*outside"):
        report.render_report(samples.healthy(), templates_dir=templates)


def test_render_report__a_linked_directory_leaving_the_templates_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    templates = tmp_path / "templates"
    (templates / "nested").mkdir(parents=True)
    (templates / "nested" / "etc").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(TemplateError, match=r"nested/etc' is a symbolic link"):
        report.check_templates(templates)


def test_render_report__a_link_that_appears_after_the_check_is_refused_when_loaded(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("TOKEN=notForReports\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    env = report.environment(templates)
    (templates / "report.md.j2").symlink_to(secrets)
    with pytest.raises(TemplateError, match="outside the directory"):
        env.get_template("report.md.j2")


def test_render_report__links_inside_the_templates_dir_are_fine(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "parts").mkdir(parents=True)
    (templates / "parts" / "footer.md").write_text("Ask #oncall.\n")
    (templates / "footer.md").symlink_to(templates / "parts" / "footer.md")
    (templates / "report.md.j2").write_text('{% include "footer.md" %}')
    (tmp_path / "linked").symlink_to(
        templates, target_is_directory=True
    )  # the directory itself may be a link
    assert report.render_report(samples.healthy(), templates_dir=tmp_path / "linked") == "Ask #oncall.\n"


def test_render_report__missing_templates_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"templates directory .*nope.* does not exist"):
        report.render_report(samples.healthy(), templates_dir=tmp_path / "nope")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("line one\n{% if %}\n", r"report\.md\.j2, line 2: "),
        ("line one\n\n{{ run.nope }}\n", r"report\.md\.j2, line 3: .*nope"),
        ("{{ undefined_name }}\n", r"report\.md\.j2, line 1: 'undefined_name' is undefined"),
        (
            '{% include "missing.md.j2" %}\n',
            r"template missing\.md\.j2 not found \(needed by .*report\.md\.j2, line 1\)",
        ),
        ('{% extends "report.md.j2" %}\n', r"in a loop \(extend 'builtin/<name>'"),
        ("{{ run.__class__.__mro__ }}\n", r"report\.md\.j2, line 1: "),
        ("{{ 1 | duration('x', 'y') }}\n", r"report\.md\.j2, line 1: "),
    ],
)
def test_render_report__broken_user_template_is_an_error(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "report.md.j2").write_text(source)
    with pytest.raises(TemplateError, match=message) as caught:
        report.render_report(samples.healthy(), templates_dir=tmp_path)
    assert str(tmp_path) in str(caught.value) or "missing.md.j2" in str(caught.value)


def test_builtin_templates_dir__finds_ours() -> None:
    directory = report.builtin_templates_dir()
    names = {p.name for p in directory.glob("*.md.j2")}
    assert {"report.md.j2", "comment.md.j2", "issue.md.j2", "issue_update.md.j2", "recovery.md.j2",
            "summary.md.j2", "_macros.md.j2"} <= names  # fmt: skip


# -- formatting filters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "—"), (0.44, "0.4 ms"), (85.2, "85 ms"), (999.6, "1.0 s"), (1234, "1.2 s"), (125_000, "2 min 5 s"),
     (3_600_000, "1 h")],
)  # fmt: skip
def test_duration__formats(ms: float | None, text: str) -> None:
    assert markdown.duration(ms) == text


def test_age__relative_to_the_reference() -> None:
    assert markdown.age("2025-06-03T14:17:52.481913123Z", "2025-06-03T14:21:11Z") == "3 min"
    assert markdown.age("2025-06-01T10:00:00Z", "2025-06-03T14:21:11Z") == "2 days"
    assert markdown.age("garbage", "2025-06-03T14:21:11Z") == ""


def test_users__describes_who_was_hit() -> None:
    assert markdown.users((1, 2, 3), 3) == "all 3 users"
    assert markdown.users((1, 2), 2) == "both users"
    assert markdown.users((2, 4), 5) == "users 2 and 4 of 5"
    assert markdown.users((1,), 1) == "user 1"
    assert markdown.users((), 5) == ""


def test_issue_title__plain_and_bounded() -> None:
    run = samples.hostile()
    title = report.issue_title(run, run.findings[0])
    assert title.startswith("P0: WebSocket closed before agent_completed") and "\n" not in title
    assert len(report.issue_title(run, replace(run.findings[0], title="t" * 400))) == 256


def test_render_report__no_arr_configured_mentions_no_money() -> None:
    run = samples.run("ws-auth-rejected")
    impact = assess(run.findings, settings=ImpactSettings(), journey_name="AI chat")
    text = report.render_report(replace(run, impact=impact))
    assert "ARR" not in text.split("\n")[1]


# -- the revision's own logs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["server_logs", "server_logs_denied"])
def test_render_report__snapshot_server_logs(name: str) -> None:
    assert_snapshot(f"report-{name.replace('_', '-')}", report.render_report(getattr(samples, name)()))


def test_render_report__log_groups_sit_under_their_finding_with_tracebacks_folded() -> None:
    text = report.render_report(samples.server_logs())
    finding = text[text.index("#### 1.") : text.index("### Server logs")]
    assert "| 5 | ERROR | 14:21:08 UTC | `Exception in ASGI application` | trace id |" in finding
    assert "| 3 | WARNING | 14:21:07 UTC | `WARNING redis pool at 92% (46/50)` | time |" in finding
    assert "<details><summary>ERROR × 5: Exception in ASGI application</summary>" in finding
    assert f"- **Trace:** `{samples.TRACE_IDS[1]}`" in finding
    assert "| HTTP 502 at 14:21:08 UTC | 2.3 ms | HTTP 502 |" in finding
    assert_tables_well_formed(text)


@pytest.mark.parametrize("render", ["report", "comment", "issue"])
def test_render_report__hostile_log_text_is_inert(render: str) -> None:
    run = samples.hostile_logs()
    if render == "report":
        assert_inert(report.render_report(run), markers=0)
    elif render == "comment":
        assert_inert(report.render_comment(run, history=[]), markers=2)
    else:
        assert_inert(report.render_issue(run, run.findings[0]), markers=1)


# -- issue 9: baseline, revision facts, refused and failed traffic changes --------------------------------------


def _gated_run() -> Run:
    from bot import baseline
    from bot.results import TrafficAction
    from bot.settings import BaselineSettings

    base = samples.healthy()
    serving = [replace(m, p50=m.p50 and m.p50 / 3, p95=m.p95 and m.p95 / 3) for m in base.metrics]
    record, regressions = baseline.judge(
        url="https://chat-backend-7x2kq4ab3c-ew.a.run.app",
        revision="chat-backend-00041-pim",
        checks=[],
        baseline_metrics=serving,
        new_metrics=base.metrics,
        settings=BaselineSettings(),
    )
    findings = diagnose([*base.checks, *regressions], service=samples.SERVICE)
    target = replace(
        base.target,
        tag="pr-42",
        digest=None,
        traffic={"chat-backend-00041-pim": 100},
        tested_alone=True,
        logs_url="https://console.cloud.google.com/logs/query;query=x?project=acme-prod",
    )
    actions = (
        TrafficAction(
            "promote",
            "chat-backend-00042-xoz",
            100,
            False,
            "promote to chat-backend-00042-xoz failed in Cloud Run: 9 Revision is not ready; the service now "
            "reports chat-backend-00041-pim 100%",
            error=True,
            before={"chat-backend-00041-pim": 100},
            after={"chat-backend-00041-pim": 100},
        ),
    )
    return replace(
        base,
        checks=(*base.checks, *regressions),
        findings=findings,
        verdict=verdict_for(findings),
        target=target,
        baseline=record,
        traffic_actions=actions,
    )


def test_render_report__snapshot_baseline_and_revision_facts() -> None:
    assert_snapshot("report-baseline-gate", report.render_report(_gated_run()))


def test_render_report__refused_traffic_change_says_so() -> None:
    from bot.results import TrafficAction

    run = replace(
        samples.healthy(),
        target=replace(samples.healthy().target, tested_alone=False),
        traffic_actions=(
            TrafficAction("rollback", "x", 0, False, "refused to rollback: not tested", refused=True),
        ),
    )

    text = report.render_report(run)

    assert "⛔ Refused to rollback: refused to rollback: not tested" in text
    assert "the new revision was not tested" in text


def test_render_report__waterfall_of_the_slowest_user_as_a_mermaid_gantt() -> None:
    from bot.results import JourneySample

    events = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
    fast = JourneySample(
        1, total_ms=90, events=dict(zip(events, (20.0, 30.0, 50.0, 60.0, 70.0), strict=True))
    )
    slow = JourneySample(
        2, total_ms=400, events=dict(zip(events, (120.4, 130.0, 250.0, 260.0, 380.6), strict=True))
    )
    run = replace(samples.healthy(), samples=(fast, slow, JourneySample(3, total_ms=None)))

    markdown = report.render_report(run)

    fences = [t for t in MarkdownIt().parse(markdown) if t.type == "fence" and t.info == "mermaid"]
    gantt = next(t.content for t in fences if t.content.startswith("gantt"))
    assert "section user 2" in gantt and "title User 2," in gantt
    bars = [line.strip() for line in gantt.splitlines() if ":e" in line]
    assert bars == [
        "agent_started (120 ms) :e1, 00:00:00.000, 00:00:00.120",
        "agent_thinking (130 ms) :e2, 00:00:00.120, 00:00:00.130",
        "tool_executing (250 ms) :e3, 00:00:00.130, 00:00:00.250",
        "tool_completed (260 ms) :e4, 00:00:00.250, 00:00:00.260",
        "agent_completed (381 ms) :e5, 00:00:00.260, 00:00:00.381",
    ]
    assert "gantt" not in report.render_report(samples.healthy())  # no arrival times recorded: no waterfall


# The checks_table macro's row loop as it was written in the template, kept as check_rows' reference.
_ROWS_AS_A_TEMPLATE_LOOP = """{% for c in checks %}
| {{ c.id | code(table=true) }} | {{ c.user if c.user is not none else "—" }} | {{ c.step.value }} | {{ c.status | icon }} {{ {"pass": "pass", "fail": "fail", "skip": "skipped", "not verified": "not verified"}[c.status.value] }} | {{ c.duration_ms | duration }} | {% if c.summary %}{{ c.summary | escape(160) }}{% elif c.failure %}{{ c.failure.message | inline(160, table=true) }}{% endif %} |
{% endfor %}
"""  # noqa: E501


@pytest.mark.parametrize("name", samples.NAMES)
def test_check_rows__write_what_the_template_loop_wrote(name: str):
    hostile = Failure(Kind.HTTP_STATUS, "a `code | pipe` and *stars* @team <b>\n" + "x" * 300, "503")
    checks = (
        *samples.run(name).checks,
        CheckResult("odd | id`", Step.AGENT, Status.FAIL, 12345.6, 7, "", hostile),
        CheckResult("quiet", Step.ANSWER, Status.NOT_VERIFIED, None, None, "", None),
        CheckResult("skipped", Step.ANSWER, Status.SKIP, 0.05, 2, "why | <!-- golden-path:x -->\t@x", None),
    )
    reference = report.environment().from_string(_ROWS_AS_A_TEMPLATE_LOOP).render(checks=checks)
    assert report.check_rows(checks) + "\n" == reference


def _escape_chars_one_by_one(text: str) -> str:
    """markdown._escape_chars as it was first written, a loop over every character: its reference."""
    out = []
    for index, char in enumerate(text):
        if char in markdown._MARKDOWN_CHARS:
            out.append(markdown._MARKDOWN_CHARS[char])
        elif char == "&" and markdown._ENTITY.match(text, index):
            out.append("&amp;")
        elif char == "_" and not (
            0 < index < len(text) - 1 and text[index - 1].isalnum() and text[index + 1].isalnum()
        ):
            out.append("\\_")
        else:
            out.append(char)
    return "".join(out)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.text(alphabet=st.sampled_from(list("ab1_&#;<>`*~[]|\\ é_x;9")), max_size=40) | st.text(max_size=40))
def test_escape_chars__escapes_what_the_character_loop_escaped(text: str):
    assert markdown._escape_chars(text) == _escape_chars_one_by_one(text)


def test_escape_chars__examples():
    assert markdown._escape_chars("a_b _c d_ [gpn1] &amp; &x <b>|`*~\\") == (
        "a_b \\_c d\\_ \\[gpn1\\] &amp;amp; &x &lt;b>\\|\\`\\*\\~\\\\"
    )


def _escape_inline_as_first_written(text: str, limit: int | None) -> str:
    """markdown._escape_inline before its substring prechecks (every pattern run on every text): the reference."""
    from bot.untrusted import _CONTROLS_BUT_LAYOUT, _visible

    value = markdown._truncate(text, limit)
    value = markdown._LINE_BREAKS.sub(" ", value).replace("\t", " ")
    value = _CONTROLS_BUT_LAYOUT.sub(_visible, value)
    escaped = markdown._escape_chars(value) if markdown._ESCAPED_CHARS.search(value) else value
    escaped = markdown._AUTOLINK.sub(lambda m: m.group()[:-1] + markdown.WORD_JOINER + m.group()[-1], escaped)
    escaped = markdown._REFERENCE.sub(lambda m: m.group() + markdown.WORD_JOINER, escaped)
    return markdown._LEADING_BLOCK.sub(markdown._escape_block_start, escaped, count=1)


_TRICKY = st.lists(
    st.sampled_from(
        [*"wWgGhH.:/-@#1a ", "://", "www.", "WwW.", "gh-", "GH-1", "@x", "#9", "http", "\n", "\r", "\t", "\x1b",
         "\x85", "\u2028", "\u202e", "\u200e", "é", "&#64;", "[", "|", "_", "> ", "1. "]
    ),
    max_size=12,
).map("".join)  # fmt: skip


@given(_TRICKY | st.text(max_size=40))
def test_escape__with_its_prechecks_writes_what_every_pattern_wrote(text: str):
    assert markdown._escape_inline(text, 160) == _escape_inline_as_first_written(text, 160)


def test_show_controls__every_character_it_shows_is_one_isprintable_refuses():
    import sys

    from bot.untrusted import _CONTROLS, show_controls

    shown = [chr(c) for c in range(sys.maxunicode + 1) if _CONTROLS.fullmatch(chr(c))]
    assert len(shown) > 60 and not any(c.isprintable() for c in shown)
    assert show_controls("plain text, é and 😀") == "plain text, é and 😀"
    assert show_controls("a\x1bb\u202ec") == "a\\x1bb\\u202ec"
