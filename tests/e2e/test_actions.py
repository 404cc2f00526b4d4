"""bot.actions: the GitHub Actions runtime formats (outputs, summary, annotations, masks, context)."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

from bot import actions
from bot.results import Finding, Impact, Kind, Run, Severity, Step, Target, Verdict


def _finding(
    severity: Severity,
    *,
    fingerprint: str = "chat-backend:ws-upgrade-status:502",
    title: str = "WebSocket upgrade answered HTTP 502",
) -> Finding:
    return Finding(
        fingerprint=fingerprint,
        severity=severity,
        kind=Kind.WS_UPGRADE_STATUS if severity is Severity.P0 else Kind.HTTP_STATUS,
        step=Step.CONNECT if severity is Severity.P0 else Step.HEALTH,
        title=title,
        cause="The load balancer could not reach the backend, 100% of users affected.",
        remediation="Check the revision's logs,\nthen redeploy.",
    )


def _run(*findings: Finding) -> Run:
    return Run(
        run_id="1-1",
        started_at="2025-06-03T14:21:07Z",
        finished_at="2025-06-03T14:21:11Z",
        duration_ms=4000,
        verdict=Verdict.FAIL,
        target=Target(url="https://chat.example", service="chat-backend"),
        checks=(),
        metrics=(),
        findings=findings,
        impact=Impact(journey="AI chat", blocked=True, summary="Nobody can chat."),
    )


def _read_outputs(text: str) -> dict[str, str]:
    """Parse GITHUB_OUTPUT the way the runner does (name=value, or name<<DELIM ... DELIM)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            values[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            values[name] = value
            i += 1
    return values


# -- context ----------------------------------------------------------------------------------------------------


def test_context_from_env__reads_github_variables(tmp_path: Path) -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/chat",
        "GITHUB_API_URL": "https://ghe.acme.dev/api/v3/",
        "GITHUB_SERVER_URL": "https://ghe.acme.dev",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        "GITHUB_SHA": "abc",
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_TOKEN": "ghs_secret",
    }
    ctx = actions.context_from_env(env)
    assert ctx.repository == "acme/chat"
    assert ctx.api_url == "https://ghe.acme.dev/api/v3"
    assert ctx.event_path == tmp_path / "event.json"
    assert ctx.output == tmp_path / "output"
    assert ctx.in_actions
    assert ctx.token == "ghs_secret"
    assert "ghs_secret" not in repr(ctx)


def test_context_from_env__defaults_outside_actions() -> None:
    ctx = actions.context_from_env({"GITHUB_OUTPUT": "", "GITHUB_REPOSITORY": " "})
    assert ctx.api_url == "https://api.github.com"
    assert ctx.server_url == "https://github.com"
    assert ctx.output is None and ctx.repository is None and not ctx.in_actions
    assert actions.run_url(ctx) is None


def test_run_url__links_run_and_attempt() -> None:
    ctx = actions.ActionsContext(repository="acme/chat", server_url="https://github.com", run_id="42")
    assert actions.run_url(ctx) == "https://github.com/acme/chat/actions/runs/42"
    assert (
        actions.run_url(replace(ctx, run_attempt="3"))
        == "https://github.com/acme/chat/actions/runs/42/attempts/3"
    )


# -- outputs ----------------------------------------------------------------------------------------------------


def test_write_outputs__single_and_multiline(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n")
    urls = "http://gh/acme/chat/issues/1\nhttp://gh/acme/chat/issues/2"
    actions.write_outputs(path, {"verdict": "fail", "p0-count": "2", "issue-urls": urls, "comment-url": ""})
    text = path.read_text()
    assert text.startswith("earlier=1\nverdict=fail\np0-count=2\n")
    assert re.search(r"^issue-urls<<ghadelimiter_[0-9a-f]{32}$", text, re.M)
    assert _read_outputs(text) == {
        "earlier": "1",
        "verdict": "fail",
        "p0-count": "2",
        "issue-urls": urls,
        "comment-url": "",
    }


def test_write_outputs__value_cannot_inject_outputs(tmp_path: Path) -> None:
    path = tmp_path / "output"
    hostile = "100% broken\nverdict=pass\r\nghadelimiter_x"
    actions.write_outputs(path, {"title": hostile, "verdict": "fail"})
    assert _read_outputs(path.read_text().replace("\r\n", "\n")) == {
        "title": hostile.replace("\r\n", "\n"),
        "verdict": "fail",
    }


def test_write_outputs__no_file_is_a_no_op() -> None:
    actions.write_outputs(None, {"verdict": "pass"})


def test_write_outputs__rejects_bad_names(tmp_path: Path) -> None:
    try:
        actions.write_outputs(tmp_path / "o", {"bad name": "x"})
    except ValueError as exc:
        assert "bad name" in str(exc)
    else:
        raise AssertionError("expected ValueError")


# -- summary ----------------------------------------------------------------------------------------------------


def test_append_summary__appends_markdown(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    actions.append_summary(path, "# One")
    actions.append_summary(path, "# Two\n")
    actions.append_summary(None, "ignored")
    assert path.read_text() == "# One\n# Two\n"


def test_append_summary__cuts_to_github_limit(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("x" * 1000)
    actions.append_summary(path, "é" * actions.SUMMARY_MAX_BYTES)
    data = path.read_bytes()
    assert len(data) <= actions.SUMMARY_MAX_BYTES
    assert data.decode("utf-8").endswith("1 MiB step summary limit.\n")


# -- annotations and masks ----------------------------------------------------------------------------------------


def test_annotate__error_per_p0_warning_per_p1() -> None:
    run = _run(
        _finding(Severity.P0),
        _finding(Severity.P1, fingerprint="chat-backend:http-status:503", title="Health 503"),
    )
    out = io.StringIO()
    actions.annotate(run, out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("::error title=golden-path P0%3A WebSocket upgrade answered HTTP 502::")
    assert "100%25 of users affected." in lines[0]
    assert "logs,%0Athen redeploy." in lines[0]
    assert lines[0].endswith("(chat-backend:ws-upgrade-status:502)")
    assert lines[1].startswith("::warning title=golden-path P1%3A Health 503::")


def test_annotate__escapes_title_properties() -> None:
    run = _run(_finding(Severity.P0, title="a, b: c\r\n::error::injected"))
    out = io.StringIO()
    actions.annotate(run, out)
    (line,) = out.getvalue().splitlines()
    assert "title=golden-path P0%3A a%2C b%3A c%0D%0A%3A%3Aerror%3A%3Ainjected::" in line


def test_annotate__nothing_for_a_clean_run() -> None:
    out = io.StringIO()
    actions.annotate(_run(), out)
    assert out.getvalue() == ""


def test_mask__each_line_of_a_secret() -> None:
    out = io.StringIO()
    actions.mask("-----BEGIN KEY-----\nab%cd\n\n-----END KEY-----\n", out)
    actions.mask("", out)
    assert out.getvalue().splitlines() == [
        "::add-mask::-----BEGIN KEY-----",
        "::add-mask::ab%25cd",
        "::add-mask::-----END KEY-----",
    ]


def test_inert__no_command_inside_runs_and_commands_after_it_do() -> None:
    from tests.standins.actions_runner import commands

    hostile = "close reason\n  ::error::forged\r##[set-output name=x]y\n::add-mask::z"
    log = actions.inert(hostile) + actions.command("warning", "ours") + "\n"
    assert [(c.name, c.data) for c in commands(log)] == [("warning", "ours")]
    assert hostile in log, "the text itself is printed unchanged"


def test_inert__the_text_cannot_resume_commands_itself() -> None:
    from tests.standins.actions_runner import commands

    first = actions.inert("x")
    token = first.splitlines()[0].removeprefix("::stop-commands::")
    # Even text that guesses a token shape cannot end the block: each block has a fresh token.
    log = actions.inert(f"::{token}::\n::error::forged")
    assert commands(log) == []


def test_one_line__line_breaks_and_v1_commands_are_defused() -> None:
    from tests.standins.actions_runner import commands

    line = "golden-path: " + actions.one_line("a\r\nb\n::error::x\r##[error]y")
    assert len(line.splitlines()) == 1
    assert commands(line) == []
    assert "::error::x" in line, "still readable"


def test_one_line__control_characters_are_shown_escaped() -> None:
    """A log line quoting outside text sends no ESC/CSI sequence, C1 control or bidi override to the terminal."""
    line = actions.one_line("cleared\x1b[2J\x9b31m\x07\tred\u202e\x00")
    assert line == "cleared\\x1b[2J\\x9b31m\\x07\\x09red\\u202e\\x00"
