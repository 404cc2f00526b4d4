"""One error tree for golden-path, and the exit codes the entry point turns it into.

Expected failures are raised as one of these and become one clear line and a documented exit code in
``bot.cli``; anything else is a bug and gets a traceback. Third-party errors are translated once, at the
boundary that called the library (``raise CloudRunError(...) from exc``).

::

    GoldenPathError                      exit code given by .exit_code
    ├── UsageError                       2  bad flags, config file, inputs, templates
    │   ├── ConfigError                  2  a config key has a bad value (names key, value, expectation)
    │   └── TemplateError                2  a user template is missing or broken
    └── InfrastructureError              3  the tool itself could not do its job
        ├── CloudRunError                3  Cloud Run Admin API: not found, permission denied, unavailable
        ├── GitHubError                  3  GitHub API: 5xx after retries, rate limited, unexpected answer
        ├── IdTokenError                 3  no ID token for a private service (bot.idtoken)
        └── ReferenceBackendError        3  the bundled reference backend could not start

A failing golden path is not an error: it is a verdict (exit code 1), decided by ``bot.pipeline.exit_code``
under the gate's ``fail_on``.
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes (README, action.yml)."""

    PASS = 0
    FAILED = 1  # the golden path failed, as the gate's `fail-on` counts failures (README)
    USAGE = 2  # usage or configuration error
    INFRASTRUCTURE = 3  # the tool could not reach GitHub / Cloud Run, or could not start


class GoldenPathError(Exception):
    """Base of every expected error; ``str(e)`` is the one line the user sees."""

    exit_code: ExitCode = ExitCode.INFRASTRUCTURE


class UsageError(GoldenPathError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A configuration value is wrong: says which key, which value, and what was expected."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.reason = message
        super().__init__(f"config key '{key}': {message}" if key else message)


class TemplateError(UsageError):
    pass


class InfrastructureError(GoldenPathError):
    exit_code = ExitCode.INFRASTRUCTURE


class CloudRunError(InfrastructureError):
    pass


class GitHubError(InfrastructureError):
    pass


class ReferenceBackendError(InfrastructureError):
    pass


_REQUEST_LINE = re.compile(r"^(?:GET|POST|PATCH|PUT|DELETE) \S+: ")


def message_of(exc: BaseException, limit: int = 300) -> str:
    """A library's exception as one line of our message: its own text (``.message`` when it has one), without
    the request line REST transports put first (``GET https://...: ``), whitespace collapsed, cut."""
    text = str(getattr(exc, "message", None) or exc)
    return " ".join(_REQUEST_LINE.sub("", text).split())[:limit] or type(exc).__name__
