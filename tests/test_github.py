"""bot.github against the real PyGithub client talking to the GitHub stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import github as pygithub
import pytest

from bot import github, publish, report
from bot.actions import ActionsContext
from bot.errors import ExitCode, GitHubError
from bot.results import Run
from bot.settings import GitHubSettings
from tests import samples
from tests.standins.github_api import GitHubStandIn

FIXTURES = Path(__file__).parent / "fixtures" / "github"
REPO = "acme/chat-backend"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
COMMENTS = r"/repos/acme/chat-backend/issues/\d+/comments"
ISSUES = r"/repos/acme/chat-backend/issues"
SETTINGS = GitHubSettings(publish=True, assignees=("octocat",), settle_s=0)


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(repo=REPO) as server:
        yield server


def _client(server: GitHubStandIn, *, retries: int = 2, **kwargs: float) -> pygithub.Github:
    options: dict[str, float] = {"backoff_factor": 0, **kwargs}
    return github.client(token=server.token, base_url=server.api_url, retries=retries, **options)  # type: ignore[arg-type]


def _failing(
    name: str = "ws-upgrade-status", *, run_id: str = "100-1", revision: str = "chat-backend-00042-xoz"
) -> Run:
    run = samples.run(name)
    return replace(run, run_id=run_id, target=replace(run.target, revision=revision))


def _passing(
    *, run_id: str = "200-1", revision: str = "chat-backend-00043-abc", name: str = "healthy"
) -> Run:
    run = samples.run(name)
    return replace(run, run_id=run_id, target=replace(run.target, revision=revision))


def _publish(
    server: GitHubStandIn, run: Run, *, pr: int | None, settings: GitHubSettings = SETTINGS
) -> publish.PublishOutcome:
    return publish.publish(gh=_client(server), repo_name=REPO, run=run, pr=pr, settings=settings, backoff_s=0)


def _ctx(
    event_name: str | None, payload: str | dict[str, object] | None, tmp_path: Path, **kw: str
) -> ActionsContext:
    path = None
    if isinstance(payload, str):
        path = FIXTURES / payload
    elif payload is not None:
        path = tmp_path / "event.json"
        path.write_text(json.dumps(payload))
    return ActionsContext(repository=REPO, event_name=event_name, event_path=path, **kw)  # type: ignore[arg-type]


def _issue_comments(server: GitHubStandIn, number: int) -> list[str]:
    return [c.body for c in server.comments(number)]


# -- client ------------------------------------------------------------------------------------------------------


def test_client__talks_to_ghes_style_prefix() -> None:
    with GitHubStandIn(repo=REPO, prefix="/api/v3") as server:
        number = server.add_pull(head_sha=SHA)
        outcome = _publish(server, _failing(), pr=number)
        assert outcome.comment_url is not None and outcome.comment_url.startswith(server.server_url)
        assert len(server.comments(number)) == 1


def test_client__sends_no_token_to_the_log(standin: GitHubStandIn) -> None:
    number = standin.add_pull(head_sha=SHA)
    _publish(standin, _failing(), pr=number)
    assert standin.token not in repr(standin.requests)


def test_client__bad_token_is_github_error(standin: GitHubStandIn) -> None:
    number = standin.add_pull(head_sha=SHA)
    gh = github.client(token="wrong", base_url=standin.api_url, retries=1)
    with pytest.raises(GitHubError, match="rejected the token") as caught:
        publish.publish(gh=gh, repo_name=REPO, run=_failing(), pr=number, settings=SETTINGS)
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE


# -- PR discovery --------------------------------------------------------------------------------------------------


def test_find_pr__explicit_pr_wins(standin: GitHubStandIn, tmp_path: Path) -> None:
    ctx = _ctx("pull_request", "pull_request.synchronize.json", tmp_path)
    assert github.find_pr(gh=_client(standin), repo_name=REPO, ctx=ctx, explicit_pr=7) == 7
    assert standin.requests == []


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target"])
def test_find_pr__from_pull_request_payload(standin: GitHubStandIn, tmp_path: Path, event: str) -> None:
    ctx = _ctx(event, "pull_request.synchronize.json", tmp_path)
    assert github.find_pr(gh=_client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) == 2
    assert standin.requests == []  # the payload is enough


def test_find_pr__push_through_commit_pulls(tmp_path: Path) -> None:
    with GitHubStandIn(repo="Codertocat/Hello-World") as server:
        server.add_pull(head_sha="0" * 39 + "1", title="unrelated")
        number = server.add_pull(head_sha=SHA)
        ctx = _ctx("push", "push.json", tmp_path)
        found = github.find_pr(
            gh=_client(server), repo_name="Codertocat/Hello-World", ctx=ctx, explicit_pr=None
        )
        assert found == number
        assert server.count("GET", f"/repos/Codertocat/Hello-World/commits/{SHA}/pulls") == 1


def test_find_pr__push_prefers_open_pr_whose_head_is_the_commit(
    standin: GitHubStandIn, tmp_path: Path
) -> None:
    standin.add_pull(head_sha="f" * 40, state="closed", associate=False)
    other = standin.add_pull(head_sha="a" * 40, associate=False)
    head = standin.add_pull(head_sha=SHA)
    standin.repo().commit_pulls[SHA] = [other, head]
    ctx = _ctx("push", {"after": SHA}, tmp_path)
    assert github.find_pr(gh=_client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) == head


def test_find_pr__push_of_a_merge_finds_the_merged_pr(standin: GitHubStandIn, tmp_path: Path) -> None:
    merged = standin.add_pull(head_sha="b" * 40, state="merged", merge_commit_sha=SHA, associate=False)
    ctx = _ctx("push", {"after": SHA}, tmp_path, sha=SHA)
    assert github.find_pr(gh=_client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) == merged


def test_find_pr__push_without_pr_is_none(standin: GitHubStandIn, tmp_path: Path) -> None:
    ctx = _ctx("push", {"after": SHA}, tmp_path)
    assert github.find_pr(gh=_client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) is None


def test_find_pr__deployment_status_uses_the_deployed_sha(tmp_path: Path) -> None:
    with GitHubStandIn(repo="Codertocat/Hello-World") as server:
        number = server.add_pull(head_sha="f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
        ctx = _ctx("deployment_status", "deployment_status.json", tmp_path, sha="ignored")
        found = github.find_pr(
            gh=_client(server), repo_name="Codertocat/Hello-World", ctx=ctx, explicit_pr=None
        )
        assert found == number


def test_find_pr__workflow_run_pull_requests_of_this_repo(standin: GitHubStandIn, tmp_path: Path) -> None:
    ctx = _ctx("workflow_run", "workflow_run.completed.with-pull-requests.json", tmp_path)
    found = github.find_pr(gh=_client(standin), repo_name="Codertocat/Hello-World", ctx=ctx, explicit_pr=None)
    assert found == 2
    assert standin.requests == []


def test_find_pr__workflow_run_ignores_other_repos_prs(tmp_path: Path) -> None:
    with GitHubStandIn(repo="octo-org/octo-repo") as server:
        number = server.add_pull(head_sha="3484a3fb816e0859fd6e1cea078d76385ff50625")
        server.add_pull(head_sha="x" * 40, associate=False)  # would be #2, like the listed foreign PR
        ctx = _ctx("workflow_run", "workflow_run.completed.with-pull-requests.json", tmp_path)
        found = github.find_pr(gh=_client(server), repo_name="octo-org/octo-repo", ctx=ctx, explicit_pr=None)
        assert found == number == 1


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch", None])
def test_find_pr__other_events_have_no_pr(standin: GitHubStandIn, tmp_path: Path, event: str | None) -> None:
    standin.add_pull(head_sha=SHA)
    ctx = _ctx(event, None, tmp_path, sha=SHA)
    assert github.find_pr(gh=_client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) is None
    assert standin.requests == []


def test_find_pr__forbidden_is_a_warning(standin: GitHubStandIn, tmp_path: Path) -> None:
    standin.fail(r".*/pulls", status=403, message="Resource not accessible by integration")
    warnings: list[str] = []
    ctx = _ctx("push", {"after": SHA}, tmp_path)
    found = github.find_pr(
        gh=_client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None, warn=warnings.append
    )
    assert found is None
    assert "403" in warnings[0] and "Resource not accessible by integration" in warnings[0]


# -- publish: the sticky comment -------------------------------------------------------------------------------


def test_publish__first_run_comments_and_opens_issue(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    run = _failing()
    outcome = _publish(standin, run, pr=pr)

    (comment,) = standin.comments(pr)
    assert report.has_marker(comment.body, report.comment_marker(run.target.service))
    assert outcome.comment_url == f"{standin.server_url}/{REPO}/pull/{pr}#issuecomment-{comment.id}"
    (issue,) = standin.issues()
    assert report.has_marker(issue.body or "", report.issue_marker("chat-backend:ws-upgrade-status:502"))
    assert issue.title == report.issue_title(run, run.findings[0])
    assert issue.labels == ["P0", "golden-path"]
    assert issue.assignees == ["octocat"]
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{issue.number}",)
    assert outcome.warnings == ()
    colors = {label.name: label.color for label in standin.repo().labels}
    assert colors == {"P0": "b60205", "golden-path": "5319e7"}


def test_publish__rerun_edits_the_comment_and_adds_one_recurrence(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    first = _publish(standin, _failing(run_id="100-1"), pr=pr)
    (comment,) = standin.comments(pr)
    first_body = comment.body
    second = _publish(standin, _failing(run_id="100-2", revision="chat-backend-00043-abc"), pr=pr)

    (after,) = standin.comments(pr)
    assert after.id == comment.id and after.body != first_body
    assert second.comment_url == first.comment_url
    assert standin.count("POST", COMMENTS.replace(r"\d+", str(pr))) == 1
    assert standin.count("PATCH", r"/repos/acme/chat-backend/issues/comments/\d+") == 1
    assert len(report.decode_history(after.body)) > len(report.decode_history(first_body))

    (issue,) = standin.issues()
    assert issue.state == "open"
    assert len(standin.comments(issue.number)) == 1
    assert second.issue_urls == first.issue_urls


def test_publish__new_fingerprint_opens_a_second_issue(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    _publish(standin, _failing("ws-upgrade-status"), pr=pr)
    outcome = _publish(standin, _failing("event-missing", run_id="101-1"), pr=pr)

    issues = standin.issues()
    assert len(issues) == 2
    assert all(i.state == "open" for i in issues)  # a failing run cannot say the 502 is fixed
    assert len(outcome.issue_urls) == 1 and outcome.issue_urls[0].endswith(f"/issues/{issues[1].number}")
    assert len(standin.comments(pr)) == 1


def test_publish__other_services_and_quotes_are_not_ours(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    marker = report.comment_marker("chat-backend")
    standin.add_comment(pr, f"Why does the bot write `{marker}`?", author="dev")
    standin.add_comment(pr, f"{marker}\nquoted by a human", author="dev")
    other = standin.add_comment(pr, report.comment_marker("billing") + "\nother service")
    _publish(standin, _failing(), pr=pr)

    bodies = {c.id: c.body for c in standin.comments(pr)}
    assert len(bodies) == 4
    assert bodies[other].endswith("other service")


def test_publish__finds_its_comment_across_pages(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    _publish(standin, _failing(), pr=pr)
    for n in range(7):
        standin.add_comment(pr, f"review {n}", author="dev")
    gh = _client(standin, per_page=3)
    publish.publish(gh=gh, repo_name=REPO, run=_failing(run_id="100-2"), pr=pr, settings=SETTINGS)
    assert len(standin.comments(pr)) == 8
    assert standin.count("GET", COMMENTS.replace(r"\d+", str(pr))) >= 4  # 3 pages + the first run's listing


def test_publish__token_user_known_only_its_comments_count(standin: GitHubStandIn) -> None:
    standin.user_endpoint_forbidden = False  # a PAT: GET /user works
    pr = standin.add_pull(head_sha=SHA)
    marker = report.comment_marker("chat-backend")
    standin.user("renovate[bot]", type="Bot")
    foreign = standin.add_comment(pr, f"{marker}\nanother bot's copy", author="renovate[bot]")
    _publish(standin, _failing(), pr=pr)

    comments = standin.comments(pr)
    assert len(comments) == 2
    assert comments[0].id == foreign and comments[0].body.endswith("another bot's copy")
    assert standin.count("GET", "/user") == 0  # the issue GitHub just answered with named the token's user

    no_issues = SETTINGS.model_copy(update={"issues": False})
    _publish(standin, _passing(), pr=pr, settings=no_issues)  # nothing written before: asks GET /user once
    assert [c.id for c in standin.comments(pr)] == [foreign, comments[1].id]
    assert standin.count("GET", "/user") == 1


def test_publish__race_keeps_the_oldest_comment(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    run = _failing()
    rival: list[int] = []

    def concurrent_run_posts_first() -> None:
        body = report.render_comment(run, history=[])
        rival.append(standin.add_comment(pr, body))

    standin.before(COMMENTS, concurrent_run_posts_first, method="POST")
    outcome = _publish(standin, run, pr=pr)

    (comment,) = standin.comments(pr)
    assert comment.id == rival[0]
    assert outcome.comment_url is not None and outcome.comment_url.endswith(f"#issuecomment-{rival[0]}")
    assert standin.count("DELETE", r"/repos/acme/chat-backend/issues/comments/\d+") == 1


def test_publish__leftover_duplicates_are_cleaned(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    body = report.render_comment(_failing(), history=[])
    oldest = standin.add_comment(pr, body)
    standin.add_comment(pr, body)
    _publish(standin, _failing(run_id="100-2"), pr=pr)
    assert [c.id for c in standin.comments(pr)] == [oldest]


def test_publish__no_pr_skips_the_comment(standin: GitHubStandIn) -> None:
    outcome = _publish(standin, _failing(), pr=None)
    assert outcome.comment_url is None
    assert len(outcome.issue_urls) == 1
    assert standin.count("POST", COMMENTS) == 0


def test_publish__comment_and_issues_can_be_switched_off(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    outcome = _publish(standin, _failing(), pr=pr, settings=GitHubSettings(comment=False, issues=False))
    assert outcome == publish.PublishOutcome(comment_url=None, issue_urls=(), warnings=())
    assert standin.requests == []


# -- publish: the P0 issue lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("passes", [1, 2])
def test_publish__recovery_after_n_passes_closes(standin: GitHubStandIn, passes: int) -> None:
    settings = SETTINGS.model_copy(update={"close_after_passes": passes})
    _publish(standin, _failing(), pr=None, settings=settings)
    (issue,) = standin.issues()
    for n in range(1, passes):
        _publish(standin, _passing(run_id=f"20{n}-1", revision=f"rev-{n}"), pr=None, settings=settings)
        assert issue.state == "open"
        assert standin.comments(issue.number) == []
    outcome = _publish(standin, _passing(revision="chat-backend-00050-fix"), pr=None, settings=settings)

    assert issue.state == "closed" and issue.state_reason == "completed"
    (recovery,) = _issue_comments(standin, issue.number)
    assert "chat-backend-00050-fix" in recovery
    assert outcome.issue_urls == ()


def test_publish__failing_run_breaks_the_recovery_streak(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"close_after_passes": 2})
    _publish(standin, _failing("ws-upgrade-status"), pr=None, settings=settings)
    (issue,) = standin.issues()
    _publish(standin, _passing(run_id="201-1"), pr=None, settings=settings)
    _publish(standin, _failing("event-missing", run_id="202-1"), pr=None, settings=settings)  # other P0
    _publish(standin, _passing(run_id="203-1"), pr=None, settings=settings)
    assert issue.state == "open"
    _publish(standin, _passing(run_id="204-1"), pr=None, settings=settings)
    assert issue.state == "closed"


def test_publish__degraded_run_counts_as_a_pass(standin: GitHubStandIn) -> None:
    _publish(standin, _failing(), pr=None)
    _publish(standin, _passing(name="degraded"), pr=None)
    (issue,) = standin.issues()
    assert issue.state == "closed"


def test_publish__closed_issue_reopens_on_recurrence(standin: GitHubStandIn) -> None:
    _publish(standin, _failing(), pr=None)
    _publish(standin, _passing(), pr=None)
    (issue,) = standin.issues()
    assert issue.state == "closed"
    outcome = _publish(standin, _failing(run_id="300-1", revision="chat-backend-00051-bad"), pr=None)

    assert len(standin.issues()) == 1
    assert issue.state == "open" and issue.state_reason == "reopened"
    _recovery, recurrence = _issue_comments(standin, issue.number)
    assert "chat-backend-00051-bad" in recurrence
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{issue.number}",)


def test_publish__issues_of_other_services_are_left_alone(standin: GitHubStandIn) -> None:
    number = standin.add_issue(
        title="billing is down",
        body=report.issue_marker("billing:ws-upgrade-status:502") + "\n",
        labels=("P0", "golden-path"),
    )
    _publish(standin, _passing(), pr=None)
    assert standin.repo().issues[number].state == "open"
    assert standin.count("PATCH", rf"{ISSUES}/\d+") == 0


def test_publish__issue_found_by_marker_not_title(standin: GitHubStandIn) -> None:
    marker = report.issue_marker("chat-backend:ws-upgrade-status:502")
    renamed = standin.add_issue(title="Renamed by triage", body=f"{marker}\nnotes", labels=("golden-path",))
    standin.add_issue(
        title=report.issue_title(_failing(), _failing().findings[0]),
        body="no marker",
        labels=("golden-path",),
    )
    outcome = _publish(standin, _failing(), pr=None)
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{renamed}",)
    assert len(standin.issues()) == 2
    assert len(standin.comments(renamed)) == 1


def test_publish__refused_assignees_open_the_issue_unassigned(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"assignees": ("not-a-collaborator",)})
    outcome = _publish(standin, _failing(), pr=None, settings=settings)
    (issue,) = standin.issues()
    assert issue.assignees == []
    assert "not-a-collaborator" in outcome.warnings[0]
    assert standin.count("POST", ISSUES) == 1  # filed without assignees, assigned after converging
    assert standin.count("PATCH", rf"{ISSUES}/\d+") == 1


def test_publish__without_labels_finds_issues_by_search(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"labels": ()})
    _publish(standin, _failing(), pr=None, settings=settings)
    _publish(standin, _failing(run_id="100-2"), pr=None, settings=settings)
    (issue,) = standin.issues()
    assert issue.labels == []
    assert len(standin.comments(issue.number)) == 1
    assert standin.count("GET", "/search/issues") >= 2


def test_publish__concurrent_issue_is_closed_as_duplicate(standin: GitHubStandIn) -> None:
    run = _failing()
    (finding,) = run.findings
    rival: list[int] = []

    def concurrent_run_opens_first() -> None:
        rival.append(
            standin.add_issue(
                title="rival", body=report.render_issue(run, finding), labels=("P0", "golden-path")
            )
        )

    standin.before(ISSUES, concurrent_run_opens_first, method="POST")
    outcome = _publish(standin, run, pr=None)
    kept, ours = standin.issues()
    assert kept.number == rival[0] and kept.state == "open"
    assert ours.state == "closed" and ours.state_reason == "not_planned"
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{kept.number}",)


def test_publish__twice_failing_then_passing__done_criteria(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    settings = SETTINGS.model_copy(update={"close_after_passes": 2})
    _publish(standin, _failing(run_id="1-1"), pr=pr, settings=settings)
    _publish(standin, _failing(run_id="2-1"), pr=pr, settings=settings)
    assert len(standin.comments(pr)) == 1
    (issue,) = standin.issues()
    assert issue.state == "open" and len(standin.comments(issue.number)) == 1
    _publish(standin, _passing(run_id="3-1"), pr=pr, settings=settings)
    _publish(standin, _passing(run_id="4-1"), pr=pr, settings=settings)
    assert issue.state == "closed"
    assert len(standin.comments(pr)) == 1
    assert len(standin.issues()) == 1


# -- publish: failures ------------------------------------------------------------------------------------------


def test_publish__fork_pr_read_only_token_warns(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA, head_repo="contributor/chat-backend")
    standin.read_only = True
    outcome = _publish(standin, _failing(), pr=pr)

    assert outcome.comment_url is None and outcome.issue_urls == ()
    assert len(outcome.warnings) == 2
    assert all("403" in w and "Resource not accessible by integration" in w for w in outcome.warnings)
    assert "fork" in outcome.warnings[0]
    assert standin.comments(pr) == [] and standin.issues() == []
    assert standin.count("POST", COMMENTS) == 1  # refused, not retried


def test_publish__5xx_then_success_on_get(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=502, method="GET", times=2)
    standin.fail(ISSUES, status=503, method="GET", times=1)
    outcome = _publish(standin, _failing(), pr=pr)
    assert outcome.comment_url is not None and outcome.warnings == ()
    assert standin.count("GET", COMMENTS) == 3 + 1  # 2 failures, the answer, and the listing after posting


def test_publish__5xx_on_get_exhausts_retries(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=503, method="GET", times=10)
    with pytest.raises(GitHubError, match=f"list the comments on PR #{pr}.*503") as caught:
        publish.publish(
            gh=_client(standin, retries=2), repo_name=REPO, run=_failing(), pr=pr, settings=SETTINGS
        )
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE
    assert standin.count("GET", COMMENTS) == 3


def test_publish__post_applied_then_502_is_found_not_resent(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=502, method="POST", apply=True)  # the proxy failed after GitHub applied it
    outcome = _publish(standin, _failing(), pr=pr)
    assert standin.count("POST", COMMENTS.replace(r"\d+", str(pr))) == 1
    (comment,) = standin.comments(pr)
    assert outcome.comment_url is not None and outcome.comment_url.endswith(f"#issuecomment-{comment.id}")
    _publish(standin, _failing(run_id="100-2"), pr=pr)
    assert len(standin.comments(pr)) == 1


def test_publish__post_refused_with_502_is_sent_again_once_checked(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=502, method="POST")  # not applied
    outcome = _publish(standin, _failing(), pr=pr)
    assert standin.count("POST", COMMENTS.replace(r"\d+", str(pr))) == 2
    assert len(standin.comments(pr)) == 1 and outcome.comment_url is not None


def test_publish__patch_failing_with_502_is_retried(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    _publish(standin, _failing(), pr=pr)
    standin.fail(r"/repos/acme/chat-backend/issues/comments/\d+", status=502, method="PATCH", apply=True)
    outcome = _publish(standin, _failing(run_id="100-2", revision="chat-backend-00050-new"), pr=pr)
    assert standin.count("PATCH", r"/repos/acme/chat-backend/issues/comments/\d+") == 2
    (comment,) = standin.comments(pr)
    assert "chat-backend-00050-new" in comment.body and outcome.warnings == ()


def test_publish__secondary_rate_limit_is_honoured(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.secondary_rate_limit(COMMENTS, method="POST", retry_after=1)
    standin.secondary_rate_limit(COMMENTS, method="GET", retry_after=0)
    started = time.monotonic()
    outcome = _publish(standin, _failing(), pr=pr)
    assert 0.9 <= time.monotonic() - started < 5
    assert outcome.comment_url is not None
    assert standin.count("POST", COMMENTS) == 2  # refused by the rate limit, so sending again is safe
    assert len(standin.comments(pr)) == 1


def test_publish__secondary_rate_limit_without_retry_after(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.secondary_rate_limit(COMMENTS, method="GET", retry_after=None)
    gh = _client(standin, secondary_rate_wait_s=0.05)
    outcome = publish.publish(gh=gh, repo_name=REPO, run=_failing(), pr=pr, settings=SETTINGS)
    assert outcome.comment_url is not None


def test_publish__primary_rate_limit_waits_for_reset(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    reset = str(int(time.time()) - 5)  # already reset: wait the 1 s safety margin only
    standin.fail(
        COMMENTS,
        status=403,
        method="GET",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
        message="API rate limit exceeded for installation ID 1.",
    )
    outcome = _publish(standin, _failing(), pr=pr)
    assert outcome.comment_url is not None


def test_publish__rate_limit_wait_over_budget_fails_fast(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.secondary_rate_limit(COMMENTS, method="POST", retry_after=3600)
    started = time.monotonic()
    with pytest.raises(GitHubError, match="wait 3600s"):
        publish.publish(
            gh=_client(standin, max_wait_s=10), repo_name=REPO, run=_failing(), pr=pr, settings=SETTINGS
        )
    assert time.monotonic() - started < 2
    assert standin.count("POST", COMMENTS) == 1


def test_publish__rate_limit_persisting_is_github_error(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=429, method="GET", times=10, headers={"Retry-After": "0"})
    with pytest.raises(GitHubError, match="list the comments"):
        _publish(standin, _failing(), pr=pr)
    assert standin.count("GET", COMMENTS) == 3


def test_publish__unreachable_github_is_github_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gh = github.client(token="t", base_url=f"http://127.0.0.1:{port}", retries=1, backoff_factor=0)
    with pytest.raises(GitHubError, match="could not reach GitHub"):
        publish.publish(gh=gh, repo_name=REPO, run=_failing(), pr=3, settings=SETTINGS)


def test_publish__missing_pr_is_a_warning(standin: GitHubStandIn) -> None:
    outcome = _publish(standin, _passing(), pr=99)
    assert outcome.comment_url is None
    assert "404" in outcome.warnings[0]


def test_publish__unexpected_validation_error_is_github_error(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=422, method="POST", message="Validation Failed")
    with pytest.raises(GitHubError, match="refused to comment on PR"):
        _publish(standin, _failing(), pr=pr)


def test_publish__post_answered_429_is_sent_again(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(
        COMMENTS, status=429, method="POST", headers={"Retry-After": "0"}, message="Too Many Requests"
    )
    outcome = _publish(standin, _failing(), pr=pr)
    assert outcome.comment_url is not None
    assert standin.count("POST", COMMENTS) == 2
    assert len(standin.comments(pr)) == 1


def test_publish__state_line_survives_a_hostile_title(standin: GitHubStandIn) -> None:
    run = _failing()
    (finding,) = run.findings
    hostile = replace(finding, title="closed --> <!-- golden-path:state {} -->")
    _publish(standin, replace(run, findings=(hostile,)), pr=None)
    (issue,) = standin.issues()
    (state_line,) = [
        line for line in (issue.body or "").splitlines() if line.startswith("<!-- golden-path:state ")
    ]
    assert state_line.count("-->") == 1 and state_line.endswith(" -->")
    _publish(standin, _passing(), pr=None)
    assert issue.state == "closed"
    (recovery,) = _issue_comments(standin, issue.number)
    assert "chat-backend-00043-abc" in recovery


# -- the stand-in itself -------------------------------------------------------------------------------------------


def test_github_standin__requires_the_token(standin: GitHubStandIn) -> None:
    import urllib.error
    import urllib.request

    for headers in ({}, {"Authorization": "token wrong"}):
        request = urllib.request.Request(f"{standin.api_url}/repos/{REPO}", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        caught.value.close()
    assert [r.status for r in standin.requests] == [401, 401]


def test_github_standin__urls_point_at_itself(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    gh = _client(standin)
    pull = gh.get_repo(REPO).get_pull(pr)
    assert pull.head.repo.full_name == REPO  # completes the lazy object from the stand-in's answer
    assert pull.url.startswith(standin.api_url) and pull.html_url.startswith(standin.server_url)
