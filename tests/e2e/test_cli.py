"""The entry point as a user meets it: argv + environment in, exit code, stdout and files out."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.reference.server import ReferenceServer
from tests.cli_support import run_main, write_config
from tests.cloudrun_support import cloud_run_flags
from tests.configs import QUIET_TARGETS_YAML
from tests.standins.cloudrun_api import CloudRunStandIn, Route

SECRET = "cli-test-secret-0123456789abcdefghijklmnop"
# Generous targets: these tests are about verdicts, not speed, and the machine is shared and noisy.
FAST = (
    "journey:\n  event_timeout_s: 2\n  users: 2\nwebsocket:\n  open_timeout_s: 2\n"
    "targets: {api_ms: 10000, handshake_ms: 10000, agent_startup_ms: 10000, processing_ms: 10000, total_ms: 60000}\n"
    "baseline: {enabled: false}\n"
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, FAST)


@pytest.fixture
def backend() -> Iterator[ReferenceServer]:
    with ReferenceServer(secret=SECRET, version="abc1234def") as server:
        yield server


def test_main__demo_passes_prints_report_and_writes_artifacts(tmp_path: Path):
    code, out, err = run_main(["demo", "--output-dir", str(tmp_path), "--users", "2"])
    assert code == 0, err
    assert out.splitlines()[0].startswith("## ✅ golden-path: PASS")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["schema"] == 1 and saved["verdict"] == "pass" and saved["p0_count"] == 0
    assert (tmp_path / "report.md").read_text() == out
    assert "<testsuites>" in (tmp_path / "junit.xml").read_text()
    assert "verdict pass" in err


def test_main__demo_with_fault_fails_with_exit_1_and_names_the_kind(tmp_path: Path):
    code, out, _ = run_main(["demo", "--fault", "ws-403", "--output-dir", str(tmp_path), "--users", "2"])
    assert code == 1
    first_lines = "\n".join(out.splitlines()[:4])
    assert "FAIL" in first_lines
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [f["kind"] for f in saved["findings"]] == ["ws-auth-rejected"]
    assert saved["findings"][0]["severity"] == "P0"


def test_main__unknown_fault_is_a_usage_error():
    code, out, err = run_main(["demo", "--fault", "ws-999"])
    assert code == 2
    assert "unknown fault 'ws-999'" in err and "ws-502" in err
    assert "Traceback" not in err + out


def test_main__config_error_names_the_key_and_exits_2(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("journey:\n  users: many\n")
    code, _, err = run_main(["check", "--url", "http://127.0.0.1:9", "--config", str(bad)])
    assert code == 2
    assert "config key 'journey.users'" in err and "'many'" in err


def test_main__check_without_target_or_secret_is_a_usage_error(config: Path):
    code, _, err = run_main(["check", "--config", str(config)])
    assert (code, "no target" in err) == (2, True)
    code, _, err = run_main(["check", "--url", "http://127.0.0.1:9", "--config", str(config)])
    assert code == 2
    assert "set JWT_SECRET_KEY" in err


def test_main__check_a_url_with_secret_from_environment(
    backend: ReferenceServer, config: Path, tmp_path: Path
):
    env = {"JWT_SECRET_KEY": SECRET, "GITHUB_SHA": "abc1234def5678"}
    argv = ["check", "--url", backend.url, "--config", str(config), "--output-dir", str(tmp_path), "--quiet"]
    code, out, err = run_main(argv, env)
    assert code == 0, err
    assert out == ""
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["target"]["expected_version"] == "abc1234def5678"
    assert saved["target"]["serving_version"] == "abc1234def"
    assert SECRET not in (tmp_path / "results.json").read_text() + (tmp_path / "report.md").read_text() + err


def test_main__stale_version_against_github_sha_is_degraded_and_fails_even_with_fail_on_p0(
    backend: ReferenceServer, config: Path, tmp_path: Path
):
    env = {"JWT_SECRET_KEY": SECRET, "GITHUB_SHA": "fffffff0000000"}
    argv = ["check", "--url", backend.url, "--config", str(config), "--output-dir", str(tmp_path), "--quiet"]
    code, _, _ = run_main(argv, env)
    assert code == 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (saved["verdict"], [f["kind"] for f in saved["findings"]]) == ("degraded", ["version-skew"])
    code, _, _ = run_main([*argv, "--fail-on", "p0"], env)
    assert code == 1, "version skew: the run tested other code than the deploy, whatever fail-on says"


def test_main__report_rerenders_a_saved_run(tmp_path: Path):
    code, _, _ = run_main(["demo", "--fault", "cross-talk", "--output-dir", str(tmp_path), "--quiet"])
    assert code == 1
    code, rendered, _ = run_main(["report", str(tmp_path / "results.json")])
    assert code == 0
    assert rendered == (tmp_path / "report.md").read_text()
    code, junit, _ = run_main(["report", str(tmp_path / "results.json"), "--format", "junit"])
    assert 'type="isolation-leak"' in junit


def test_main__report_of_a_missing_or_foreign_file_is_a_usage_error(tmp_path: Path):
    code, _, err = run_main(["report", str(tmp_path / "nope.json")])
    assert code == 2 and "does not exist" in err
    other = tmp_path / "other.json"
    other.write_text('{"schema": 7}')
    code, _, err = run_main(["report", str(other)])
    assert code == 2 and "schema 7 is not supported" in err


def test_main__action_mode_reads_inputs_writes_outputs_summary_and_masks(
    backend: ReferenceServer, config: Path, tmp_path: Path
):
    output, summary = tmp_path / "output.txt", tmp_path / "summary.md"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/chat",
        "GITHUB_SHA": "abc1234def",
        "GITHUB_RUN_ID": "7",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "INPUT_URL": backend.url,
        "INPUT_CONFIG": str(config),
        "INPUT_JWT-SECRET": SECRET,
        "INPUT_PUBLISH": "false",
        "INPUT_OUTPUT-DIR": str(tmp_path / "out"),
        "INPUT_USERS": "2",
    }
    code, out, err = run_main(["action"], env)
    assert code == 0, err
    assert f"::add-mask::{SECRET}" in out
    assert out.count("::add-mask::") >= 3  # the secret and every minted token
    written = output.read_text()
    assert "verdict" in written and "pass" in written and "p0-count" in written
    assert "golden-path" in summary.read_text()


def test_main__action_mode_rejects_a_bad_input():
    code, _, err = run_main(["action"], {"INPUT_USERS": "five", "INPUT_URL": "http://127.0.0.1:9"})
    assert code == 2
    assert "input 'users': expected a whole number, got 'five'" in err


def test_python_dash_m_bot__runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("golden-path ")


DIGEST_OLD = "sha256:" + "a" * 64
DIGEST_NEW = "sha256:" + "b" * 64
IMAGE = "europe-docker.pkg.dev/p/repo/chat"


def _cloud_run(api: CloudRunStandIn, backend_url: str) -> None:
    """A tagged no-traffic deploy whose tag URL is the local reference backend (the service URL too: the
    baseline run measures it, and no test may reach the internet)."""
    api.add_service("chat", uri=backend_url)
    api.add_revision("chat", "chat-00001-old", image=f"{IMAGE}@{DIGEST_OLD}")
    api.add_revision("chat", "chat-00002-new", image=f"{IMAGE}@{DIGEST_NEW}")
    api.set_traffic(
        "chat", [Route("chat-00001-old", 100), Route("chat-00002-new", 0, tag="pr-7", uri=backend_url)]
    )


def _cloud_argv(api: CloudRunStandIn, config: Path, output: Path, *extra: str) -> list[str]:
    return ["check", *cloud_run_flags(api), "--config", str(config), "--output-dir", str(output), *extra]


def test_main__check_cloud_run_revision_reports_its_facts_and_promotes(
    api: CloudRunStandIn, backend: ReferenceServer, config: Path, tmp_path: Path
):
    _cloud_run(api, backend.url)
    argv = _cloud_argv(api, config, tmp_path, "--expected-image", DIGEST_NEW, "--on-pass", "promote")
    code, out, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})
    traffic = {(t.revision, t.percent) for t in api.traffic("chat")}
    assert code == 0, err
    saved = json.loads((tmp_path / "results.json").read_text())
    target = saved["target"]
    assert (target["project"], target["region"], target["service"]) == ("p", "r", "chat")
    assert target["revision"] == "chat-00002-new"
    assert target["url"] == backend.url
    assert target["digest"] == DIGEST_NEW
    assert target["previous_revision"] == "chat-00001-old"
    assert "chat-00002-new" in out and DIGEST_NEW[:19] in out
    assert [(a["action"], a["applied"]) for a in saved["traffic_actions"]] == [("promote", True)]
    assert ("chat-00002-new", 100) in {(r.split("/")[-1], p) for r, p in traffic}


def test_main__check_cloud_run_stale_image_is_version_skew(
    api: CloudRunStandIn, backend: ReferenceServer, config: Path, tmp_path: Path
):
    _cloud_run(api, backend.url)
    argv = _cloud_argv(api, config, tmp_path, "--expected-image", DIGEST_OLD, "--quiet")
    code, _, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})
    assert code == 1, err
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [f["fingerprint"] for f in saved["findings"]] == ["chat:version-skew:image"]
    assert saved["verdict"] == "degraded"


def test_main__cloud_run_api_refusal_is_exit_3_with_the_role(
    api: CloudRunStandIn, config: Path, tmp_path: Path
):
    api.add_service("chat", uri="https://chat-abc-ew.a.run.app")
    api.inject(403)
    argv = _cloud_argv(api, config, tmp_path)
    code, _, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})
    assert code == 3
    assert "roles/run.viewer" in err
    assert "Traceback" not in err


def _actions_env(standin, tmp_path: Path, *, pr: int, run_id: str) -> dict[str, str]:
    event = tmp_path / f"event-{run_id}.json"
    event.write_text(json.dumps({"action": "synchronize", "number": pr, "pull_request": {"number": pr}}))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_TOKEN": standin.token,
        "GITHUB_REPOSITORY": "acme/chat-backend",
        "GITHUB_API_URL": standin.api_url,
        "GITHUB_SERVER_URL": standin.server_url,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SHA": "abc1234def",
        "GITHUB_RUN_ID": run_id,
        "GITHUB_OUTPUT": str(tmp_path / f"output-{run_id}"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / f"summary-{run_id}"),
        "JWT_SECRET_KEY": SECRET,
    }


def test_main__publish_twice_then_recover_leaves_one_comment_and_closes_the_p0_issue(
    backend: ReferenceServer, config: Path, tmp_path: Path
):
    from bot.reference.faults import parse_faults
    from tests.standins.github_api import GitHubStandIn

    with (
        GitHubStandIn(repo="acme/chat-backend") as github,
        ReferenceServer(secret=SECRET, version="abc1234def", faults=parse_faults(["ws-502"])) as broken,
    ):
        pr = github.add_pull(head_sha="abc1234def")

        def check(url: str, run_id: str) -> tuple[int, str]:
            argv = ["check", "--url", url, "--service", "chat-backend", "--publish", "--quiet",
                    "--config", str(config), "--output-dir", str(tmp_path / run_id)]  # fmt: skip
            code, out, err = run_main(argv, _actions_env(github, tmp_path, pr=pr, run_id=run_id))
            return code, out + err

        assert check(broken.url, "1")[0] == 1
        code, log = check(broken.url, "2")
        assert code == 1, log

        comments = github.comments(pr)
        assert len(comments) == 1, "the sticky comment is edited, never duplicated"
        assert "FAIL" in comments[0].body
        p0 = [i for i in github.issues() if i.state == "open"]
        assert len(p0) == 1, "one open issue per fingerprint"
        assert {"P0", "golden-path"} <= set(p0[0].labels)
        assert "ws-upgrade-status" in (p0[0].body or "")
        assert len(github.comments(p0[0].number)) == 1, "one recurrence comment"
        outputs = (tmp_path / "output-2").read_text()
        assert "issue-urls" in outputs and "comment-url" in outputs

        code, log = check(backend.url, "3")
        assert code == 0, log
        assert [i.state for i in github.issues()] == ["closed"]
        assert len(github.comments(pr)) == 1
        history = github.comments(pr)[0].body
        assert "PASS" in history
        everything = "".join(c.body for n in (pr, p0[0].number) for c in github.comments(n)) + (
            p0[0].body or ""
        )
        assert SECRET not in everything
        assert github.count("POST", r"/repos/acme/chat-backend/issues") == 1, "one issue ever opened"


# -- regressions found in review -----------------------------------------------------------------------------


def test_main__demo_ignores_the_repositorys_target_gate_and_publishing(tmp_path: Path, monkeypatch):
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "golden-path.yml").write_text(
        "cloud_run: {project: p, region: r, service: chat}\ngate: {on_fail: rollback}\n"
        "github: {publish: true}\nauth: {mode: login}\n"
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["demo", "--users", "1", "--quiet"])
    assert code == 0, err
    assert (
        json.loads((tmp_path / "golden-path-out" / "results.json").read_text())["target"]["project"] is None
    )


def test_main__failed_gate_keeps_the_verdict_and_exits_3(
    api: CloudRunStandIn, backend: ReferenceServer, config: Path, tmp_path: Path
):
    output = tmp_path / "github-output"
    env = {"JWT_SECRET_KEY": SECRET, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output)}
    _cloud_run(api, backend.url)
    api.inject(403, method="PATCH")
    code, _, err = run_main(
        _cloud_argv(api, config, tmp_path / "out", "--on-pass", "promote", "--quiet"), env
    )
    assert code == 3, err
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["verdict"] == "pass"
    assert [(a["action"], a["applied"], a["error"]) for a in saved["traffic_actions"]] == [
        ("promote", False, True)
    ]
    assert "promote failed" in (tmp_path / "out" / "report.md").read_text()
    assert "pass" in output.read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--templates-dir", "/nonexistent/templates"], "does not exist or is not a directory"),
        (["--output-dir", "/proc/golden-path"], "cannot be written"),
    ],
)
def test_main__preflight_problems_stop_before_the_probe(config: Path, extra: list[str], message: str):
    # Port 9 (discard) has nothing listening: had the probe run, it would have reported connect-refused.
    code, out, err = run_main(["check", "--url", "http://127.0.0.1:9", "--config", str(config), *extra],
                           {"JWT_SECRET_KEY": SECRET})  # fmt: skip
    assert code == 2
    assert message in err
    assert "probing" not in err and out == ""


def test_main__unusable_rs256_key_is_a_usage_error_not_a_p0(config: Path, tmp_path: Path):
    bad = tmp_path / "rs.yml"
    bad.write_text(FAST + "auth:\n  mode: rs256\n")
    code, _, err = run_main(["check", "--url", "http://127.0.0.1:9", "--config", str(bad)],
                         {"JWT_PRIVATE_KEY": "not a pem"})  # fmt: skip
    assert code == 2
    assert "JWT_PRIVATE_KEY is not a usable RS256 private key" in err


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ('websocket:\n  subprotocols: ["jwt.{nope}"]\n', "only {token} and {token_b64}"),
        ("gate:\n  on_pass: promote\n", "needs cloud_run.project, region and service"),
        ("impact:\n  arr_at_risk: .inf\n", "impact.arr_at_risk"),
    ],
)
def test_main__more_config_mistakes_are_one_line(tmp_path: Path, yaml_text: str, message: str):
    path = tmp_path / "c.yml"
    path.write_text(yaml_text)
    code, _, err = run_main(["check", "--url", "http://127.0.0.1:9", "--config", str(path)])
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_main__kebab_case_cloud_run_section_takes_the_service_flag(api: CloudRunStandIn, tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text(f"cloud-run: {{project: p, region: r, endpoint: '{api.url}'}}\n")
    code, _, err = run_main(
        ["check", "--config", str(path), "--service", "missing"], {"JWT_SECRET_KEY": SECRET}
    )
    assert code == 3
    assert "services/missing not found" in err


@pytest.mark.parametrize(
    ("document", "message"),
    [("[]", "expected a JSON object, got list"), ('{"schema": 1}', "field 'run_id': Field required")],
)
def test_main__report_of_a_malformed_document_is_one_line(tmp_path: Path, document: str, message: str):
    path = tmp_path / "r.json"
    path.write_text(document)
    code, _, err = run_main(["report", str(path)])
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_main__serve_reference_rejects_a_port_out_of_range(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["serve-reference", "--port", "99999"], env={"JWT_SECRET_KEY": SECRET})
    assert caught.value.code == 2
    assert "expected a port from 1 to 65535" in capsys.readouterr().err


def test_main__expected_version_from_config_beats_github_sha(backend: ReferenceServer, tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text(FAST + "version:\n  expected: abc1234def\n")
    argv = ["check", "--url", backend.url, "--config", str(path), "--output-dir", str(tmp_path), "--quiet"]
    code, _, err = run_main(argv, {"JWT_SECRET_KEY": SECRET, "GITHUB_SHA": "fff0000fff0000"})
    assert code == 0, err


def test_main__action_checks_publishing_before_probing_and_honours_config(config: Path, tmp_path: Path):
    env = {"GITHUB_ACTIONS": "true", "INPUT_URL": "http://127.0.0.1:9", "INPUT_JWT-SECRET": SECRET,
           "INPUT_CONFIG": str(config), "INPUT_OUTPUT-DIR": str(tmp_path)}  # fmt: skip
    code, _, err = run_main(["action"], env)
    assert code == 2
    assert "publishing needs GITHUB_TOKEN" in err and "probing" not in err
    quiet = tmp_path / "quiet.yml"
    quiet.write_text(FAST + "github:\n  publish: false\n")
    code, _, err = run_main(["action"], {**env, "INPUT_CONFIG": str(quiet)})
    assert code == 1  # probed: nothing listens on port 9, so the golden path fails; no publishing was needed
    assert "probing" in err


def test_main__a_thousand_users_from_the_cli_every_journey_and_event_counted(
    backend: ReferenceServer, tmp_path: Path
):
    # A soft open-files limit of 1,024 (common on Linux desktops) is raised for the run; the server here is in
    # the test's process, the probe in its own.
    config = tmp_path / "golden-path.yml"
    config.write_text(
        "journey: {users: 600, event_timeout_s: 60, sla_s: 120}\n"
        "load: {users: 400, concurrent: true}\n"
        "websocket: {open_timeout_s: 60}\n"
        "timeouts: {connect_s: 60, request_s: 60, run_s: 300}\n" + QUIET_TARGETS_YAML
    )
    command = (
        f"ulimit -Sn 1024 && exec {sys.executable} -m bot check --url {backend.url} --config {config}"
        f" --output-dir {tmp_path} --quiet"
    )
    done = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={"JWT_SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "with 1000 users" in done.stderr
    run = json.loads((tmp_path / "results.json").read_text())
    assert run["users"] == 1000
    answered = [c["user"] for c in run["checks"] if c["id"] == "answer" and c["status"] == "pass"]
    assert sorted(answered) == list(range(1, 1001))
    assert [s["user"] for s in run["samples"]] == list(range(1, 1001))
    events = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
    assert all(list(s["events"]) == events for s in run["samples"])
    assert next(m for m in run["metrics"] if m["id"] == "total_ms")["samples"] == 1000


def test_main__init_then_check_url_tests_that_url_instead_of_the_configs_cloud_run_target(
    backend: ReferenceServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    assert run_main(["init"])[0] == 0  # its config names a Cloud Run service (my-project, us-central1)

    code, _, err = run_main(
        ["check", "--url", backend.url, "--no-publish", "--quiet", "--output-dir", "out"],
        {"JWT_SECRET_KEY": SECRET},
    )

    assert code != 3 and "Google Cloud" not in err, err  # no Cloud Run API asked: no credentials needed
    (note,) = [line for line in err.splitlines() if line.startswith("golden-path: note: --url")]
    assert "cloud_run.project, cloud_run.region, cloud_run.service" in note and "no traffic is moved" in note
    target = json.loads((tmp_path / "out" / "results.json").read_text())["target"]
    assert target["url"] == backend.url and target["revision"] is None


def test_main__url_with_cloud_run_flags_keeps_the_cloud_run_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    run_main(["init"])
    code, _, err = run_main(
        ["check", "--url", "http://127.0.0.1:9", "--revision", "chat-00001-abc", "--no-publish", "--quiet"],
        {"JWT_SECRET_KEY": SECRET, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json")},
    )
    assert "note: --url" not in err
    assert code == 3, err  # the Cloud Run target stays: resolving it needs credentials


def test_main__a_run_that_does_not_publish_never_imports_pygithub_nor_an_hs256_run_pyjwt(tmp_path: Path):
    # PyGithub costs ~60 ms to import (a sixth of a one-user run's start to verdict): only publishing may load it.
    # PyJWT with cryptography costs ~70 ms and 11 MB: an HS256 run signs its tokens with hmac (auth.hs256).
    lazy = ("github", "bot.publish", "jwt", "cryptography")
    code = (
        "import sys; from bot.cli import main; "
        f"main(['check', '--url', sys.argv[1], '--users', '1', '--no-publish', '--quiet', '--output-dir', "
        f"{str(tmp_path)!r}]); print(sorted(m for m in {lazy!r} if m in sys.modules))"
    )
    with ReferenceServer(secret=SECRET) as server:
        shown = subprocess.run(
            [sys.executable, "-c", code, server.url],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"JWT_SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin"},
        )
    assert json.loads((tmp_path / "results.json").read_text())["verdict"] == "pass"
    assert shown.stdout.strip().splitlines()[-1] == "[]"
