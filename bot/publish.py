"""Publishing: the P0 issues first, then the sticky PR comment that links them.

Issues come first so that one failure on the comment never leaves a P0 unfiled, and so the comment can link
every issue the run opened or updated. A ``GitHubError`` in one step does not stop the other: the first one is
raised once both were tried (exit code 3), as :class:`PublishFailed`, which carries everything that succeeded
before it (the step outputs list it). A refusal for lack of permission is a warning, never an exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import github as pygithub

from bot import github, issues, report
from bot.errors import GitHubError
from bot.results import Run
from bot.settings import GitHubSettings
from bot.untrusted import Redactor


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
