"""Publishing: the P0 issues first, then the sticky PR comment that links them.

Issues come first so that one failure on the comment never leaves a P0 unfiled, and so the comment can link
every issue the run opened or updated. A ``GitHubError`` in one step does not stop the other: the first one is
raised once both were tried (exit code 3), as :class:`PublishFailed`, which carries everything that succeeded
before it (the step outputs list it). A refusal for lack of permission is a warning, never an exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import github as pygithub

from bot import github, issues, report
from bot.actions import ActionsContext
from bot.errors import GitHubError
from bot.results import Run
from bot.settings import GitHubSettings, Settings
from bot.untrusted import Redactor


@dataclass(frozen=True, slots=True)
class Session:
    """GitHub for one run: the client (built once, from the one token), the Actions context it publishes for
    (repository, API URL, event, run id and attempt) and the count of the requests it made."""

    gh: pygithub.Github
    ctx: ActionsContext
    counter: github.RequestCounter

    @classmethod
    def open(cls, *, token: str, ctx: ActionsContext, retries: int) -> Session:
        counter = github.RequestCounter()
        gh = github.client(token=token, base_url=ctx.api_url, retries=retries, counter=counter)
        return cls(gh=gh, ctx=ctx, counter=counter)


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    comment_url: str | None
    issue_urls: tuple[str, ...]
    warnings: tuple[str, ...]
    track: str = report.DEFAULT_TRACK


class PublishFailed(GitHubError):
    """A step of publishing failed (exit code 3); ``outcome`` is what succeeded before and beside it."""

    def __init__(self, failure: GitHubError, outcome: PublishOutcome) -> None:
        super().__init__(str(failure))
        self.outcome = outcome


def publish(
    *,
    gh: pygithub.Github,
    repo_name: str,
    run: Run,
    pr: int | None,
    settings: GitHubSettings,
    trail: report.Trail = report.NO_TRAIL,
    run_attempt: int = 1,
    templates_dir: Path | None = None,
    max_comment_chars: int = 65_000,
    history_limit: int = 10,
    backoff_s: float = 0.5,
    track: str = report.DEFAULT_TRACK,
    redactor: Redactor | None = None,
) -> PublishOutcome:
    """Write the verdict where the team looks: the P0 issues, then the sticky PR comment.

    Every text rendered for GitHub (comment, issue title and body, issue comments) passes ``redactor`` before
    it is sent.

    ``run_attempt`` above 1 (``GITHUB_RUN_ATTEMPT``) means a re-run: issue comments are looked for by the
    workflow run's marker (``trail.run_key``) before one is posted. ``track`` is the incident track
    (``github.track_for``). Raises :class:`PublishFailed` (a ``GitHubError``) after trying both steps.
    """
    repo = gh.get_repo(repo_name)  # lazy: no request
    identity = github.Identity(gh)
    warnings: list[str] = []
    failures: list[GitHubError] = []
    links: list[report.IssueLink] = []
    if settings.issues:
        try:
            issues.sync(
                gh=gh,
                repo=repo,
                repo_name=repo_name,
                run=run,
                settings=settings,
                identity=identity,
                trail=trail,
                rerun=run_attempt > 1,
                templates_dir=templates_dir,
                warnings=warnings,
                backoff_s=backoff_s,
                track=track,
                links=links,
                redactor=redactor,
            )
        except github.CannotPublish as exc:
            warnings.append(str(exc))
        except GitHubError as exc:
            failures.append(exc)
    comment_url: str | None = None
    written: list[str] = []
    if pr is not None and settings.comment:
        try:
            comment_url = github.upsert_comment(
                gh=gh,
                repo=repo,
                pr=pr,
                run=run,
                identity=identity,
                issues=tuple(links),
                templates_dir=templates_dir,
                max_chars=max_comment_chars,
                history_limit=history_limit,
                settle_s=settings.settle_s,
                tries=settings.max_retries + 1,
                backoff_s=backoff_s,
                written=written,
                redactor=redactor,
            )
        except github.CannotPublish as exc:
            warnings.append(str(exc))
        except GitHubError as exc:
            failures.append(exc)
            comment_url = written[-1] if written else None
    urls = tuple(dict.fromkeys(link.url for link in links if link.action != "closed"))
    outcome = PublishOutcome(comment_url=comment_url, issue_urls=urls, warnings=tuple(warnings), track=track)
    if failures:
        raise PublishFailed(failures[0], outcome) from failures[0]
    return outcome


def for_run(
    run: Run,
    settings: Settings,
    *,
    session: Session,
    log: Callable[[str], None],
    redactor: Redactor | None = None,
    verbose: bool = False,
) -> PublishOutcome:
    """Publish ``run`` where this workflow run reports: find its PR (from ``--pr``, the event or the commit) and
    its incident track, link the PR, the commit and the workflow run, publish, and log what was written (also
    when a step failed: ``PublishFailed`` carries it, and is raised after). ``verbose`` logs the request count."""
    ctx = session.ctx
    repository = ctx.repository or ""
    pr = github.find_pr(
        gh=session.gh,
        repo_name=repository,
        ctx=ctx,
        explicit_pr=settings.github.pr,
        warn=lambda m: log(f"warning: {m}"),
    )
    if pr is None:
        log("no pull request for this run (a deploy from a branch?): skipping the PR comment")
    server = ctx.server_url
    trail = report.Trail(
        pr_url=f"{server}/{repository}/pull/{pr}" if pr is not None else None,
        commit_url=f"{server}/{repository}/commit/{run.commit}" if run.commit else None,
        run_key=ctx.run_id,
    )
    attempt = ctx.run_attempt
    target = run.target
    track = github.track_for(
        explicit=settings.github.track,
        tag=target.tag,
        tag_tested=bool(target.tag and target.revision_url)
        and target.url.rstrip("/") == (target.revision_url or "").rstrip("/"),
        ctx=ctx,
        pr=pr,
    )
    outcome: PublishOutcome | None = None
    try:
        outcome = publish(
            gh=session.gh,
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
    except PublishFailed as exc:
        outcome = exc.outcome
        raise
    finally:
        if verbose:
            log(f"GitHub requests: {session.counter.total}")
        if outcome is not None:
            for warning in outcome.warnings:
                log(f"warning: {warning}")
            if outcome.comment_url:
                log(f"PR comment: {outcome.comment_url}")
            for url in outcome.issue_urls:
                log(f"P0 issue: {url}")
    return outcome
