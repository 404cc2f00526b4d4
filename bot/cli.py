"""Entry point: argv + environment -> Settings -> pipeline -> exit code. The only module that reads os.environ.

Exit codes (also in README and action.yml): 0 pass, 1 golden path failed, 2 usage/config error,
3 infrastructure error (GitHub, Cloud Run, reference backend unreachable).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.errors import ExitCode, GoldenPathError, UsageError
from bot.untrusted import Redactor, has_controls, show_controls

if TYPE_CHECKING:
    from bot import results
    from bot.auth import Credentials
    from bot.progress import (
        Progress,  # the heavy modules (pydantic models, jinja2, jwt, httpx) load when a command needs them
    )
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

DEFAULT_CONFIG = Path(".github/golden-path.yml")

# Flags and action inputs -> dotted config keys (the input name is the flag without leading dashes).
OVERRIDES: dict[str, str] = {
    "url": "url",
    "project": "cloud_run.project",
    "region": "cloud_run.region",
    "revision": "cloud_run.revision",
    "tag": "cloud_run.tag",
    "ready_timeout": "cloud_run.ready_timeout_s",
    "run_timeout": "timeouts.run_s",
    "cloud_run_endpoint": "cloud_run.endpoint",
    "users": "journey.users",
    "load_users": "load.users",
    "expected_version": "version.expected",
    "expected_image": "version.expected_image",
    "output_dir": "output_dir",
    "templates_dir": "report.templates_dir",
    "publish": "github.publish",
    "pr": "github.pr",
    "fail_on": "gate.fail_on",
    "on_pass": "gate.on_pass",
    "on_fail": "gate.on_fail",
    "rollback_to": "cloud_run.rollback_to",
    "ws_path": "websocket.path",
    "auth_mode": "auth.mode",
    "arr_at_risk": "impact.arr_at_risk",
    "labels": "github.labels",
    "close_after_passes": "github.close_after_passes",
    "track": "github.track",
    "assignees": "github.assignees",
    "comment": "github.comment",
    "issues": "github.issues",
    "private": "cloud_run.private",
    "baseline_url": "baseline.url",
}
# Action inputs read as numbers, booleans or comma-separated lists (everything else is a string).
WHOLE_NUMBER_INPUTS = ("users", "load_users", "pr", "close_after_passes")
NUMBER_INPUTS = ("arr_at_risk", "ready_timeout", "run_timeout")
BOOLEAN_INPUTS = ("publish", "comment", "issues", "private")
LIST_INPUTS = ("labels", "assignees")

# The demo runs against a reference backend on this machine, next to whatever else the machine is doing:
# targets a laptop or a shared runner meets (the defaults are for a production backend close to its users).
DEMO_TARGETS = {
    "targets.api_ms": 250,
    "targets.handshake_ms": 250,
    "targets.agent_startup_ms": 1000,
    "targets.processing_ms": 1000,
    "targets.total_ms": 3000,
}
# Where a Google-signed ID token for a private Cloud Run service can be passed (the `id-token` input too).
ID_TOKEN_ENV = "GOLDEN_PATH_ID_TOKEN"


def tool_version() -> str:
    # The installed distribution's directory names its version: found without importlib.metadata (~40 ms).
    for entry in sys.path:
        for found in Path(entry or ".").glob("golden_path-*.dist-info"):
            return found.name.removeprefix("golden_path-").removesuffix(".dist-info")
    from importlib import metadata

    try:
        return metadata.version("golden-path")
    except metadata.PackageNotFoundError:
        return "0+unknown"


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
    parser = _parser()
    args = parser.parse_args(argv)
    # Every secret the run learns (credentials, minted tokens) is added here; every line we print passes it.
    redactor = Redactor(env.get(name) for name in SECRET_ENV)
    try:
        command: Callable[..., int] = args.func
        return command(args, env=env, out=out, err=err, redactor=redactor)
    except GoldenPathError as exc:
        from bot import actions

        # One line, whatever the message quotes (a config key with a line break, a server's answer).
        message = actions.one_line(redactor.clip(str(exc), ERROR_LINE_CHARS))
        print(f"golden-path: error: {message}", file=err)
        if env.get("GITHUB_ACTIONS") == "true":
            print(actions.command("error", message, title="golden-path"), file=out)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("golden-path: interrupted", file=err)
        return 130
    except Exception:  # a bug: the traceback is shown, but redacted, and inert in the Actions log
        import traceback

        from bot import actions

        trace = show_controls(redactor.clean(traceback.format_exc()), multiline=True)
        print(actions.inert(trace) if env.get("GITHUB_ACTIONS") == "true" else trace, file=err, end="")
        print("golden-path: internal error (a bug in golden-path; the traceback is above)", file=err)
        return int(ExitCode.INFRASTRUCTURE)


ERROR_LINE_CHARS = 2000  # an error line stays readable however long the value it quotes


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
        epilog=_faults_help(),
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


def _faults_help() -> str:
    from bot.reference.faults import FAULTS

    return "faults:\n" + "\n".join(f"  {name:28} {text}" for name, text in FAULTS.items())


# -- settings ------------------------------------------------------------------------------------------------


# Sections of a config file that describe *where* and *what to change*: the demo ignores them, so a repository's
# real target, traffic gate and publishing never apply to the bundled reference backend.
DEMO_IGNORES = ("url", "service", "cloud_run", "version", "gate", "github", "auth", "baseline")


def _settings(
    args: argparse.Namespace,
    extra: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    demo: bool = False,
    err: TextIO | None = None,
) -> Settings:
    from bot.config import build_settings, normalise_keys, read_config_file
    from bot.settings import DeprecatedKey

    config_path: Path | None = getattr(args, "config", None)
    if config_path is None and DEFAULT_CONFIG.is_file() and not demo:
        config_path = DEFAULT_CONFIG
    file_data: dict[str, Any] = normalise_keys(read_config_file(config_path)) if config_path else {}
    if demo:
        import warnings

        with warnings.catch_warnings():  # warned about once, below
            warnings.simplefilter("ignore", DeprecatedKey)
            build_settings(file_data)  # what the demo ignores must still be well formed
        file_data = {k: v for k, v in file_data.items() if k not in DEMO_IGNORES}
    values = {name: getattr(args, name, None) for name in OVERRIDES}
    overrides: dict[str, Any] = {OVERRIDES[name]: v for name, v in values.items() if v is not None}
    service = getattr(args, "service", None)
    if service:
        coordinates = (
            getattr(args, "project", None) or getattr(args, "region", None) or file_data.get("cloud_run")
        )
        overrides["cloud_run.service" if coordinates else "service"] = service
    overrides.update(extra or {})
    settings = _build_settings(file_data, overrides, defaults=defaults, err=err)
    if not settings.url and not settings.cloud_run.configured:
        raise UsageError(
            "no target: give --url, or --project, --region and --service (or set them in the config file)"
        )
    return settings


def _build_settings(
    file_data: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    err: TextIO | None = None,
) -> Settings:
    """``build_settings``, printing each deprecated key once as a warning that names the new spelling."""
    import warnings

    from bot.config import build_settings
    from bot.settings import DeprecatedKey

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecatedKey)
        settings = build_settings(file_data, overrides, defaults=defaults)
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DeprecatedKey)):
        print(f"golden-path: warning: {message}", file=err or sys.stderr)
    return settings


def _credentials(settings: Settings, env: Mapping[str, str]) -> Credentials:
    from bot.auth import Credentials, parse_users

    auth = settings.auth
    users_env = auth.login.users_env if auth.mode == "login" else None
    users = parse_users(env[users_env], users_env) if users_env and env.get(users_env) else ()
    return Credentials(
        secret=env.get(auth.secret_env) or None,
        private_key=env.get(auth.private_key_env) or None,
        token=env.get(auth.token_env) or None,
        password=env.get(auth.login.password_env) or None,
        users=users,
    )


# -- commands ------------------------------------------------------------------------------------------------


def _demo(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot import profiles
    from bot.auth import Credentials
    from bot.reference.backend import REFERENCE_SERVICE, SPOKEN_PROFILES
    from bot.reference.faults import parse_faults
    from bot.reference.process import ReferenceProcess

    parse_faults(args.fault)  # a bad fault is a usage error before anything starts
    spoken = profiles.canonical(args.profile) if args.profile else None
    if spoken is not None and spoken not in SPOKEN_PROFILES:
        raise UsageError(
            f"the reference backend does not speak the {spoken} profile (it speaks {', '.join(SPOKEN_PROFILES)}); "
            f"check a server that does with `golden-path check --url URL` and `journey.profile: {spoken}`"
        )
    secret = secrets.token_urlsafe(32)
    version = f"golden-path-reference-{tool_version()}"
    # Its own process, as a real backend is: the checker's event loop and the backend's never share a core.
    with ReferenceProcess(secret=secret, faults=args.fault, version=version) as server:
        print(
            f"golden-path: reference backend on {server.url} (process {server.pid})"
            + (f" with faults: {', '.join(args.fault)}" if args.fault else ""),
            file=err,
        )
        extra = {"url": server.url, "service": REFERENCE_SERVICE, "version.expected": version}
        if args.profile:
            extra["journey.profile"] = args.profile
        settings = _settings(args, extra, defaults=DEMO_TARGETS, demo=True, err=err)
        credentials = Credentials(secret=secret)
        return _run(
            settings,
            credentials,
            env=env,
            out=out,
            err=err,
            quiet=args.quiet,
            redactor=redactor,
            verbose=args.verbose,
        )


def _profile_show(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot import profiles

    if args.name is None:
        out.write("".join(f"{name}\n" for name in profiles.names()))
        return 0
    try:
        out.write(profiles.text(args.name))
    except KeyError:
        raise UsageError(
            f"unknown profile {args.name!r}; expected one of: {', '.join(profiles.names())}"
        ) from None
    return 0


def _check(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot import shards

    settings = _settings(args, defaults={"version.expected": env.get("GITHUB_SHA") or None}, err=err)
    spec = shards.parse(args.shard) if args.shard else shards.from_cloud_run_task(env)
    shard = None
    if spec is not None:
        if args.publish:
            raise UsageError(
                "--shard with --publish: a shard never publishes; `golden-path merge` publishes once for all"
            )
        shard = shards.share(settings, *spec)
        # Publishing and the traffic gate happen once, in `merge`, over every shard's journeys. `{shard}` in the
        # output directory is K, so tasks sharing one volume (Cloud Run Jobs) write apart.
        output_dir = Path(str(settings.output_dir).replace("{shard}", str(shard.index)))
        settings = settings.model_copy(
            update={
                "output_dir": output_dir,
                "github": settings.github.model_copy(update={"publish": False}),
                "gate": settings.gate.model_copy(update={"on_pass": "none", "on_fail": "none"}),
            }
        )
    credentials = _credentials(settings, env)
    return _run(
        settings,
        credentials,
        env=env,
        out=out,
        err=err,
        quiet=args.quiet,
        redactor=redactor,
        verbose=args.verbose,
        shard=shard,
    )


def _merge(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    import uuid

    from bot import pipeline, results, shards
    from bot.config import normalise_keys, read_config_file

    runs = []
    for path in args.results:
        try:
            runs.append(results.load(path))
        except FileNotFoundError:
            raise UsageError(f"results file {str(path)!r} does not exist") from None
        except (ValueError, OSError) as exc:
            raise UsageError(
                f"results file {str(path)!r} is not a golden-path results document: {exc}"
            ) from None
    config_path: Path | None = args.config
    if config_path is None and DEFAULT_CONFIG.is_file():
        config_path = DEFAULT_CONFIG
    file_data: dict[str, Any] = normalise_keys(read_config_file(config_path)) if config_path else {}
    values = {name: getattr(args, name, None) for name in OVERRIDES}
    overrides = {OVERRIDES[name]: v for name, v in values.items() if v is not None}
    settings = _build_settings(file_data, overrides, err=err)
    pipeline.preflight(settings, None)
    log = _logger(env, out, err, redactor)
    run = shards.merge(runs, settings=settings, run_id=uuid.uuid4().hex[:12])
    log(f"merged {len(runs)} shards: {run.users} users, {len(run.samples)} journeys")
    cloud_run = None
    if settings.cloud_run.configured and (settings.gate.on_pass, settings.gate.on_fail) != ("none", "none"):
        from bot import cloudrun

        cloud_run = cloudrun.make_clients(endpoint=settings.cloud_run.endpoint)
    try:
        return _conclude(
            run,
            settings,
            cloud_run=cloud_run,
            env=env,
            out=out,
            err=err,
            quiet=args.quiet,
            redactor=redactor,
            verbose=getattr(args, "verbose", False),
        )
    finally:
        if cloud_run is not None:
            cloud_run.close()


def _action(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    """The Action: every output is written on every run, also when the tool fails (``verdict=error``)."""
    output_file = env.get("GITHUB_OUTPUT", "").strip()
    summary_file = env.get("GITHUB_STEP_SUMMARY", "").strip()
    ledger = OutputLedger(
        Path(output_file) if output_file else None, summary=Path(summary_file) if summary_file else None
    )
    try:
        return _action_run(env=env, out=out, err=err, ledger=ledger, redactor=redactor)
    except GoldenPathError as exc:
        ledger.fail(redactor.clean(str(exc)))
        raise
    except Exception as exc:
        ledger.fail(redactor.clean(f"internal error: {type(exc).__name__}: {exc}"))
        raise


def _action_run(
    *, env: Mapping[str, str], out: TextIO, err: TextIO, ledger: OutputLedger, redactor: Redactor
) -> int:
    def given(name: str) -> str | None:
        value = env.get(f"INPUT_{name.upper()}", "").strip()
        return value or None

    from bot import actions

    secrets_given = {
        name: given(name) for name in ("jwt-secret", "jwt-private-key", "token", "login-password", "id-token")
    }
    for value in secrets_given.values():
        if value:
            actions.mask(value, out)
    config = given("config")
    namespace = argparse.Namespace(config=Path(config) if config else None, service=given("service"))
    for name in OVERRIDES:
        setattr(namespace, name, _parse_input(name, given(name.replace("_", "-"))))
    # In the Action, publishing is on unless the input or the config file turns it off.
    defaults = {"version.expected": env.get("GITHUB_SHA") or None, "github.publish": True}
    from bot.errors import ConfigError

    try:
        settings = _settings(namespace, defaults=defaults, err=err)
    except ConfigError as exc:
        # A bad input is named as the workflow spells it, not as the config key it feeds.
        for name, dotted in OVERRIDES.items():
            if getattr(namespace, name) is not None and exc.key and exc.key.startswith(dotted):
                raise UsageError(f"input '{name.replace('_', '-')}': {exc.reason}") from None
        raise
    from bot.auth import Credentials

    from_env = _credentials(settings, env)
    credentials = Credentials(
        secret=secrets_given["jwt-secret"] or from_env.secret,
        private_key=secrets_given["jwt-private-key"] or from_env.private_key,
        token=secrets_given["token"] or from_env.token,
        password=secrets_given["login-password"] or from_env.password,
        users=from_env.users,
    )
    # A re-run with debug logging ("Enable debug logging" sets RUNNER_DEBUG=1) also logs the GitHub request count.
    verbose = env.get("RUNNER_DEBUG") == "1"
    id_token = secrets_given["id-token"]
    env = {**env, ID_TOKEN_ENV: id_token} if id_token else env
    return _run(
        settings,
        credentials,
        env=env,
        out=out,
        err=err,
        quiet=False,
        redactor=redactor,
        ledger=ledger,
        verbose=verbose,
    )


def _parse_input(name: str, raw: str | None) -> Any:
    """An input's text as the type its setting wants; a bad value names the input. None when not given."""
    if raw is None:
        return None
    input_name = name.replace("_", "-")
    if name in BOOLEAN_INPUTS:
        return _bool_input(input_name, raw)
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

    def write(self, outputs: Mapping[str, str]) -> None:
        from bot import actions

        actions.write_outputs(self.path, {name: outputs.get(name, "") for name in self.NAMES})
        self.written = True

    def fail(self, reason: str) -> None:
        """Record why the tool failed; when nothing was written yet, every output, with ``verdict=error``."""
        line = " ".join(reason.split())
        from bot import actions, markdown

        try:
            if self.written:
                actions.write_outputs(self.path, {"error": line})
            else:
                self.write({"verdict": "error", "error": line, "p0-count": "0", "traffic-action": "none"})
                note = f"### ⚠️ golden-path could not run\n\n{markdown.escape(line)}\n"
                actions.append_summary(self.summary, note)
        except OSError:
            pass  # the output file itself is unwritable: the error line on stderr is all that is left


def _bool_input(name: str, raw: str) -> bool:
    if raw.lower() in ("true", "yes", "1", "on"):
        return True
    if raw.lower() in ("false", "no", "0", "off"):
        return False
    raise UsageError(f"input '{name}': expected true or false, got {raw!r}")


def _serve_reference(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot.reference.faults import parse_faults
    from bot.reference.server import serve_forever

    faults = parse_faults(args.fault)
    secret = env.get("JWT_SECRET_KEY")
    if not secret:
        raise UsageError("set JWT_SECRET_KEY: the reference backend validates tokens with that shared secret")
    print(f"golden-path: reference backend on http://{args.host}:{args.port} (Ctrl-C stops)", file=err)
    serve_forever(port=args.port, host=args.host, faults=faults, secret=secret, version=args.backend_version)
    return 0


def _init(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot import scaffold

    written = scaffold.init(args.directory, profile=args.profile)
    for path in written:
        print(f"golden-path: wrote {path}", file=err)
    print(
        "golden-path: next: set the service in .github/golden-path.yml, then `golden-path validate`", file=err
    )
    return 0


def _validate(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot import report
    from bot.config import normalise_keys, read_config_file

    config_path: Path | None = args.config
    if config_path is None and DEFAULT_CONFIG.is_file():
        config_path = DEFAULT_CONFIG
    file_data = normalise_keys(read_config_file(config_path)) if config_path else {}
    overrides = {"report.templates_dir": args.templates_dir} if args.templates_dir else {}
    settings = _build_settings(file_data, overrides, err=err)
    report.check_templates(settings.report.templates_dir)
    where = str(config_path) if config_path else "the defaults (no config file)"
    templates = settings.report.templates_dir
    print(
        f"golden-path: {where} is valid" + (f"; templates in {templates} render" if templates else ""),
        file=err,
    )
    return 0


def _schema(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot.config import json_schema

    out.write(json_schema())
    return 0


def _report(
    args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor
) -> int:
    from bot import report, results

    try:
        run = results.load(args.results)
    except FileNotFoundError:
        raise UsageError(f"results file {str(args.results)!r} does not exist") from None
    except (ValueError, OSError) as exc:
        raise UsageError(
            f"results file {str(args.results)!r} is not a golden-path results document: {exc}"
        ) from None
    if args.format == "junit":
        text = results.to_junit(run)
    elif args.format == "comment":
        text = report.render_comment(run, history=[], templates_dir=args.templates_dir)
    elif args.format == "summary":
        text = report.render_summary(run, templates_dir=args.templates_dir)
    else:
        text = report.render_report(run, templates_dir=args.templates_dir)
    out.write(_printable(text, env=env, redactor=redactor))
    return 0


def _printable(text: str, *, env: Mapping[str, str], redactor: Redactor) -> str:
    """Text that quotes the system under test, ready for stdout: redacted, controls shown escaped (an ESC
    sequence would drive the terminal or the log viewer), and inert in Actions (the runner would otherwise run a
    ``::error::`` or ``##[set-output]`` line a server put in a close reason)."""
    from bot import actions

    text = show_controls(redactor.clean(text), multiline=True)
    return actions.inert(text) if env.get("GITHUB_ACTIONS") == "true" else text


# -- the run -------------------------------------------------------------------------------------------------


def _logger(env: Mapping[str, str], out: TextIO, err: TextIO, redactor: Redactor) -> Callable[[str], None]:
    """Log lines quote outside text (Cloud Run and GitHub messages): redacted, one line, no command in it; a
    warning is also an annotation in Actions."""
    in_actions = env.get("GITHUB_ACTIONS") == "true"

    def log(message: str) -> None:
        from bot import actions

        message = actions.one_line(redactor.clip(message, ERROR_LINE_CHARS))
        print(f"golden-path: {message}", file=err, flush=True)
        if in_actions and message.startswith("warning: "):
            print(
                actions.command("warning", message.removeprefix("warning: "), title="golden-path"), file=out
            )

    return log


def _allow_open_files(users: int) -> str | None:
    """Each user holds a socket or two: raise the soft open-files limit (often 1,024) up to the hard one, so
    ``--users 1000`` does not fail with 'too many open files'. Returns a warning when even that is too low."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to raise
        return None
    wanted = 2 * users + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return None
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if limit < wanted:
        return (
            f"{users} users need about {wanted} open files but the hard limit is {hard}: "
            "raise it (ulimit -Hn) or split the users with --shard K/N"
        )
    return None


def _github_token(settings: Settings, env: Mapping[str, str]) -> str | None:
    github_token = env.get("INPUT_GITHUB-TOKEN") or env.get("GITHUB_TOKEN")
    if settings.github.publish and not (github_token and env.get("GITHUB_REPOSITORY")):
        raise UsageError(
            "publishing needs GITHUB_TOKEN (or the github-token input) and GITHUB_REPOSITORY: "
            "set them, or pass --no-publish / publish: false"
        )
    if settings.github.publish and not (settings.service or settings.cloud_run.service):
        # With only a URL the name would be its host: every PR's tag URL would be a new "service" and its
        # issues would never be found again.
        raise UsageError(
            "publishing needs a stable service name to find its comment and issues again: pass --service NAME "
            "(the `service` input) or set `service:` in the config file"
        )
    return github_token


def _run(
    settings: Settings,
    credentials: Credentials,
    *,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    quiet: bool,
    redactor: Redactor,
    ledger: OutputLedger | None = None,
    verbose: bool = False,
    shard: results.Shard | None = None,
) -> int:
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    for secret in credentials.secrets():
        redactor.add(secret)
    log = _logger(env, out, err, redactor)

    def on_token(token: str) -> None:
        redactor.add(token)
        if in_actions:
            actions.mask(token, out)

    from bot import actions, pipeline
    from bot.auth import PUBLIC_FIELDS

    if in_actions:  # per-user credentials (auth.login.users_env) are values no input masked
        for entry in credentials.users:
            for key, value in entry.items():
                if key not in PUBLIC_FIELDS:
                    actions.mask(value, out)
    from bot.progress import Progress

    progress = Progress(log)
    pipeline.preflight(settings, credentials)
    _github_token(settings, env)  # publishing prerequisites, before anything is probed
    users = settings.journey.users + settings.load.users
    if shard is not None:
        users = shard.last_user - shard.first_user + 1
    warning = _allow_open_files(users)
    if warning:
        log(f"warning: {warning}")

    actions_ctx = None
    if in_actions or settings.github.publish:
        actions_ctx = actions.context_from_env(env)
    context = pipeline.RunContext(
        commit=env.get("GITHUB_SHA") or None,
        run_url=actions.run_url(actions_ctx) if actions_ctx else None,
        tool_version=tool_version(),
    )

    cloud_run = None
    if settings.cloud_run.configured:
        from bot import cloudrun

        cloud_run = cloudrun.make_clients(endpoint=settings.cloud_run.endpoint)
    logs_reader = None
    if settings.cloud_run.configured and settings.cloud_run.project and settings.logs.mode != "never":
        from bot import server_logs  # light: google-cloud-logging itself loads on the first query

        logs_reader = server_logs.CloudLogging(
            project=settings.cloud_run.project,
            endpoint=settings.logs.endpoint,
            budget_s=settings.logs.budget_s,
        )
    id_token = _id_token_source(settings, env)

    try:
        run = pipeline.execute(
            settings,
            credentials=credentials,
            context=context,
            cloud_run=cloud_run,
            log=log,
            on_token=on_token,
            logs_reader=logs_reader,
            progress=progress,
            id_token=id_token,
            shard=shard,
        )
        return _conclude(
            run,
            settings,
            cloud_run=cloud_run,
            env=env,
            out=out,
            err=err,
            quiet=quiet,
            redactor=redactor,
            ledger=ledger,
            verbose=verbose,
            progress=progress,
        )
    finally:
        if cloud_run is not None:
            cloud_run.close()


def _conclude(
    run: results.Run,
    settings: Settings,
    *,
    cloud_run: Any,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    quiet: bool,
    redactor: Redactor,
    ledger: OutputLedger | None = None,
    verbose: bool = False,
    progress: Progress | None = None,
) -> int:
    """A run's (or a merged run's) artifacts, traffic gate, report, publishing, Actions outputs and exit code."""
    from bot import actions, pipeline, report
    from bot.progress import Progress
    from bot.untrusted import redact_strings

    log = _logger(env, out, err, redactor)
    progress = progress or Progress(log)
    github_token = _github_token(settings, env)
    actions_ctx = None
    if env.get("GITHUB_ACTIONS") == "true" or settings.github.publish:
        actions_ctx = actions.context_from_env(env)
    if ledger is None:
        ledger = OutputLedger(actions_ctx.output if actions_ctx else None)
    # The last net under the probe's own redaction: every string of the Run, before any renderer reads it (a
    # renderer's escaping, e.g. markdown's `\_`, would hide a secret from a later search).
    run = redact_strings(run, redactor)
    # The verdict is on disk before any traffic changes; rewritten only when the gate recorded an action.
    with progress.phase("report"):
        artifacts, markdown = pipeline.write_artifacts(
            run,
            output_dir=settings.output_dir,
            templates_dir=settings.report.templates_dir,
            redactor=redactor,
        )
    with progress.phase("gate"), progress.waiting("the Cloud Run traffic change"):
        gated = pipeline.apply_gate(run, settings, cloud_run=cloud_run, log=log)
    if gated is not run:
        run = redact_strings(gated, redactor)
        artifacts, markdown = pipeline.write_artifacts(
            run,
            output_dir=settings.output_dir,
            templates_dir=settings.report.templates_dir,
            redactor=redactor,
        )
    if not quiet:
        if out.isatty():
            from bot import terminal

            terminal.print_summary(run, report_path=artifacts.report, file=out, redactor=redactor)
        else:
            out.write(_printable(markdown, env=env, redactor=redactor))
        out.flush()
    outputs = {
        "verdict": run.verdict.value,
        "p0-count": str(run.p0_count),
        "url": run.target.url,
        "revision": run.target.revision or "",
        "previous-revision": run.target.previous_revision or "",
        "traffic-action": _traffic_output(run),
        "report-path": str(artifacts.report),
        "results-path": str(artifacts.results),
        "junit-path": str(artifacts.junit),
        **_revision_outputs(run),
    }
    try:
        if settings.github.publish:
            with progress.phase("publish"), progress.waiting("GitHub"):
                _publish(
                    run, settings, token=github_token or "", log=log, actions_ctx=actions_ctx, verbose=verbose,
                    redactor=redactor, outputs=outputs,
                )  # fmt: skip
    finally:
        # The verdict is never hidden: even when publishing fails (exit 3), the summary and outputs are written.
        if actions_ctx is not None:
            actions.annotate(run, out)
            summary = redactor.clean(report.render_summary(run, templates_dir=settings.report.templates_dir))
            actions.append_summary(actions_ctx.step_summary, summary)
        ledger.write({k: redactor.clean(v) for k, v in outputs.items()})
    code = pipeline.exit_code(run, settings)
    log(
        f"verdict {run.verdict.value} ({run.p0_count} P0, {run.p1_count} P1); "
        f"results in {artifacts.results}; exit code {int(code)}"
    )
    return int(code)


def _traffic_output(run: results.Run) -> str:
    if not run.traffic_actions:
        return "none"
    last = run.traffic_actions[-1]
    if last.noop:
        return "none"
    return f"{last.action}-failed" if last.error else last.action


def _id_token_source(settings: Settings, env: Mapping[str, str]) -> Callable[[str], Any] | None:
    """audience -> ID token, for a private service (or whenever a token is passed); None for a public one."""
    passed = env.get(ID_TOKEN_ENV) or None
    if not (settings.cloud_run.private or passed):
        return None
    from bot import idtoken

    credentials_file = env.get("GOOGLE_APPLICATION_CREDENTIALS") or None
    return lambda audience: idtoken.obtain(
        audience=audience, passed=passed, credentials_file=credentials_file
    )


def _revision_outputs(run: results.Run) -> dict[str, str]:
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


def _publish(
    run: results.Run,
    settings: Settings,
    *,
    token: str,
    log: Callable[[str], None],
    actions_ctx: Any,
    outputs: dict[str, str],
    verbose: bool = False,
    redactor: Redactor | None = None,
) -> None:
    """Publish and record in ``outputs`` what was written (also when a step failed: exit 3 after that)."""
    from bot import github, publish, report

    repository = actions_ctx.repository
    counter = github.RequestCounter()
    gh = github.client(
        token=token, base_url=actions_ctx.api_url, retries=settings.github.max_retries, counter=counter
    )
    pr = github.find_pr(
        gh=gh,
        repo_name=repository,
        ctx=actions_ctx,
        explicit_pr=settings.github.pr,
        warn=lambda m: log(f"warning: {m}"),
    )
    if pr is None:
        log("no pull request for this run (a deploy from a branch?): skipping the PR comment")
    server = actions_ctx.server_url
    trail = report.Trail(
        pr_url=f"{server}/{repository}/pull/{pr}" if pr is not None else None,
        commit_url=f"{server}/{repository}/commit/{run.commit}" if run.commit else None,
        run_key=actions_ctx.run_id,
    )
    attempt = actions_ctx.run_attempt
    target = run.target
    track = github.track_for(
        explicit=settings.github.track,
        tag=target.tag,
        tag_tested=bool(target.tag and target.revision_url)
        and target.url.rstrip("/") == (target.revision_url or "").rstrip("/"),
        ctx=actions_ctx,
        pr=pr,
    )
    outcome: publish.PublishOutcome | None = None
    try:
        outcome = publish.publish(
            gh=gh,
            repo_name=repository,
            run=run,
            pr=pr,
            settings=settings.github,
            trail=trail,
            run_attempt=int(attempt) if attempt and attempt.isdigit() else 1,
            templates_dir=settings.report.templates_dir,
            max_comment_chars=settings.report.max_comment_chars,
            history_limit=settings.report.history,
            track=track,
            redactor=redactor,
        )
    except publish.PublishFailed as exc:
        outcome = exc.outcome
        raise
    finally:
        if verbose:
            log(f"GitHub requests: {counter.total}")
        if outcome is not None:
            for warning in outcome.warnings:
                log(f"warning: {warning}")
            if outcome.comment_url:
                log(f"PR comment: {outcome.comment_url}")
            for url in outcome.issue_urls:
                log(f"P0 issue: {url}")
            outputs["comment-url"] = outcome.comment_url or ""
            outputs["issue-urls"] = "\n".join(outcome.issue_urls)
