"""bot.github (client, PR discovery, sticky comment) and bot.publish, through the real PyGithub client talking to
the GitHub stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import github, publish, report, waits
from bot.actions import ActionsContext
from bot.errors import ExitCode, GitHubError
from bot.settings import GitHubSettings
from tests.github_support import COMMENTS, ISSUES, REPO, SETTINGS, SHA, client, failing, passing, publish_run
from tests.standins.github_api import GitHubStandIn

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(repo=REPO) as server:
        yield server


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


# -- client ------------------------------------------------------------------------------------------------------


def test_client__talks_to_ghes_style_prefix() -> None:
    with GitHubStandIn(repo=REPO, prefix="/api/v3") as server:
        number = server.add_pull(head_sha=SHA)
        outcome = publish_run(server, failing(), pr=number)
        assert outcome.comment_url is not None and outcome.comment_url.startswith(server.server_url)
        assert len(server.comments(number)) == 1


def test_client__sends_no_token_to_the_log(standin: GitHubStandIn) -> None:
    number = standin.add_pull(head_sha=SHA)
    publish_run(standin, failing(), pr=number)
    assert standin.token not in repr(standin.requests)


def test_client__bad_token_is_github_error(standin: GitHubStandIn) -> None:
    number = standin.add_pull(head_sha=SHA)
    gh = github.client(token="wrong", base_url=standin.api_url, retries=1)
    with pytest.raises(GitHubError, match="rejected the token") as caught:
        publish.publish(gh=gh, repo_name=REPO, run=failing(), pr=number, settings=SETTINGS)
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE


# -- PR discovery --------------------------------------------------------------------------------------------------


def test_find_pr__explicit_pr_wins(standin: GitHubStandIn, tmp_path: Path) -> None:
    ctx = _ctx("pull_request", "pull_request.synchronize.json", tmp_path)
    assert github.find_pr(gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=7) == 7
    assert standin.requests == []


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target"])
def test_find_pr__from_pull_request_payload(standin: GitHubStandIn, tmp_path: Path, event: str) -> None:
    ctx = _ctx(event, "pull_request.synchronize.json", tmp_path)
    assert github.find_pr(gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) == 2
    assert standin.requests == []  # the payload is enough


def test_find_pr__push_through_commit_pulls(tmp_path: Path) -> None:
    with GitHubStandIn(repo="Codertocat/Hello-World") as server:
        server.add_pull(head_sha="0" * 39 + "1", title="unrelated")
        number = server.add_pull(head_sha=SHA)
        ctx = _ctx("push", "push.json", tmp_path)
        found = github.find_pr(
            gh=client(server), repo_name="Codertocat/Hello-World", ctx=ctx, explicit_pr=None
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
    assert github.find_pr(gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) == head


def test_find_pr__push_of_a_merge_finds_the_merged_pr(standin: GitHubStandIn, tmp_path: Path) -> None:
    merged = standin.add_pull(head_sha="b" * 40, state="merged", merge_commit_sha=SHA, associate=False)
    ctx = _ctx("push", {"after": SHA}, tmp_path, sha=SHA)
    assert github.find_pr(gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) == merged


def test_find_pr__push_of_a_commit_a_stacked_pr_merely_contains_finds_no_pr(
    standin: GitHubStandIn, tmp_path: Path
) -> None:
    stacked = standin.add_pull(head_sha="c" * 40, associate=False)  # its head is a later commit on top of SHA
    standin.repo().commit_pulls[SHA] = [stacked]
    ctx = _ctx("push", {"after": SHA}, tmp_path)
    assert github.find_pr(gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) is None


def test_find_pr__push_without_pr_is_none(standin: GitHubStandIn, tmp_path: Path) -> None:
    ctx = _ctx("push", {"after": SHA}, tmp_path)
    assert github.find_pr(gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) is None


def test_find_pr__deployment_status_uses_the_deployed_sha(tmp_path: Path) -> None:
    with GitHubStandIn(repo="Codertocat/Hello-World") as server:
        number = server.add_pull(head_sha="f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
        ctx = _ctx("deployment_status", "deployment_status.json", tmp_path, sha="ignored")
        found = github.find_pr(
            gh=client(server), repo_name="Codertocat/Hello-World", ctx=ctx, explicit_pr=None
        )
        assert found == number


def test_find_pr__workflow_run_pull_requests_of_this_repo(standin: GitHubStandIn, tmp_path: Path) -> None:
    ctx = _ctx("workflow_run", "workflow_run.completed.with-pull-requests.json", tmp_path)
    found = github.find_pr(gh=client(standin), repo_name="Codertocat/Hello-World", ctx=ctx, explicit_pr=None)
    assert found == 2
    assert standin.requests == []


def test_find_pr__workflow_run_ignores_other_repos_prs(tmp_path: Path) -> None:
    with GitHubStandIn(repo="octo-org/octo-repo") as server:
        number = server.add_pull(head_sha="3484a3fb816e0859fd6e1cea078d76385ff50625")
        server.add_pull(head_sha="x" * 40, associate=False)  # would be #2, like the listed foreign PR
        ctx = _ctx("workflow_run", "workflow_run.completed.with-pull-requests.json", tmp_path)
        found = github.find_pr(gh=client(server), repo_name="octo-org/octo-repo", ctx=ctx, explicit_pr=None)
        assert found == number == 1


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch", None])
def test_find_pr__other_events_have_no_pr(standin: GitHubStandIn, tmp_path: Path, event: str | None) -> None:
    standin.add_pull(head_sha=SHA)
    ctx = _ctx(event, None, tmp_path, sha=SHA)
    assert github.find_pr(gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None) is None
    assert standin.requests == []


def test_find_pr__forbidden_is_a_warning(standin: GitHubStandIn, tmp_path: Path) -> None:
    standin.fail(r".*/pulls", status=403, message="Resource not accessible by integration")
    warnings: list[str] = []
    ctx = _ctx("push", {"after": SHA}, tmp_path)
    found = github.find_pr(
        gh=client(standin), repo_name=REPO, ctx=ctx, explicit_pr=None, warn=warnings.append
    )
    assert found is None
    assert "403" in warnings[0] and "Resource not accessible by integration" in warnings[0]


# -- publish: the sticky comment -------------------------------------------------------------------------------


def test_publish__first_run_comments_and_opens_issue(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    run = failing()
    outcome = publish_run(standin, run, pr=pr)

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
    first = publish_run(standin, failing(run_id="100-1"), pr=pr)
    (comment,) = standin.comments(pr)
    first_body = comment.body
    second = publish_run(standin, failing(run_id="100-2", revision="chat-backend-00043-abc"), pr=pr)

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
    publish_run(standin, failing("ws-upgrade-status"), pr=pr)
    outcome = publish_run(standin, failing("event-missing", run_id="101-1"), pr=pr)

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
    publish_run(standin, failing(), pr=pr)

    bodies = {c.id: c.body for c in standin.comments(pr)}
    assert len(bodies) == 4
    assert bodies[other].endswith("other service")


def test_publish__finds_its_comment_across_pages(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    publish_run(standin, failing(), pr=pr)
    for n in range(7):
        standin.add_comment(pr, f"review {n}", author="dev")
    gh = client(standin, per_page=3)
    publish.publish(gh=gh, repo_name=REPO, run=failing(run_id="100-2"), pr=pr, settings=SETTINGS)
    assert len(standin.comments(pr)) == 8
    assert standin.count("GET", COMMENTS.replace(r"\d+", str(pr))) >= 4  # 3 pages + the first run's listing


def test_publish__token_user_known_only_its_comments_count(standin: GitHubStandIn) -> None:
    standin.user_endpoint_forbidden = False  # a PAT: GET /user works
    pr = standin.add_pull(head_sha=SHA)
    marker = report.comment_marker("chat-backend")
    standin.user("renovate[bot]", type="Bot")
    foreign = standin.add_comment(pr, f"{marker}\nanother bot's copy", author="renovate[bot]")
    publish_run(standin, failing(), pr=pr)

    comments = standin.comments(pr)
    assert len(comments) == 2
    assert comments[0].id == foreign and comments[0].body.endswith("another bot's copy")
    assert standin.count("GET", "/user") == 0  # the issue GitHub just answered with named the token's user

    no_issues = SETTINGS.model_copy(update={"issues": False})
    publish_run(standin, passing(), pr=pr, settings=no_issues)  # nothing written before: asks GET /user once
    assert [c.id for c in standin.comments(pr)] == [foreign, comments[1].id]
    assert standin.count("GET", "/user") == 1


def test_publish__race_keeps_the_oldest_comment(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    run = failing()
    rival: list[int] = []

    def concurrent_run_posts_first() -> None:
        body = report.render_comment(run, history=[])
        rival.append(standin.add_comment(pr, body))

    standin.before(COMMENTS, concurrent_run_posts_first, method="POST")
    outcome = publish_run(standin, run, pr=pr)

    (comment,) = standin.comments(pr)
    assert comment.id == rival[0]
    assert outcome.comment_url is not None and outcome.comment_url.endswith(f"#issuecomment-{rival[0]}")
    assert standin.count("DELETE", r"/repos/acme/chat-backend/issues/comments/\d+") == 1


def test_publish__leftover_duplicates_are_cleaned(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    body = report.render_comment(failing(), history=[])
    oldest = standin.add_comment(pr, body)
    standin.add_comment(pr, body)
    publish_run(standin, failing(run_id="100-2"), pr=pr)
    assert [c.id for c in standin.comments(pr)] == [oldest]


def test_publish__no_pr_skips_the_comment(standin: GitHubStandIn) -> None:
    outcome = publish_run(standin, failing(), pr=None)
    assert outcome.comment_url is None
    assert len(outcome.issue_urls) == 1
    assert standin.count("POST", COMMENTS) == 0


def test_publish__comment_and_issues_can_be_switched_off(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    outcome = publish_run(standin, failing(), pr=pr, settings=GitHubSettings(comment=False, issues=False))
    assert outcome == publish.PublishOutcome(comment_url=None, issue_urls=(), warnings=())
    assert standin.requests == []


# -- publish: failures ------------------------------------------------------------------------------------------


def test_publish__fork_pr_read_only_token_warns(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA, head_repo="contributor/chat-backend")
    standin.read_only = True
    outcome = publish_run(standin, failing(), pr=pr)

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
    outcome = publish_run(standin, failing(), pr=pr)
    assert outcome.comment_url is not None and outcome.warnings == ()
    assert standin.count("GET", COMMENTS) == 3 + 1  # 2 failures, the answer, and the listing after posting


def test_publish__5xx_on_get_exhausts_retries(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=503, method="GET", times=10)
    with pytest.raises(GitHubError, match=f"list the comments on PR #{pr}.*503") as caught:
        publish.publish(
            gh=client(standin, retries=2), repo_name=REPO, run=failing(), pr=pr, settings=SETTINGS
        )
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE
    assert standin.count("GET", COMMENTS) == 3


def test_publish__post_applied_then_502_is_found_not_resent(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=502, method="POST", apply=True)  # the proxy failed after GitHub applied it
    outcome = publish_run(standin, failing(), pr=pr)
    assert standin.count("POST", COMMENTS.replace(r"\d+", str(pr))) == 1
    (comment,) = standin.comments(pr)
    assert outcome.comment_url is not None and outcome.comment_url.endswith(f"#issuecomment-{comment.id}")
    publish_run(standin, failing(run_id="100-2"), pr=pr)
    assert len(standin.comments(pr)) == 1


def test_publish__post_refused_with_502_is_sent_again_once_checked(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=502, method="POST")  # not applied
    outcome = publish_run(standin, failing(), pr=pr)
    assert standin.count("POST", COMMENTS.replace(r"\d+", str(pr))) == 2
    assert len(standin.comments(pr)) == 1 and outcome.comment_url is not None


def test_publish__reads_its_comment_back_after_the_settle_time(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    with waits.recorded() as asked:
        publish_run(standin, failing(), pr=pr, settings=SETTINGS.model_copy(update={"settle_s": 1.0}))
    settles = [w.seconds for w in asked if w.why == "github comment settle"]
    assert len(settles) == 1 and settles[0] >= 1.0  # a concurrent writer's edit lands within it
    assert len(standin.comments(pr)) == 1


def test_publish__patch_failing_with_502_is_retried(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    publish_run(standin, failing(), pr=pr)
    standin.fail(r"/repos/acme/chat-backend/issues/comments/\d+", status=502, method="PATCH", apply=True)
    outcome = publish_run(standin, failing(run_id="100-2", revision="chat-backend-00050-new"), pr=pr)
    assert standin.count("PATCH", r"/repos/acme/chat-backend/issues/comments/\d+") == 2
    (comment,) = standin.comments(pr)
    assert "chat-backend-00050-new" in comment.body and outcome.warnings == ()


def test_publish__secondary_rate_limit_is_honoured(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.secondary_rate_limit(COMMENTS, method="POST", retry_after=1)
    standin.secondary_rate_limit(COMMENTS, method="GET", retry_after=0)
    with waits.recorded() as asked:
        outcome = publish_run(standin, failing(), pr=pr)
    assert waits.Wait(1.0, "github retry") in asked  # Retry-After: 1
    assert outcome.comment_url is not None
    assert standin.count("POST", COMMENTS) == 2  # refused by the rate limit, so sending again is safe
    assert len(standin.comments(pr)) == 1


def test_publish__secondary_rate_limit_without_retry_after(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.secondary_rate_limit(COMMENTS, method="GET", retry_after=None)
    gh = client(standin, secondary_rate_wait_s=0.05)
    outcome = publish.publish(gh=gh, repo_name=REPO, run=failing(), pr=pr, settings=SETTINGS)
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
    outcome = publish_run(standin, failing(), pr=pr)
    assert outcome.comment_url is not None


def test_publish__rate_limit_wait_over_budget_fails_fast(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.secondary_rate_limit(COMMENTS, method="POST", retry_after=3600)
    started = time.monotonic()
    with pytest.raises(GitHubError, match="wait 3600s"):
        publish.publish(
            gh=client(standin, max_wait_s=10), repo_name=REPO, run=failing(), pr=pr, settings=SETTINGS
        )
    assert time.monotonic() - started < 2
    assert standin.count("POST", COMMENTS) == 1


def test_publish__rate_limit_persisting_is_github_error(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=429, method="GET", times=10, headers={"Retry-After": "0"})
    with pytest.raises(GitHubError, match=r"list the comments.*still limited after waiting once"):
        publish_run(standin, failing(), pr=pr)
    assert standin.count("GET", COMMENTS) == 2, "a rate limit is waited out once per request"


def test_publish__unreachable_github_is_github_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gh = github.client(token="t", base_url=f"http://127.0.0.1:{port}", retries=1, backoff_factor=0)
    with pytest.raises(GitHubError, match="could not reach GitHub"):
        publish.publish(gh=gh, repo_name=REPO, run=failing(), pr=3, settings=SETTINGS)


def test_publish__missing_pr_is_a_warning(standin: GitHubStandIn) -> None:
    outcome = publish_run(standin, passing(), pr=99)
    assert outcome.comment_url is None
    assert "404" in outcome.warnings[0]


def test_publish__unexpected_validation_error_is_github_error(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENTS, status=422, method="POST", message="Validation Failed")
    with pytest.raises(GitHubError, match="refused to comment on PR"):
        publish_run(standin, failing(), pr=pr)


def test_publish__post_answered_429_is_sent_again(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(
        COMMENTS, status=429, method="POST", headers={"Retry-After": "0"}, message="Too Many Requests"
    )
    outcome = publish_run(standin, failing(), pr=pr)
    assert outcome.comment_url is not None
    assert standin.count("POST", COMMENTS) == 2
    assert len(standin.comments(pr)) == 1


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
    gh = client(standin)
    pull = gh.get_repo(REPO).get_pull(pr)
    assert pull.head.repo.full_name == REPO  # completes the lazy object from the stand-in's answer
    assert pull.url.startswith(standin.api_url) and pull.html_url.startswith(standin.server_url)


# -- tracks --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("explicit", "tag", "tested", "event", "payload", "ref", "expected"),
    [
        ("canary", "pr-7", True, "pull_request", {"number": 7}, None, "canary"),  # github.track wins
        (None, "pr-7", True, "push", {}, "refs/heads/main", "pr-7"),  # the tag whose URL was tested
        (None, "pr-7", False, "pull_request", {"number": 8}, None, "pr-8"),  # a tag not tested at its URL
        (None, None, False, "pull_request", {"pull_request": {"number": 9}}, None, "pr-9"),
        (
            None,
            None,
            False,
            "push",
            {"repository": {"default_branch": "trunk"}},
            "refs/heads/trunk",
            "production",
        ),
        (None, None, False, "push", {}, "refs/heads/main", "production"),
        (None, None, False, "push", {}, "refs/heads/release/1.2", "release/1.2"),
        (None, None, False, "schedule", {}, "refs/heads/main", "production"),
        (None, None, False, None, None, None, "production"),
    ],
)
def test_track_for__explicit_then_tag_then_pr_then_branch(
    tmp_path: Path,
    explicit: str | None,
    tag: str | None,
    tested: bool,
    event: str | None,
    payload: dict[str, object] | None,
    ref: str | None,
    expected: str,
) -> None:
    ctx = _ctx(event, payload, tmp_path, **({"ref": ref} if ref else {}))
    assert github.track_for(explicit=explicit, tag=tag, tag_tested=tested, ctx=ctx) == expected


# -- waits and pages -----------------------------------------------------------------------------------------------


def test_settle_wait__excludes_the_time_slept_on_a_rate_limit() -> None:
    # Retry-After: 20 while reading: the gap was 20.4 s, of which 20 s asleep; a concurrent writer's gap is 0.4 s.
    assert github.settle_wait(1.0, gap_s=20.4, slept_s=20.0) == pytest.approx(1.0)
    assert github.settle_wait(0.3, gap_s=2.5, slept_s=0.0) == pytest.approx(5.0)
    assert github.settle_wait(0.3, gap_s=0.1, slept_s=0.0) == pytest.approx(0.3)


def test_client__primary_rate_limit_waits_for_the_reset_once(standin: GitHubStandIn) -> None:
    standin.primary_rate_limit(ISSUES, reset_in_s=0)
    outcome = publish_run(standin, failing(), pr=None)
    assert len(outcome.issue_urls) == 1
    listings = [r.status for r in standin.requests if r.method == "GET" and r.path == ISSUES]
    assert listings[:2] == [403, 200]


def test_client__retry_after_is_honoured_and_counted(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.secondary_rate_limit(COMMENTS, method="GET", retry_after=1)
    counter = github.RequestCounter()
    gh = github.client(
        token=standin.token, base_url=standin.api_url, retries=2, backoff_factor=0, counter=counter
    )
    slept = github.retry_slept_s()
    publish.publish(gh=gh, repo_name=REPO, run=failing(), pr=pr, settings=SETTINGS, backoff_s=0)
    assert github.retry_slept_s() - slept == pytest.approx(1.0)
    assert counter.total == len(standin.requests)
    assert len(standin.comments(pr)) == 1


def test_list_json__pages_past_ten_to_the_end(standin: GitHubStandIn) -> None:
    for n in range(1_050):
        standin.add_issue(title=f"issue {n}", body="", labels=("golden-path",))
    items = github.list_json(
        client(standin), ISSUES, {"state": "open", "labels": "golden-path", "per_page": 100}
    )
    assert len(items) == 1_050
    assert standin.count("GET", ISSUES) == 11


def test_list_json__warns_naming_the_budget_when_reached(standin: GitHubStandIn) -> None:
    for n in range(250):
        standin.add_issue(title=f"issue {n}", body="")
    warnings: list[str] = []
    items = github.list_json(
        client(standin),
        ISSUES,
        {"per_page": 100},
        max_requests=2,
        what="the open issues",
        warn=warnings.append,
    )
    assert len(items) == 200 and standin.count("GET", ISSUES) == 2
    (warning,) = warnings
    assert (
        "github.max_list_requests" in warning
        and "after 2 requests" in warning
        and "the open issues" in warning
    )


def test_publish__exit_3_keeps_what_succeeded(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(r"/repos/acme/chat-backend/issues/comments/\d+", status=500, method="GET", times=100)
    with pytest.raises(publish.PublishFailed, match="read back") as caught:
        publish_run(standin, failing(), pr=pr)
    outcome = caught.value.outcome
    (issue,) = standin.issues()
    (comment,) = standin.comments(pr)
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{issue.number}",)
    assert outcome.comment_url is not None and outcome.comment_url.endswith(f"#issuecomment-{comment.id}")
    assert caught.value.exit_code is ExitCode.INFRASTRUCTURE


def test_upsert_comment__the_settle_wait_leaves_out_a_rate_limit_sleep(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    settings = SETTINGS.model_copy(update={"settle_s": 1.0})
    publish_run(standin, passing(run_id="1-1"), pr=pr, settings=settings)
    standin.secondary_rate_limit(
        r"/repos/acme/chat-backend/issues/comments/\d+", method="PATCH", retry_after=20
    )
    with waits.recorded() as asked:
        publish_run(standin, passing(run_id="2-1"), pr=pr, settings=settings)
    # Retry-After: 20 on the edit costs 20 s and the settle its own 1 s (it used to be 2 x 20 s more).
    assert [(w.why, w.seconds) for w in asked] == [("github retry", 20.0), ("github comment settle", 1.0)]
    edits = [r.status for r in standin.requests if r.method == "PATCH"]
    assert edits == [403, 200]
