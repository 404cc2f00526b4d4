"""Hostile and broken peers through the whole CLI (#10): text from outside is inert in the Actions log, no secret
leaves the run in any channel, and misbehaving HTTP/TCP servers end in the right finding within deadlines."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from bot.cli import main
from bot.untrusted import secret_forms
from tests.cli_support import run_main
from tests.standins.actions_runner import commands
from tests.standins.github_api import GitHubStandIn
from tests.standins.hostile_http import (
    RawHTTPServer,
    ScriptedBackend,
    drip,
    endless_chunked,
    garbage,
    redirect,
    respond,
    silent,
    sized_body,
)

SECRET = "hostile-secret-Ωé/\"q'<&>+ 0123456789"
GITHUB_TOKEN = "ghs_hostileGitHubToken0123456789abcdef"
PASSWORD = 'p@ss:w/rd%20é"<x>'
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3J1bi5leGFtcGxlIn0.c2lnbmF0dXJlLWlkLXRva2Vu"
FAST = {
    "journey": {"event_timeout_s": 2, "sla_s": 5, "users": 3},
    "websocket": {"open_timeout_s": 2},
    "health": {"timeout_s": 2, "latency_samples": 1},
    "timeouts": {"connect_s": 2, "request_s": 2, "run_s": 30},
}
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
# What a hostile server puts in every text channel it has: a live command if we ever print it as is.
FORGED = "x\n  ::error title=forged::FORGED-{where}\r::set-output name=verdict::pass\n##[add-mask]FORGED"


def _actions_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/chat",
        "GITHUB_SHA": "abc1234def",
        "GITHUB_RUN_ID": "7",
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "INPUT_OUTPUT-DIR": str(tmp_path / "out"),
        **extra,
    }


def _pull_request_env(
    tmp_path: Path, github: GitHubStandIn, url: str, config: Path, **extra: str
) -> tuple[int, dict[str, str]]:
    """A new pull request on the GitHub stand-in, and the Action's environment of a run for it against ``url``
    (publishing with GITHUB_TOKEN): the PR's number and the environment."""
    pr = github.add_pull(head_sha="abc1234def")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": pr, "pull_request": {"number": pr}}))
    pull_request = {
        "GITHUB_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": github.api_url, "GITHUB_SERVER_URL": github.server_url,
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event),
        "INPUT_URL": url, "INPUT_SERVICE": "chat-backend", "INPUT_CONFIG": str(config), "INPUT_JWT-SECRET": SECRET,
    }  # fmt: skip
    return pr, _actions_env(tmp_path, **pull_request, **extra)


def _published(github: GitHubStandIn, pr: int) -> list[str]:
    """Every text the run wrote to GitHub: the comments on the PR and on its issues, the issues' bodies and titles."""
    published = [c.body for n in (pr, *(i.number for i in github.issues())) for c in github.comments(n)]
    return published + [i.body or "" for i in github.issues()] + [i.title for i in github.issues()]


def _config(tmp_path: Path, **sections: dict[str, object]) -> Path:
    path = tmp_path / "golden-path.yml"
    path.write_text(json.dumps(FAST | sections))  # JSON is YAML
    return path


def _forged(log: str) -> list[str]:
    """Commands the runner would execute that we did not write (ours: masks, and golden-path's own
    annotations)."""
    ours = re.compile(r"^(add-mask|error|warning)$")
    return [
        c.line
        for c in commands(log)
        if not ours.match(c.name) or "forged" in c.properties.lower() or "FORGED" in c.data
    ]


class Echo:
    """A session script per connection, in turn: an error frame, a close with a reason, a canned answer."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, connection: ServerConnection, token: str | None) -> None:
        if token is None:  # the negative check: refuse, as a real backend does
            await connection.close(1008, "no token")
            return
        self.count += 1
        turn = self.count % 3  # read before awaiting: the other users' sessions move the count meanwhile
        await connection.recv()
        if turn == 1:
            text = FORGED.format(where="frame")
            await connection.send(json.dumps({"type": "error", "message": text}))
            await connection.wait_closed()
        elif turn == 2:
            await connection.send(json.dumps({"type": "agent_started"}))
            await connection.close(1011, FORGED.format(where="close"))
        else:
            for event in EVENTS[:-1]:
                await connection.send(json.dumps({"type": event}))
            answer = "Agent response for: " + FORGED.format(where="answer")
            await connection.send(json.dumps({"type": "agent_completed", "result": answer}))
            await connection.wait_closed()


def _health(body: str) -> dict[str, object]:
    return {"/health": lambda request: (200, body)}


@pytest.fixture
def forging_backend() -> Iterator[ScriptedBackend]:
    body = json.dumps({"status": "ok", "version": FORGED.format(where="health")})
    with ScriptedBackend(http=_health(body), session=Echo()) as backend:
        yield backend


def test_main__text_from_the_server_runs_no_workflow_command_in_actions(
    forging_backend: ScriptedBackend, tmp_path: Path
):
    env = _actions_env(tmp_path, JWT_SECRET_KEY=SECRET, INPUT_PUBLISH="false")
    env |= {"INPUT_URL": forging_backend.url, "INPUT_CONFIG": str(_config(tmp_path))}
    code, out, err = run_main(["action"], env)
    assert code == 1, err
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {"event-error", "ws-closed-early", "answer-canned", "version-skew"} <= {
        f["kind"] for f in saved["findings"]
    }
    # The server's text was printed (the report quotes it) ...
    for where in ("frame", "close", "answer", "health"):
        assert f"FORGED-{where}" in out, where
    # ... and the runner would execute none of it, on either stream.
    assert _forged(out) == [] and _forged(err) == []
    assert commands(out), "our own annotations and masks still work"
    # The outputs file and the summary are not parsed for commands, but must not be forged either.
    outputs = (tmp_path / "output.txt").read_text()
    assert "verdict=fail" in outputs and "verdict::pass" not in outputs.replace("FORGED", "")


# -- no secret leaves the run --------------------------------------------------------------------------------


def _all_forms(*secrets: str) -> str:
    return " | ".join(form for secret in secrets for form in sorted(secret_forms(secret)))


class EchoEverything:
    """Sends back every credential it knows and every token it is offered, in every channel it has."""

    def __init__(self, known: tuple[str, ...]) -> None:
        self.known = known
        self.tokens: list[str] = []
        self.turn = 0

    async def __call__(self, connection: ServerConnection, token: str | None) -> None:
        if token is None:
            await connection.close(1008, SECRET)
            return
        self.tokens.append(token)
        self.turn += 1
        turn = self.turn % 3
        said = _all_forms(*self.known, token)
        await connection.recv()
        if turn == 1:
            await connection.send(json.dumps({"type": "error", "message": said}))
            await connection.wait_closed()
        elif turn == 2:
            await connection.send(json.dumps({"type": "agent_started", "echo": said}, ensure_ascii=False))
            await connection.close(1011, SECRET)
        else:
            for event in EVENTS[:-1]:
                await connection.send(json.dumps({"type": event, "token": token}))
            done = {"type": "agent_completed", "result": "Agent response for: " + said}
            await connection.send(json.dumps(done))
            await connection.wait_closed()


def _echo_http(known: tuple[str, ...]) -> dict[str, object]:
    def health(request: Request) -> tuple[int, str, dict[str, str]]:
        body = json.dumps({"status": "ok", "version": _all_forms(*known), "commit": SECRET})
        return (
            200,
            body,
            {"Content-Type": f"application/json; echo={base64.b64encode(SECRET.encode()).decode()}"},
        )

    def login(request: Request) -> tuple[int, str, dict[str, str]]:
        # GET login: the password came in the query string; answer 401 quoting the request and every secret.
        return (
            401,
            json.dumps({"detail": f"bad login {request.path}", "echo": _all_forms(*known)}),
            {"WWW-Authenticate": f'Bearer error="{request.path[-60:]}"'},
        )

    return {"/health": health, "/auth/login": login}


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return sorted(
        {f"{secret[:6]}…: {form!r}" for secret in secrets for form in secret_forms(secret) if form in text}
    )


@pytest.mark.parametrize("mode", ["hs256", "login"])
def test_main__no_form_of_any_secret_reaches_any_output(mode: str, tmp_path: Path):
    known = (SECRET, GITHUB_TOKEN, ID_TOKEN, PASSWORD)
    session = EchoEverything(known)
    with (
        ScriptedBackend(http=_echo_http(known), session=session) as backend,
        GitHubStandIn(repo="acme/chat", token=GITHUB_TOKEN) as github,
    ):
        auth = {"mode": mode, "login": {"method": "GET"}}
        pr, env = _pull_request_env(
            tmp_path,
            github,
            backend.url,
            _config(tmp_path, auth=auth),
            ACTIONS_ID_TOKEN_REQUEST_TOKEN=ID_TOKEN,
            GOLDEN_PATH_PASSWORD=PASSWORD,
        )
        code, out, err = run_main(["action"], env)
        published = _published(github, pr)
    assert code == 1, err
    files = [p.read_text() for p in (tmp_path / "out").iterdir()]
    files += [(tmp_path / "output.txt").read_text(), (tmp_path / "summary.md").read_text()]
    channels = {"stdout": out, "stderr": err, "files": "\n".join(files), "github": "\n".join(published)}
    # The server did echo them (the test can fail) ...
    assert published and (session.tokens or mode == "login")
    saved = (tmp_path / "out" / "results.json").read_text()
    assert "[redacted]" in saved
    # ... and no form of any of them is anywhere.
    secrets = [*known, *session.tokens]
    masked_out = "\n".join(line for line in out.splitlines() if not line.startswith("::add-mask::"))
    channels["stdout"] = masked_out
    assert {name: _leaks(text, secrets) for name, text in channels.items()} == {name: [] for name in channels}


def _json_escaped(text: str, times: int) -> str:
    for _ in range(times):
        text = json.dumps(text)[1:-1]
    return text


def _url_encoded(text: str, times: int) -> str:
    for _ in range(times):
        text = quote(text, safe="")
    return text


def _deep_forms(*secrets: str) -> list[str]:
    """Each secret JSON-escaped up to four times, percent-encoded up to three times, and both."""
    forms = []
    for secret in secrets:
        forms += [_json_escaped(secret, n) for n in range(5)] + [_url_encoded(secret, n) for n in (1, 2, 3)]
        forms += [_url_encoded(_json_escaped(secret, 2), 2), _json_escaped(_url_encoded(secret, 2), 2)]
    return forms


def _unchanged_runs(secret: str) -> list[str]:
    """The pieces of ``secret`` that no escaping changes, long enough to be telling: a leak shows them."""
    return [run for run in re.findall(r"[A-Za-z0-9_.~-]+", secret) if len(run) >= 8]


class EchoDeep:
    """Sends every secret it knows back escaped many times: inside a JSON string inside a JSON string inside a
    frame, percent-encoded twice in a close reason, and in the answer."""

    def __init__(self, known: tuple[str, ...]) -> None:
        self.known = known
        self.turn = 0

    async def __call__(self, connection: ServerConnection, token: str | None) -> None:
        if token is None:
            await connection.close(1008, _url_encoded(SECRET, 2)[:120])
            return
        self.turn += 1
        turn = self.turn % 3
        nested = json.dumps(
            {"request": json.dumps({"echo": list(self.known)}), "forms": _deep_forms(*self.known)}
        )
        await connection.recv()
        if turn == 1:
            await connection.send(json.dumps({"type": "error", "message": nested}))
            await connection.wait_closed()
        elif turn == 2:
            await connection.send(json.dumps({"type": "agent_started", "echo": nested}))
            await connection.close(1011, _url_encoded(SECRET, 2)[:120])
        else:
            for event in EVENTS[:-1]:
                await connection.send(json.dumps({"type": event}))
            done = {"type": "agent_completed", "result": "Agent response for: " + nested}
            await connection.send(json.dumps(done))
            await connection.wait_closed()


def test_main__a_secret_escaped_many_times_reaches_no_output(tmp_path: Path):
    """Regression (#19): a secret with `"` or `\\` echoed inside a JSON string inside a frame leaked."""
    known = (SECRET, GITHUB_TOKEN, PASSWORD)
    health = json.dumps({"status": "ok", "version": json.dumps(json.dumps(list(known)))})
    with (
        ScriptedBackend(http=_health(health), session=EchoDeep(known)) as backend,
        GitHubStandIn(repo="acme/chat", token=GITHUB_TOKEN) as github,
    ):
        pr, env = _pull_request_env(
            tmp_path, github, backend.url, _config(tmp_path), GOLDEN_PATH_PASSWORD=PASSWORD
        )
        code, out, err = run_main(["action"], env)
        published = _published(github, pr)
    assert code == 1, err
    files = [p.read_text() for p in (tmp_path / "out").iterdir()]
    files += [(tmp_path / "output.txt").read_text(), (tmp_path / "summary.md").read_text()]
    masked_out = "\n".join(line for line in out.splitlines() if not line.startswith("::add-mask::"))
    everything = "\n".join([masked_out, err, *files, *published])
    assert published and "[redacted]" in everything, "the server did echo them"
    assert [form for form in _deep_forms(*known) if form in everything] == []
    assert [run for secret in known for run in _unchanged_runs(secret) if run in everything] == []


def test_main__a_template_that_writes_a_secret_is_redacted_in_every_artifact(tmp_path: Path):
    """Every rendered artifact passes the redactor before it is written or sent: report.md, the step summary,
    the PR comment, the issue; a user's template is text golden-path did not write."""
    templates = tmp_path / "templates"
    templates.mkdir()
    leak = f"leaked: {SECRET} {_json_escaped(SECRET, 2)} {_url_encoded(GITHUB_TOKEN, 2)}\n"
    # The report's footer (the comment and the summary extend the report), and the issue's.
    for name in ("report.md.j2", "issue.md.j2"):
        (templates / name).write_text(
            f'{{% extends "builtin/{name}" %}}{{% block footer %}}\n{leak}{{% endblock %}}'
        )

    async def fails(connection: ServerConnection, token: str | None) -> None:
        await connection.close(1008 if token is None else 1011, "down")

    with (
        ScriptedBackend(http=_health('{"status": "ok"}'), session=fails) as backend,
        GitHubStandIn(repo="acme/chat", token=GITHUB_TOKEN) as github,
    ):
        pr, env = _pull_request_env(
            tmp_path, github, backend.url, _config(tmp_path), **{"INPUT_TEMPLATES-DIR": str(templates)}
        )
        code, out, err = run_main(["action"], env)
        comments = [c.body for c in github.comments(pr)]
        issues = [i.body or "" for i in github.issues()]
    assert code == 1, err
    artifacts = {
        "report.md": (tmp_path / "out" / "report.md").read_text(),
        "summary": (tmp_path / "summary.md").read_text(),
        "comment": "\n".join(comments),
        "issue": "\n".join(issues),
        "stdout": "\n".join(line for line in out.splitlines() if not line.startswith("::add-mask::")),
    }
    for name, text in artifacts.items():
        assert "leaked: [redacted] [redacted] [redacted]" in text, name
        assert "hostile-secret" not in text and "hostileGitHubToken" not in text, name


def test_main__a_templates_dir_linking_outside_itself_is_exit_2_before_probing(tmp_path: Path):
    environ = tmp_path / "environ"
    environ.write_text(f"JWT_SECRET_KEY={SECRET}\0GITHUB_TOKEN={GITHUB_TOKEN}\0")  # as /proc/self/environ
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.md.j2").write_text('{% include "builtin/report.md.j2" %}\n{% include "env" %}\n')
    (templates / "env").symlink_to(environ)
    with RawHTTPServer({"/health": HEALTHY, "/ws": HEALTHY}) as server:
        argv = [
            "check",
            "--url",
            server.url,
            "--templates-dir",
            str(templates),
            "--output-dir",
            str(tmp_path / "o"),
        ]
        code, out, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})
        seen = server.seen
    assert code == 2
    assert f"templates directory {str(templates)!r}: {str(templates / 'env')!r} is a symbolic link to" in err
    assert "outside the directory; refused" in err and len(err.strip().splitlines()) == 1
    assert seen == [], "refused before anything was probed"
    assert not (tmp_path / "o" / "report.md").exists() and "hostile-secret" not in out + err


# -- misbehaving HTTP and TCP peers --------------------------------------------------------------------------

HEALTH_S = 2.0  # health.timeout_s in these runs
QUICK = {
    "journey": {"event_timeout_s": 2, "sla_s": 4, "users": 1},
    "websocket": {"open_timeout_s": 2},
    "health": {"timeout_s": HEALTH_S, "latency_samples": 1},
    "timeouts": {"connect_s": 2, "request_s": 2, "run_s": 6},
}
HEALTHY = respond(200, b'{"status": "ok"}')


def _check(url: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    config = tmp_path / "quick.yml"
    config.write_text(json.dumps(QUICK))
    argv = ["check", "--url", url, "--config", str(config), "--output-dir", str(tmp_path / "out"), "--quiet"]
    code, _, err = run_main(argv, {"JWT_SECRET_KEY": SECRET})
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (tmp_path / "out" / "report.md").is_file() and (tmp_path / "out" / "junit.xml").is_file()
    return code, saved, err


def _failure(saved: dict[str, Any], check_id: str) -> dict[str, Any]:
    (check,) = [c for c in saved["checks"] if c["id"] == check_id and c.get("user") in (None, 1)]
    assert check["status"] == "fail", check
    return dict(check["failure"]) | {"duration_ms": check["duration_ms"]}


@pytest.mark.parametrize(
    ("behaviour", "kind", "detail", "evidence"),
    [
        (respond(200, b"<html><body>It works!</body></html>", {"Content-Type": "text/html"}),
         "http-status", None, "It works!"),
        (respond(200, b""), "http-status", None, ""),
        (respond(200, b"[" * 1200 + b"]" * 1200), "http-status", None, "[[["),
        (sized_body(30 * 1024 * 1024), "http-status", "body-too-large", "[cut]"),
        (endless_chunked(), "http-status", "body-too-large", "[cut]"),
        (redirect("/health"), "http-status", "302", ""),
        (drip(b'{"status": "ok", "version": "1.2.3"}', every_s=0.5), "timeout", "health", "HTTP 200"),
        (silent(), "timeout", "health", "no response headers"),
        (garbage(), "http-status", "not-http", "illegal status line"),
    ],
    ids=["html", "empty", "nested-json", "30-mb", "endless", "redirect-loop", "one-byte-at-a-time", "silent",
         "garbage-status-line"],
)  # fmt: skip
def test_check_health__a_misbehaving_health_endpoint_is_a_specific_finding_within_its_deadline(
    tmp_path: Path, behaviour, kind: str, detail: str | None, evidence: str
):
    with RawHTTPServer({"/health": behaviour, "/ws": HEALTHY}) as server:
        code, saved, err = _check(server.url, tmp_path)
    assert code == 1, err
    failure = _failure(saved, "health")
    assert failure["kind"] == kind
    # The detail of a body judged on its content (HTML, empty, not JSON) is #12's to refine; the rest is fixed.
    assert detail is None or failure["detail"] == detail
    assert evidence in failure["message"] + json.dumps(failure["evidence"])
    assert failure["duration_ms"] <= HEALTH_S * 1000 + 1500, "health's own deadline bounds it"
    # The journey still ran after health: its steps are judged on what they met, never on health's time.
    assert not [c for c in saved["checks"] if c["id"] == "run-deadline"]
    assert _failure(saved, "handshake")["kind"] == "ws-upgrade-status"


def test_check__slow_health_is_not_blamed_on_the_users(tmp_path: Path):
    """Regression: one byte per second used to eat the whole run, then every user was blamed at a step
    that never ran. Health's deadline bounds health; the users' steps run and are judged on their own."""
    with RawHTTPServer({"/health": drip(b'{"status": "ok"}' * 4, every_s=1.0), "/ws": HEALTHY}) as server:
        code, saved, _ = _check(server.url, tmp_path)
    assert code == 1
    kinds = {
        (c["id"], (c.get("failure") or {}).get("kind")) for c in saved["checks"] if c["status"] == "fail"
    }
    assert ("health", "timeout") in kinds
    assert ("handshake", "ws-upgrade-status") in kinds
    assert not any(kind == "timeout" for check_id, kind in kinds if check_id != "health")


def test_open_connection__tcp_accepted_and_silent_is_a_timeout_at_the_connect_step(tmp_path: Path):
    with RawHTTPServer({"/health": HEALTHY, "/ws": silent()}) as server:
        code, saved, err = _check(server.url, tmp_path)
    assert code == 1, err
    failure = _failure(saved, "handshake")
    assert failure["kind"] == "timeout"
    assert failure["duration_ms"] <= 2000 + 1500  # websocket.open_timeout_s
    negative = next(c for c in saved["checks"] if c["id"] == "auth-negative")
    assert negative["status"] == "not verified" and negative["summary"], "never a false pass"


def test_open_connection__http_200_instead_of_101_is_an_upgrade_status(tmp_path: Path):
    with RawHTTPServer({"/health": HEALTHY, "/ws": respond(200, b"<html>SPA index</html>")}) as server:
        code, saved, _ = _check(server.url, tmp_path)
    assert code == 1
    failure = _failure(saved, "handshake")
    assert (failure["kind"], failure["detail"]) == ("ws-upgrade-status", "200")
    assert "SPA index" in failure["evidence"]["body"]
    assert [f["severity"] for f in saved["findings"] if f["kind"] == "ws-upgrade-status"] == ["P0"]


def test_open_connection__a_garbage_status_line_is_a_protocol_finding(tmp_path: Path):
    with RawHTTPServer({"/health": HEALTHY, "/ws": garbage()}) as server:
        code, saved, _ = _check(server.url, tmp_path)
    assert code == 1
    failure = _failure(saved, "handshake")
    assert failure["kind"] == "ws-protocol"
    assert "SSH-2.0" in failure["evidence"]["error"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("[" * 1200 + "]" * 1200, "not a JSON document we accept: JSON nested deeper than 64 levels"),
        ('{"access_token": "abc\\r\\nX-Injected: 1"}', "has characters a token cannot carry"),
        ("<html>login page</html>", "not a JSON document we accept: not JSON"),
    ],
    ids=["nested-json", "crlf-token", "html"],
)
def test_identity_for__a_hostile_login_answer_is_a_login_finding_not_a_crash(
    tmp_path: Path, answer: str, expected: str
):
    """Regression: 1,200 nested arrays in a login answer raised RecursionError: no artifacts, exit 1."""

    async def unused(connection: ServerConnection, token: str | None) -> None:
        await connection.close(1008)

    with ScriptedBackend(http=_health('{"status": "ok"}') | {"/auth/login": lambda r: (200, answer)},
                         session=unused) as backend:  # fmt: skip
        config = _config(tmp_path, auth={"mode": "login", "login": {"method": "GET"}})
        argv = ["check", "--url", backend.url, "--config", str(config), "--output-dir", str(tmp_path / "o")]
        code, _, err = run_main(argv, {"GOLDEN_PATH_PASSWORD": PASSWORD})
    assert code == 1, err
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    failures = [c["failure"] for c in saved["checks"] if c["id"] == "login"]
    assert failures and all(f["kind"] == "login-failed" and expected in f["message"] for f in failures)


def test_main__an_unexpected_error_is_exit_3_with_a_redacted_inert_traceback(tmp_path: Path):
    """A bug (here: stdout closed under us) must not read as "golden path failed" (exit 1), and a traceback
    (which may quote outside text) is inert in the Actions log."""
    from bot import results
    from tests import samples

    saved = tmp_path / "results.json"
    saved.write_text(results.to_json(samples.ws_closed_early()))
    out, err = io.StringIO(), io.StringIO()
    out.close()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": GITHUB_TOKEN}
    code = main(["report", str(saved)], env=env, stdout=out, stderr=err)
    assert code == 3
    log = err.getvalue()
    assert "Traceback" in log and "internal error" in log.splitlines()[-1]
    first, *_, resume, _last = log.splitlines()
    assert (
        first.startswith("::stop-commands::") and resume == f"::{first.removeprefix('::stop-commands::')}::"
    )
    assert commands(log) == []


def test_identity_for__a_login_answer_sent_a_byte_at_a_time_ends_at_the_login_deadline(tmp_path: Path):
    routes = {
        "/health": HEALTHY,
        "/ws": HEALTHY,
        "/auth/login": drip(b'{"access_token": "x"}' * 4, every_s=0.5),
    }
    config = tmp_path / "login.yml"
    config.write_text(json.dumps(QUICK | {"auth": {"mode": "login", "login": {"timeout_s": 1}}}))
    argv = ["check", "--url", "", "--config", str(config), "--output-dir", str(tmp_path / "o"), "--quiet"]
    with RawHTTPServer(routes) as server:
        argv[2] = server.url
        code, _, err = run_main(argv, {"GOLDEN_PATH_PASSWORD": PASSWORD})
    assert code == 1, err
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    failure = _failure(saved, "login")
    assert failure["kind"] == "login-failed"
    assert "no complete answer within 1 s (HTTP 200 headers and" in failure["message"]
    assert failure["duration_ms"] <= 1000 + 1500
