"""The Cloud Run gate, private services and the baseline as a user meets them: through `check` and `action`,
against the Cloud Run Admin API stand-in, reference backends on 127.0.0.1 and Google's front-end stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.reference.faults import parse_faults
from bot.reference.server import ReferenceServer
from tests.cli_support import check_url_argv, results_json, run_main, write_config
from tests.cloudrun_support import cloud_run_flags
from tests.configs import QUIET_TARGETS_YAML
from tests.standins.cloudrun_api import CloudRunStandIn, Route, Sidecar
from tests.standins.google_front_end import (
    TokenEndpoint,
    id_token_for,
    private,
    service_account_key,
    valid_for,
)

SECRET = "cli-test-secret-0123456789abcdefghijklmnop"
# Verdicts are the subject, not the machine's speed.
FAST = "journey:\n  event_timeout_s: 2\n  users: 2\nwebsocket:\n  open_timeout_s: 2\n" + QUIET_TARGETS_YAML
OLD, NEW = "chat-00001-old", "chat-00002-new"
IMAGE = "europe-docker.pkg.dev/p/repo/chat"
DIGEST_OLD, DIGEST_NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
SA_EMAIL = "golden-path@p.iam.gserviceaccount.com"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, FAST)


@pytest.fixture
def new() -> Iterator[ReferenceServer]:
    """The new revision, reached at its tag URL."""
    with ReferenceServer(secret=SECRET, version="abc1234def") as server:
        yield server


@pytest.fixture
def serving() -> Iterator[ReferenceServer]:
    """The revision serving users now, behind the service URL."""
    with ReferenceServer(secret=SECRET, version="0ld0ld0ld") as server:
        yield server


def deploy(api: CloudRunStandIn, *, service_url: str, tag_url: str | None, tag: str = "pr-7") -> None:
    """The old revision serves 100%; the new one 0%, behind `tag` when `tag_url` is given."""
    api.add_service("chat", uri=service_url)
    api.add_revision("chat", OLD, image=f"{IMAGE}@{DIGEST_OLD}")
    api.add_revision("chat", NEW, image=f"{IMAGE}@{DIGEST_NEW}")
    routes = [Route(OLD, 100)]
    if tag_url is not None:
        routes.append(Route(NEW, 0, tag=tag, uri=tag_url))
    api.set_traffic("chat", routes)


def check_argv(api: CloudRunStandIn, config: Path, output: Path, *extra: str) -> list[str]:
    return [
        "check",
        *cloud_run_flags(api),
        "--config",
        str(config),
        "--output-dir",
        str(output),
        "--quiet",
        *extra,
    ]


def action_env(api: CloudRunStandIn, config: Path, tmp_path: Path, **inputs: str) -> dict[str, str]:
    """The Action's environment on a runner, not publishing, for service chat on the stand-in; ``inputs`` by
    their action.yml names (``TAG="pr-7"`` is ``INPUT_TAG``)."""
    return {
        "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "output"), "INPUT_PUBLISH": "false",
        "INPUT_PROJECT": "p", "INPUT_REGION": "r", "INPUT_SERVICE": "chat", "INPUT_CLOUD-RUN-ENDPOINT": api.url,
        "INPUT_CONFIG": str(config), "INPUT_OUTPUT-DIR": str(tmp_path / "out"), "INPUT_JWT-SECRET": SECRET,
        **{f"INPUT_{name}": value for name, value in inputs.items()},
    }  # fmt: skip


def outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's `name=value` lines and `name<<delimiter` blocks."""
    found, lines = {}, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        name, heredoc, delimiter = lines[i].partition("<<")
        if not heredoc or "=" in name:
            key, _, value = lines[i].partition("=")
            found[key] = value
            i += 1
            continue
        j = lines.index(delimiter, i + 1)
        found[name] = "\n".join(lines[i + 1 : j])
        i = j + 1
    return found


# -- long-running operations -----------------------------------------------------------------------------------


def test_main__promote_awaits_an_unfinished_operation_with_progress(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=new.url)
    api.operation_polls = 2  # not done at the first poll, nor the second: as Cloud Run usually answers

    code, _, err = run_main(
        check_argv(api, config, tmp_path, "--on-pass", "promote"), {"JWT_SECRET_KEY": SECRET}
    )

    assert code == 0, err
    assert "Traceback" not in err
    waits = [line for line in err.splitlines() if "waiting for Cloud Run to apply the traffic change" in line]
    assert len(waits) == 2 and "s elapsed" in waits[0]
    assert api.operation_gets() == 3  # two answered "not done", the third "done"
    (action,) = results_json(tmp_path)["traffic_actions"]
    assert (action["action"], action["applied"], action["error"]) == ("promote", True, False)
    assert (action["before"], action["after"]) == ({OLD: 100}, {NEW: 100})
    assert [(t.revision, t.percent) for t in api.traffic("chat") if t.percent] == [(NEW, 100)]


def test_action__failed_operation_is_recorded_exit_3_and_everything_is_still_written(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    from tests.standins.github_api import GitHubStandIn

    deploy(api, service_url=serving.url, tag_url=new.url)
    api.operation_polls = 1
    api.operation_error = (9, f"Revision '{NEW}' is not ready and cannot serve traffic.")
    event = tmp_path / "event.json"
    with GitHubStandIn(repo="acme/chat-backend") as github:
        pr = github.add_pull(head_sha="abc1234def")
        event.write_text(json.dumps({"action": "synchronize", "number": pr, "pull_request": {"number": pr}}))
        env = {
            "GITHUB_ACTIONS": "true", "GITHUB_TOKEN": github.token, "GITHUB_REPOSITORY": "acme/chat-backend",
            "GITHUB_API_URL": github.api_url, "GITHUB_SERVER_URL": github.server_url,
            "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": "abc1234def",
            "GITHUB_RUN_ID": "1", "GITHUB_OUTPUT": str(tmp_path / "output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
            "INPUT_PROJECT": "p", "INPUT_REGION": "r", "INPUT_SERVICE": "chat", "INPUT_CLOUD-RUN-ENDPOINT": api.url,
            "INPUT_CONFIG": str(config), "INPUT_OUTPUT-DIR": str(tmp_path / "out"), "INPUT_ON-PASS": "promote",
            "INPUT_JWT-SECRET": SECRET,
        }  # fmt: skip
        code, _, err = run_main(["action"], env)
        comments = github.comments(pr)

    assert code == 3, err
    assert "Traceback" not in err
    results = results_json(tmp_path / "out")
    assert results["verdict"] == "pass"
    (action,) = results["traffic_actions"]
    assert (action["applied"], action["error"]) == (False, True)
    assert "not ready and cannot serve traffic" in action["message"]
    assert action["after"] == {OLD: 100}  # Cloud Run left traffic where it was
    written = outputs(tmp_path / "output")
    assert written["verdict"] == "pass" and written["traffic-after"] == f"{OLD}=100"
    assert "not ready and cannot serve traffic" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "summary").read_text().strip()
    assert len(comments) == 1 and "PASS" in comments[0].body


def test_main__operation_not_done_in_time_is_exit_3_with_the_deadline(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=new.url)
    api.operation_polls = 1000
    config = tmp_path / "slow.yml"
    config.write_text(FAST + "cloud_run:\n  operation_timeout_s: 2\n")

    code, _, err = run_main(
        check_argv(api, config, tmp_path, "--on-pass", "promote"), {"JWT_SECRET_KEY": SECRET}
    )

    assert code == 3, err
    (action,) = results_json(tmp_path)["traffic_actions"]
    assert action["error"] and "not done after 2 s" in action["message"]
    assert "cloud_run.operation_timeout_s" in action["message"]


# -- never promote what was not tested -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gate",
    [["--on-pass", "promote", "--fail-on", "p0"], ["--on-fail", "rollback"], ["--on-pass", "promote"]],
)
def test_main__a_run_that_reached_only_the_service_url_never_moves_traffic(
    api: CloudRunStandIn, serving: ReferenceServer, config: Path, tmp_path: Path, gate: list[str]
):
    deploy(api, service_url=serving.url, tag_url=None)  # no tag: the old revision answers the service URL

    code, _, err = run_main(check_argv(api, config, tmp_path, *gate), {"JWT_SECRET_KEY": SECRET})

    assert api.updates() == [], "no traffic change may be sent for an untested revision"
    results = results_json(tmp_path)
    assert results["verdict"] != "pass"
    assert results["target"]["tested_alone"] is False
    assert "chat:revision-not-tested" in [f["fingerprint"] for f in results["findings"]]
    # An untested revision fails the gate under every fail-on (like version skew), so promotion is never even
    # attempted; a rollback is refused too: nothing the run did not test moves.
    for action in results["traffic_actions"]:
        assert action["refused"] and not action["applied"] and "was not tested" in action["message"]
    assert len(results["traffic_actions"]) == (1 if "rollback" in gate else 0)
    report = (tmp_path / "report.md").read_text()
    assert "The new revision was not tested" in report
    assert code == 1, err


def test_main__version_skew_blocks_promotion_even_with_fail_on_p0(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=new.url)
    argv = check_argv(
        api, config, tmp_path, "--expected-image", DIGEST_OLD, "--fail-on", "p0", "--on-pass", "promote"
    )

    code, _, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})

    assert api.updates() == []
    assert code == 1, err  # version skew fails the gate under every fail-on, so promotion is never attempted
    actions = results_json(tmp_path)["traffic_actions"]
    assert actions == [], actions  # not even a refusal (which would name the version skew): nothing was tried


# -- select the revision by tag --------------------------------------------------------------------------------


def test_main__tag_selects_the_revision_and_its_url(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=serving.url, tag="pr-7")  # another PR's revision is newer...
    api.add_revision("chat", "chat-00003-other")
    api.set_traffic(
        "chat",
        [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=new.url), Route("chat-00003-other", 0, tag="pr-8")],
    )

    code, _, err = run_main(check_argv(api, config, tmp_path, "--tag", "pr-7"), {"JWT_SECRET_KEY": SECRET})

    assert code == 0, err
    target = results_json(tmp_path)["target"]
    assert (target["revision"], target["tag"], target["url"]) == (NEW, "pr-7", new.url)


def test_main__a_tag_no_revision_carries_is_exit_2_naming_the_tags(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=new.url, tag="pr-7")

    code, _, err = run_main(check_argv(api, config, tmp_path, "--tag", "pr-9"), {"JWT_SECRET_KEY": SECRET})

    assert code == 2
    assert "config key 'cloud_run.tag'" in err and "'pr-9'" in err and "tags that exist: pr-7" in err
    assert "probing" not in err and "Traceback" not in err


# -- private services ------------------------------------------------------------------------------------------


def test_main__private_service_with_a_service_account_key(api: CloudRunStandIn, config: Path, tmp_path: Path):
    backend = ReferenceServer(secret=SECRET, version="abc1234def")
    front = private(backend, valid_for(lambda: backend.url))  # the service URL (and the baseline) is local
    with backend, TokenEndpoint() as google:
        service_url = backend.url
        deploy(api, service_url=service_url, tag_url=backend.url)
        key = service_account_key(tmp_path / "sa.json", token_uri=google.token_uri, email=SA_EMAIL)
        env = {"JWT_SECRET_KEY": SECRET, "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
        argv = check_argv(api, config, tmp_path / "out", "--private")
        code, out, err = run_main(argv, env)

    assert code == 0, err
    assert [a["target_audience"] for a in google.assertions] == [service_url]
    assert front.seen and all(s.id_token for s in front.seen), "every request carried the ID token"
    upgrades = [s for s in front.seen if s.kind == "websocket" and s.authorization]
    assert upgrades and all(s.authorization.startswith("Bearer ") for s in upgrades), (
        "the app's header is free"
    )
    token = front.seen[0].id_token
    assert token is not None
    written = out + err + "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert token not in written
    assert f"for {SA_EMAIL}" in err


def test_action__private_service_with_a_passed_id_token_is_masked(
    api: CloudRunStandIn, config: Path, tmp_path: Path
):
    backend = ReferenceServer(secret=SECRET, version="abc1234def")
    front = private(backend, valid_for(lambda: backend.url))
    with backend:
        token = id_token_for(audience=backend.url, email=SA_EMAIL)
        deploy(api, service_url=backend.url, tag_url=backend.url)
        code, out, err = run_main(["action"], action_env(api, config, tmp_path, **{"ID-TOKEN": token}))

    assert code == 0, err
    assert {s.id_token for s in front.seen} == {token}
    assert f"::add-mask::{token}" in out
    assert token not in out.replace(f"::add-mask::{token}", "") + err
    assert token not in (tmp_path / "out" / "results.json").read_text()


def test_main__private_service_without_a_token_is_iam_denied_not_the_apps_auth(
    api: CloudRunStandIn, config: Path, tmp_path: Path
):
    backend = ReferenceServer(secret=SECRET, version="abc1234def")
    private(backend, lambda _token: False)
    with backend:
        deploy(api, service_url=backend.url, tag_url=backend.url)
        code, _, err = run_main(check_argv(api, config, tmp_path), {"JWT_SECRET_KEY": SECRET})

    assert code == 1, err
    findings = results_json(tmp_path)["findings"]
    kinds = {f["kind"] for f in findings}
    assert "iam-denied" in kinds and "ws-auth-rejected" not in kinds
    denied = next(f for f in findings if f["kind"] == "iam-denied")
    assert denied["severity"] == "P0"
    assert "roles/run.invoker" in denied["remediation"] and "ID tokens" in denied["remediation"]
    assert "not sent" in denied["evidence"]["id token"]


def test_main__iam_refusal_of_a_token_names_the_identity(api: CloudRunStandIn, config: Path, tmp_path: Path):
    backend = ReferenceServer(secret=SECRET, version="abc1234def")
    private(backend, lambda _token: False)  # a valid token, but the identity lacks roles/run.invoker
    with backend:
        deploy(api, service_url=backend.url, tag_url=backend.url)
        env = {
            "JWT_SECRET_KEY": SECRET,
            "GOLDEN_PATH_ID_TOKEN": id_token_for(audience=backend.url, email=SA_EMAIL),
        }
        code, _, err = run_main(check_argv(api, config, tmp_path), env)

    assert code == 1, err
    denied = next(f for f in results_json(tmp_path)["findings"] if f["kind"] == "iam-denied")
    assert f"`{SA_EMAIL}`" in denied["remediation"]


def test_main__private_without_credentials_is_one_line_exit_3_before_probing(
    api: CloudRunStandIn, new: ReferenceServer, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    deploy(api, service_url=new.url, tag_url=new.url)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")  # no metadata server here (nothing listens on 9)

    code, _, err = run_main(check_argv(api, config, tmp_path, "--private"), {"JWT_SECRET_KEY": SECRET})

    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("golden-path: error:")]
    assert len(lines) == 1
    assert "GOOGLE_APPLICATION_CREDENTIALS" in lines[0] and "google-github-actions/auth" in lines[0]
    assert "metadata server" in lines[0]
    assert "probing" not in err and "Traceback" not in err


def test_main__private_with_a_missing_key_file_is_exit_3(
    api: CloudRunStandIn, new: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=new.url, tag_url=new.url)
    env = {"JWT_SECRET_KEY": SECRET, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json")}

    code, _, err = run_main(check_argv(api, config, tmp_path, "--private"), env)

    assert code == 3
    assert "missing.json: the file does not exist" in err and "google-github-actions/auth" in err
    assert "probing" not in err


# -- baseline --------------------------------------------------------------------------------------------------


def test_main__baseline_side_by_side_and_a_regression_is_a_finding(
    api: CloudRunStandIn, serving: ReferenceServer, config: Path, tmp_path: Path
):
    with ReferenceServer(
        secret=SECRET, version="abc1234def", faults=parse_faults(["delay:agent_started=400"])
    ) as slow:
        deploy(api, service_url=serving.url, tag_url=slow.url)
        code, _, err = run_main(check_argv(api, config, tmp_path), {"JWT_SECRET_KEY": SECRET})
        any_argv = check_argv(api, config, tmp_path / "any", "--fail-on", "any")
        code_any, _, err_any = run_main(any_argv, {"JWT_SECRET_KEY": SECRET})

    results = results_json(tmp_path)
    baseline = results["baseline"]
    assert (baseline["status"], baseline["url"], baseline["revision"]) == ("measured", serving.url, OLD)
    startup = next(c for c in baseline["comparisons"] if c["id"] == "agent_startup_ms")
    assert startup["regression"] and startup["ratio"] > 1.5
    assert "chat:perf-regression:agent_startup_ms" in [f["fingerprint"] for f in results["findings"]]
    report = (tmp_path / "report.md").read_text()
    assert "Against the serving revision" in report and f"{startup['ratio']:.2f}×" in report
    assert results["verdict"] == "degraded"
    assert code == 0, err  # performance alone warns under the default fail-on (correctness)...
    assert code_any == 1, err_any  # ...and fails the job with fail-on: any


def test_main__a_failing_baseline_is_said_and_the_new_revision_judged_alone(
    api: CloudRunStandIn, new: ReferenceServer, config: Path, tmp_path: Path
):
    with ReferenceServer(secret=SECRET, version="0ld", faults=parse_faults(["ws-502"])) as broken:
        deploy(api, service_url=broken.url, tag_url=new.url)
        code, _, err = run_main(check_argv(api, config, tmp_path), {"JWT_SECRET_KEY": SECRET})

    assert code == 0, err
    results = results_json(tmp_path)
    assert results["verdict"] == "pass"
    assert results["baseline"]["status"] == "failed"
    assert "judged on its own" in results["baseline"]["summary"]
    assert "the baseline itself failed" in (tmp_path / "report.md").read_text()


# -- revision facts --------------------------------------------------------------------------------------------


def test_action__revision_facts_in_outputs_and_report(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=new.url)
    code, _, err = run_main(
        ["action"], action_env(api, config, tmp_path, TAG="pr-7", **{"ON-PASS": "promote"})
    )

    assert code == 0, err
    written = outputs(tmp_path / "output")
    assert (written["revision"], written["revision-tag"], written["image-digest"]) == (
        NEW,
        "pr-7",
        DIGEST_NEW,
    )
    assert written["previous-revision"] == OLD
    assert (written["traffic-before"], written["traffic-after"]) == (f"{OLD}=100", f"{NEW}=100")
    logs = written["logs-url"]
    assert logs.startswith("https://console.cloud.google.com/logs/query;query=")
    assert "cloud_run_revision" in logs and NEW in logs and "project=p" in logs
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Logs" in report and "pr-7" in report and f"`{OLD}` 100%" in report


def test_main__login_refused_by_the_front_end_is_iam_denied_not_a_login_failure(
    api: CloudRunStandIn, tmp_path: Path
):
    config = tmp_path / "login.yml"
    config.write_text(FAST + "auth:\n  mode: login\n")
    backend = ReferenceServer(secret=SECRET, version="abc1234def")
    private(backend, lambda _token: False)
    with backend:
        deploy(api, service_url=backend.url, tag_url=backend.url)
        code, _, err = run_main(check_argv(api, config, tmp_path), {"GOLDEN_PATH_PASSWORD": "golden-path"})

    assert code == 1, err
    kinds = {f["kind"] for f in results_json(tmp_path)["findings"]}
    assert "iam-denied" in kinds and "login-failed" not in kinds


def test_main__private_service_by_url_uses_the_urls_origin_as_audience(config: Path, tmp_path: Path):
    backend = ReferenceServer(secret=SECRET, version="abc1234def")
    front = private(backend, valid_for(lambda: backend.url))
    with backend:
        token = id_token_for(audience=backend.url, email=SA_EMAIL)
        env = {"JWT_SECRET_KEY": SECRET, "GOLDEN_PATH_ID_TOKEN": token}
        code, _, err = run_main(check_url_argv(backend.url, config, tmp_path), env)

    assert code == 0, err
    assert front.seen and {s.id_token for s in front.seen} == {token}
    assert results_json(tmp_path)["baseline"] is None  # no Cloud Run, no serving revision to compare with


# -- rollback only to what served users (the exact traffic after the run) --------------------------------------


@pytest.fixture
def broken() -> Iterator[ReferenceServer]:
    """The new revision, failing the journey: the WebSocket upgrade answers 502."""
    with ReferenceServer(secret=SECRET, version="abc1234def", faults=parse_faults(["ws-502"])) as server:
        yield server


def test_action__rollback_of_a_preview_that_served_nothing_leaves_every_route_and_says_none(
    api: CloudRunStandIn, broken: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=broken.url)
    api.add_revision("chat", "chat-00003-canary")
    routes = [
        Route(OLD, 90, tag="stable"),
        Route("chat-00003-canary", 10),
        Route(NEW, 0, tag="pr-7", uri=broken.url),
    ]
    api.set_traffic("chat", routes)
    code, _, err = run_main(
        ["action"], action_env(api, config, tmp_path, TAG="pr-7", **{"ON-FAIL": "rollback"})
    )

    assert code == 1, err
    assert api.updates() == []
    assert api.routes("chat") == [Route(r.revision, r.percent, r.tag) for r in routes]
    written = outputs(tmp_path / "output")
    assert written["traffic-action"] == "none"
    (action,) = results_json(tmp_path / "out")["traffic_actions"]
    assert (
        action["noop"] and action["message"] == "nothing to roll back: the tested revision served no traffic"
    )
    assert (
        "nothing to roll back: the tested revision served no traffic"
        in (tmp_path / "out" / "report.md").read_text()
    )


def test_main__rollback_with_nothing_known_to_have_served_is_refused_exit_3(
    api: CloudRunStandIn, broken: ReferenceServer, config: Path, tmp_path: Path
):
    api.add_service("chat", uri=broken.url)
    api.add_revision("chat", OLD)
    api.add_revision("chat", "chat-00003-pr8")  # another PR's preview, ready and tagged
    api.add_revision("chat", NEW)
    routes = [Route(None, 100), Route("chat-00003-pr8", 0, tag="pr-8")]  # deployed with traffic (LATEST)
    api.set_traffic("chat", routes)

    code, _, err = run_main(
        check_argv(api, config, tmp_path, "--on-fail", "rollback"), {"JWT_SECRET_KEY": SECRET}
    )

    assert code == 3, err
    assert "Traceback" not in err
    refusal = [line for line in err.splitlines() if f"refused to roll back {NEW}" in line]
    assert refusal and "cloud_run.rollback_to" in refusal[0]
    assert api.updates() == []
    assert api.routes("chat") == [Route(None, 100), Route("chat-00003-pr8", 0, tag="pr-8")]
    (action,) = results_json(tmp_path)["traffic_actions"]
    assert (action["error"], action["refused"], action["applied"]) == (True, True, False)


def test_main__rollback_to_a_known_good_tag_keeps_every_tag(
    api: CloudRunStandIn, broken: ReferenceServer, config: Path, tmp_path: Path
):
    api.add_service("chat", uri=broken.url)
    api.add_revision("chat", OLD)
    api.add_revision("chat", "chat-00003-pr8")
    api.add_revision("chat", NEW)
    api.set_traffic(
        "chat", [Route(None, 100), Route(OLD, 0, tag="stable"), Route("chat-00003-pr8", 0, tag="pr-8")]
    )
    api.operation_polls = 2

    code, _, err = run_main(
        check_argv(api, config, tmp_path, "--on-fail", "rollback", "--rollback-to", "stable"),
        {"JWT_SECRET_KEY": SECRET},
    )

    assert code == 1, err
    assert api.routes("chat") == [Route(OLD, 100, tag="stable"), Route("chat-00003-pr8", 0, tag="pr-8")]
    (action,) = results_json(tmp_path)["traffic_actions"]
    assert (action["revision"], action["applied"], action["after"]) == (OLD, True, {OLD: 100})


def test_main__a_bad_rollback_to_tag_is_exit_2_naming_the_key(
    api: CloudRunStandIn, config: Path, tmp_path: Path
):
    code, _, err = run_main(
        check_argv(api, config, tmp_path, "--rollback-to", "Stable Tag"), {"JWT_SECRET_KEY": SECRET}
    )

    assert code == 2
    assert "cloud_run.rollback_to" in err and "'Stable Tag'" in err and "Traceback" not in err


# -- a lost answer is recorded as what Cloud Run did -----------------------------------------------------------


def test_main__promote_answered_503_but_applied_is_exit_0_and_recorded_applied(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    deploy(api, service_url=serving.url, tag_url=new.url)
    api.fail_after_update = [503]
    api.operation_polls = 2
    api.inject(429, path_contains="/services/chat", method="GET", times=1, retry_after="1")

    code, _, err = run_main(
        check_argv(api, config, tmp_path, "--on-pass", "promote"), {"JWT_SECRET_KEY": SECRET}
    )

    assert code == 0, err
    assert "rate limited" in err
    (action,) = results_json(tmp_path)["traffic_actions"]
    assert (action["applied"], action["error"]) == (True, False)
    assert "but applied it" in action["message"]
    assert api.routes("chat") == [Route(NEW, 100, tag="pr-7")]


# -- the app is the ingress container; why the revision died --------------------------------------------------


def test_main__sidecars_are_listed_and_the_ingress_image_is_compared(
    api: CloudRunStandIn, new: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    api.add_service("chat", uri=serving.url)
    api.add_revision("chat", OLD, image=f"{IMAGE}@{DIGEST_OLD}")
    collector = "otel/opentelemetry-collector-contrib:0.110.0"
    api.add_revision(
        "chat",
        NEW,
        image=f"{IMAGE}@{DIGEST_NEW}",
        sidecars=(Sidecar("collector", collector),),
        container_name="chat",
    )
    api.set_traffic("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=new.url)])

    code, _, err = run_main(
        check_argv(api, config, tmp_path, "--expected-image", f"{IMAGE}@{DIGEST_NEW}"),
        {"JWT_SECRET_KEY": SECRET},
    )

    assert code == 0, err
    target = results_json(tmp_path)["target"]
    assert (target["image"], target["digest"]) == (f"{IMAGE}@{DIGEST_NEW}", DIGEST_NEW)
    assert target["containers"] == [
        {"name": "collector", "image": collector, "ingress": False, "digest": None},
        {"name": "chat", "image": f"{IMAGE}@{DIGEST_NEW}", "ingress": True, "digest": DIGEST_NEW},
    ]
    report = (tmp_path / "report.md").read_text()
    assert f"`{collector}`" in report and "Sidecars" in report


def test_main__a_revision_that_died_during_the_probe_says_why_in_the_finding_and_the_diagram(
    api: CloudRunStandIn, broken: ReferenceServer, serving: ReferenceServer, config: Path, tmp_path: Path
):
    api.add_service("chat", uri=serving.url)
    api.add_revision("chat", OLD)
    api.add_revision(
        "chat", NEW, dies_after_gets=1, reason="REVISION_FAILED", message="Container called exit(1)."
    )
    api.set_traffic("chat", [Route(OLD, 100), Route(NEW, 0, tag="pr-7", uri=broken.url)])

    code, _, err = run_main(check_argv(api, config, tmp_path), {"JWT_SECRET_KEY": SECRET})

    assert code == 1, err
    results = results_json(tmp_path)
    died = [f for f in results["findings"] if f["kind"] == "revision-not-ready"]
    assert len(died) == 1 and died[0]["severity"] == "P0"
    assert "Container called exit(1)." in died[0]["evidence"]["message"]
    assert died[0]["fingerprint"].endswith("revision-not-ready:REVISION_FAILED")
    report = (tmp_path / "report.md").read_text()
    assert 'Revision["❌ Revision: Container called exit(1)."]' in report
