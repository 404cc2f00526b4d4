"""GitHub through PyGithub: the client, error translation, PR discovery and the sticky PR comment.

The P0 issue lifecycle is ``bot.issues``; ``bot.publish`` runs both. Everything here receives its client
(``client()`` builds one) and never reads the environment.

Rules, in one place:

* **Retries.** Idempotent calls (GET, HEAD, PUT, DELETE and PATCH: every edit we make sends the whole new
  body or state) are retried with backoff on 429/5xx, connection and read errors, up to ``retries`` times.
  A POST is retried by the client only when GitHub answered that it did *not* apply it (a rate limit: 403/429
  with ``Retry-After``, ``x-ratelimit-remaining: 0`` or a rate-limit message). A 5xx or a dropped connection
  after a POST may have applied it: ``post_once`` looks for the result by its hidden marker and sends the POST
  again only when it is not there. Waits honour ``Retry-After`` then ``x-ratelimit-reset``; the sum of all
  waits of one client is capped (``max_wait_s``): a wait that would pass the cap fails at once.
* **Errors.** Each GitHub call is translated once. 403 (other than a rate limit), 404 and 410 mean the token may
  not do this (a fork PR's read-only token, a missing ``permissions:`` entry, issues disabled): the step is
  skipped with a warning naming the permission, so the verdict still shows. Everything else (5xx or rate limits
  after retries, connection errors, 401, unexpected answers) is a :class:`~bot.errors.GitHubError` saying which
  call failed, how, and what to do.
* **Cost.** :class:`RequestCounter` counts every HTTP request a client sends (retries included). Listings are
  read as plain JSON (``list_json``): PyGithub objects complete themselves with a GET each when a field the
  listing left out is read.
* **Sticky comment.** Ours is a PR comment with ``report.comment_marker(service)`` as a whole line, written by
  the token's user: learnt from what this run wrote (every write's answer names its author), else ``GET /user``;
  a ``GITHUB_TOKEN`` or app token gets 403 there, and then any ``Bot`` author counts. The oldest is edited in
  place (newer leftovers are deleted, their history kept). Concurrent edits: write, wait ``settle_s``, read
  back; if another run's edit replaced ours, merge both histories and write again.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import github as pygithub
import requests
from github import Auth
from github.GithubException import GithubException
from github.GithubRetry import GithubRetry
from github.IssueComment import IssueComment
from github.Repository import Repository
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from bot import report, waits
from bot.actions import ActionsContext
from bot.errors import GitHubError, TemplateError
from bot.results import Run
from bot.untrusted import Redactor

log = logging.getLogger(__name__)

USER_AGENT = "golden-path (+https://github.com/features/actions)"
# PATCH is idempotent for us: every edit sends the whole new body/state, so repeating it changes nothing more.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
RETRY_STATUSES = (429, 500, 502, 503, 504)
PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
COMMIT_EVENTS = frozenset({"push", "deployment", "deployment_status", "workflow_run"})
PERMISSION_HINT = (
    "the token may not do this (a fork PR's token is read-only; otherwise grant the job "
    "`permissions: pull-requests: write, issues: write`)"
)
PULL_REQUESTS_WRITE = "pull-requests: write"
ISSUES_WRITE = "issues: write"


# -- the client ------------------------------------------------------------------------------------------------


class RateLimitWaitTooLong(Exception):
    """GitHub asked us to wait longer than this client's remaining wait budget."""

    def __init__(
        self,
        *,
        method: str,
        url: str,
        status: int | None,
        wait_s: float,
        budget_s: float,
        again: bool = False,
    ) -> None:
        self.method, self.url, self.status, self.wait_s, self.budget_s = method, url, status, wait_s, budget_s
        self.again = again  # rate-limited again after one wait: a limit is waited out once per request
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


class RequestCounter:
    """How many HTTP requests one client sent, every retry included (``--verbose`` prints it; benchmarks read it)."""

    def __init__(self) -> None:
        self._total = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self._total += 1

    @property
    def total(self) -> int:
        return self._total


_SLEPT = threading.local()  # seconds this thread slept waiting out GitHub (rate limits, backoff)


def retry_slept_s() -> float:
    """Seconds the calling thread has slept so far in retries of GitHub requests (never part of a settle wait)."""
    return float(getattr(_SLEPT, "seconds", 0.0))


class _Retry(GithubRetry):
    """PyGithub's retry (it understands GitHub's 403 rate limits), made safe for writes and bounded in time.

    It also counts requests: urllib3 asks ``is_retry`` about every response it receives, and ``increment``
    about every request that got no response at all.
    """

    def __init__(
        self, *, wait_budget: _WaitBudget | None = None, counter: RequestCounter | None = None, **kwargs: Any
    ) -> None:
        self.wait_budget = wait_budget or _WaitBudget(60.0)
        self.counter = counter or RequestCounter()
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> Any:
        kw["wait_budget"] = self.wait_budget
        kw["counter"] = self.counter
        return super().new(**kw)

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Any:
        if response is None:
            self.counter.add()  # a connection or read error: the request went out (or tried to) unanswered
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        self.counter.add()
        if method.upper() in IDEMPOTENT_METHODS:
            return bool(super().is_retry(method, status_code, has_retry_after))
        # POST/PATCH: only answers that say the request was refused before it applied (rate limits).
        # For a 403, GithubRetry.increment reads the body and raises at once unless it is a rate limit.
        return bool(self.total) and status_code in (403, 429)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self._wait_for(response)
        limited = [h for h in self.history if h.status in (403, 429)]
        if len(limited) > 1:  # a rate limit is waited out once per request: a second one fails it
            raise RateLimitWaitTooLong(
                method=limited[-1].method or "?", url=limited[-1].url or "?", status=limited[-1].status,
                wait_s=wait, budget_s=0.0, again=True,
            )  # fmt: skip
        if not self.wait_budget.take(wait):
            last = self.history[-1] if self.history else None
            raise RateLimitWaitTooLong(
                method=(last.method if last else None) or "?",
                url=(last.url if last else None) or "?",
                status=last.status if last else None,
                wait_s=wait,
                budget_s=self.wait_budget.total_s - self.wait_budget.spent_s,
            )
        waits.sleep(wait, "github retry")
        if wait > 0:
            _SLEPT.seconds = retry_slept_s() + wait

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
    counter: RequestCounter | None = None,
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
        counter=counter,
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


class CannotPublish(Exception):
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
def calling(doing: str, *, write: bool = False, permission: str | None = None) -> Iterator[None]:
    """Translate whatever PyGithub/requests raise while ``doing`` into a warning or a ``GitHubError``.

    ``permission`` names the job permission the call needs (``issues: write``), for the warning when refused.
    """
    not_repeated = " It was not repeated because it may have been applied; re-run the job." if write else ""
    hint = (
        f"the token lacks `{permission}` (a fork PR's token is read-only; otherwise add `permissions: "
        f"{permission}` to the job)"
        if permission
        else PERMISSION_HINT
    )
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
            raise CannotPublish(
                f"could not {doing}: GitHub answered {status} ({_message(exc)}); {hint}",
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
        if exc.again:
            raise GitHubError(
                f"GitHub rate limit while trying to {doing}: still limited after waiting once as it asked "
                f"(HTTP {exc.status}); re-run the job later"
            ) from exc
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
    for this repository first, then ``GET /repos/{repo}/commits/{sha}/pulls``: an open PR whose head is the
    commit, else the merged PR whose merge commit it is (the deploy of a merge); never a PR that merely
    contains the commit.
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
        with calling(f"list the pull requests of commit {sha[:12]}"):
            pulls = list(gh.get_repo(repo_name).get_commit(sha).get_pulls())
    except CannotPublish as exc:
        (warn or log.warning)(str(exc))
        return None
    for pull in pulls:
        if pull.state == "open" and pull.head.sha == sha:
            return int(pull.number)
    # A PR that merely contains the commit (a stacked PR, a long-lived branch) is not reported to: its sticky
    # comment speaks for its own head. The merge commit of a merged PR is that PR's deploy.
    for pull in pulls:
        if pull.merged_at is not None and pull.merge_commit_sha == sha:
            return int(pull.number)
    return None


def track_for(
    *,
    explicit: str | None,
    tag: str | None,
    tag_tested: bool,
    ctx: ActionsContext | None,
    pr: int | None = None,
) -> str:
    """The incident track of this run: ``github.track`` when set; else the Cloud Run tag whose URL was tested;
    else ``pr-N`` for pull_request events; else the branch of ``GITHUB_REF``, where the repository's default
    branch (from the event, else ``main``/``master``) is ``production``, as is a run with none of these."""
    if explicit:
        return explicit
    if tag and tag_tested:
        return tag
    if ctx is None:
        return report.DEFAULT_TRACK
    event = read_event(ctx.event_path)
    if (ctx.event_name or "") in PULL_REQUEST_EVENTS:
        pull = event.get("pull_request")
        number = pull.get("number") if isinstance(pull, dict) else event.get("number")
        if isinstance(number, int):
            return f"pr-{number}"
        if pr is not None:
            return f"pr-{pr}"
    ref = ctx.ref or ""
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        default = _mapping(event.get("repository")).get("default_branch")
        defaults = {default} if isinstance(default, str) and default else {"main", "master"}
        if branch and branch not in defaults:
            return branch
    return report.DEFAULT_TRACK


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


# -- plumbing shared by the comment and the issues -------------------------------------------------------------


_T = TypeVar("_T")


def may_have_applied(exc: GitHubError) -> bool:
    """True when a write failed in a way that says nothing about whether GitHub applied it (5xx, no answer)."""
    cause = exc.__cause__
    if isinstance(cause, GithubException):
        return cause.status >= 500
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return False  # never connected: nothing was sent
    return isinstance(cause, requests.exceptions.ConnectionError | requests.exceptions.Timeout)


def post_once(
    doing: str,
    *,
    send: Callable[[], _T],
    find: Callable[[], _T | None],
    permission: str,
    tries: int,
    backoff_s: float = 0.5,
) -> _T:
    """Create something with a POST that is never sent blindly twice.

    A POST answered 5xx (or not at all) may have been applied: ``find`` looks for it by its hidden marker, and
    only when it is not there is the POST sent again (after a backoff). Raises the last ``GitHubError`` when
    GitHub stays unavailable for ``tries`` attempts.
    """
    failure: GitHubError | None = None
    for attempt in range(max(tries, 1)):
        if attempt and backoff_s:
            waits.sleep(min(backoff_s * 2 ** (attempt - 1), 8.0), "github post backoff")
        try:
            with calling(doing, write=True, permission=permission):
                return send()
        except GitHubError as exc:
            if not may_have_applied(exc):
                raise
            failure = exc
            log.info("GitHub failed to %s and may have applied it: looking for it by its marker", doing)
        with calling(f"check whether GitHub applied the request to {doing}"):
            found = find()
        if found is not None:
            return found
    assert failure is not None
    raise failure


def list_json(
    gh: pygithub.Github,
    path: str,
    params: Mapping[str, Any],
    *,
    max_requests: int = 30,
    what: str = "the listing",
    warn: Callable[[str], None] | None = None,
) -> list[Any]:
    """Every item of a listing as plain JSON, following ``Link: rel="next"`` to the end, within ``max_requests``.

    PyGithub's objects complete themselves lazily: reading a field a listing leaves out (``pull_request`` on a
    plain issue) costs a GET per object. Plain JSON costs exactly one request per page. When the budget is
    reached with pages left, ``warn`` says so (naming ``github.max_list_requests``).
    """
    items: list[Any] = []
    url: str | None = path
    parameters: dict[str, Any] | None = dict(params)
    for _ in range(max(max_requests, 1)):
        headers, data = gh.requester.requestJsonAndCheck("GET", url or path, parameters=parameters)
        page = data.get("items") if isinstance(data, dict) else data
        items.extend(item for item in (page or []) if isinstance(item, dict))
        url, parameters = _next_link(headers.get("link")), None
        if url is None:
            return items
    (warn or log.warning)(
        f"stopped reading {what} after {max_requests} requests ({len(items)} items; the budget "
        "github.max_list_requests): items beyond them were not seen; raise github.max_list_requests or close "
        "old issues"
    )
    return items


def _next_link(header: str | None) -> str | None:
    for part in (header or "").split(","):
        url, _, rel = part.partition(";")
        if 'rel="next"' in rel:
            return url.strip().strip("<>")
    return None


def has_marker(body: str | None, marker: str) -> bool:
    """True when ``marker`` is a whole line of ``body`` (a quote of it inside other text does not count)."""
    return bool(body) and report.has_marker(body or "", marker)


def require_marker(body: str, marker: str, what: str) -> None:
    if not has_marker(body, marker):
        raise TemplateError(
            f"the rendered {what} lacks its hidden marker {marker!r} on a line of its own; "
            "a custom template must keep it, or every run would post a new one"
        )


class Identity:
    """Who the token writes as. Learnt from what this run wrote (GitHub answers every write with its author),
    else ``GET /user`` once; None when the token may not ask (``GITHUB_TOKEN`` and app tokens get 403)."""

    def __init__(self, gh: pygithub.Github) -> None:
        self._gh = gh
        self._resolved = False
        self._login: str | None = None

    def learn(self, user: Any) -> None:
        login = getattr(user, "login", None)
        if isinstance(login, str) and login and not self._resolved:
            self._login, self._resolved = login, True

    @property
    def login(self) -> str | None:
        if not self._resolved:
            try:
                with calling("identify the token's user (GET /user)"):
                    self._login = self._gh.get_user().login
            except CannotPublish:
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


def upsert_comment(
    *,
    gh: pygithub.Github,
    repo: Repository,
    pr: int,
    run: Run,
    identity: Identity,
    issues: tuple[report.IssueLink, ...] = (),
    templates_dir: Path | None = None,
    max_chars: int = 65_000,
    history_limit: int = 10,
    settle_s: float = 1.0,
    tries: int = 4,
    backoff_s: float = 0.5,
    redactor: Redactor | None = None,
    written: list[str] | None = None,
) -> str:
    """Create or edit our one comment on ``pr`` for ``run``'s service, keeping every run's history entry even
    when runs edit it at once; returns its URL (also appended to ``written`` as soon as this run's entry is in
    it, so a later failure still reports it). The rendered comment passes ``redactor`` before it is sent.

    GitHub has no conditional edit, so: write, wait ``settle_s`` (or twice our own read-to-write gap, when
    longer: it stands for any concurrent writer's), read it back, and when a concurrent edit replaced ours,
    merge both histories and write again. A writer that read before our edit writes within that wait, so our
    read-back sees it.
    """
    marker = report.comment_marker(run.target.service)
    thread = repo.get_issue(pr)
    this_run = report.HistoryEntry.from_run(run)
    known: set[report.HistoryEntry] = set()

    def render() -> str:
        history = sorted((e for e in known if e != this_run), key=lambda e: (e.started_at, e.run_url or ""))
        body = report.render_comment(
            run,
            history=history,
            max_chars=max_chars,
            templates_dir=templates_dir,
            history_limit=history_limit,
            issues=issues,
        )
        body = redactor.clean(body) if redactor else body
        require_marker(body, marker, "PR comment")
        return str(body)

    def ours() -> list[IssueComment]:
        with calling(f"list the comments on PR #{pr}"):
            candidates = [c for c in thread.get_comments() if has_marker(c.body, marker)]
            return sorted((c for c in candidates if identity.wrote(c)), key=lambda c: (c.created_at, c.id))

    existing = ours()
    read_at, slept_at_read = waits.clock(), retry_slept_s()
    if existing:
        target, base = existing[0], existing[0].body or ""
        for extra in existing[1:]:  # left over from an earlier race: keep its history, drop the copy
            known.update(report.decode_history(extra.body or ""))
            _delete_comment(extra, pr)
    else:
        body = render()
        created = post_once(
            f"comment on PR #{pr}",
            send=lambda: thread.create_comment(body),
            find=lambda: next((c for c in ours() if this_run in report.decode_history(c.body or "")), None),
            permission=PULL_REQUESTS_WRITE,
            tries=tries,
            backoff_s=backoff_s,
        )
        identity.learn(created.user)
        if written is not None:
            written.append(str(created.html_url))
        again = ours()
        if not again or again[0].id == created.id:
            target, base = created, body
        else:
            # Another run created its comment first: keep the oldest, remove ours, write into the oldest.
            _delete_comment(created, pr)
            target, base = again[0], again[0].body or ""
            read_at, slept_at_read = waits.clock(), retry_slept_s()
    for _ in range(tries + 1):
        known.update(report.decode_history(base))
        body = render()
        if body != base:
            with calling(
                f"edit the golden-path comment on PR #{pr}", write=True, permission=PULL_REQUESTS_WRITE
            ):
                target.edit(body)
            if written is not None and str(target.html_url) not in written:
                written.append(str(target.html_url))
        if settle_s:
            gap = waits.clock() - read_at
            settle = settle_wait(settle_s, gap_s=gap, slept_s=retry_slept_s() - slept_at_read)
            waits.sleep(settle, "github comment settle")
        with calling(f"read back the golden-path comment on PR #{pr}"):
            _, data = gh.requester.requestJsonAndCheck("GET", target.url)
        read_at, slept_at_read = waits.clock(), retry_slept_s()
        base = str(data.get("body") or "") if isinstance(data, dict) else ""
        if base == body or this_run in report.decode_history(base):
            break
        log.info("a concurrent run edited the comment on PR #%s: merging its history", pr)
    else:
        log.warning(
            "the comment on PR #%s kept changing under concurrent runs: this run's entry may be missing", pr
        )
    return str(target.html_url)


def settle_wait(settle_s: float, *, gap_s: float, slept_s: float) -> float:
    """How long to wait after an edit before reading it back: ``settle_s``, or twice our own read-to-write gap
    when longer (a concurrent writer's gap is about ours: same network, same machine). Time this run slept
    waiting out a rate limit or a backoff is not part of that gap: a concurrent writer does not sleep it too."""
    return max(settle_s, 2 * max(gap_s - max(slept_s, 0.0), 0.0))


def _delete_comment(comment: IssueComment, pr: int) -> None:
    try:
        with calling(f"delete a duplicate golden-path comment on PR #{pr}"):
            comment.delete()
    except CannotPublish as exc:
        if exc.status != 404:  # 404: already deleted by the run that raced us: fine
            raise
