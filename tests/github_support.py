"""Helpers shared by the tests of bot.github, bot.issues and bot.publish (real PyGithub, GitHub stand-in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import github as pygithub

from bot import github, publish, report
from bot.results import Run
from bot.settings import GitHubSettings
from tests import samples
from tests.standins.github_api import GitHubStandIn

REPO = "acme/chat-backend"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
COMMENTS = r"/repos/acme/chat-backend/issues/\d+/comments"
ISSUES = r"/repos/acme/chat-backend/issues"
SETTINGS = GitHubSettings(publish=True, assignees=("octocat",), settle_s=0)


def client(server: GitHubStandIn, *, retries: int = 2, **kwargs: float) -> pygithub.Github:
    options: dict[str, float] = {"backoff_factor": 0, **kwargs}
    return github.client(token=server.token, base_url=server.api_url, retries=retries, **options)  # type: ignore[arg-type]


def failing(
    name: str = "ws-upgrade-status", *, run_id: str = "100-1", revision: str = "chat-backend-00042-xoz"
) -> Run:
    run = samples.run(name)
    return replace(run, run_id=run_id, target=replace(run.target, revision=revision))


def passing(*, run_id: str = "200-1", revision: str = "chat-backend-00043-abc", name: str = "healthy") -> Run:
    run = samples.run(name)
    return replace(run, run_id=run_id, target=replace(run.target, revision=revision))


def publish_run(
    server: GitHubStandIn,
    run: Run,
    *,
    pr: int | None,
    settings: GitHubSettings = SETTINGS,
    track: str = report.DEFAULT_TRACK,
    run_key: str | None = None,
    attempt: int = 1,
) -> publish.PublishOutcome:
    """One run's publishing; ``run_key`` is ``GITHUB_RUN_ID`` and ``attempt`` ``GITHUB_RUN_ATTEMPT``."""
    return publish.publish(
        gh=client(server), repo_name=REPO, run=run, pr=pr, settings=settings, backoff_s=0, track=track,
        trail=report.Trail(run_key=run_key), run_attempt=attempt,
    )  # fmt: skip


def requests_during(server: GitHubStandIn, publishing: Callable[[], object]) -> int:
    """How many requests the stand-in received while ``publishing`` ran."""
    before = len(server.requests)
    publishing()
    return len(server.requests) - before


def issue_comments(server: GitHubStandIn, number: int) -> list[str]:
    return [c.body for c in server.comments(number)]
