"""bot.issues, the P0 issue lifecycle, through bot.publish and the real PyGithub client against the GitHub stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot import publish, report
from bot.errors import GitHubError
from tests import samples
from tests.github_support import (
    ISSUES,
    REPO,
    SETTINGS,
    SHA,
    client,
    failing,
    issue_comments,
    passing,
    publish_run,
    requests_during,
)
from tests.standins.github_api import GitHubStandIn

LEGACY_ISSUE = Path(__file__).parent.parent / "fixtures" / "github" / "issue-before-tracks.md"


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(repo=REPO) as server:
        yield server


# -- the lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("passes", [1, 2])
def test_sync__recovery_after_n_passes_closes(standin: GitHubStandIn, passes: int) -> None:
    settings = SETTINGS.model_copy(update={"close_after_passes": passes})
    publish_run(standin, failing(), pr=None, settings=settings)
    (issue,) = standin.issues()
    for n in range(1, passes):
        publish_run(standin, passing(run_id=f"20{n}-1", revision=f"rev-{n}"), pr=None, settings=settings)
        assert issue.state == "open"
        assert standin.comments(issue.number) == []
    outcome = publish_run(standin, passing(revision="chat-backend-00050-fix"), pr=None, settings=settings)

    assert issue.state == "closed" and issue.state_reason == "completed"
    (recovery,) = issue_comments(standin, issue.number)
    assert "chat-backend-00050-fix" in recovery
    assert outcome.issue_urls == ()


def test_sync__failing_run_breaks_the_recovery_streak(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"close_after_passes": 2})
    publish_run(standin, failing("ws-upgrade-status"), pr=None, settings=settings)
    (issue,) = standin.issues()
    publish_run(standin, passing(run_id="201-1"), pr=None, settings=settings)
    publish_run(standin, failing("event-missing", run_id="202-1"), pr=None, settings=settings)  # other P0
    publish_run(standin, passing(run_id="203-1"), pr=None, settings=settings)
    assert issue.state == "open"
    publish_run(standin, passing(run_id="204-1"), pr=None, settings=settings)
    assert issue.state == "closed"


def test_sync__degraded_run_counts_as_a_pass(standin: GitHubStandIn) -> None:
    publish_run(standin, failing(), pr=None)
    publish_run(standin, passing(name="degraded"), pr=None)
    (issue,) = standin.issues()
    assert issue.state == "closed"


def test_sync__closed_issue_reopens_on_recurrence(standin: GitHubStandIn) -> None:
    publish_run(standin, failing(), pr=None)
    publish_run(standin, passing(), pr=None)
    (issue,) = standin.issues()
    assert issue.state == "closed"
    outcome = publish_run(standin, failing(run_id="300-1", revision="chat-backend-00051-bad"), pr=None)

    assert len(standin.issues()) == 1
    assert issue.state == "open" and issue.state_reason == "reopened"
    _recovery, recurrence = issue_comments(standin, issue.number)
    assert "chat-backend-00051-bad" in recurrence
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{issue.number}",)


def test_sync__issues_of_other_services_are_left_alone(standin: GitHubStandIn) -> None:
    number = standin.add_issue(
        title="billing is down",
        body=report.issue_marker("billing:ws-upgrade-status:502") + "\n",
        labels=("P0", "golden-path"),
    )
    publish_run(standin, passing(), pr=None)
    assert standin.repo().issues[number].state == "open"
    assert standin.count("PATCH", rf"{ISSUES}/\d+") == 0


def test_sync__issue_found_by_marker_not_title(standin: GitHubStandIn) -> None:
    marker = report.issue_marker("chat-backend:ws-upgrade-status:502")
    renamed = standin.add_issue(title="Renamed by triage", body=f"{marker}\nnotes", labels=("golden-path",))
    standin.add_issue(
        title=report.issue_title(failing(), failing().findings[0]),
        body="no marker",
        labels=("golden-path",),
    )
    outcome = publish_run(standin, failing(), pr=None)
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{renamed}",)
    assert len(standin.issues()) == 2
    assert len(standin.comments(renamed)) == 1


def test_sync__refused_assignees_open_the_issue_unassigned(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"assignees": ("not-a-collaborator",)})
    outcome = publish_run(standin, failing(), pr=None, settings=settings)
    (issue,) = standin.issues()
    assert issue.assignees == []
    assert "not-a-collaborator" in outcome.warnings[0]
    assert standin.count("POST", ISSUES) == 1  # filed without assignees, assigned after converging
    assert standin.count("PATCH", rf"{ISSUES}/\d+") == 1


def test_sync__without_labels_finds_issues_by_search(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"labels": ()})
    publish_run(standin, failing(), pr=None, settings=settings)
    publish_run(standin, failing(run_id="100-2"), pr=None, settings=settings)
    (issue,) = standin.issues()
    assert issue.labels == []
    assert len(standin.comments(issue.number)) == 1
    assert standin.count("GET", "/search/issues") >= 2


def test_sync__concurrent_issue_is_closed_as_duplicate(standin: GitHubStandIn) -> None:
    run = failing()
    (finding,) = run.findings
    rival: list[int] = []

    def concurrent_run_opens_first() -> None:
        rival.append(
            standin.add_issue(
                title="rival", body=report.render_issue(run, finding), labels=("P0", "golden-path")
            )
        )

    standin.before(ISSUES, concurrent_run_opens_first, method="POST")
    outcome = publish_run(standin, run, pr=None)
    kept, ours = standin.issues()
    assert kept.number == rival[0] and kept.state == "open"
    assert ours.state == "closed" and ours.state_reason == "not_planned"
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{kept.number}",)


def test_sync__twice_failing_then_passing__done_criteria(standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    settings = SETTINGS.model_copy(update={"close_after_passes": 2})
    publish_run(standin, failing(run_id="1-1"), pr=pr, settings=settings)
    publish_run(standin, failing(run_id="2-1"), pr=pr, settings=settings)
    assert len(standin.comments(pr)) == 1
    (issue,) = standin.issues()
    assert issue.state == "open" and len(standin.comments(issue.number)) == 1
    publish_run(standin, passing(run_id="3-1"), pr=pr, settings=settings)
    publish_run(standin, passing(run_id="4-1"), pr=pr, settings=settings)
    assert issue.state == "closed"
    assert len(standin.comments(pr)) == 1
    assert len(standin.issues()) == 1


def test_sync__state_line_survives_a_hostile_title(standin: GitHubStandIn) -> None:
    run = failing()
    (finding,) = run.findings
    hostile = replace(finding, title="closed --> <!-- golden-path:state {} -->")
    publish_run(standin, replace(run, findings=(hostile,)), pr=None)
    (issue,) = standin.issues()
    (state_line,) = [
        line for line in (issue.body or "").splitlines() if line.startswith("<!-- golden-path:state ")
    ]
    assert state_line.count("-->") == 1 and state_line.endswith(" -->")
    publish_run(standin, passing(), pr=None)
    assert issue.state == "closed"
    (recovery,) = issue_comments(standin, issue.number)
    assert "chat-backend-00043-abc" in recovery


# -- races, windows and cost --------------------------------------------------------------------------------------

FINGERPRINT = "chat-backend:ws-upgrade-status:502"


def _seed(
    standin: GitHubStandIn, *, state: str = "open", note: str = "", fingerprint: str = FINGERPRINT
) -> int:
    body = (
        f"{note}\n\n{report.issue_marker(fingerprint)}\n" if note else report.issue_marker(fingerprint) + "\n"
    )
    return standin.add_issue(title="P0", body=body, labels=("P0", "golden-path"), state=state)


def test_sync__a_closed_duplicate_is_never_reopened(standin: GitHubStandIn) -> None:
    canonical = _seed(standin, state="closed")
    duplicate = _seed(standin, state="closed", note="> Duplicate of #1 (golden-path: a concurrent run ...).")
    standin.repo().issues[duplicate].state_reason = "not_planned"
    outcome = publish_run(standin, failing(), pr=None)
    issues = standin.repo().issues
    assert issues[canonical].state == "open" and issues[duplicate].state == "closed"
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{canonical}",)


def test_sync__leftover_duplicates_are_closed_before_the_recurrence(standin: GitHubStandIn) -> None:
    first, second = _seed(standin), _seed(standin)
    publish_run(standin, failing(), pr=None)
    issues = standin.repo().issues
    assert issues[second].state == "closed" and issues[second].state_reason == "not_planned"
    assert f"Duplicate of #{first}" in (issues[second].body or "")
    assert len(standin.comments(first)) == 1 and standin.comments(second) == []


def test_sync__an_incident_closed_long_ago_stays_closed(standin: GitHubStandIn) -> None:
    old = _seed(standin, state="closed")
    standin.ages(days=45)
    publish_run(standin, failing(), pr=None)
    assert standin.repo().issues[old].state == "closed"
    assert len([i for i in standin.issues() if i.state == "open"]) == 1
    closed_listing = [r for r in standin.requests if r.query.get("state") == "closed"]
    assert closed_listing and all("since" in r.query for r in closed_listing)


def test_sync__listed_issues_are_never_fetched_one_by_one(standin: GitHubStandIn) -> None:
    for n in range(30):
        _seed(standin, fingerprint=f"billing-{n}:ws-upgrade-status:502")
    _seed(standin)
    publish_run(standin, failing(), pr=None)
    assert standin.count("GET", rf"{ISSUES}/\d+") == 0
    assert standin.count("GET", "/search/issues") == 1  # one search shows the open issue: no listing at all
    assert standin.count("GET", ISSUES) == 0


def test_sync__a_rerun_counts_its_pass_once(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"close_after_passes": 2})
    publish_run(standin, failing(), pr=None, settings=settings)
    trail = report.Trail(run_key="77")
    for attempt in (1, 2):
        gh_outcome = publish.publish(
            gh=client(standin), repo_name=REPO, run=passing(run_id=f"p{attempt}"), pr=None,
            settings=settings, trail=trail, run_attempt=attempt, backoff_s=0,
        )  # fmt: skip
        assert gh_outcome.warnings == ()
    (issue,) = standin.issues()
    assert issue.state == "open", "a re-run of one passing workflow run is still one pass"


# -- labels GitHub did not keep ------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/api/v3"])  # github.com, and GHES's API prefix
@pytest.mark.parametrize("labels_exist", [True, False])
def test_sync__labels_dropped_three_failing_runs_leave_one_issue(prefix: str, labels_exist: bool) -> None:
    with GitHubStandIn(repo=REPO, prefix=prefix) as standin:
        if labels_exist:
            standin.add_label("P0")
            standin.add_label("golden-path")
        standin.push_access = False  # GitHub drops existing labels silently and refuses (403) unknown ones
        first = publish_run(standin, failing(run_id="1-1"), pr=None, run_key="1")
        publish_run(standin, failing(run_id="2-1"), pr=None, run_key="2")
        steady = requests_during(
            standin, lambda: publish_run(standin, failing(run_id="3-1"), pr=None, run_key="3")
        )
        (issue,) = standin.issues()
        assert issue.state == "open" and issue.labels == []
        assert ["Seen again" in b for b in issue_comments(standin, issue.number)] == [True, True]
        assert any("labels need push access" in w for w in first.warnings), first.warnings
        assert steady == 2  # the search that finds it by its marker, the comment


def test_sync__labels_refused_with_422_are_left_off(standin: GitHubStandIn) -> None:
    standin.labels_refused_with = 422
    outcome = publish_run(standin, failing(), pr=None, run_key="1")
    publish_run(standin, failing(run_id="2-1"), pr=None, run_key="2")
    (issue,) = standin.issues()
    assert issue.labels == [] and len(standin.comments(issue.number)) == 1
    assert any("labels need push access" in w and "422" in w for w in outcome.warnings), outcome.warnings
    assert [r.status for r in standin.requests if r.method == "POST" and r.path == ISSUES] == [422, 201]


def test_sync__a_refused_search_falls_back_to_listing(standin: GitHubStandIn) -> None:
    standin.push_access = False
    standin.search_refused_with = 422  # GHES without a search index
    publish_run(standin, failing(), pr=None, run_key="1")
    publish_run(standin, failing(run_id="2-1"), pr=None, run_key="2")
    (issue,) = standin.issues()
    assert len(standin.comments(issue.number)) == 1
    publish_run(standin, passing(), pr=None, run_key="3")
    assert issue.state == "closed" and issue.state_reason == "completed"


# -- tracks --------------------------------------------------------------------------------------------------------


def test_sync__a_pass_on_another_track_never_closes_the_incident(standin: GitHubStandIn) -> None:
    publish_run(standin, failing(run_id="1-1"), pr=None, track="pr-7", run_key="1")
    (issue,) = standin.issues()
    assert issue.title.endswith("(chat-backend, pr-7)")
    assert report.has_marker(issue.body or "", report.issue_marker(failing().findings[0].fingerprint, "pr-7"))
    for n in (2, 4):  # PR 8's revision passes, PR 7's keeps failing: four alternating runs
        publish_run(standin, passing(run_id=f"{n}-1"), pr=None, track="pr-8", run_key=str(n))
        assert issue.state == "open"
        publish_run(standin, failing(run_id=f"{n + 1}-1"), pr=None, track="pr-7", run_key=str(n + 1))
    assert issue.state == "open" and issue.state_reason is None
    assert ["Seen again" in b for b in issue_comments(standin, issue.number)] == [True, True]
    publish_run(standin, passing(run_id="6-1"), pr=None, track="pr-7", run_key="6")
    assert issue.state == "closed" and issue.state_reason == "completed"
    assert len(standin.issues()) == 1


def test_sync__an_issue_filed_before_tracks_is_the_production_track(standin: GitHubStandIn) -> None:
    legacy = standin.add_issue(
        title="P0: WebSocket closed before agent_completed (chat-backend)",
        body=LEGACY_ISSUE.read_text(encoding="utf-8"),
        labels=("P0", "golden-path"),
    )
    broken = replace(samples.run("ws-closed-early"), run_id="300-1")
    publish_run(standin, broken, pr=None, track="pr-7", run_key="300")
    assert len(standin.issues()) == 2 and standin.comments(legacy) == []
    publish_run(standin, broken, pr=None, run_key="301")  # the default track: production
    assert len(standin.issues()) == 2 and len(standin.comments(legacy)) == 1
    publish_run(standin, passing(), pr=None, run_key="302")
    old, pr7 = sorted(standin.issues(), key=lambda i: i.number)
    assert (old.state, old.state_reason) == ("closed", "completed")
    assert pr7.state == "open" and "pr-7" in pr7.title


# -- re-runs and closes --------------------------------------------------------------------------------------------


def test_sync__a_rerun_that_passes_posts_its_recovery_once(standin: GitHubStandIn) -> None:
    publish_run(standin, failing(run_id="1-1"), pr=None, run_key="1")
    publish_run(standin, failing(run_id="2-1"), pr=None, run_key="2")
    (issue,) = standin.issues()
    for attempt in (2, 3):  # "Re-run jobs" of workflow run 2, which now passes (twice)
        publish_run(standin, passing(run_id=f"2-{attempt}"), pr=None, run_key="2", attempt=attempt)
    seen_again, recovered = issue_comments(standin, issue.number)
    assert "Seen again" in seen_again and "Recovered" in recovered
    assert issue.state == "closed" and issue.state_reason == "completed"


def test_sync__a_close_that_keeps_failing_posts_its_recovery_once(standin: GitHubStandIn) -> None:
    publish_run(standin, failing(run_id="1-1"), pr=None, run_key="1")
    (issue,) = standin.issues()
    standin.fail(rf"{ISSUES}/{issue.number}", status=500, method="PATCH", times=1_000)
    for n in (2, 3, 4):
        with pytest.raises(GitHubError, match=f"close issue #{issue.number}"):
            publish_run(standin, passing(run_id=f"{n}-1"), pr=None, run_key=str(n))
    assert issue.state == "open"
    standin.heal()
    publish_run(standin, passing(run_id="5-1"), pr=None, run_key="5")
    assert issue.state == "closed" and issue.state_reason == "completed"
    (recovered,) = issue_comments(standin, issue.number)
    assert "Recovered" in recovered


# -- people's decisions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["not_planned", "duplicate"])
def test_sync__an_issue_a_person_declined_is_not_reopened(standin: GitHubStandIn, reason: str) -> None:
    settings = SETTINGS.model_copy(update={"reopen_after_runs": 3})
    pr = standin.add_pull(head_sha=SHA)
    publish_run(standin, failing(run_id="1-1"), pr=pr, settings=settings, run_key="1")
    (old,) = standin.issues()
    standin.close_as_person(old.number, reason)
    for n in (2, 3):
        outcome = publish_run(standin, failing(run_id=f"{n}-1"), pr=pr, settings=settings, run_key=str(n))
        assert (old.state, old.state_reason) == ("closed", reason)
        assert standin.comments(old.number) == [] and len(standin.issues()) == 1
        (comment,) = standin.comments(pr)
        assert f"/issues/{old.number})" in comment.body and "not reopened" in comment.body
        assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{old.number}",)
    publish_run(standin, failing(run_id="3-2"), pr=pr, settings=settings, run_key="3", attempt=2)  # a re-run
    assert len(standin.issues()) == 1, "a re-run is not another failing run"
    publish_run(standin, failing(run_id="4-1"), pr=pr, settings=settings, run_key="4")
    same_old, new = sorted(standin.issues(), key=lambda i: i.number)
    assert (same_old.state, same_old.state_reason) == ("closed", reason)
    assert new.state == "open" and f"{standin.server_url}/{REPO}/issues/{old.number}" in (new.body or "")


def test_sync__an_issue_whose_marker_was_removed_by_hand_is_not_duplicated(standin: GitHubStandIn) -> None:
    publish_run(standin, failing(run_id="1-1"), pr=None, run_key="1")
    (issue,) = standin.issues()
    marker = report.issue_marker(failing().findings[0].fingerprint)
    standin.edit_as_person(
        issue.number, "\n".join(line for line in (issue.body or "").splitlines() if line.strip() != marker)
    )
    outcome = publish_run(standin, failing(run_id="2-1"), pr=None, run_key="2")
    assert len(standin.issues()) == 1 and len(standin.comments(issue.number)) == 1
    assert any(f"#{issue.number} has lost its hidden marker" in w for w in outcome.warnings), outcome.warnings
    assert outcome.issue_urls == (f"{standin.server_url}/{REPO}/issues/{issue.number}",)


# -- pages ---------------------------------------------------------------------------------------------------------


def test_sync__finds_its_issue_past_ten_pages_of_open_issues(standin: GitHubStandIn) -> None:
    standin.search_refused_with = 422  # GHES without a search index: the open issues are listed instead
    publish_run(standin, failing(run_id="1-1"), pr=None, run_key="1")
    (issue,) = standin.issues()
    for n in range(1_050):  # newer issues of other teams: ours is on page 11
        standin.add_issue(title=f"other {n}", body="", labels=("golden-path",))
    count = requests_during(
        standin, lambda: publish_run(standin, failing(run_id="2-1"), pr=None, run_key="2")
    )
    assert len(standin.comments(issue.number)) == 1 and len(standin.issues()) == 1_051
    assert (
        count == 1 + 11 + 1 + 1
    )  # the refused search, every page of open issues, the closed ones, the comment


def test_sync__a_listing_budget_reached_is_a_warning_naming_it(standin: GitHubStandIn) -> None:
    settings = SETTINGS.model_copy(update={"max_list_requests": 3})
    standin.search_refused_with = 422
    for n in range(1_050):
        standin.add_issue(title=f"other {n}", body="", labels=("golden-path",))
    outcome = publish_run(standin, passing(), pr=None, settings=settings, run_key="1")
    (warning,) = outcome.warnings
    assert (
        "github.max_list_requests" in warning and "after 3 requests" in warning and "open issues" in warning
    )
    assert standin.count("GET", ISSUES) == 3 + 1  # three pages of open issues, one of closed ones


# -- one issue per root cause --------------------------------------------------------------------------------------


def test_sync__one_issue_per_root_cause_lists_every_finding(standin: GitHubStandIn) -> None:
    publish_run(standin, samples.stalled("1-1"), pr=None, run_key="1")
    publish_run(standin, samples.stalled("2-1"), pr=None, run_key="2")
    (issue,) = standin.issues()
    assert report.has_marker(
        issue.body or "", report.issue_marker("chat-backend:event-missing:agent_started")
    )
    for event in ("agent_thinking", "tool_executing", "tool_completed"):
        assert f"chat-backend:event-missing:{event}" in (issue.body or "")
    assert len(standin.comments(issue.number)) == 1
    publish_run(standin, passing(), pr=None, run_key="3")
    assert issue.state == "closed"
