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

from bot.errors import GoldenPathError, UsageError

if TYPE_CHECKING:  # the heavy modules (pydantic models, jinja2, jwt, httpx) load when a command needs them
    from bot import results
    from bot.auth import Credentials
    from bot.settings import Settings

DEFAULT_CONFIG = Path(".github/golden-path.yml")

# Flags and action inputs -> dotted config keys (the input name is the flag without leading dashes).
OVERRIDES: dict[str, str] = {
    "url": "url",
    "project": "cloud_run.project",
    "region": "cloud_run.region",
    "revision": "cloud_run.revision",
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
    "ws_path": "websocket.path",
    "auth_mode": "auth.mode",
    "arr_at_risk": "impact.arr_at_risk",
    "labels": "github.labels",
    "close_after_passes": "github.close_after_passes",
}


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
    try:
        command: Callable[..., int] = args.func
        return command(args, env=env, out=out, err=err)
    except GoldenPathError as exc:
        print(f"golden-path: error: {exc}", file=err)
        if env.get("GITHUB_ACTIONS") == "true":
            from bot import actions

            print(actions.command("error", str(exc), title="golden-path"), file=out)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("golden-path: interrupted", file=err)
        return 130


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
    _common(demo)
    demo.set_defaults(func=_demo)

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
        "--cloud-run-endpoint", help="Cloud Run Admin API endpoint (default run.googleapis.com)"
    )
    check.add_argument(
        "--expected-version", help="the version/commit the health endpoint must report (default $GITHUB_SHA)"
    )
    check.add_argument("--expected-image", help="the image digest the revision must run")
    check.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="comment on the PR and file P0 issues (--no-publish overrides the config file)",
    )
    check.add_argument("--pr", type=int, help="pull request number (default: found from the event or commit)")
    check.add_argument(
        "--fail-on", choices=("any", "p0"), help="exit 1 on any finding (default) or only on P0"
    )
    check.add_argument("--on-pass", choices=("none", "promote"), help="traffic action when the run passes")
    check.add_argument("--on-fail", choices=("none", "rollback"), help="traffic action when the run fails")
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
    merge.add_argument("results", type=Path, nargs="+", help="every shard's results.json")
    merge.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="comment on the PR and file P0 issues (--no-publish overrides the config file)",
    )
    merge.add_argument("--pr", type=int, help="pull request number (default: found from the event or commit)")
    merge.add_argument(
        "--fail-on", choices=("any", "p0"), help="exit 1 on any finding (default) or only on P0"
    )
    merge.add_argument("--config", type=Path, help=f"config file (default {DEFAULT_CONFIG} when it exists)")
    merge.add_argument("--output-dir", type=Path, help="where results.json, report.md and junit.xml go")
    merge.add_argument(
        "--templates-dir", "--template", type=Path, help="directory of templates overriding ours"
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

    render = sub.add_parser("report", help="re-render a saved results.json")
    render.add_argument("results", type=Path, help="path to results.json")
    render.add_argument(
        "--templates-dir", "--template", type=Path, help="directory of templates overriding ours"
    )
    render.add_argument("--format", choices=("report", "comment", "summary", "junit"), default="report")
    render.set_defaults(func=_report)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=f"config file (default {DEFAULT_CONFIG} when it exists)")
    parser.add_argument("--output-dir", type=Path, help="where results.json, report.md and junit.xml go")
    parser.add_argument("--users", type=int, help="simulated users running the journey at once (default 5)")
    parser.add_argument(
        "--templates-dir", "--template", type=Path, help="directory of templates overriding ours"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the report")


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
DEMO_IGNORES = ("url", "service", "cloud_run", "version", "gate", "github", "auth")


def _settings(
    args: argparse.Namespace,
    extra: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    demo: bool = False,
) -> Settings:
    from bot.settings import build_settings, normalise_keys, read_config_file

    config_path: Path | None = getattr(args, "config", None)
    if config_path is None and DEFAULT_CONFIG.is_file() and not demo:
        config_path = DEFAULT_CONFIG
    file_data: dict[str, Any] = normalise_keys(read_config_file(config_path)) if config_path else {}
    if demo:
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
    settings = build_settings(file_data, overrides, defaults=defaults)
    if not settings.url and not settings.cloud_run.configured:
        raise UsageError(
            "no target: give --url, or --project, --region and --service (or set them in the config file)"
        )
    return settings


def _credentials(settings: Settings, env: Mapping[str, str]) -> Credentials:
    from bot.auth import Credentials

    auth = settings.auth
    return Credentials(
        secret=env.get(auth.secret_env) or None,
        private_key=env.get(auth.private_key_env) or None,
        token=env.get(auth.token_env) or None,
        password=env.get(auth.login.password_env) or None,
    )


# -- commands ------------------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from bot.auth import Credentials
    from bot.reference.faults import parse_faults
    from bot.reference.server import REFERENCE_SERVICE, ReferenceServer

    faults = parse_faults(args.fault)
    secret = secrets.token_urlsafe(32)
    version = f"golden-path-reference-{tool_version()}"
    with ReferenceServer(secret=secret, faults=faults, version=version) as server:
        print(
            f"golden-path: reference backend on {server.url}"
            + (f" with faults: {', '.join(args.fault)}" if args.fault else ""),
            file=err,
        )
        extra = {"url": server.url, "service": REFERENCE_SERVICE, "version.expected": version}
        settings = _settings(args, extra, demo=True)
        return _run(settings, Credentials(secret=secret), env=env, out=out, err=err, quiet=args.quiet)


def _check(args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from bot import shards

    settings = _settings(args, defaults={"version.expected": env.get("GITHUB_SHA") or None})
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
    return _run(settings, credentials, env=env, out=out, err=err, quiet=args.quiet, shard=shard)


def _merge(args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    import uuid

    from bot import pipeline, results, shards
    from bot.settings import build_settings, normalise_keys, read_config_file

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
    settings = build_settings(file_data, overrides)
    pipeline.preflight(settings, None)
    log = _logger(env, out, err)
    run = shards.merge(runs, settings=settings, run_id=uuid.uuid4().hex[:12])
    log(f"merged {len(runs)} shards: {run.users} users, {len(run.samples)} journeys")
    cloud_run = None
    if settings.cloud_run.configured and (settings.gate.on_pass, settings.gate.on_fail) != ("none", "none"):
        from bot import cloudrun

        cloud_run = cloudrun.make_clients(endpoint=settings.cloud_run.endpoint)
    try:
        return _conclude(run, settings, cloud_run=cloud_run, env=env, out=out, err=err, quiet=args.quiet)
    finally:
        if cloud_run is not None:
            cloud_run.close()


def _action(args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    def given(name: str) -> str | None:
        value = env.get(f"INPUT_{name.upper()}", "").strip()
        return value or None

    from bot import actions

    secrets_given = {
        name: given(name) for name in ("jwt-secret", "jwt-private-key", "token", "login-password")
    }
    for value in secrets_given.values():
        if value:
            actions.mask(value, out)
    config = given("config")
    namespace = argparse.Namespace(config=Path(config) if config else None, service=given("service"))
    for name in OVERRIDES:
        raw = given(name.replace("_", "-"))
        setattr(namespace, name, raw)
    publish = given("publish")
    namespace.publish = _bool_input("publish", publish) if publish is not None else None
    for name in ("users", "load_users", "pr", "close_after_passes"):
        raw = getattr(namespace, name)
        if raw is not None:
            try:
                setattr(namespace, name, int(raw))
            except ValueError:
                raise UsageError(
                    f"input '{name.replace('_', '-')}': expected a whole number, got {raw!r}"
                ) from None
    if namespace.arr_at_risk is not None:
        try:
            namespace.arr_at_risk = float(namespace.arr_at_risk)
        except ValueError:
            raise UsageError(
                f"input 'arr-at-risk': expected a number, got {namespace.arr_at_risk!r}"
            ) from None
    if namespace.labels is not None:
        namespace.labels = [label.strip() for label in namespace.labels.split(",") if label.strip()]
    # In the Action, publishing is on unless the input or the config file turns it off.
    defaults = {"version.expected": env.get("GITHUB_SHA") or None, "github.publish": True}
    settings = _settings(namespace, defaults=defaults)
    from bot.auth import Credentials

    from_env = _credentials(settings, env)
    credentials = Credentials(
        secret=secrets_given["jwt-secret"] or from_env.secret,
        private_key=secrets_given["jwt-private-key"] or from_env.private_key,
        token=secrets_given["token"] or from_env.token,
        password=secrets_given["login-password"] or from_env.password,
    )
    return _run(settings, credentials, env=env, out=out, err=err, quiet=False)


def _bool_input(name: str, raw: str) -> bool:
    if raw.lower() in ("true", "yes", "1", "on"):
        return True
    if raw.lower() in ("false", "no", "0", "off"):
        return False
    raise UsageError(f"input '{name}': expected true or false, got {raw!r}")


def _serve_reference(args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    from bot.reference.faults import parse_faults
    from bot.reference.server import serve_forever

    faults = parse_faults(args.fault)
    secret = env.get("JWT_SECRET_KEY")
    if not secret:
        raise UsageError("set JWT_SECRET_KEY: the reference backend validates tokens with that shared secret")
    print(f"golden-path: reference backend on http://{args.host}:{args.port} (Ctrl-C stops)", file=err)
    serve_forever(port=args.port, host=args.host, faults=faults, secret=secret, version=args.backend_version)
    return 0


def _report(args: argparse.Namespace, *, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
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
        out.write(results.to_junit(run))
    elif args.format == "comment":
        out.write(report.render_comment(run, history=[], templates_dir=args.templates_dir))
    elif args.format == "summary":
        out.write(report.render_summary(run, templates_dir=args.templates_dir))
    else:
        out.write(report.render_report(run, templates_dir=args.templates_dir))
    return 0


# -- the run -------------------------------------------------------------------------------------------------


def _logger(env: Mapping[str, str], out: TextIO, err: TextIO) -> Callable[[str], None]:
    in_actions = env.get("GITHUB_ACTIONS") == "true"

    def log(message: str) -> None:
        print(f"golden-path: {message}", file=err)
        if in_actions and message.startswith("warning: "):
            from bot import actions

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
    return github_token


def _run(
    settings: Settings,
    credentials: Credentials,
    *,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    quiet: bool,
    shard: results.Shard | None = None,
) -> int:
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    log = _logger(env, out, err)

    def on_token(token: str) -> None:
        if in_actions:
            actions.mask(token, out)

    from bot import actions, pipeline

    pipeline.preflight(settings, credentials)
    _github_token(settings, env)
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
        from bot import logs  # light: google-cloud-logging itself loads on the first query

        logs_reader = logs.CloudLogging(
            project=settings.cloud_run.project,
            endpoint=settings.logs.endpoint,
            budget_s=settings.logs.budget_s,
        )

    try:
        run = pipeline.execute(
            settings,
            credentials=credentials,
            context=context,
            cloud_run=cloud_run,
            log=log,
            on_token=on_token,
            logs_reader=logs_reader,
            shard=shard,
        )
        return _conclude(run, settings, cloud_run=cloud_run, env=env, out=out, err=err, quiet=quiet)
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
) -> int:
    """A run's (or a merged run's) artifacts, traffic gate, report, publishing, Actions outputs and exit code."""
    from bot import actions, pipeline, report

    log = _logger(env, out, err)
    github_token = _github_token(settings, env)
    actions_ctx = None
    if env.get("GITHUB_ACTIONS") == "true" or settings.github.publish:
        actions_ctx = actions.context_from_env(env)
    # The verdict is on disk before any traffic changes; rewritten only when the gate recorded an action.
    artifacts, markdown = pipeline.write_artifacts(
        run, output_dir=settings.output_dir, templates_dir=settings.report.templates_dir
    )
    gated = pipeline.apply_gate(run, settings, cloud_run=cloud_run, log=log)
    if gated is not run:
        run = gated
        artifacts, markdown = pipeline.write_artifacts(
            run, output_dir=settings.output_dir, templates_dir=settings.report.templates_dir
        )
    if not quiet:
        out.write(markdown)
        out.flush()
    outputs = {
        "verdict": run.verdict.value,
        "p0-count": str(run.p0_count),
        "report-path": str(artifacts.report),
        "results-path": str(artifacts.results),
        "junit-path": str(artifacts.junit),
        "comment-url": "",
        "issue-urls": "",
    }
    try:
        if settings.github.publish:
            outputs |= _publish(run, settings, token=github_token or "", log=log, actions_ctx=actions_ctx)
    finally:
        # The verdict is never hidden: even when publishing fails (exit 3), the summary and outputs are written.
        if actions_ctx is not None:
            actions.annotate(run, out)
            summary = report.render_summary(run, templates_dir=settings.report.templates_dir)
            actions.append_summary(actions_ctx.step_summary, summary)
            actions.write_outputs(actions_ctx.output, outputs)
    code = pipeline.exit_code(run, settings)
    log(
        f"verdict {run.verdict.value} ({run.p0_count} P0, {run.p1_count} P1); "
        f"results in {artifacts.results}; exit code {int(code)}"
    )
    return int(code)


def _publish(
    run: results.Run,
    settings: Settings,
    *,
    token: str,
    log: Callable[[str], None],
    actions_ctx: Any,
) -> dict[str, str]:
    from bot import github

    repository = actions_ctx.repository
    gh = github.client(token=token, base_url=actions_ctx.api_url, retries=settings.github.max_retries)
    pr = github.find_pr(
        gh=gh,
        repo_name=repository,
        ctx=actions_ctx,
        explicit_pr=settings.github.pr,
        warn=lambda m: log(f"warning: {m}"),
    )
    if pr is None:
        log("no pull request for this run (a deploy from a branch?): skipping the PR comment")
    outcome = github.publish(
        gh=gh,
        repo_name=repository,
        run=run,
        pr=pr,
        settings=settings.github,
        templates_dir=settings.report.templates_dir,
        max_comment_chars=settings.report.max_comment_chars,
        history_limit=settings.report.history,
    )
    for warning in outcome.warnings:
        log(f"warning: {warning}")
    if outcome.comment_url:
        log(f"PR comment: {outcome.comment_url}")
    for url in outcome.issue_urls:
        log(f"P0 issue: {url}")
    return {"comment-url": outcome.comment_url or "", "issue-urls": "\n".join(outcome.issue_urls)}
