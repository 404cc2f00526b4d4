"""Entry point: argv + environment -> Settings -> ``pipeline.run(settings, clients)`` -> exit code.

The only module that reads os.environ: it parses the command line (or, for ``action``, the Action's inputs
through ``bot.action``), builds the settings, the console, the Actions context, the GitHub token and every client
once, and dispatches. Expected failures become one line and a documented exit code here, in one place.

Exit codes (also in README and action.yml): 0 pass, 1 golden path failed, 2 usage/config error,
3 infrastructure error (GitHub, Cloud Run, reference backend unreachable).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot import tool_version
from bot.console import Console
from bot.errors import ExitCode, GoldenPathError, UsageError
from bot.reference.faults import faults_help
from bot.untrusted import Redactor, has_controls

if TYPE_CHECKING:
    # The heavy modules (pydantic models, jinja2, jwt, httpx, the Google clients) load when a command needs
    # them: `--version`, `--help`, `profile`, `init` and `schema` stay quick.
    from bot.settings import Settings

# Environment variables that hold secrets whatever the config says: redacted from every line we print.
SECRET_ENV = (
    "GITHUB_TOKEN",
    "INPUT_GITHUB-TOKEN",
    "INPUT_JWT-SECRET",
    "INPUT_JWT-PRIVATE-KEY",
    "INPUT_TOKEN",
    "INPUT_LOGIN-PASSWORD",
    "INPUT_ID-TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
)

# The demo runs against a reference backend on this machine, next to whatever else the machine is doing:
# targets a laptop or a shared runner meets (the defaults are for a production backend close to its users).
DEMO_TARGETS = {
    "targets.api_ms": 250,
    "targets.handshake_ms": 250,
    "targets.agent_startup_ms": 1000,
    "targets.processing_ms": 1000,
    "targets.total_ms": 3000,
}
ID_TOKEN_ENV = "GOLDEN_PATH_ID_TOKEN"  # where a private Cloud Run service's ID token can be passed
DEFAULT_CONFIG = Path(".github/golden-path.yml")


class _VersionAction(argparse.Action):
    """``--version`` that looks the version up only when asked (argparse's formats it on every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        print(f"golden-path {tool_version()}")
        parser.exit()


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    env = os.environ if env is None else env
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = _parser().parse_args(argv)
    # Every secret the run learns (credentials, minted tokens) is added here; every line we print passes it.
    redactor = Redactor(env.get(name) for name in SECRET_ENV)
    console = Console(out=out, err=err, redactor=redactor, in_actions=env.get("GITHUB_ACTIONS") == "true")
    try:
        command: Callable[..., int] = args.func
        return command(args, env=env, console=console)
    except GoldenPathError as exc:
        console.error(str(exc))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("golden-path: interrupted", file=err)
        return 130
    except Exception:  # a bug: the traceback is shown, but redacted, and inert in the Actions log
        print(console.printable(traceback.format_exc()), file=err, end="")
        print("golden-path: internal error (a bug in golden-path; the traceback is above)", file=err)
        return int(ExitCode.INFRASTRUCTURE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="golden-path",
        description="Verify a real-time AI chat backend's golden path (health, login, WebSocket, agent events, answer).",
        epilog="Exit codes: 0 pass, 1 golden path failed, 2 usage or config error, 3 infrastructure error.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="run the golden path against the bundled reference backend (no cloud, no token)"
    )
    demo.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="FAULT",
        help="inject a fault into the reference backend (repeatable); see `serve-reference --help`",
    )
    demo.add_argument(
        "--profile",
        metavar="NAME",
        help="the protocol profile the reference backend is checked with (default reference); see `profile show`",
    )
    _common(demo)
    demo.set_defaults(func=_demo)

    profile = sub.add_parser(
        "profile", help="print a built-in protocol profile (a YAML file to start a config from)"
    )
    profile_sub = profile.add_subparsers(dest="profile_command", required=True, metavar="show")
    show = profile_sub.add_parser("show", help="print the profile NAME (default: list the profiles)")
    show.add_argument("name", nargs="?", metavar="NAME")
    show.set_defaults(func=_profile_show)

    check = sub.add_parser("check", help="run the golden path against a deployed backend")
    where = check.add_argument_group("target (a URL, or Cloud Run coordinates)")
    where.add_argument("--url", help="base URL of the backend (http:// or https://)")
    where.add_argument("--project", help="Google Cloud project id")
    where.add_argument("--region", help="Cloud Run region, e.g. us-central1")
    where.add_argument(
        "--service", help="Cloud Run service (with --project/--region), else the name in reports"
    )
    where.add_argument("--revision", help="revision to test (default: the latest created)")
    where.add_argument(
        "--ready-timeout", type=float, help="seconds to wait for the revision to be ready (default 300)"
    )
    where.add_argument(
        "--tag", help="test the revision carrying this traffic tag (e.g. pr-7), at its tag URL"
    )
    where.add_argument(
        "--private",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"the service requires IAM: send a Google-signed ID token (from ${ID_TOKEN_ENV} or ADC)",
    )
    where.add_argument(
        "--baseline-url", help="URL of the revision serving users now (default: the service URL when fit)"
    )
    where.add_argument(
        "--cloud-run-endpoint", help="Cloud Run Admin API endpoint (default run.googleapis.com)"
    )
    check.add_argument(
        "--expected-version", help="the version/commit the health endpoint must report (default $GITHUB_SHA)"
    )
    check.add_argument("--expected-image", help="the image digest the revision must run")
    _publish_and_gate(check)
    check.add_argument("--on-pass", choices=("none", "promote"), help="traffic action when the run passes")
    check.add_argument("--on-fail", choices=("none", "rollback"), help="traffic action when the run fails")
    check.add_argument(
        "--rollback-to",
        metavar="TAG",
        help="a known-good traffic tag a rollback may send traffic to (default: only the revision that served "
        "before this run)",
    )
    check.add_argument(
        "--shard",
        metavar="K/N",
        help="run shard K of N of the users and write a shard result for `merge` (default in a Cloud Run "
        "Jobs task: CLOUD_RUN_TASK_INDEX+1/CLOUD_RUN_TASK_COUNT); a shard never publishes or moves traffic",
    )
    _common(check)
    check.set_defaults(func=_check)

    merge = sub.add_parser(
        "merge",
        help="merge shard results (check --shard K/N) into one verdict and report, and publish once",
    )
    merge.add_argument("results", type=_path, nargs="+", help="every shard's results.json")
    _publish_and_gate(merge)
    merge.add_argument("--config", type=_path, help=f"config file (default {DEFAULT_CONFIG} when it exists)")
    merge.add_argument("--output-dir", type=_path, help="where results.json, report.md and junit.xml go")
    merge.add_argument(
        "--templates-dir", "--template", type=_path, help="directory of templates overriding ours"
    )
    merge.add_argument("--quiet", action="store_true", help="do not print the report")
    merge.set_defaults(func=_merge)

    action = sub.add_parser("action", help="run as the GitHub Action (reads INPUT_* and GITHUB_* variables)")
    action.set_defaults(func=_action)

    serve = sub.add_parser(
        "serve-reference",
        help="run the reference backend alone (JWT secret from $JWT_SECRET_KEY)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=faults_help(),
    )
    serve.add_argument("--port", type=_port, default=8080, help="TCP port, 1-65535 (default 8080)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--fault", action="append", default=[], metavar="FAULT")
    serve.add_argument(
        "--version", dest="backend_version", default="dev", help="version the health endpoint reports"
    )
    serve.set_defaults(func=_serve_reference)

    init = sub.add_parser(
        "init", help="write a commented .github/golden-path.yml and an example workflow (never overwrites)"
    )
    init.add_argument("--directory", type=_path, default=Path("."), help="the repository root (default .)")
    init.add_argument(
        "--profile", help="start the config from this built-in protocol profile (`golden-path profile show`)"
    )
    init.set_defaults(func=_init)

    validate = sub.add_parser("validate", help="check the config file and templates (no network)")
    validate.add_argument(
        "--config", type=_path, help=f"config file (default {DEFAULT_CONFIG} when it exists)"
    )
    validate.add_argument(
        "--templates-dir", "--template", type=_path, help="directory of templates overriding ours"
    )
    validate.set_defaults(func=_validate)

    schema = sub.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=_schema)

    render = sub.add_parser("report", help="re-render a saved results.json")
    render.add_argument("results", type=_path, help="path to results.json")
    render.add_argument(
        "--templates-dir", "--template", type=_path, help="directory of templates overriding ours"
    )
    render.add_argument("--format", choices=("report", "comment", "summary", "junit"), default="report")
    render.set_defaults(func=_report)
    return parser


def _publish_and_gate(parser: argparse.ArgumentParser) -> None:
    """--publish, --pr and --fail-on: the same for `check` and for `merge`, which concludes a sharded check."""
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="comment on the PR and file P0 issues (--no-publish overrides the config file)",
    )
    parser.add_argument(
        "--pr", type=int, help="pull request number (default: found from the event or commit)"
    )
    parser.add_argument(
        "--fail-on",
        choices=("correctness", "any", "p0"),
        help="exit 1 on every finding but a missed performance target (correctness, the default), "
        "on any finding, or only on P0; version skew always fails",
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=_path, help=f"config file (default {DEFAULT_CONFIG} when it exists)")
    parser.add_argument("--output-dir", type=_path, help="where results.json, report.md and junit.xml go")
    parser.add_argument("--users", type=int, help="simulated users running the journey at once (default 5)")
    parser.add_argument(
        "--templates-dir", "--template", type=_path, help="directory of templates overriding ours"
    )
    parser.add_argument("--run-timeout", type=float, help="seconds allowed for the whole probe (default 300)")
    parser.add_argument("--quiet", action="store_true", help="do not print the report")
    parser.add_argument(
        "--verbose", action="store_true", help="also log how many GitHub requests publishing made"
    )


def _path(raw: str) -> Path:
    """A path flag or argument: one with a NUL or another control character is a usage error naming the flag."""
    if has_controls(raw):
        raise argparse.ArgumentTypeError(
            f"expected a path without control characters (NUL, CR, LF, ESC, ...), got {raw!r}"
        )
    return Path(raw)


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {port}")
    return port


# -- commands ------------------------------------------------------------------------------------------------


def _config(given: Path | None) -> Path | None:
    """The config file to read: the one given, else .github/golden-path.yml when it exists."""
    return given if given is not None or not DEFAULT_CONFIG.is_file() else DEFAULT_CONFIG


def _settings(args: argparse.Namespace, console: Console, *, demo: bool = False, **kwargs: Any) -> Settings:
    from bot import config

    values = {**vars(args), "config": args.config if demo else _config(args.config)}
    return config.for_target(values, warn=console.warn, note=console.note, demo=demo, **kwargs)


def _demo(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot import runtime
    from bot.auth import Credentials
    from bot.reference.backend import REFERENCE_SERVICE
    from bot.reference.faults import parse_faults
    from bot.reference.process import ReferenceProcess

    parse_faults(args.fault)  # a bad fault is a usage error before anything starts
    secret = secrets.token_urlsafe(32)
    version = f"golden-path-reference-{tool_version()}"
    # Its own process, as a real backend is: the checker's event loop and the backend's never share a core.
    with ReferenceProcess(secret=secret, faults=args.fault, version=version) as server:
        print(
            f"golden-path: reference backend on {server.url} (process {server.pid})"
            + (f" with faults: {', '.join(args.fault)}" if args.fault else ""),
            file=console.err,
        )
        extra = {"url": server.url, "service": REFERENCE_SERVICE, "version.expected": version}
        if args.profile:
            extra["journey.profile"] = args.profile
        settings = _settings(args, console, extra=extra, defaults=DEMO_TARGETS, demo=True)
        credentials = Credentials(secret=secret)
        return runtime.check(
            settings, credentials, env=env, console=console, quiet=args.quiet, verbose=args.verbose
        )


def _profile_show(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot import profiles

    console.out.write(profiles.show(args.name))
    return 0


def _check(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot import config, runtime, shards

    settings = _settings(args, console, defaults={"version.expected": env.get("GITHUB_SHA") or None})
    settings, shard = shards.for_check(settings, args.shard, env, publish=args.publish)
    credentials = config.credentials(settings, env)
    return runtime.check(
        settings,
        credentials,
        env=env,
        console=console,
        quiet=args.quiet,
        verbose=args.verbose,
        shard=shard,
        id_token=env.get(ID_TOKEN_ENV) or None,
    )


def _merge(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot import config, runtime

    runs = [runtime.load_results(path) for path in args.results]
    settings = config.build_warned(
        config.read(_config(args.config)), config.overrides(vars(args)), warn=console.warn
    )
    return runtime.merge(runs, settings, env=env, console=console, quiet=args.quiet)


def _action(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    """The Action: every output is written on every run, also when the tool fails (``verdict=error``)."""
    from bot import action, runtime

    ledger = action.OutputLedger.from_env(env)
    try:
        given = action.prepare(env, console, default_config=_config(None))
        return runtime.check(
            given.settings,
            given.credentials,
            env=env,
            console=console,
            verbose=given.verbose,
            ledger=ledger,
            id_token=given.id_token or env.get(ID_TOKEN_ENV) or None,
        )
    except GoldenPathError as exc:
        ledger.fail(console.redactor.clean(str(exc)))
        raise
    except Exception as exc:
        ledger.fail(console.redactor.clean(f"internal error: {type(exc).__name__}: {exc}"))
        raise


def _serve_reference(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot.reference.faults import parse_faults
    from bot.reference.server import serve_forever

    faults = parse_faults(args.fault)
    secret = env.get("JWT_SECRET_KEY")
    if not secret:
        raise UsageError("set JWT_SECRET_KEY: the reference backend validates tokens with that shared secret")
    print(
        f"golden-path: reference backend on http://{args.host}:{args.port} (Ctrl-C stops)", file=console.err
    )
    serve_forever(port=args.port, host=args.host, faults=faults, secret=secret, version=args.backend_version)
    return 0


def _init(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot import scaffold

    for path in scaffold.init(args.directory, profile=args.profile):
        print(f"golden-path: wrote {path}", file=console.err)
    next_step = "golden-path: next: set the service in .github/golden-path.yml, then `golden-path validate`"
    print(next_step, file=console.err)
    return 0


def _validate(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot import config, report

    config_path = _config(args.config)
    file_data = config.read(config_path)
    overrides = {"report.templates_dir": args.templates_dir} if args.templates_dir else {}
    settings = config.build_warned(file_data, overrides, warn=console.warn)
    report.check_templates(settings.report.templates_dir)
    where = str(config_path) if config_path else "the defaults (no config file)"
    templates = settings.report.templates_dir
    rendered = f"; templates in {templates} render" if templates else ""
    print(f"golden-path: {where} is valid{rendered}", file=console.err)
    return 0


def _schema(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot.config import json_schema

    console.out.write(json_schema())
    return 0


def _report(args: argparse.Namespace, *, env: Mapping[str, str], console: Console) -> int:
    from bot import report, runtime

    text = report.render_as(runtime.load_results(args.results), args.format, templates_dir=args.templates_dir)
    console.out.write(console.printable(text))
    return 0
