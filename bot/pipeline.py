"""One run of the pipeline: target -> probe -> results -> diagnose -> report -> gate -> publish -> exit code.

``run(settings, clients, ...)`` owns the order: ``execute`` resolves, probes and judges; ``conclude`` (the tail
``merge`` shares) writes the artifacts, applies the traffic gate, prints the report, publishes, writes the
Action's outputs and returns the exit code. Everything with I/O receives its clients as arguments (``Clients``,
built once); only ``bot.cli`` reads the environment and builds them.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot import (
    action,
    actions,
    auth,
    diagnose,
    iam,
    idtoken,
    impact,
    kinds,
    realtime,
    report,
    results,
    server_logs,
    shards,
    timestamps,
    tracing,
)
from bot import baseline as baseline_stage
from bot.actions import ActionsContext
from bot.errors import CloudRunError, ExitCode, UsageError
from bot.kinds import GateClass
from bot.probe import completeness, journey
from bot.progress import Progress
from bot.results import (
    Baseline,
    CheckResult,
    JourneySample,
    Kind,
    Metric,
    Run,
    Shard,
    Target,
    TrafficAction,
    Verdict,
)
from bot.settings import Settings
from bot.untrusted import Redactor, redact_strings

if TYPE_CHECKING:
    from bot import publish
    from bot.cloudrun_api import CloudRunClients
    from bot.console import Console


@dataclass(frozen=True, slots=True)
class Clients:
    """Every client a run talks through, built once by the entry point (tests hand in stand-ins' clients):
    the Cloud Run Admin API, the Cloud Logging reader, GitHub, and where a private service's ID token comes
    from (audience -> token). None where the run does not need it."""

    cloud_run: CloudRunClients | None = None
    logs: server_logs.Reader | None = None
    github: publish.Session | None = None
    id_token: Callable[[str], idtoken.IdToken] | None = None

    def close(self) -> None:
        if self.cloud_run is not None:
            self.cloud_run.close()


@dataclass(frozen=True, slots=True)
class RunContext:
    """Facts about where this run happens (from GitHub Actions when there), for the report; ``actions`` is the
    Actions context (outputs, step summary, annotations) when in Actions or publishing."""

    commit: str | None = None
    run_url: str | None = None
    tool_version: str = ""
    actions: ActionsContext | None = None


@dataclass(frozen=True, slots=True)
class Artifacts:
    results: Path
    report: Path
    junit: Path


def run(
    settings: Settings,
    clients: Clients,
    *,
    credentials: auth.Credentials,
    context: RunContext,
    console: Console,
    ledger: action.OutputLedger | None = None,
    quiet: bool = False,
    verbose: bool = False,
    shard: Shard | None = None,
) -> int:
    """One check, in order: resolve, probe, judge (``execute``), then artifacts, traffic gate, report,
    publishing, outputs and the exit code (``conclude``)."""
    progress = Progress(console.log)
    probed = execute(
        settings,
        credentials=credentials,
        context=context,
        cloud_run=clients.cloud_run,
        log=console.log,
        on_token=console.keep_secret,
        logs_reader=clients.logs,
        progress=progress,
        id_token=clients.id_token,
        shard=shard,
    )
    return conclude(
        probed,
        settings,
        clients,
        context=context,
        console=console,
        ledger=ledger,
        quiet=quiet,
        verbose=verbose,
        progress=progress,
    )


def execute(
    settings: Settings,
    *,
    credentials: auth.Credentials,
    context: RunContext,
    cloud_run: CloudRunClients | None,
    log: Callable[[str], None],
    on_token: Callable[[str], None] = lambda _token: None,
    logs_reader: server_logs.Reader | None = None,
    progress: Progress | None = None,
    id_token: Callable[[str], idtoken.IdToken] | None = None,
    shard: Shard | None = None,
) -> Run:
    """Resolve the target, probe it, and diagnose: the Run, before any publishing or traffic change.

    ``id_token`` (audience -> token) is given for a private Cloud Run service; an ID token that cannot be
    obtained stops the run (``IdTokenError``, exit 3) before anything is probed. With ``shard``, only that
    shard's users run (numbered as in the whole run).
    """
    progress = progress or Progress(log)
    run_id = uuid.uuid4().hex[:12]
    trace = tracing.RunTrace(run_id)  # every request carries a trace id derived from the run and the user
    tokens: list[str] = []

    def remember(token: str) -> None:
        tokens.append(token)
        on_token(token)

    started_at = _now()
    started = time.perf_counter()
    checks: list[CheckResult] = []
    if settings.cloud_run.configured:
        from bot import cloudrun  # google-cloud-run costs ~0.4 s to import: only when it is used

        assert cloud_run is not None
        with (
            progress.phase("resolve"),
            progress.waiting(f"the Cloud Run revision of {settings.cloud_run.service} to be found and ready"),
        ):
            resolution = cloudrun.resolve(
                clients=cloud_run, settings=settings.cloud_run, version=settings.version, progress=log
            )
        target, ready = resolution.target, resolution.ready
        checks.extend(resolution.checks)
        judged, notes = realtime.judge(
            target.settings, settings=settings, service=target.service, region=target.region
        )
        checks.extend(judged)
        if target.settings is not None:
            target = replace(target, settings=replace(target.settings, notes=notes))
    else:
        assert settings.url is not None
        with progress.phase("resolve"):
            target, ready = Target(url=settings.url, service=settings.service_name), True
    target = replace(
        target,
        service=settings.service_name,
        expected_version=settings.version.expected,
        expected_image=settings.version.expected_image,
    )
    for warning in target.warnings:
        log(f"warning: {warning}")
    invoker = _invoker_token(settings, target, id_token, log=log, on_token=remember) if ready else None
    headers = {iam.ID_TOKEN_HEADER: f"Bearer {invoker.token}"} if invoker else None

    serving_version = None
    baseline = None
    users = settings.journey.users + settings.load.users
    phases = None
    if shard is not None:
        phases = shards.user_phases(settings, range(shard.first_user, shard.last_user + 1))
        users = shard.last_user - shard.first_user + 1
    samples: tuple[JourneySample, ...] = ()
    health_samples: tuple[float, ...] = ()
    held = None
    if ready:
        where = f" (shard {shard.index}/{shard.count})" if shard else ""
        log(f"probing {target.url} with {users} user{'s' if users != 1 else ''}{where}")
        awaited = f"the journeys of {users} user{'s' if users != 1 else ''} at {target.url}"
        with progress.phase("probe"), progress.waiting(awaited):
            outcome = asyncio.run(
                journey.probe(
                    settings,
                    base_url=target.url,
                    credentials=credentials,
                    on_token=remember,
                    trace=trace,
                    extra_headers=headers,
                    phases=phases,
                )
            )
        checks.extend(_with_invoker(outcome.checks, invoker))
        metrics = outcome.metrics
        serving_version = outcome.serving_version
        samples, health_samples, held = outcome.samples, outcome.health_samples, outcome.hold
        baseline_url = baseline_stage.url_for(settings.baseline, target)
        if baseline_url is not None and shard is None:  # a shard's users are a part: merge judges the whole
            with progress.phase("baseline"), progress.waiting(f"the same journeys at {baseline_url}"):
                baseline, regressions = _measure_baseline(
                    settings, target, baseline_url, metrics, credentials, headers, log=log, on_token=remember
                )
            checks.extend(regressions)
    else:
        log("the revision is not ready: the golden path was not run against it")
        metrics = ()

    findings = diagnose.diagnose(checks, service=settings.service_name)
    if ready and cloud_run is not None and any(f.severity is results.Severity.P0 for f in findings):
        from bot import cloudrun

        # Why it died: a revision whose Ready condition turned False during the probe says so in its own words.
        died = cloudrun.recheck(clients=cloud_run, target=target, settings=settings.cloud_run, progress=log)
        if died is not None:
            checks.append(died)
            findings = diagnose.diagnose(checks, service=settings.service_name)
    verdict = results.verdict_for(findings)
    finished_at = _now()
    if target.project and target.revision:
        from bot import cloudrun

        logs = cloudrun.logs_url(
            project=target.project,
            service=settings.cloud_run.service or target.service,
            revision=target.revision,
            start=started_at,
            end=finished_at,
            region=target.region,
        )
        target = replace(target, logs_url=logs)
    run = Run(
        run_id=run_id,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=timestamps.elapsed_ms(started),
        verdict=verdict,
        target=replace(target, serving_version=serving_version),
        checks=tuple(checks),
        metrics=metrics,
        findings=findings,
        impact=impact.assess(findings, settings=settings.impact, journey_name=settings.journey.name),
        users=users,
        commit=context.commit,
        run_url=context.run_url,
        tool_version=context.tool_version,
        baseline=baseline,
        traces=trace.users(),
        samples=samples,
        health_samples=health_samples,
        shard=shard,
        hold=held,
    )
    return _with_server_logs(
        run, settings, reader=logs_reader, credentials=credentials, tokens=tokens, log=log
    )


def _with_server_logs(
    run: Run,
    settings: Settings,
    *,
    reader: server_logs.Reader | None,
    credentials: auth.Credentials,
    tokens: list[str],
    log: Callable[[str], None],
) -> Run:
    """The revision's own logs under the findings. Never changes the verdict: it only adds ``run.logs``."""
    target = run.target
    where = None
    if settings.cloud_run.configured and target.project and target.revision and settings.cloud_run.service:
        where = server_logs.Where(target.project, target.region, settings.cloud_run.service, target.revision)
    # The logs' own redactor knows every token of the run: built only when logs are read (1,000 users' tokens
    # cost 12 ms to add).
    reading = where is not None and reader is not None
    found = server_logs.collect(
        run,
        where=where,
        reader=reader,
        settings=settings.logs,
        redactor=Redactor([*credentials.secrets(), *tokens] if reading else ()),
        websocket_path=settings.websocket.path,
    )
    if found is not None:
        log(f"warning: {found.message}" if found.status in ("denied", "unavailable") else found.message)
    return replace(run, logs=found)


def _invoker_token(
    settings: Settings,
    target: Target,
    id_token: Callable[[str], idtoken.IdToken] | None,
    *,
    log: Callable[[str], None],
    on_token: Callable[[str], None],
) -> idtoken.IdToken | None:
    """The ID token a private service's front end needs, with audience = the service URL."""
    if id_token is None:
        return None
    parts = urlsplit(target.url)
    audience = settings.cloud_run.audience or target.service_url or f"{parts.scheme}://{parts.netloc}"
    token = id_token(audience)
    on_token(token.token)
    claimed = token.audience
    log(
        f"sending a Google-signed ID token from {token.source}"
        + (f" for {token.identity}" if token.identity else "")
        + f" (audience {audience}) as {iam.ID_TOKEN_HEADER}"
    )
    if claimed and claimed != audience:
        log(f"warning: the ID token's audience is {claimed}, not {audience}: Cloud Run may refuse it")
    return token


def _with_invoker(checks: tuple[CheckResult, ...], invoker: idtoken.IdToken | None) -> list[CheckResult]:
    """An IAM refusal's evidence says whether an ID token was sent and for whom, so the fix names them."""
    found = []
    for check in checks:
        failure = check.failure
        if failure is not None and failure.kind is Kind.LOGIN_FAILED:
            # The login endpoint sits behind the same front end: its refusal page is IAM, not the login.
            status, body = failure.evidence.get("status", ""), failure.evidence.get("body", "")
            if status.isdigit() and iam.is_front_end_refusal(int(status), body):
                failure = iam.denied(int(status), request="login", evidence=failure.evidence)
                check = replace(check, failure=failure)
        if failure is not None and failure.kind is Kind.IAM_DENIED:
            sent = {"id token": "sent" if invoker else "not sent (the service is private: set private: true)"}
            if invoker and invoker.identity:
                sent["identity"] = invoker.identity
            check = replace(check, failure=replace(failure, evidence={**failure.evidence, **sent}))
        found.append(check)
    return found


def _measure_baseline(
    settings: Settings,
    target: Target,
    url: str,
    metrics: tuple[Metric, ...],
    credentials: auth.Credentials,
    headers: dict[str, str] | None,
    *,
    log: Callable[[str], None],
    on_token: Callable[[str], None],
) -> tuple[Baseline, list[CheckResult]]:
    """The same journey for the same users against the serving revision, and the regressions found."""
    revision = baseline_stage.serving_revision(target) if not settings.baseline.url else None
    log(f"baseline: the same journey against {revision or url} ({url})")
    outcome = asyncio.run(
        journey.probe(
            baseline_stage.probe_settings(settings),
            base_url=url,
            credentials=credentials,
            on_token=on_token,
            extra_headers=headers,
        )
    )
    record, regressions = baseline_stage.judge(
        url=url,
        revision=revision,
        checks=outcome.checks,
        baseline_metrics=outcome.metrics,
        new_metrics=metrics,
        settings=settings.baseline,
    )
    log(f"baseline: {record.status}: {record.summary}")
    return record, regressions


# Performance alone warns under the default `fail_on: correctness`: a shared runner's noise must not block a deploy.
PERFORMANCE_KINDS = kinds.having(gate=GateClass.PERFORMANCE)
# Advice about a setting warns under `correctness` too (README, "Cloud Run settings for real-time").
WARNING_KINDS = kinds.having(gate=GateClass.WARNING)
# The run did not test (all of) the deploy: fails under every `fail_on`, and is never promoted.
ALWAYS_FAIL_KINDS = kinds.having(gate=GateClass.ALWAYS_FAIL)


def exit_code(run: Run, settings: Settings) -> ExitCode:
    """The gate's policy (README, "Severity and exit codes"); it also decides whether promotion may happen.

    Version skew, an untested revision and journeys that did not all run always fail: the run did not test (all
    of) the deploy, so it says nothing about it. A missed
    performance target fails only with ``fail_on: any``; otherwise it is a warning (shared runners are noisy).
    """
    if any(action.error for action in run.traffic_actions):
        return ExitCode.INFRASTRUCTURE
    seen = {finding.kind for finding in run.findings}
    if seen & ALWAYS_FAIL_KINDS:
        return ExitCode.FAILED
    if run.verdict is Verdict.PASS:
        return ExitCode.PASS
    if settings.gate.fail_on == "p0" and run.verdict is Verdict.DEGRADED:
        return ExitCode.PASS
    if settings.gate.fail_on == "correctness" and seen <= PERFORMANCE_KINDS | WARNING_KINDS:
        return ExitCode.PASS
    return ExitCode.FAILED


def apply_gate(
    run: Run, settings: Settings, *, cloud_run: CloudRunClients | None, log: Callable[[str], None]
) -> Run:
    """Promote or roll back traffic when configured; the action taken is recorded in the Run."""
    passed = exit_code(run, settings) is ExitCode.PASS
    action = settings.gate.on_pass if passed else settings.gate.on_fail
    if action == "none":
        return run
    # Settings refuse a gate action without cloud_run, and a Cloud Run target always names its revision.
    assert cloud_run is not None and run.target.revision is not None
    from bot import rollout

    refusal = _gate_refusal(run, action)
    if refusal is not None:
        revision = run.target.revision if action == "promote" else None  # a rollback: not chosen
        taken = TrafficAction(action, revision or "-", 0, False, refusal, refused=True)
        log(f"warning: {taken.message}")  # an annotation in Actions: the gate did not do what was asked
        return replace(run, traffic_actions=(*run.traffic_actions, taken))
    try:
        taken = rollout.move_traffic(
            clients=cloud_run,
            target=run.target,
            action=action,
            progress=log,
            service=settings.cloud_run.service,
            retry_timeout_s=settings.cloud_run.retry_timeout_s,
            operation_timeout_s=settings.cloud_run.operation_timeout_s,
            rollback_to=settings.cloud_run.rollback_to,
        )
    except CloudRunError as exc:
        # The verdict still gets reported; the failed traffic change is recorded and makes the exit code 3.
        revision = run.target.revision if action == "promote" else None  # never guessed for a rollback
        taken = TrafficAction(action, revision or "-", 0, False, f"{action} failed: {exc}", error=True)
    log(f"gate: {taken.message}")
    return replace(run, traffic_actions=(*run.traffic_actions, taken))


def _gate_refusal(run: Run, action: str) -> str | None:
    """Why traffic must not move, or None. Only a revision reached at a URL serving it alone was tested, and
    skewed code says nothing about the revision: neither is ever promoted (whatever `fail-on` says). Nor is a
    revision whose configured journeys did not all reach their completion event, whatever the verdict says."""
    target = run.target
    if target.tested_alone is False:
        return (
            f"refused to {action}: revision {target.revision} was not tested (only the service URL, shared "
            f"with other revisions, could be reached): traffic left unchanged"
        )
    if action == "promote" and not completeness.completed((s.total_ms for s in run.samples), run.users):
        ran = sum(1 for s in run.samples if s.total_ms is not None)
        return (
            f"refused to promote {target.revision}: only {ran} of {run.users} journeys ran to the end, so the "
            "revision was not tested: traffic left unchanged"
        )
    if action == "promote":
        skew = [f for f in run.findings if f.kind is Kind.VERSION_SKEW]
        if skew:
            return (
                f"refused to promote {target.revision}: version skew ({skew[0].observed or skew[0].title}): "
                "the tested code is not the expected code; traffic left unchanged"
            )
    return None


def preflight(settings: Settings, credentials: auth.Credentials | None) -> None:
    """What can be checked before the probe is checked before it: a run that would end in a usage error must
    not first probe the backend (or move traffic). Raises ``UsageError``. ``merge`` probes nothing: no
    credentials to check."""
    if credentials is not None:
        auth.check_credentials(settings.auth, credentials)
    report.check_templates(settings.report.templates_dir)
    output = settings.output_dir
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe_file = output / ".golden-path-write-check"
        probe_file.write_text("", encoding="utf-8")
        probe_file.unlink()
    except OSError as exc:
        raise UsageError(
            f"output directory {str(output)!r} cannot be written: {exc.strerror or exc}"
        ) from None


def conclude(
    run: Run,
    settings: Settings,
    clients: Clients,
    *,
    context: RunContext,
    console: Console,
    ledger: action.OutputLedger | None = None,
    quiet: bool = False,
    verbose: bool = False,
    progress: Progress | None = None,
) -> int:
    """A run's (or a merged run's) artifacts, traffic gate, report, publishing, Actions outputs and exit code."""
    log = console.log
    progress = progress or Progress(log)
    ctx = context.actions
    if ledger is None:
        ledger = action.OutputLedger(ctx.output if ctx else None)
    # The last net under the probe's own redaction: every string of the Run, before any renderer reads it (a
    # renderer's escaping, e.g. markdown's `\_`, would hide a secret from a later search).
    run = redact_strings(run, console.redactor)
    write = functools.partial(
        write_artifacts,
        output_dir=settings.output_dir,
        templates_dir=settings.report.templates_dir,
        redactor=console.redactor,
    )
    # The verdict is on disk before any traffic changes; rewritten only when the gate recorded an action.
    with progress.phase("report"):
        artifacts, markdown = write(run)
    with progress.phase("gate"), progress.waiting("the Cloud Run traffic change"):
        gated = apply_gate(run, settings, cloud_run=clients.cloud_run, log=log)
    if gated is not run:
        run = redact_strings(gated, console.redactor)
        artifacts, markdown = write(run)
    if not quiet:
        _show(run, markdown, artifacts, console)
    outputs = action.outputs(run, artifacts)
    try:
        if settings.github.publish:
            assert clients.github is not None  # the entry point opens GitHub whenever publishing is on
            from bot import publish  # PyGithub costs ~60 ms to import: only when publishing

            outcome: publish.PublishOutcome | None = None
            with progress.phase("publish"), progress.waiting("GitHub"):
                try:
                    outcome = publish.for_run(
                        run,
                        settings,
                        session=clients.github,
                        log=log,
                        redactor=console.redactor,
                        verbose=verbose,
                    )
                except publish.PublishFailed as exc:
                    outcome = exc.outcome  # what was written before the failure is still an output
                    raise
                finally:
                    if outcome is not None:
                        outputs["comment-url"] = outcome.comment_url or ""
                        outputs["issue-urls"] = "\n".join(outcome.issue_urls)
    finally:
        # The verdict is never hidden: even when publishing fails (exit 3), the summary and outputs are written.
        if ctx is not None:
            actions.annotate(run, console.out)
            summary = console.redactor.clean(
                report.render_summary(run, templates_dir=settings.report.templates_dir)
            )
            actions.append_summary(ctx.step_summary, summary)
        ledger.write({k: console.redactor.clean(v) for k, v in outputs.items()})
    code = exit_code(run, settings)
    log(
        f"verdict {run.verdict.value} ({run.p0_count} P0, {run.p1_count} P1); "
        f"results in {artifacts.results}; exit code {int(code)}"
    )
    return int(code)


def _show(run: Run, markdown: str, artifacts: Artifacts, console: Console) -> None:
    """The compact summary on a terminal, the whole report otherwise (a CI log, a pipe)."""
    out = console.out
    if out.isatty():
        from bot import terminal  # rich loads only for a terminal

        terminal.print_summary(run, report_path=artifacts.report, file=out, redactor=console.redactor)
    else:
        out.write(console.printable(markdown))
    out.flush()


def write_artifacts(
    run: Run, *, output_dir: Path, templates_dir: Path | None, redactor: Redactor | None = None
) -> tuple[Artifacts, str]:
    """results.json, report.md and junit.xml in ``output_dir``; returns their paths and the report text.

    Each file's text passes ``redactor`` as written: a user's template is text we did not write. results.json is
    written first, before the report is rendered: it is the largest text (2 MB for 1,000 users), and built while
    the report's text was held it added its peak to the run's. A template that fails on this run's data (they are
    checked before the probe) then still leaves the results."""
    clean = redactor.clean if redactor else str
    artifacts = Artifacts(
        results=output_dir / "results.json", report=output_dir / "report.md", junit=output_dir / "junit.xml"
    )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        artifacts.results.write_text(clean(results.to_json(run)), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the results to {str(output_dir)!r}: {exc.strerror or exc}") from None
    markdown = clean(report.render_report(run, templates_dir=templates_dir))
    try:
        artifacts.report.write_text(markdown, encoding="utf-8")
        artifacts.junit.write_text(clean(results.to_junit(run)), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the results to {str(output_dir)!r}: {exc.strerror or exc}") from None
    return artifacts, markdown


def _now() -> str:
    return timestamps.rfc3339(datetime.now(UTC), "seconds")
