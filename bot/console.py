"""Where a run speaks: log lines on stderr, the report on stdout, and the secrets kept out of both.

Built once by the entry point from its streams and environment, and handed to the pipeline. Log lines quote
outside text (Cloud Run and GitHub messages, a server's close reason): each is redacted, clipped to one line and
made inert, so it never runs a workflow command; a warning is also an annotation in GitHub Actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from bot.untrusted import Redactor, show_controls

# ``bot.actions`` is imported where a line is written: it loads the results model (pydantic), and `--version` or
# `--help` build a Console without printing through it.

ERROR_LINE_CHARS = 2000  # an error line stays readable however long the value it quotes


@dataclass(frozen=True)
class Console:
    out: TextIO
    err: TextIO
    redactor: Redactor
    in_actions: bool = False  # GITHUB_ACTIONS=true: annotations, masks, inert text

    def log(self, message: str) -> None:
        """``golden-path: MESSAGE`` on stderr; ``warning: ...`` is also a warning annotation in Actions."""
        from bot import actions

        message = actions.one_line(self.redactor.clip(message, ERROR_LINE_CHARS))
        print(f"golden-path: {message}", file=self.err, flush=True)
        if self.in_actions and message.startswith("warning: "):
            print(
                actions.command("warning", message.removeprefix("warning: "), title="golden-path"),
                file=self.out,
            )

    def note(self, message: str) -> None:
        """``golden-path: note: MESSAGE``: something the user should know about how the run was set up."""
        self.log(f"note: {message}")

    def warn(self, message: str) -> None:
        """``golden-path: warning: MESSAGE`` (an annotation in Actions)."""
        self.log(f"warning: {message}")

    def error(self, message: str) -> None:
        """The one line an expected failure ends with (and an error annotation in Actions)."""
        from bot import actions

        # One line, whatever the message quotes (a config key with a line break, a server's answer).
        line = actions.one_line(self.redactor.clip(message, ERROR_LINE_CHARS))
        print(f"golden-path: error: {line}", file=self.err)
        if self.in_actions:
            print(actions.command("error", line, title="golden-path"), file=self.out)

    def keep_secret(self, value: str | None) -> None:
        """A secret learnt during the run (a minted or fetched token): redacted everywhere, masked in Actions."""
        from bot import actions

        if value:
            self.redactor.add(value)
            if self.in_actions:
                actions.mask(value, self.out)

    def printable(self, text: str) -> str:
        """Text that quotes the system under test, ready for stdout: redacted, controls shown escaped (an ESC
        sequence would drive the terminal or the log viewer), and inert in Actions (the runner would otherwise
        run a ``::error::`` or ``##[set-output]`` line a server put in a close reason)."""
        from bot import actions

        text = show_controls(self.redactor.clean(text), multiline=True)
        return actions.inert(text) if self.in_actions else text
