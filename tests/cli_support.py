"""Helpers shared by the tests that run the entry point as a user does: argv and environment in; exit code,
stdout, stderr and the files it writes out."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from bot.cli import main


def run_main(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``main(argv)`` with ``env`` as the whole environment: the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def write_config(tmp_path: Path, text: str, name: str = "golden-path.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check_url_argv(url: str, config: Path, output: Path, *extra: str, quiet: bool = True) -> list[str]:
    """``check --url`` against ``url``, writing its artifacts to ``output``; ``quiet``: no report on stdout."""
    argv = ["check", "--url", url, "--config", str(config), "--output-dir", str(output)]
    return [*argv, *(["--quiet"] if quiet else []), *extra]


def results_json(output: Path) -> dict[str, Any]:
    """The results.json a run wrote to ``output``."""
    loaded: dict[str, Any] = json.loads((output / "results.json").read_text())
    return loaded


def run_check(
    tmp_path: Path, config: str, *flags: str, env: dict[str, str]
) -> tuple[int, dict[str, Any], str]:
    """`check` with ``flags`` (what to check) and ``config``, quiet, its artifacts in ``tmp_path``/out: the exit
    code, results.json, and report.md followed by stderr."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    output = tmp_path / "out"
    argv = ["check", *flags, "--config", str(write_config(tmp_path, config)), "--output-dir", str(output)]
    code, _out, err = run_main([*argv, "--quiet"], env)
    return code, results_json(output), (output / "report.md").read_text() + err
