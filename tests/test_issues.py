"""bot.issues, the P0 issue lifecycle, through bot.publish and the real PyGithub client against the GitHub stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from bot import publish, report
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
)
from tests.standins.github_api import GitHubStandIn


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
    assert standin.count("GET", ISSUES) == 1  # open issues only: no closed listing, the issue is open


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
