"""What a run is given from its surroundings, each read once from the environment the entry point passes: where
it runs (``pipeline.RunContext``: the commit, the workflow run, the Actions context), the GitHub token, and the
clients (``pipeline.Clients``: Cloud Run, Cloud Logging, GitHub, the ID token source of a private service).

Only the entry point calls this module; everything below it receives what it builds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot import actions, idtoken, pipeline, results, shards, tool_version
from bot.action import OutputLedger
from bot.auth import PUBLIC_FIELDS, Credentials
from bot.console import Console
from bot.errors import UsageError
from bot.pipeline import Clients, RunContext
from bot.results import Run, Shard
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.server_logs import CloudLogging


def check(
    settings: Settings,
    credentials: Credentials,
    *,
    env: Mapping[str, str],
    console: Console,
    ledger: OutputLedger | None = None,
    quiet: bool = False,
    verbose: bool = False,
    shard: Shard | None = None,
    id_token: str | None = None,
) -> int:
    """Set-up for one check (its secrets known, what can be checked before probing checked, the context and the
    clients built once), then ``pipeline.run``, which owns the order."""
    for secret in credentials.secrets():
        console.redactor.add(secret)
    for entry in credentials.users:  # per-user credentials (auth.login.users_env) are values no input masked
        for key, value in entry.items():
            if key not in PUBLIC_FIELDS:
                console.keep_secret(value)
    pipeline.preflight(settings, credentials)
    where = context(settings, env)
    made = clients(
        settings, env, context=where, cloud_run=settings.cloud_run.configured, probe=True, id_token=id_token
    )
    try:
        users = (
            shard.last_user - shard.first_user + 1 if shard else settings.journey.users + settings.load.users
        )
        warning = allow_open_files(users)
        if warning:
            console.warn(warning)
        return pipeline.run(
            settings,
            made,
            credentials=credentials,
            context=where,
            console=console,
            ledger=ledger,
            quiet=quiet,
            verbose=verbose,
            shard=shard,
        )
    finally:
        made.close()


def merge(
    runs: list[Run], settings: Settings, *, env: Mapping[str, str], console: Console, quiet: bool
) -> int:
    """Shard results merged into one run, then the same tail as a check (``pipeline.conclude``): artifacts,
    traffic gate, report, publishing once, outputs, exit code."""
    pipeline.preflight(settings, None)
    run = shards.merge(runs, settings=settings, run_id=uuid.uuid4().hex[:12])
    console.log(f"merged {len(runs)} shards: {run.users} users, {len(run.samples)} journeys")
    where = context(settings, env)
    moves_traffic = (settings.gate.on_pass, settings.gate.on_fail) != ("none", "none")
    made = clients(
        settings, env, context=where, cloud_run=settings.cloud_run.configured and moves_traffic, probe=False
    )
    try:
        return pipeline.conclude(run, settings, made, context=where, console=console, quiet=quiet)
    finally:
        made.close()


def load_results(path: Path) -> Run:
    """A saved results.json (a shard's, or one to re-render); a missing or foreign file is a usage error."""
    try:
        return results.load(path)
    except FileNotFoundError:
        raise UsageError(f"results file {str(path)!r} does not exist") from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"results file {str(path)!r} is not a golden-path results document: {exc}") from None


def context(settings: Settings, env: Mapping[str, str]) -> RunContext:
    """Where this run happens: the commit, the workflow run's link and the Actions context (in Actions, or when
    publishing)."""
    ctx = None
    if env.get("GITHUB_ACTIONS") == "true" or settings.github.publish:
        ctx = actions.context_from_env(env)
    return RunContext(
        commit=env.get("GITHUB_SHA") or None,
        run_url=actions.run_url(ctx) if ctx else None,
        tool_version=tool_version(),
        actions=ctx,
    )


def clients(
    settings: Settings,
    env: Mapping[str, str],
    *,
    context: RunContext,
    cloud_run: bool,
    probe: bool,
    id_token: str | None = None,
) -> Clients:
    """Every client the run needs, each built once: Cloud Run (``cloud_run``: resolve, gate), the Logging reader
    and the ID token source (``probe``; ``id_token`` is one passed in), GitHub (when publishing; its
    prerequisites are checked here, before anything is probed). Raises ``UsageError`` when publishing lacks
    its token, repository or service name."""
    token = github_token(settings, env)
    github = None
    if settings.github.publish:
        assert context.actions is not None  # read whenever publishing is on
        from bot.publish import Session  # PyGithub costs ~60 ms to import: only when publishing

        github = Session.open(token=token or "", ctx=context.actions, retries=settings.github.max_retries)
    run_clients = None
    if cloud_run:
        from bot import cloudrun  # google-cloud-run costs ~0.4 s to import: only when it is used

        run_clients = cloudrun.make_clients(endpoint=settings.cloud_run.endpoint)
    reader = logs_reader(settings) if probe else None
    source = id_token_source(settings, env, passed=id_token) if probe else None
    return Clients(cloud_run=run_clients, logs=reader, github=github, id_token=source)


def logs_reader(settings: Settings) -> CloudLogging | None:
    if not (settings.cloud_run.configured and settings.cloud_run.project and settings.logs.mode != "never"):
        return None
    from bot import server_logs  # light: google-cloud-logging itself loads on the first query

    return server_logs.CloudLogging(
        project=settings.cloud_run.project, endpoint=settings.logs.endpoint, budget_s=settings.logs.budget_s
    )


def github_token(settings: Settings, env: Mapping[str, str]) -> str | None:
    """The one GitHub token (the github-token input, else GITHUB_TOKEN); when publishing, also its prerequisites."""
    token = env.get("INPUT_GITHUB-TOKEN") or env.get("GITHUB_TOKEN")
    if settings.github.publish and not (token and env.get("GITHUB_REPOSITORY")):
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
    return token


def id_token_source(
    settings: Settings, env: Mapping[str, str], *, passed: str | None
) -> Callable[[str], idtoken.IdToken] | None:
    """audience -> ID token, for a private service (or whenever a token is passed); None for a public one."""
    if not (settings.cloud_run.private or passed):
        return None
    credentials_file = env.get("GOOGLE_APPLICATION_CREDENTIALS") or None
    return lambda audience: idtoken.obtain(
        audience=audience, passed=passed, credentials_file=credentials_file
    )


def allow_open_files(users: int) -> str | None:
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
