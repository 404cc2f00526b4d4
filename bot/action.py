"""The GitHub Action's side of the entry point: its inputs (``INPUT_*``) read into typed values, and its step
outputs, written on every run, also when the tool itself fails (``verdict=error``).

GitHub passes every input of ``action.yml`` as ``INPUT_<NAME>`` (upper-cased, hyphens kept), its default when not
given: an input at its default cannot be told from one set to it, so the defaults live in the settings and an
empty input counts as not given. The inputs share their names with the flags of ``golden-path check``
(``OVERRIDES``); a bad one is named as the workflow spells it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import actions, config, markdown
from bot.auth import Credentials
from bot.config import OVERRIDES
from bot.console import Console
from bot.errors import ConfigError, UsageError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.pipeline import Artifacts
    from bot.results import Run

# Action inputs read as numbers, booleans or comma-separated lists (everything else is a string).
WHOLE_NUMBER_INPUTS = ("users", "load_users", "pr", "close_after_passes")
NUMBER_INPUTS = ("arr_at_risk", "ready_timeout", "run_timeout")
BOOLEAN_INPUTS = ("publish", "comment", "issues", "private")
LIST_INPUTS = ("labels", "assignees")
SECRET_INPUTS = ("jwt-secret", "jwt-private-key", "token", "login-password", "id-token")


@dataclass(frozen=True, slots=True)
class Inputs:
    """The Action's inputs as the entry point uses them: the config file, the service name, each override by its
    flag name (None when not given), and whether debug logging is on."""

    config: Path | None
    service: str | None
    overrides: dict[str, Any]
    debug: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the Action's run needs from its inputs: settings, credentials, a passed ID token, verbosity."""

    settings: Settings
    credentials: Credentials
    id_token: str | None  # the id-token input
    verbose: bool


def prepare(env: Mapping[str, str], console: Console, *, default_config: Path | None) -> Prepared:
    """Mask every secret input first, then read the inputs over the config file (the config input, else
    ``default_config``). Publishing is on unless the input or the config file turns it off. A bad input is
    named as the workflow spells it."""
    given = secret_inputs(env)
    for value in given.values():
        console.keep_secret(value)
    inputs = read_inputs(env)
    values = {"config": inputs.config or default_config, "service": inputs.service, **inputs.overrides}
    defaults = {"version.expected": env.get("GITHUB_SHA") or None, "github.publish": True}
    try:
        settings = config.for_target(values, warn=console.warn, note=console.note, defaults=defaults)
    except ConfigError as exc:
        raise input_error(exc, inputs) or exc from None
    from_env = config.credentials(settings, env)
    credentials = Credentials(
        secret=given["jwt-secret"] or from_env.secret,
        private_key=given["jwt-private-key"] or from_env.private_key,
        token=given["token"] or from_env.token,
        password=given["login-password"] or from_env.password,
        users=from_env.users,
    )
    return Prepared(
        settings=settings, credentials=credentials, id_token=given["id-token"], verbose=inputs.debug
    )


def _given(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(f"INPUT_{name.upper()}", "").strip()
    return value or None


def secret_inputs(env: Mapping[str, str]) -> dict[str, str | None]:
    return {name: _given(env, name) for name in SECRET_INPUTS}


def read_inputs(env: Mapping[str, str]) -> Inputs:
    """Every ``INPUT_*`` as its setting's type. Raises ``UsageError`` naming the input for a malformed value."""
    config_file = _given(env, "config")
    return Inputs(
        config=Path(config_file) if config_file else None,
        service=_given(env, "service"),
        overrides={name: _parse(name, _given(env, name.replace("_", "-"))) for name in OVERRIDES},
        # A re-run with debug logging ("Enable debug logging" sets RUNNER_DEBUG=1) logs the GitHub request count.
        debug=env.get("RUNNER_DEBUG") == "1",
    )


def input_error(exc: ConfigError, inputs: Inputs) -> UsageError | None:
    """A bad input named as the workflow spells it, not as the config key it feeds; None when no input fed it."""
    for name, dotted in OVERRIDES.items():
        if inputs.overrides.get(name) is not None and exc.key and exc.key.startswith(dotted):
            return UsageError(f"input '{name.replace('_', '-')}': {exc.reason}")
    return None


def _parse(name: str, raw: str | None) -> Any:
    """An input's text as the type its setting wants; a bad value names the input. None when not given."""
    if raw is None:
        return None
    input_name = name.replace("_", "-")
    if name in BOOLEAN_INPUTS:
        return _boolean(input_name, raw)
    if name in LIST_INPUTS:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if name in WHOLE_NUMBER_INPUTS:
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"input '{input_name}': expected a whole number, got {raw!r}") from None
    if name in NUMBER_INPUTS:
        try:
            return float(raw)
        except ValueError:
            raise UsageError(f"input '{input_name}': expected a number, got {raw!r}") from None
    return raw


def _boolean(name: str, raw: str) -> bool:
    if raw.lower() in ("true", "yes", "1", "on"):
        return True
    if raw.lower() in ("false", "no", "0", "off"):
        return False
    raise UsageError(f"input '{name}': expected true or false, got {raw!r}")


# -- outputs -----------------------------------------------------------------------------------------------------


class OutputLedger:
    """The step outputs of one run, so a failure can still write every output (``verdict=error``)."""

    NAMES = (
        "verdict", "error", "p0-count", "url", "revision", "previous-revision", "traffic-action",
        "report-path", "results-path", "junit-path", "comment-url", "issue-urls",
        "revision-tag", "revision-url", "tested-url", "image", "image-digest", "traffic-before", "traffic-after",
        "logs-url",
    )  # fmt: skip

    def __init__(self, path: Path | None, *, summary: Path | None = None) -> None:
        self.path = path
        self.summary = summary
        self.written = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OutputLedger:
        output_file = env.get("GITHUB_OUTPUT", "").strip()
        summary_file = env.get("GITHUB_STEP_SUMMARY", "").strip()
        return cls(
            Path(output_file) if output_file else None, summary=Path(summary_file) if summary_file else None
        )

    def write(self, outputs: Mapping[str, str]) -> None:
        actions.write_outputs(self.path, {name: outputs.get(name, "") for name in self.NAMES})
        self.written = True

    def fail(self, reason: str) -> None:
        """Record why the tool failed; when nothing was written yet, every output, with ``verdict=error``."""
        line = " ".join(reason.split())
        try:
            if self.written:
                actions.write_outputs(self.path, {"error": line})
            else:
                self.write({"verdict": "error", "error": line, "p0-count": "0", "traffic-action": "none"})
                note = f"### ⚠️ golden-path could not run\n\n{markdown.escape(line)}\n"
                actions.append_summary(self.summary, note)
        except OSError:
            pass  # the output file itself is unwritable: the error line on stderr is all that is left


def outputs(run: Run, artifacts: Artifacts) -> dict[str, str]:
    """The step outputs of a concluded run (publishing adds ``comment-url`` and ``issue-urls``)."""
    return {
        "verdict": run.verdict.value,
        "p0-count": str(run.p0_count),
        "url": run.target.url,
        "revision": run.target.revision or "",
        "previous-revision": run.target.previous_revision or "",
        "traffic-action": _traffic_action(run),
        "report-path": str(artifacts.report),
        "results-path": str(artifacts.results),
        "junit-path": str(artifacts.junit),
        **_revision_outputs(run),
    }


def _traffic_action(run: Run) -> str:
    if not run.traffic_actions:
        return "none"
    last = run.traffic_actions[-1]
    if last.noop:
        return "none"
    return f"{last.action}-failed" if last.error else last.action


def _revision_outputs(run: Run) -> dict[str, str]:
    """The revision's facts as step outputs (empty when not a Cloud Run target)."""
    target = run.target

    def shares(traffic: Mapping[str, int]) -> str:
        return ",".join(f"{name}={pct}" for name, pct in sorted(traffic.items()))

    after = next((a.after for a in reversed(run.traffic_actions) if a.after), target.traffic)
    return {
        "revision": target.revision or "",
        "revision-tag": target.tag or "",
        "revision-url": target.revision_url or "",
        "tested-url": target.url,
        "image": target.image or "",
        "image-digest": target.digest or ("unknown" if target.revision else ""),
        "previous-revision": target.previous_revision or "",
        "traffic-before": shares(target.traffic),
        "traffic-after": shares(after),
        "logs-url": target.logs_url or "",
    }
