"""GitHub through PyGithub: find the PR, keep one sticky comment per PR and service, run the P0 issue lifecycle.

Everything here receives its client (``client()`` builds one) and never reads the environment.

Rules, in one place:

* **Retries.** Idempotent calls (GET, HEAD, PUT, DELETE) are retried on 429/5xx, connection and read errors,
  up to ``retries`` times. POST and PATCH are retried only when GitHub answered that it did *not* apply them:
  a rate limit (403/429 with ``Retry-After``, ``x-ratelimit-remaining: 0`` or a rate-limit message). A 5xx or a
  dropped connection after a POST/PATCH may have applied it, so it is never repeated blindly. Waits honour
  ``Retry-After`` then ``x-ratelimit-reset``; the sum of all waits of one client is capped (``max_wait_s``):
  a wait that would pass the cap fails at once instead of sleeping.
* **Errors.** Each GitHub call is translated once. 403 (other than a rate limit), 404 and 410 mean the token may
  not do this (a fork PR's read-only token, a missing ``permissions:`` entry, issues disabled): the comment or
  issue step is skipped with a warning in :class:`PublishOutcome`, so the verdict still shows. Everything
  else (5xx or rate limits after retries, connection errors, 401, unexpected answers) is a
  :class:`~bot.errors.GitHubError` saying which call failed, how, and what to do.
* **Sticky comment.** Ours is a PR comment with ``report.comment_marker(service)`` as a whole line, written by
  the token's user (``GET /user``); a ``GITHUB_TOKEN`` or app token may not call ``GET /user``, and then any
  ``Bot`` author counts. The oldest is edited in place (newer leftovers are deleted). After
  creating one we list again: if a concurrent run created one first, ours is deleted and the oldest edited.
* **P0 issues.** Ours carry ``report.issue_marker(fingerprint)`` as a whole line and are listed by the
  tracking label (``golden-path`` when configured, else the first label; with no labels, the search API, whose
  hits are confirmed by the marker) with ``state=all``. New fingerprint: labels are created when missing, the
  issue is opened (assignees that GitHub refuses are dropped with a warning). Recurrence: one comment per run
  on the open issue (the oldest, if there are several); a closed one is reopened first.
* **Recovery.** Only a run that got through the golden path (verdict ``pass`` or ``degraded``) can say a P0
  is gone: for each open issue of *this* service whose fingerprint is not among the run's P0 findings, it
  counts one pass. A ``fail`` run proves nothing about other fingerprints, but it does break every streak
  ("consecutive"). After ``close_after_passes`` passes in a row: a recovery comment naming the passing revision,
  then the issue is closed as completed. The streak is kept in the issue body, in a hidden
  ``<!-- golden-path:state {...} -->`` line we own (each run is a fresh container, so nothing is kept on disk).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import github as pygithub
import requests
from github import Auth
from github.GithubException import GithubException
from github.GithubRetry import GithubRetry
from github.Issue import Issue
from github.IssueComment import IssueComment
from github.Repository import Repository
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from bot import report
from bot.actions import ActionsContext
from bot.errors import GitHubError, TemplateError
from bot.results import Finding, Kind, Run, Severity, Step, Verdict
from bot.settings import GitHubSettings

log = logging.getLogger(__name__)

USER_AGENT = "golden-path (+https://github.com/features/actions)"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = (429, 500, 502, 503, 504)
PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
COMMIT_EVENTS = frozenset({"push", "deployment", "deployment_status", "workflow_run"})
TRACKING_LABEL = "golden-path"
LABEL_COLORS = {"p0": "b60205", "golden-path": "5319e7"}
LABEL_DESCRIPTIONS = {
    "p0": "Blocks the golden path: users cannot complete the journey",
    "golden-path": "Opened by golden-path after verifying a deployed revision",
}
PERMISSION_HINT = (
    "the token may not do this (a fork PR's token is read-only; otherwise grant the job "
    "`permissions: pull-requests: write, issues: write`)"
)
_STATE = re.compile(r"(?m)^<!-- golden-path:state (\{.*\}) -->[ \t]*$")
_PLACEHOLDER = "GOLDENPATHFINGERPRINTPLACEHOLDER"
_E = TypeVar("_E", Kind, Step)


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    comment_url: str | None
    issue_urls: tuple[str, ...]
    warnings: tuple[str, ...]


# -- the client ------------------------------------------------------------------------------------------------


class RateLimitWaitTooLong(Exception):
    """GitHub asked us to wait longer than this client's remaining wait budget."""

    def __init__(self, *, method: str, url: str, status: int | None, wait_s: float, budget_s: float) -> None:
        self.method, self.url, self.status, self.wait_s, self.budget_s = method, url, status, wait_s, budget_s
        super().__init__(
            f"{method} {url}: GitHub asks to wait {wait_s:.0f}s, over the {budget_s:.0f}s budget"
        )


class _WaitBudget:
    """The seconds one client may still sleep between retries, shared by all its requests."""

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self.spent_s = 0.0
        self._lock = threading.Lock()

    def take(self, wait_s: float) -> bool:
        with self._lock:
            if self.spent_s + wait_s > self.total_s:
                return False
            self.spent_s += wait_s
            return True


class _Retry(GithubRetry):
    """PyGithub's retry (it understands GitHub's 403 rate limits), made safe for writes and bounded in time."""

    def __init__(self, *, wait_budget: _WaitBudget | None = None, **kwargs: Any) -> None:
        self.wait_budget = wait_budget or _WaitBudget(60.0)
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> Any:
        kw["wait_budget"] = self.wait_budget
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() in IDEMPOTENT_METHODS:
            return bool(super().is_retry(method, status_code, has_retry_after))
        # POST/PATCH: only answers that say the request was refused before it applied (rate limits).
        # For a 403, GithubRetry.increment reads the body and raises at once unless it is a rate limit.
        return bool(self.total) and status_code in (403, 429)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self._wait_for(response)
        if not self.wait_budget.take(wait):
            last = self.history[-1] if self.history else None
            raise RateLimitWaitTooLong(
                method=(last.method if last else None) or "?",
                url=(last.url if last else None) or "?",
                status=last.status if last else None,
                wait_s=wait,
                budget_s=self.wait_budget.total_s - self.wait_budget.spent_s,
            )
        if wait > 0:
            time.sleep(wait)

    def _wait_for(self, response: BaseHTTPResponse | None) -> float:
        if response is not None:
            try:
                retry_after = self.get_retry_after(response)
            except InvalidHeader:
                retry_after = None
            if retry_after is not None:
                return float(retry_after)
            if response.status in (403, 429):
                reset = str(response.headers.get("x-ratelimit-reset", ""))
                if response.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
                    return max(int(reset) - time.time(), 0.0) + 1.0
                return float(self.secondary_rate_wait)
        return float(Retry.get_backoff_time(self))


def client(
    *,
    token: str,
    base_url: str,
    retries: int,
    timeout_s: float = 15,
    backoff_factor: float = 0.5,
    max_wait_s: float = 60.0,
    secondary_rate_wait_s: float = 60.0,
    per_page: int = 100,
) -> pygithub.Github:
    """A PyGithub client for ``base_url`` (``GITHUB_API_URL``: github.com, GHES or a local stand-in).

    No client-side throttling (PyGithub sleeps 0.25 s per request and 1 s per write by default): we make a
    handful of calls and GitHub's own limits are honoured by the retry. Objects are lazy, so following a
    PR or issue by number costs no extra request.
    """
    retry = _Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        backoff_max=max_wait_s,
        status_forcelist=list(RETRY_STATUSES),
        allowed_methods=IDEMPOTENT_METHODS,
        respect_retry_after_header=True,
        raise_on_status=True,
        secondary_rate_wait=secondary_rate_wait_s,
        max_rate_limit_wait=None,
        wait_budget=_WaitBudget(max_wait_s),
    )
    # PyGithub gives its logger a console handler at INFO when imported, so its retry logger would print every
    # expected refusal (GET /user with a GITHUB_TOKEN); our warnings and errors say what matters instead.
    logging.getLogger("github.GithubRetry").setLevel(logging.WARNING)
    return pygithub.Github(
        base_url=base_url.rstrip("/"),
        auth=Auth.Token(token),
        timeout=max(1, math.ceil(timeout_s)),
        user_agent=USER_AGENT,
        per_page=per_page,
        retry=retry,
        seconds_between_requests=0,
        seconds_between_writes=0,
        lazy=True,
    )


# -- error translation -----------------------------------------------------------------------------------------


class _CannotPublish(Exception):
    """GitHub refused for lack of permission (or the thing is gone): becomes a warning, not an exit code."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.message or "").strip()
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        details = "; ".join(
            str(e.get("message") or f"{e.get('field', '?')} {e.get('code', 'invalid')}")
            if isinstance(e, dict)
            else str(e)
            for e in errors
        )
        message = f"{message}: {details}" if message else details
    return message or "no message"


def _is_rate_limit(exc: GithubException) -> bool:
    if exc.status not in (403, 429):
        return False
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if exc.status == 429 or "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in _message(exc).lower()


@contextmanager
def _calling(doing: str, *, write: bool = False) -> Iterator[None]:
    """Translate whatever PyGithub/requests raise while ``doing`` into a warning or a ``GitHubError``."""
    not_repeated = " It was not repeated because it may have been applied; re-run the job." if write else ""
    try:
        yield
    except GithubException as exc:
        status = exc.status
        if _is_rate_limit(exc):
            raise GitHubError(
                f"GitHub rate limit while trying to {doing} (HTTP {status}: {_message(exc)}); "
                "retries and waits are exhausted: re-run the job later"
            ) from exc
        if status in (403, 404, 410):
            raise _CannotPublish(
                f"could not {doing}: GitHub answered {status} ({_message(exc)}); {PERMISSION_HINT}",
                status=status,
            ) from exc
        if status == 401:
            raise GitHubError(
                f"GitHub rejected the token while trying to {doing} (401 {_message(exc)}): "
                "check the github-token input or GITHUB_TOKEN"
            ) from exc
        if status >= 500:
            raise GitHubError(
                f"GitHub failed to {doing} (HTTP {status}: {_message(exc)}).{not_repeated or ' Re-run the job later.'}"
            ) from exc
        raise GitHubError(f"GitHub refused to {doing} (HTTP {status}: {_message(exc)})") from exc
    except RateLimitWaitTooLong as exc:
        raise GitHubError(
            f"GitHub rate limit while trying to {doing}: it asks to wait {exc.wait_s:.0f}s, more than the "
            f"{exc.budget_s:.0f}s left for waiting in this run; re-run the job later"
        ) from exc
    except requests.exceptions.RetryError as exc:
        reason = getattr(exc.args[0], "reason", exc) if exc.args else exc
        raise GitHubError(
            f"GitHub kept failing while trying to {doing} ({reason}) after retries; "
            "GitHub may be degraded (see https://www.githubstatus.com): re-run the job later"
        ) from exc
    except requests.exceptions.Timeout as exc:
        raise GitHubError(f"GitHub did not answer in time while trying to {doing}.{not_repeated}") from exc
    except requests.exceptions.RequestException as exc:
        raise GitHubError(
            f"could not reach GitHub to {doing} ({type(exc).__name__}); check GITHUB_API_URL and the network."
            f"{not_repeated}"
        ) from exc


# -- PR discovery ----------------------------------------------------------------------------------------------


def read_event(path: Path | None) -> dict[str, Any]:
    """The event payload (``GITHUB_EVENT_PATH``), or {} when absent or unreadable."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("cannot read the event payload %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def find_pr(
    *,
    gh: pygithub.Github,
    repo_name: str,
    ctx: ActionsContext,
    explicit_pr: int | None,
    warn: Callable[[str], None] | None = None,
) -> int | None:
    """The PR this run reports to, or None (a deploy from a branch with no PR is normal).

    An explicit ``pr`` wins. ``pull_request*`` events carry the number. ``push``, ``deployment``,
    ``deployment_status`` and ``workflow_run`` go through the commit: the workflow run's own ``pull_requests``
    for this repository first, then ``GET /repos/{repo}/commits/{sha}/pulls``, preferring an open PR whose
    head is the commit, then any open PR, then the merged PR whose merge commit it is (the deploy of a merge).
    A permission problem becomes a warning and None; GitHub failures raise ``GitHubError``.
    """
    if explicit_pr is not None:
        return explicit_pr
    event = read_event(ctx.event_path)
    name = ctx.event_name or ""
    if name in PULL_REQUEST_EVENTS:
        pull = event.get("pull_request")
        number = pull.get("number") if isinstance(pull, dict) else event.get("number")
        return int(number) if isinstance(number, int) else None
    if name not in COMMIT_EVENTS:
        return None
    sha = _event_sha(name, event) or ctx.sha
    if name == "workflow_run":
        number = _workflow_run_pr(event, repo_name, sha)
        if number is not None:
            return number
    if not sha:
        return None
    try:
        with _calling(f"list the pull requests of commit {sha[:12]}"):
            pulls = list(gh.get_repo(repo_name).get_commit(sha).get_pulls())
    except _CannotPublish as exc:
        (warn or log.warning)(str(exc))
        return None
    open_pulls = [p for p in pulls if p.state == "open"]
    for pull in open_pulls:
        if pull.head.sha == sha:
            return int(pull.number)
    if open_pulls:
        return int(max(open_pulls, key=lambda p: (p.updated_at is not None, p.updated_at)).number)
    for pull in pulls:
        if pull.merged_at is not None and pull.merge_commit_sha == sha:
            return int(pull.number)
    return None


def _event_sha(name: str, event: Mapping[str, Any]) -> str | None:
    node: Any = None
    if name == "push":
        node = event.get("after")
    elif name in ("deployment", "deployment_status"):
        deployment = event.get("deployment")
        node = deployment.get("sha") if isinstance(deployment, dict) else None
    elif name == "workflow_run":
        workflow_run = event.get("workflow_run")
        node = workflow_run.get("head_sha") if isinstance(workflow_run, dict) else None
    if isinstance(node, str) and node.strip("0"):
        return node
    return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _workflow_run_pr(event: Mapping[str, Any], repo_name: str, sha: str | None) -> int | None:
    """From ``workflow_run.pull_requests`` (GitHub lists other repositories' PRs there too: keep ours),
    preferring the one whose head is the run's commit."""
    workflow_run = event.get("workflow_run")
    pulls = workflow_run.get("pull_requests") if isinstance(workflow_run, dict) else None
    if not isinstance(pulls, list):
        return None
    suffix = f"/repos/{repo_name}".lower()
    ours = [
        pull
        for pull in pulls
        if isinstance(pull, dict)
        and isinstance(pull.get("number"), int)
        and str(_mapping(_mapping(pull.get("base")).get("repo")).get("url", "")).lower().endswith(suffix)
    ]
    for pull in ours:
        if _mapping(pull.get("head")).get("sha") == sha:
            return int(pull["number"])
    return int(ours[0]["number"]) if ours else None


# -- publish ---------------------------------------------------------------------------------------------------


def publish(
    *,
    gh: pygithub.Github,
    repo_name: str,
    run: Run,
    pr: int | None,
    settings: GitHubSettings,
    templates_dir: Path | None = None,
    max_comment_chars: int = 65_000,
    history_limit: int = 10,
) -> PublishOutcome:
    """Write the verdict where the team looks: the sticky PR comment and the P0 issues (rules: module doc)."""
    repo = gh.get_repo(repo_name)
    identity = _Identity(gh)
    warnings: list[str] = []
    comment_url: str | None = None
    if pr is not None and settings.comment:
        try:
            comment_url = _upsert_comment(
                repo=repo,
                pr=pr,
                run=run,
                identity=identity,
                templates_dir=templates_dir,
                max_chars=max_comment_chars,
                history_limit=history_limit,
            )
        except _CannotPublish as exc:
            warnings.append(str(exc))
    issue_urls: list[str] = []
    if settings.issues:
        try:
            issue_urls = _sync_issues(
                gh=gh,
                repo=repo,
                repo_name=repo_name,
                run=run,
                settings=settings,
                templates_dir=templates_dir,
                warnings=warnings,
            )
        except _CannotPublish as exc:
            warnings.append(str(exc))
    return PublishOutcome(comment_url=comment_url, issue_urls=tuple(issue_urls), warnings=tuple(warnings))


def has_marker(body: str | None, marker: str) -> bool:
    """True when ``marker`` is a whole line of ``body`` (a quote of it inside other text does not count)."""
    return bool(body) and report.has_marker(body or "", marker)


def _require_marker(body: str, marker: str, what: str) -> None:
    if not has_marker(body, marker):
        raise TemplateError(
            f"the rendered {what} lacks its hidden marker {marker!r} on a line of its own; "
            "a custom template must keep it, or every run would post a new one"
        )


class _Identity:
    """Who the token writes as: ``GET /user`` once; None when the token may not ask (GITHUB_TOKEN, apps)."""

    def __init__(self, gh: pygithub.Github) -> None:
        self._gh = gh
        self._resolved = False
        self._login: str | None = None

    @property
    def login(self) -> str | None:
        if not self._resolved:
            try:
                with _calling("identify the token's user (GET /user)"):
                    self._login = self._gh.get_user().login
            except _CannotPublish:
                self._login = None  # an integration token: its comments are by a Bot user
            self._resolved = True
        return self._login

    def wrote(self, comment: IssueComment) -> bool:
        user = comment.user
        if user is None:
            return False
        login = self.login
        if login is not None:
            return bool(user.login == login)
        return user.type == "Bot"


# -- sticky comment --------------------------------------------------------------------------------------------


def _upsert_comment(
    *,
    repo: Repository,
    pr: int,
    run: Run,
    identity: _Identity,
    templates_dir: Path | None = None,
    max_chars: int = 65_000,
    history_limit: int = 10,
) -> str:
    """Create or edit our one comment on ``pr`` for ``run``'s service; returns its URL."""
    marker = report.comment_marker(run.target.service)
    issue = repo.get_issue(pr)

    def render(previous: IssueComment | None) -> str:
        history = report.decode_history(previous.body or "") if previous is not None else []
        body = report.render_comment(
            run,
            history=history,
            max_chars=max_chars,
            templates_dir=templates_dir,
            history_limit=history_limit,
        )
        _require_marker(body, marker, "PR comment")
        return str(body)

    def ours() -> list[IssueComment]:
        with _calling(f"list the comments on PR #{pr}"):
            candidates = [c for c in issue.get_comments() if has_marker(c.body, marker)]
            return sorted((c for c in candidates if identity.wrote(c)), key=lambda c: (c.created_at, c.id))

    existing = ours()
    if existing:
        keep = existing[0]
        body = render(keep)
        if keep.body != body:
            with _calling(f"edit the golden-path comment on PR #{pr}", write=True):
                keep.edit(body)
        for extra in existing[1:]:  # left over from an earlier race
            _delete_comment(extra, pr)
        return str(keep.html_url)

    body = render(None)
    with _calling(f"comment on PR #{pr}", write=True):
        created = issue.create_comment(body)
    again = ours()
    if again and again[0].id != created.id:
        # Another run created its comment first: keep the oldest, remove ours, write into the oldest.
        _delete_comment(created, pr)
        keep = again[0]
        body = render(keep)
        with _calling(f"edit the golden-path comment on PR #{pr}", write=True):
            keep.edit(body)
        return str(keep.html_url)
    return str(created.html_url)


def _delete_comment(comment: IssueComment, pr: int) -> None:
    try:
        with _calling(f"delete a duplicate golden-path comment on PR #{pr}"):
            comment.delete()
    except _CannotPublish as exc:
        if exc.status != 404:  # 404: already deleted by the run that raced us: fine
            raise


# -- P0 issues -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tracked:
    issue: Issue
    fingerprint: str
    state: dict[str, Any]


def _marker_pattern() -> re.Pattern[str]:
    template = report.issue_marker(_PLACEHOLDER)
    before, found, after = template.partition(_PLACEHOLDER)
    if not found:
        raise TemplateError("report.issue_marker() does not include the fingerprint")
    return re.compile(r"(?m)^[ \t]*" + re.escape(before) + r"(\S+?)" + re.escape(after) + r"[ \t]*\r?$")


def _read_state(body: str | None) -> dict[str, Any]:
    match = _STATE.search(body or "")
    if not match:
        return {}
    try:
        data = json.loads(match.group(1))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _with_state(body: str | None, state: Mapping[str, Any]) -> str:
    # "<" and ">" are escaped inside the JSON strings so the HTML comment cannot be closed early.
    encoded = json.dumps(dict(state), sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    line = f"<!-- golden-path:state {encoded} -->"
    text = body or ""
    if _STATE.search(text):
        return _STATE.sub(lambda _: line, text, count=1)
    return f"{text.rstrip()}\n\n{line}\n"


def tracking_label(labels: Iterable[str]) -> str | None:
    names = list(labels)
    for name in names:
        if name.lower() == TRACKING_LABEL:
            return name
    return names[0] if names else None


def _list_tracked(
    *, gh: pygithub.Github, repo: Repository, repo_name: str, service: str, labels: tuple[str, ...]
) -> list[_Tracked]:
    """Our issues for ``service`` in every state, oldest first."""
    pattern = _marker_pattern()
    label = tracking_label(labels)
    found: list[_Tracked] = []
    with _calling("list the golden-path issues"):
        if label is not None:
            issues: Iterable[Issue] = repo.get_issues(state="all", labels=[label])
        else:
            prefix = report.issue_marker(_PLACEHOLDER).partition(_PLACEHOLDER)[0]
            phrase = (prefix + service).replace("<!--", "").replace('"', " ").strip()
            issues = gh.search_issues(f'repo:{repo_name} is:issue in:body "{phrase}"')
        for issue in issues:
            if issue.pull_request is not None:
                continue
            match = pattern.search(issue.body or "")
            if match is None or not match.group(1).startswith(_marker_fingerprint(f"{service}:")):
                continue
            found.append(_Tracked(issue=issue, fingerprint=match.group(1), state=_read_state(issue.body)))
    found.sort(key=lambda t: t.issue.number)
    return found


def _sync_issues(
    *,
    gh: pygithub.Github,
    repo: Repository,
    repo_name: str,
    run: Run,
    settings: GitHubSettings,
    templates_dir: Path | None = None,
    warnings: list[str] | None = None,
) -> list[str]:
    """Open, update, reopen and close P0 issues for ``run``; returns the URLs of this run's P0 issues."""
    notes = warnings if warnings is not None else []
    service = run.target.service
    p0: dict[str, Finding] = {}
    for finding in run.findings:
        if finding.severity is Severity.P0:
            p0.setdefault(finding.fingerprint, finding)
    tracked = _list_tracked(gh=gh, repo=repo, repo_name=repo_name, service=service, labels=settings.labels)
    by_fingerprint: dict[str, list[_Tracked]] = {}
    for item in tracked:
        by_fingerprint.setdefault(item.fingerprint, []).append(item)

    urls: list[str] = []
    opened: list[tuple[Finding, Issue]] = []
    labels_ready = False
    for fingerprint, finding in p0.items():
        candidates = by_fingerprint.get(_marker_fingerprint(fingerprint), [])
        current = next((t for t in candidates if t.issue.state == "open"), None)
        if current is None and candidates:
            current = candidates[-1]  # the most recent closed one: reopen it
        if current is None:
            if not labels_ready:
                ensure_labels(repo, settings.labels)
                labels_ready = True
            issue = _open_issue(repo, run, finding, settings, templates_dir, notes)
            opened.append((finding, issue))
            urls.append(str(issue.html_url))
        else:
            _recur(current, run, finding, templates_dir)
            urls.append(str(current.issue.html_url))
    if opened:
        urls = _resolve_duplicates(gh, repo, repo_name, service, settings, opened, urls)

    for item in tracked:
        if item.issue.state != "open" or item.fingerprint in {_marker_fingerprint(f) for f in p0}:
            continue
        _count_pass(item, run, settings, templates_dir)
    return urls


def _marker_fingerprint(fingerprint: str) -> str:
    """The fingerprint as it appears inside the marker (identical unless the marker escapes it)."""
    template = report.issue_marker(_PLACEHOLDER)
    before, _, after = template.partition(_PLACEHOLDER)
    marker = str(report.issue_marker(fingerprint))
    return marker[len(before) : len(marker) - len(after)] if after else marker[len(before) :]


def ensure_labels(repo: Repository, labels: Iterable[str]) -> None:
    """Create the configured labels that do not exist yet (names compare case-insensitively, as on GitHub)."""
    wanted = list(dict.fromkeys(labels))
    if not wanted:
        return
    with _calling("list the repository's labels"):
        present = {label.name.lower() for label in repo.get_labels()}
    for name in wanted:
        if name.lower() in present:
            continue
        try:
            with _calling(f"create the label {name!r}", write=True):
                repo.create_label(
                    name=name,
                    color=LABEL_COLORS.get(name.lower(), "ededed"),
                    description=LABEL_DESCRIPTIONS.get(name.lower(), "Managed by golden-path"),
                )
        except GitHubError as exc:
            cause = exc.__cause__
            if isinstance(cause, GithubException) and cause.status == 422:
                continue  # created meanwhile by a concurrent run
            raise


def _open_issue(
    repo: Repository,
    run: Run,
    finding: Finding,
    settings: GitHubSettings,
    templates_dir: Path | None,
    notes: list[str],
) -> Issue:
    marker = report.issue_marker(finding.fingerprint)
    body = report.render_issue(run, finding, templates_dir=templates_dir)
    _require_marker(body, marker, "issue")
    body = _with_state(body, _new_state(finding))
    title = report.issue_title(run, finding)
    labels = list(settings.labels)
    assignees = list(settings.assignees)
    doing = f"open an issue for {finding.fingerprint}"
    try:
        with _calling(doing, write=True):
            return repo.create_issue(title=title, body=body, labels=labels, assignees=assignees)
    except GitHubError as exc:
        cause = exc.__cause__
        refused = isinstance(cause, GithubException) and cause.status == 422 and "assignee" in str(cause.data)
        if not (assignees and refused):
            raise
    # GitHub refused the assignees (422: nothing was created), so sending it again without them is safe.
    notes.append(
        f"GitHub refused the assignees {', '.join(assignees)} for the P0 issue (not collaborators?); "
        "opened it unassigned"
    )
    with _calling(doing, write=True):
        return repo.create_issue(title=title, body=body, labels=labels)


def _new_state(finding: Finding) -> dict[str, Any]:
    return {
        "fingerprint": finding.fingerprint,
        "kind": finding.kind.value,
        "step": finding.step.value,
        "title": finding.title,
        "passes": 0,
    }


def _recur(item: _Tracked, run: Run, finding: Finding, templates_dir: Path | None) -> None:
    issue = item.issue
    number = issue.number
    state = {**_new_state(finding), **item.state, "passes": 0}
    if issue.state != "open":
        with _calling(f"reopen issue #{number}", write=True):
            issue.edit(state="open", body=_with_state(issue.body, state))
    elif item.state.get("passes"):
        with _calling(f"reset the recovery count of issue #{number}", write=True):
            issue.edit(body=_with_state(issue.body, state))
    update = report.render_issue_update(run, finding, templates_dir=templates_dir)
    with _calling(f"comment on issue #{number}", write=True):
        issue.create_comment(update)


def _count_pass(item: _Tracked, run: Run, settings: GitHubSettings, templates_dir: Path | None) -> None:
    issue = item.issue
    number = issue.number
    previous = int(item.state.get("passes") or 0)
    if run.verdict is Verdict.FAIL:
        if previous:
            with _calling(f"reset the recovery count of issue #{number}", write=True):
                issue.edit(body=_with_state(issue.body, {**item.state, "passes": 0}))
        return
    passes = previous + 1
    if passes < settings.close_after_passes:
        with _calling(f"record a passing run on issue #{number}", write=True):
            issue.edit(body=_with_state(issue.body, {**item.state, "passes": passes}))
        return
    finding = _finding_from(item, run)
    recovery = report.render_recovery(run, finding, passes=passes, templates_dir=templates_dir)
    with _calling(f"comment the recovery on issue #{number}", write=True):
        issue.create_comment(recovery)
    with _calling(f"close issue #{number}", write=True):
        issue.edit(
            state="closed",
            state_reason="completed",
            body=_with_state(issue.body, {**item.state, "passes": 0}),
        )


def _finding_from(item: _Tracked, run: Run) -> Finding:
    """The finding an issue was opened for, rebuilt from its state line (best effort for older issues)."""
    state = item.state
    fingerprint = str(state.get("fingerprint") or unquote(item.fingerprint))
    service_kind = fingerprint.removeprefix(f"{run.target.service}:").split(":", 1)[0]
    kind = _enum(Kind, state.get("kind"), _enum(Kind, service_kind, Kind.EVENT_ERROR))
    step = _enum(Step, state.get("step"), Step.CONNECT)
    title = str(state.get("title") or item.issue.title)
    return Finding(
        fingerprint=fingerprint,
        severity=Severity.P0,
        kind=kind,
        step=step,
        title=title,
        cause="",
        remediation="",
        occurrences=0,
    )


def _enum(cls: type[_E], value: Any, default: _E) -> _E:
    try:
        return cls(value)
    except ValueError:
        return default


def _resolve_duplicates(
    gh: pygithub.Github,
    repo: Repository,
    repo_name: str,
    service: str,
    settings: GitHubSettings,
    opened: list[tuple[Finding, Issue]],
    urls: list[str],
) -> list[str]:
    """If a concurrent run opened an issue for the same fingerprint first, close ours as its duplicate."""
    again = _list_tracked(gh=gh, repo=repo, repo_name=repo_name, service=service, labels=settings.labels)
    result = list(urls)
    for finding, issue in opened:
        fingerprint = _marker_fingerprint(finding.fingerprint)
        older = [t.issue for t in again if t.fingerprint == fingerprint and t.issue.state == "open"]
        older = [i for i in older if i.number < issue.number]
        if not older:
            continue
        keep = older[0]
        with _calling(f"close duplicate issue #{issue.number}", write=True):
            issue.create_comment(f"Duplicate of #{keep.number}, opened by a concurrent golden-path run.")
            issue.edit(state="closed", state_reason="not_planned")
        result = [str(keep.html_url) if u == str(issue.html_url) else u for u in result]
    return list(dict.fromkeys(result))
