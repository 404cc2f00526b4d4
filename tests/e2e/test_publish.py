"""Publishing as a team meets it: the real CLI (``bot.cli.main``) against the reference backend and the GitHub
stand-in, with concurrent runs, request budgets and faults (a write applied then answered 5xx, 403 on
``GET /user``, latency)."""

from __future__ import annotations

import io
import json
import re
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bot import report, waits
from bot.cli import main
from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from tests import samples
from tests.standins.github_api import GitHubStandIn, Issue

SECRET = "publish-test-secret-0123456789abcdefghijklmnop"
REPO = "acme/chat-backend"
SHA = "abc1234def5678abc1234def5678abc1234def56"
ISSUES = r"/repos/acme/chat-backend/issues"
ISSUE_COMMENTS = r"/repos/acme/chat-backend/issues/\d+/comments"
COMMENT = r"/repos/acme/chat-backend/issues/comments/\d+"
CONFIG = (
    "journey:\n  event_timeout_s: 2\n  users: 1\nwebsocket:\n  open_timeout_s: 2\n"
    "github:\n  settle_s: 0.1\n  assignees: [octocat]\n"
)
FINGERPRINT = "chat-backend:ws-upgrade-status:502"


@pytest.fixture(scope="module")
def broken() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version=SHA, faults=parse_faults(["ws-502"])) as server:
        yield server


@pytest.fixture(scope="module")
def healthy() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version=SHA) as server:
        yield server


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(repo=REPO) as server:
        yield server


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def requests(self) -> int:
        (count,) = re.findall(r"GitHub requests: (\d+)", self.err)
        return int(count)


@dataclass
class Deploys:
    """Runs of ``golden-path check --publish`` as a deploy workflow would make them."""

    standin: GitHubStandIn
    tmp: Path
    broken: ReferenceServer
    healthy: ReferenceServer
    config_text: str = CONFIG

    def run(
        self,
        run_id: str,
        *,
        ok: bool = False,
        service: str | None = "chat-backend",
        pr: int | None = None,
        attempt: str = "1",
        extra_config: str = "",
        event: tuple[str, dict[str, object]] | None = None,
    ) -> Result:
        """``event``: the event name and payload (GITHUB_EVENT_NAME/GITHUB_EVENT_PATH), default a push."""
        config = self.tmp / f"config-{run_id}.yml"
        config.write_text(self.config_text + extra_config)
        url = (self.healthy if ok else self.broken).url
        argv = ["check", "--url", url, "--publish", "--quiet", "--verbose", "--config", str(config),
                "--output-dir", str(self.tmp / f"out-{run_id}-{attempt}")]  # fmt: skip
        if service is not None:
            argv += ["--service", service]
        if pr is not None:
            argv += ["--pr", str(pr)]
        env = {
            "GITHUB_TOKEN": self.standin.token,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": self.standin.api_url,
            "GITHUB_SERVER_URL": self.standin.server_url,
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_SHA": SHA,
            "GITHUB_RUN_ID": run_id,
            "GITHUB_RUN_ATTEMPT": attempt,
            "JWT_SECRET_KEY": SECRET,
        }
        if event is not None:
            payload = self.tmp / f"event-{run_id}-{attempt}.json"
            payload.write_text(json.dumps(event[1]))
            env |= {"GITHUB_EVENT_NAME": event[0], "GITHUB_EVENT_PATH": str(payload)}
        out, err = io.StringIO(), io.StringIO()
        code = main(argv, env=env, stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue())

    def together(self, *runs: dict[str, object]) -> list[Result]:
        """Start the runs at the same moment, each in its own thread (``main`` is re-entrant).

        The waits are real here: the comment's settle is how concurrent writers see each other's edits."""
        results: list[Result | None] = [None] * len(runs)
        start = threading.Barrier(len(runs))

        def one(index: int, kwargs: dict[str, object]) -> None:
            start.wait(timeout=10)
            results[index] = self.run(**kwargs)  # type: ignore[arg-type]

        threads = [threading.Thread(target=one, args=(i, kw)) for i, kw in enumerate(runs)]
        with waits.set_testing(False):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]


@pytest.fixture
def deploys(
    standin: GitHubStandIn, tmp_path: Path, broken: ReferenceServer, healthy: ReferenceServer
) -> Deploys:
    return Deploys(standin, tmp_path, broken, healthy)


def _ours(standin: GitHubStandIn, fingerprint: str = FINGERPRINT, track: str = "production") -> list[Issue]:
    marker = report.issue_marker(fingerprint, track)
    return [i for i in standin.issues() if report.has_marker(i.body or "", marker)]


def _open(standin: GitHubStandIn, fingerprint: str = FINGERPRINT) -> list[Issue]:
    return [i for i in _ours(standin, fingerprint) if i.state == "open"]


def _run_urls(body: str) -> set[str]:
    return {e.run_url or "" for e in report.decode_history(body)}


# -- races ------------------------------------------------------------------------------------------------------


def _seed_comment(standin: GitHubStandIn, pr: int, service: str) -> tuple[int, str]:
    """The sticky comment an earlier deploy left: its history entry must survive too."""
    earlier = samples.run("ws-upgrade-status")
    run_url = f"{standin.server_url}/{REPO}/actions/runs/earlier"
    earlier = replace(earlier, run_url=run_url, target=replace(earlier.target, service=service))
    return standin.add_comment(pr, report.render_comment(earlier, history=[])), run_url


def test_publish__concurrent_failing_runs_leave_one_issue_and_every_history_entry(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    standin.latency_s = 0.005
    raced = 0
    for pair in range(20):
        service = f"chat-{pair}"
        pr = standin.add_pull(head_sha=SHA)
        expected = {f"{standin.server_url}/{REPO}/actions/runs/{pair}0{n}" for n in (1, 2)}
        # The worst cases, forced: both runs file the issue; then both create the comment, or both edit the
        # existing one from the same starting point (a lost update unless they merge). Every third pair races
        # on its own.
        if pair % 3 != 2:
            standin.rendezvous(ISSUES, method="POST")
        if pair % 3 == 0:
            standin.rendezvous(ISSUE_COMMENTS.replace(r"\d+", str(pr)), method="POST")
        else:
            comment_id, earlier = _seed_comment(standin, pr, service)
            expected.add(earlier)
            if pair % 3 == 1:
                standin.rendezvous(COMMENT.replace(r"\d+", str(comment_id)), method="PATCH")
        first, second = deploys.together(
            {"run_id": f"{pair}01", "service": service, "pr": pr},
            {"run_id": f"{pair}02", "service": service, "pr": pr},
        )
        assert (first.code, second.code) == (1, 1), first.err + second.err
        fingerprint = f"{service}:ws-upgrade-status:502"
        issues = _ours(standin, fingerprint)
        (canonical,) = [i for i in issues if i.state == "open"]
        assert canonical.number == min(i.number for i in issues)
        assert canonical.assignees == ["octocat"]
        for duplicate in issues:
            if duplicate is canonical:
                continue
            raced += 1
            assert duplicate.state_reason == "not_planned"
            assert f"Duplicate of #{canonical.number}" in (duplicate.body or "")
            assert duplicate.assignees == [] and standin.comments(duplicate.number) == []
        (comment,) = standin.comments(pr)
        assert _run_urls(comment.body) == expected, f"pair {pair}: a history entry was lost"
        assert f"/issues/{canonical.number}" in comment.body
    assert raced >= 14  # every forced pair filed two issues, and converged on one


def test_publish__recurrence_after_a_race_goes_to_the_canonical_issue(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    standin.rendezvous(ISSUES, method="POST")
    deploys.together({"run_id": "1"}, {"run_id": "2"})
    canonical, duplicate = sorted(_ours(standin), key=lambda i: i.number)
    assert (canonical.state, duplicate.state) == ("open", "closed")

    assert deploys.run("3", ok=True).code == 0  # recovers: closes the canonical one
    assert canonical.state == "closed" and canonical.state_reason == "completed"
    assert deploys.run("4").code == 1
    assert canonical.state == "open", "the recurrence reopens the real issue"
    assert duplicate.state == "closed" and standin.comments(duplicate.number) == []
    assert len(_ours(standin)) == 2


# -- cost -------------------------------------------------------------------------------------------------------


def test_publish__steady_state_costs_at_most_6_requests_after_20_incidents(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    for n in range(20):  # 20 earlier incidents of this service, long closed or recently recovered
        number = standin.add_issue(
            title=f"P0 incident {n}",
            body=report.issue_marker(f"chat-backend:event-missing:e{n}") + "\nold incident\n",
            labels=("P0", "golden-path"),
            state="closed",
        )
        standin.add_comment(number, "recovered")
    standin.ages(days=40)
    for n in range(5):
        standin.add_issue(
            title=f"P0 recent {n}",
            body=report.issue_marker(f"chat-backend:ws-closed-early:r{n}") + "\n",
            labels=("P0", "golden-path"),
            state="closed",
        )
    pr = standin.add_pull(head_sha=SHA)
    assert deploys.run("1", pr=pr).code == 1
    before = len(standin.requests)
    steady = deploys.run("2", pr=pr)

    assert steady.code == 1
    assert steady.requests == len(standin.requests) - before  # the --verbose count is the real count
    assert steady.requests <= 6, [(r.method, r.path) for r in standin.requests[before:]]
    assert len(_open(standin)) == 1 and len(standin.comments(_open(standin)[0].number)) == 1


# -- faults -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "when"),
    [
        ("POST", ISSUES, "first"),  # the new issue
        ("POST", ISSUE_COMMENTS, "second"),  # the recurrence comment (the PR comment is edited then)
        ("POST", ISSUE_COMMENTS, "first"),  # the PR comment
        ("PATCH", COMMENT, "second"),  # the PR comment's edit
        ("PATCH", rf"{ISSUES}/\d+", "recovery"),  # the close after the recovery comment
        ("POST", r"/repos/acme/chat-backend/labels", "first"),
    ],
)
def test_publish__a_write_applied_then_answered_502_neither_skips_nor_duplicates(
    deploys: Deploys, standin: GitHubStandIn, method: str, path: str, when: str
) -> None:
    pr = standin.add_pull(head_sha=SHA)
    if when == "first":
        standin.fail(path, status=502, method=method, apply=True)
    assert deploys.run("1", pr=pr).code == 1
    if when == "second":
        standin.fail(path, status=502, method=method, apply=True)
    assert deploys.run("2", pr=pr).code == 1
    if when == "recovery":
        standin.fail(path, status=502, method=method, apply=True)
    result = deploys.run("3", pr=pr, ok=True)
    assert result.code == 0, result.err
    assert deploys.run("4", pr=pr, ok=True).code == 0

    (issue,) = _ours(standin)
    assert issue.state == "closed" and issue.state_reason == "completed"
    assert {"P0", "golden-path"} <= set(issue.labels)
    bodies = [c.body for c in standin.comments(issue.number)]
    assert len(bodies) == 2, "one recurrence and one recovery comment"
    assert "Seen again" in bodies[0] and "Recovered" in bodies[1]
    (comment,) = standin.comments(pr)
    assert len(report.decode_history(comment.body)) == 4
    assert any(r.status == 502 for r in standin.requests)


def test_publish__github_down_past_the_budget_exits_3_after_writing_the_verdict(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    standin.fail(r".*", status=503, method=None, times=1000)
    result = deploys.run("1", extra_config="  max_retries: 1\n")
    assert result.code == 3
    assert "503" in result.err and "Traceback" not in result.err
    assert (deploys.tmp / "out-1-1" / "results.json").is_file()
    assert standin.issues() == []


def test_publish__one_503_on_every_first_try_still_files_the_issue(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    standin.fail(rf"{ISSUES}(/\d+)?", status=503, method="GET", times=1)
    standin.fail(ISSUES, status=503, method="POST", times=1)  # not applied: found missing, then sent again
    pr = standin.add_pull(head_sha=SHA)
    assert deploys.run("1", pr=pr).code == 1
    assert len(_open(standin)) == 1 and len(standin.comments(pr)) == 1


# -- identity, markers and the trail ------------------------------------------------------------------------------


def test_publish__rerun_of_a_workflow_run_comments_once(deploys: Deploys, standin: GitHubStandIn) -> None:
    assert deploys.run("1").code == 1
    assert deploys.run("2").code == 1
    assert deploys.run("2", attempt="2").code == 1  # "Re-run jobs" of workflow run 2
    (issue,) = _open(standin)
    assert len(standin.comments(issue.number)) == 1


def test_publish__service_names_never_collide(deploys: Deploys, standin: GitHubStandIn) -> None:
    assert deploys.run("1", service="chat:canary").code == 1
    assert deploys.run("2", service="chat", ok=True).code == 0
    (canary,) = standin.issues()
    assert canary.state == "open" and standin.comments(canary.number) == []
    assert deploys.run("3", service="chat").code == 1
    assert len([i for i in standin.issues() if i.state == "open"]) == 2


def test_publish__with_only_a_url_needs_a_service_name(deploys: Deploys, standin: GitHubStandIn) -> None:
    result = deploys.run("1", service=None)
    assert result.code == 2
    assert "--service" in result.err and "service:" in result.err and "Traceback" not in result.err
    assert standin.requests == []
    out, err = io.StringIO(), io.StringIO()
    config = deploys.tmp / "config-1.yml"
    code = main(["check", "--url", deploys.broken.url, "--config", str(config), "--quiet", "--output-dir",
                 str(deploys.tmp / "plain")], env={"JWT_SECRET_KEY": SECRET}, stdout=out, stderr=err)  # fmt: skip
    assert code == 1, "without publishing, a URL alone still works (its host names the service)"


def test_publish__every_surface_links_the_others(deploys: Deploys, standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    assert deploys.run("501", pr=pr).code == 1
    assert deploys.run("502", pr=pr).code == 1
    assert deploys.run("503", pr=pr, ok=True).code == 0
    (issue,) = _ours(standin)
    server = f"{standin.server_url}/{REPO}"
    pull, commit = f"{server}/pull/{pr}", f"{server}/commit/{SHA}"
    assert all(link in (issue.body or "") for link in (pull, commit, f"{server}/actions/runs/501"))
    recurrence, recovery = (c.body for c in standin.comments(issue.number))
    assert all(link in recurrence for link in (pull, commit, f"{server}/actions/runs/502"))
    assert f"{server}/actions/runs/503" in recovery and pull in recovery
    assert report.has_marker(recurrence, report.recurrence_marker(FINGERPRINT, "502"))
    assert report.has_marker(recovery, report.recovery_marker(FINGERPRINT, 0))
    history = standin.comments(pr)[0].body
    assert f"{server}/issues/{issue.number}" in history


def test_publish__missing_permissions_are_named(deploys: Deploys, standin: GitHubStandIn) -> None:
    pr = standin.add_pull(head_sha=SHA)
    standin.read_only = True
    result = deploys.run("1", pr=pr)
    assert result.code == 1  # the verdict, not an infrastructure error
    assert "`issues: write`" in result.err and "`pull-requests: write`" in result.err
    assert standin.issues() == [] and standin.comments(pr) == []


def test_publish__label_refused_still_files_the_issue(deploys: Deploys, standin: GitHubStandIn) -> None:
    standin.fail(
        r"/repos/acme/chat-backend/labels",
        status=403,
        method="POST",
        message="Resource not accessible by integration",
    )
    result = deploys.run("1")
    assert result.code == 1
    assert "could not create the label 'P0'" in result.err and "`issues: write`" in result.err
    assert len(_open(standin)) == 1


def test_publish__get_user_refused_a_passing_run_still_edits_its_comment(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    assert standin.user_endpoint_forbidden  # as for a workflow's GITHUB_TOKEN
    pr = standin.add_pull(head_sha=SHA)
    assert deploys.run("1", pr=pr, ok=True).code == 0
    assert deploys.run("2", pr=pr, ok=True).code == 0
    (comment,) = standin.comments(pr)
    assert len(report.decode_history(comment.body)) == 2
    assert standin.count("GET", "/user") >= 1 and all(
        r.status == 403 for r in standin.requests if r.path == "/user"
    )


def test_publish__unassignable_assignee_is_a_warning(deploys: Deploys, standin: GitHubStandIn) -> None:
    deploys.config_text = CONFIG.replace("[octocat]", "[someone-else]")
    result = deploys.run("1")
    assert result.code == 1
    assert "someone-else" in result.err
    (issue,) = _open(standin)
    assert issue.assignees == []


def test_publish__request_count_is_printed_only_when_verbose(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    result = deploys.run("1")
    assert result.requests == len(standin.requests)
    config = deploys.tmp / "config-1.yml"
    out, err = io.StringIO(), io.StringIO()
    env = {"GITHUB_TOKEN": standin.token, "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": standin.api_url,
           "JWT_SECRET_KEY": SECRET}  # fmt: skip
    main(["check", "--url", deploys.broken.url, "--service", "chat-backend", "--publish", "--quiet",
          "--config", str(config), "--output-dir", str(deploys.tmp / "q")], env=env, stdout=out, stderr=err)  # fmt: skip
    assert "GitHub requests" not in err.getvalue()
    assert json.loads((deploys.tmp / "q" / "results.json").read_text())["verdict"] == "fail"


def test_readme__documents_a_concurrency_group_that_parses() -> None:
    import yaml

    text = (Path(__file__).parent.parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = [
        b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "\nconcurrency:" in "\n" + b.lstrip()
    ]
    assert blocks
    for block in blocks:
        group = yaml.safe_load(textwrap.dedent(block))["concurrency"]
        # One group per service, and a started verification is never cancelled (it may be filing an issue).
        assert group["group"].startswith("golden-path-") and group.get("cancel-in-progress", False) is False


def test_publish__action_with_debug_logging_prints_the_request_count(
    deploys: Deploys, standin: GitHubStandIn, tmp_path: Path
) -> None:
    config = tmp_path / "action.yml"
    config.write_text(CONFIG)
    env = {
        "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": standin.token,
        "GITHUB_API_URL": standin.api_url, "GITHUB_SERVER_URL": standin.server_url, "GITHUB_RUN_ID": "9",
        "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "INPUT_URL": deploys.broken.url, "INPUT_SERVICE": "chat-backend", "INPUT_CONFIG": str(config),
        "INPUT_JWT-SECRET": SECRET, "INPUT_OUTPUT-DIR": str(tmp_path / "out"), "RUNNER_DEBUG": "1",
    }  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    assert main(["action"], env=env, stdout=out, stderr=err) == 1
    assert f"GitHub requests: {len(standin.requests)}" in err.getvalue()
    assert len(_open(standin)) == 1


def _outputs(path: Path) -> dict[str, str]:
    """The step outputs as the runner reads GITHUB_OUTPUT (``name=value`` lines and ``name<<DELIMITER`` blocks;
    later ones win)."""
    found: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        name, equals, single = line.partition("=")
        if equals and "<<" not in name:
            found[name] = single
            continue
        name, _, delimiter = line.partition("<<")
        value: list[str] = []
        for text in lines:
            if text == delimiter:
                break
            value.append(text)
        found[name] = "\n".join(value)
    return found


def test_publish__exit_3_outputs_list_what_succeeded(
    deploys: Deploys, standin: GitHubStandIn, tmp_path: Path
) -> None:
    config = tmp_path / "action.yml"
    config.write_text(CONFIG)
    pr = standin.add_pull(head_sha=SHA)
    standin.fail(COMMENT, status=500, method="GET", times=1_000)  # reading the edited comment back fails
    env = {
        "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": standin.token,
        "GITHUB_API_URL": standin.api_url, "GITHUB_SERVER_URL": standin.server_url, "GITHUB_RUN_ID": "9",
        "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "INPUT_URL": deploys.broken.url, "INPUT_SERVICE": "chat-backend", "INPUT_CONFIG": str(config),
        "INPUT_JWT-SECRET": SECRET, "INPUT_OUTPUT-DIR": str(tmp_path / "out"), "INPUT_PR": str(pr),
    }  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    assert main(["action"], env=env, stdout=out, stderr=err) == 3
    outputs = _outputs(tmp_path / "output")
    (issue,) = _open(standin)
    (comment,) = standin.comments(pr)
    assert outputs["verdict"] == "fail"
    assert outputs["issue-urls"] == f"{standin.server_url}/{REPO}/issues/{issue.number}"
    assert outputs["comment-url"].endswith(f"/pull/{pr}#issuecomment-{comment.id}")
    assert "read back the golden-path comment" in outputs["error"]


def test_publish__steady_passing_runs_cost_at_most_6_requests(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    pr = standin.add_pull(head_sha=SHA)
    assert deploys.run("1", pr=pr).code == 1
    assert deploys.run("2", pr=pr, ok=True).code == 0  # recovers: the issue is closed
    steady = deploys.run("3", pr=pr, ok=True)
    assert steady.code == 0
    assert steady.requests <= 6, steady.err
    (issue,) = _ours(standin)
    assert issue.state == "closed" and len(standin.comments(issue.number)) == 1


def test_publish__a_track_set_in_the_config_keeps_incidents_apart(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    assert deploys.run("1", extra_config="  track: canary\n").code == 1
    assert deploys.run("2", ok=True).code == 0  # production passes: the canary's incident stays open
    (issue,) = _ours(standin, track="canary")
    assert issue.state == "open" and issue.title.endswith("(chat-backend, canary)")
    assert deploys.run("3", ok=True, extra_config="  track: canary\n").code == 0
    assert issue.state == "closed" and issue.state_reason == "completed"


def test_publish__pull_request_runs_keep_each_prs_incident_on_its_own_track(
    deploys: Deploys, standin: GitHubStandIn
) -> None:
    seven, eight = standin.add_pull(head_sha=SHA), standin.add_pull(head_sha="e" * 40)

    def pull_request(number: int) -> tuple[str, dict[str, object]]:
        return "pull_request", {"number": number, "pull_request": {"number": number}}

    assert deploys.run("1", event=pull_request(seven)).code == 1
    (issue,) = _ours(standin, track=f"pr-{seven}")
    for n in (2, 4):  # PR 8's revision passes, PR 7's keeps failing
        assert deploys.run(str(n), ok=True, event=pull_request(eight)).code == 0
        assert deploys.run(str(n + 1), event=pull_request(seven)).code == 1
    assert issue.state == "open" and len(standin.comments(issue.number)) == 2
    assert len(standin.comments(seven)) == 1 and len(standin.comments(eight)) == 1  # each PR its own comment
    assert deploys.run("6", ok=True, event=pull_request(seven)).code == 0
    assert issue.state == "closed" and issue.state_reason == "completed"
    assert len(standin.issues()) == 1
