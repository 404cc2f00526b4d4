"""How the GitHub Actions runner reads a step's output for workflow commands (actions/runner ActionCommandManager).

A line is a command when, after trimming leading whitespace, it starts with ``::name ...::`` (v2), or when it
holds ``##[name ...]`` anywhere (v1); the runner tries v2 first. Lines are split as .NET's ``ReadLine`` does
(CR, LF, CRLF). ``::stop-commands::TOKEN`` turns every command off until a line ``::TOKEN::``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The commands a runner knows (an unknown name is not parsed as a command).
KNOWN = frozenset(
    {
        "add-mask",
        "add-matcher",
        "add-path",
        "debug",
        "echo",
        "endgroup",
        "error",
        "group",
        "notice",
        "remove-matcher",
        "save-state",
        "set-env",
        "set-output",
        "stop-commands",
        "warning",
    }
)


@dataclass(frozen=True)
class Command:
    name: str
    properties: str
    data: str
    line: str


def _v2(line: str, known: set[str]) -> Command | None:
    text = line.lstrip()
    if not text.startswith("::"):
        return None
    end = text.find("::", 2)
    if end < 0:
        return None
    info = text[2:end]
    name, _, properties = info.partition(" ")
    if name.lower() not in known:
        return None
    return Command(name.lower(), properties, text[end + 2 :], line)


def _v1(line: str, known: set[str]) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    close = line.find("]", start)
    if close < 0:
        return None
    info = line[start + 3 : close]
    name, _, properties = info.partition(" ")
    if name.lower() not in known:
        return None
    return Command(name.lower(), properties, line[close + 1 :], line)


def commands(log: str) -> list[Command]:
    """Every command the runner would execute in ``log`` (stdout or stderr of a step), in order."""
    known = set(KNOWN)
    stop_token: str | None = None
    found: list[Command] = []
    for line in re.split(r"\r\n|\r|\n", log):
        command = _v2(line, known) or _v1(line, known)
        if command is None:
            continue
        if stop_token is not None:
            if command.name == stop_token.lower():
                known.discard(stop_token.lower())
                stop_token = None
            continue
        if command.name == "stop-commands":
            stop_token = command.data
            known.add(stop_token.lower())
            continue
        found.append(command)
    return found
