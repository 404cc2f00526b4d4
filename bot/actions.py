"""The GitHub Actions runtime: context from the environment, step outputs, step summary, annotations, masks.

Pure functions over paths and streams: only ``context_from_env`` looks at environment values, and it is given
them (the entry point passes ``os.environ``). Formats follow GitHub's workflow-command rules: command data
escapes ``%``, ``\\r`` and ``\\n``; properties also escape ``:`` and ``,``; multi-line outputs use a
``name<<DELIMITER`` heredoc with a random delimiter that cannot occur in the value.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot.results import Run, Severity
from bot.untrusted import show_controls

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
SUMMARY_MAX_BYTES = 1024 * 1024  # GitHub refuses a step summary over 1 MiB ("upload aborted")
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class ActionsContext:
    """What GitHub Actions tells a step about itself; every field is None/empty outside Actions."""

    repository: str | None = None  # "owner/name"
    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    event_name: str | None = None
    event_path: Path | None = None
    sha: str | None = None
    ref: str | None = None  # GITHUB_REF, e.g. refs/heads/main: the branch names the incident track
    run_id: str | None = None
    run_attempt: str | None = None
    step_summary: Path | None = None
    output: Path | None = None
    in_actions: bool = False
    token: str | None = field(default=None, repr=False)


def context_from_env(env: Mapping[str, str]) -> ActionsContext:
    """Read the ``GITHUB_*`` variables; empty values count as unset. ``GITHUB_API_URL`` is honoured (GHES)."""

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    def path(name: str) -> Path | None:
        value = get(name)
        return Path(value) if value else None

    return ActionsContext(
        repository=get("GITHUB_REPOSITORY"),
        api_url=(get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
        server_url=(get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
        event_name=get("GITHUB_EVENT_NAME"),
        event_path=path("GITHUB_EVENT_PATH"),
        sha=get("GITHUB_SHA"),
        ref=get("GITHUB_REF"),
        run_id=get("GITHUB_RUN_ID"),
        run_attempt=get("GITHUB_RUN_ATTEMPT"),
        step_summary=path("GITHUB_STEP_SUMMARY"),
        output=path("GITHUB_OUTPUT"),
        in_actions=env.get("GITHUB_ACTIONS") == "true",
        token=get("GITHUB_TOKEN"),
    )


def run_url(ctx: ActionsContext) -> str | None:
    """The link to this workflow run (and attempt, when re-run), or None outside Actions."""
    if not (ctx.repository and ctx.run_id):
        return None
    url = f"{ctx.server_url}/{ctx.repository}/actions/runs/{ctx.run_id}"
    if ctx.run_attempt and ctx.run_attempt != "1":
        url += f"/attempts/{ctx.run_attempt}"
    return url


def write_outputs(path: Path | None, outputs: Mapping[str, str]) -> None:
    """Append step outputs to the ``GITHUB_OUTPUT`` file; a no-op without one (outside Actions).

    Single-line values are written ``name=value``; values with a line break use the heredoc form with a
    random delimiter, checked not to occur in the value (a value could otherwise end the block early and
    inject further outputs).
    """
    if path is None or not outputs:
        return
    lines: list[str] = []
    for name, value in outputs.items():
        if not _OUTPUT_NAME.match(name):
            raise ValueError(f"invalid step output name {name!r}")
        if "\n" in value or "\r" in value:
            delimiter = _delimiter(value)
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write("".join(lines))


def _delimiter(value: str) -> str:
    while True:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        if delimiter not in value:
            return delimiter


def append_summary(path: Path | None, markdown: str) -> None:
    """Append markdown to the step summary; cut (with a note) so the file stays under GitHub's 1 MiB."""
    if path is None or not markdown:
        return
    used = path.stat().st_size if path.exists() else 0
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    budget = SUMMARY_MAX_BYTES - used
    data = text.encode("utf-8")
    if len(data) > budget:
        note = "\n\n> [!WARNING]\n> The report was cut to fit GitHub's 1 MiB step summary limit.\n"
        room = max(budget - len(note.encode("utf-8")), 0)
        text = data[:room].decode("utf-8", errors="ignore") + note if room else ""
        if not text:
            return
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(text)


def escape_data(value: str) -> str:
    """Workflow-command data (after ``::``): ``%``, ``\\r``, ``\\n`` are percent-encoded."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Workflow-command property values: as data, plus ``:`` and ``,``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str) -> str:
    """One workflow command line, e.g. ``::error title=T::message``."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items() if value)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotate(run: Run, stream: TextIO) -> None:
    """An ``::error`` annotation per P0 finding and a ``::warning`` per P1, titled with the fingerprint.

    The text comes from our own diagnosis but may quote the system under test; escaping keeps each
    annotation on one line, so it cannot start another workflow command.
    """
    for finding in run.findings:
        level = "error" if finding.severity is Severity.P0 else "warning"
        title = f"golden-path {finding.severity.value}: {finding.title}"
        message = f"{finding.cause} Fix: {finding.remediation} ({finding.fingerprint})"
        stream.write(command(level, message, title=title) + "\n")
    stream.flush()


def inert(text: str) -> str:
    """``text`` wrapped so the runner executes no workflow command inside it: ``::stop-commands::TOKEN`` before,
    ``::TOKEN::`` after, with a random token that does not occur in the text (so the text cannot resume
    command processing itself). For the report and anything else printed that quotes the system under test.
    """
    if not text:
        return text
    token = secrets.token_hex(16)
    while token in text:
        token = secrets.token_hex(16)
    body = text if text.endswith("\n") else text + "\n"
    return f"::stop-commands::{token}\n{body}::{token}::\n"


# Every line break .NET's StreamReader.ReadLine splits on (the runner reads our output with it).
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def one_line(text: str) -> str:
    """A log line that cannot be read as a workflow command: line breaks shown as ``⏎`` (a second line would
    start wherever the text wants), ``##[`` (a command anywhere in a line) broken by a zero-width space, and
    every other control character shown escaped (``\\x1b``: an ESC sequence in a log drives the terminal).

    Callers prefix the line with their own text (``golden-path: ...``), so it never starts with ``::``.
    """
    return show_controls(_LINE_BREAKS.sub(" ⏎ ", text)).replace("##[", "#\u200b#[")


def mask(secret: str, stream: TextIO) -> None:
    """Ask the runner to mask ``secret`` in logs; each line of a multi-line secret is masked on its own."""
    for line in secret.splitlines():
        if line.strip():
            stream.write(command("add-mask", line) + "\n")
    stream.flush()
