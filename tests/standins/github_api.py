"""A stateful stand-in for the GitHub REST API v3, on 127.0.0.1, that the real PyGithub client talks to.

It answers with the JSON shapes GitHub documents (``tests/fixtures/github/`` holds trimmed real samples) and
every ``url``/``html_url``/``comments_url`` it returns points back at itself, because PyGithub follows them.
Point the client at :attr:`GitHubStandIn.api_url` (``GITHUB_API_URL``); a ``prefix`` such as ``/api/v3``
serves it the way GitHub Enterprise Server does.

Implemented: ``GET /user``, ``GET /repos/{o}/{r}``, pulls, ``commits/{sha}`` and ``commits/{sha}/pulls``,
issues (list with ``state``/``labels``/pagination, get, create, edit), issue comments (list, create, edit,
delete), labels (list, get, create, add to an issue as a bare JSON array or ``{"labels": [...]}``) and
``GET /search/issues``. Requests without the right token get 401; the token is never recorded.

Permissions as GitHub's REST docs describe them: "Only users with push access can set labels for new issues.
Labels are silently dropped otherwise." With :attr:`push_access` False the stand-in drops the labels of a new or
edited issue that exist, refuses (403) a new issue naming a label that does not exist (as GitHub does, see
github.com/orgs/community/discussions/197408) and refuses creating or adding labels. :attr:`labels_refused_with`
answers any new issue that carries labels with 403 or 422 instead. :meth:`close_as_person` and
:meth:`edit_as_person` are what a person does in the web UI (close as ``not_planned``/``duplicate``, remove the
marker line). :attr:`search_refused_with` answers ``/search/issues`` with that status (GHES without a search
index); :meth:`primary_rate_limit` is a 403 with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``.

Faults for tests: :meth:`fail` (a status for the next N matching requests, optionally *after* applying the
write, as a 502 from a proxy may), :meth:`secondary_rate_limit`, :attr:`read_only` (403 "Resource not
accessible by integration" on every write, as a fork PR's token gets), :attr:`user_endpoint_forbidden`
(``GET /user`` refused, as for ``GITHUB_TOKEN``) and :meth:`before` (run a callback before a matching request,
e.g. to race a second writer), :meth:`rendezvous` (hold concurrent writers until all have arrived) and
:attr:`latency_s` (a delay before every answer; the server is threaded, so two clients run at once).
:attr:`requests` logs method, path, query, JSON body and status. Timestamps start a day before the stand-in and
advance one second per write; ``since`` filters the issue listing by ``updated_at``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.standins.loopback import LoopbackServer

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
MAX_BODY_CHARS = 65_536  # GitHub rejects issue and comment bodies longer than this


@dataclass(frozen=True)
class Request:
    """One request as the stand-in saw it (never the Authorization header)."""

    method: str
    path: str  # without the API prefix and without the query string
    query: dict[str, str]
    body: Any
    status: int


@dataclass
class _Fault:
    method: str | None
    path: re.Pattern[str]
    status: int
    remaining: int
    headers: dict[str, str]
    body: dict[str, Any]
    apply: bool  # handle the request first, then answer with the fault (the write happened)


@dataclass
class _Hook:
    method: str | None
    path: re.Pattern[str]
    callback: Callable[[], None]
    remaining: int


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # "User" | "Bot" | "Organization"


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Comment:
    id: int
    issue: int
    body: str
    user: User
    created: int  # ticks of the stand-in clock
    updated: int


@dataclass
class Issue:
    """An issue or a pull request (GitHub numbers both from one sequence)."""

    number: int
    id: int
    title: str
    body: str | None
    user: User
    created: int
    updated: int
    state: str = "open"
    state_reason: str | None = None
    closed: int | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    # pull request facts (is_pull is False for plain issues)
    is_pull: bool = False
    head_sha: str = ""
    head_ref: str = "feature"
    head_repo: str = ""  # full name; differs from the base repository for a fork PR
    base_ref: str = "main"
    merged: int | None = None
    merge_commit_sha: str | None = None
    draft: bool = False


@dataclass
class Repository:
    full_name: str
    id: int
    default_branch: str = "main"
    labels: list[Label] = field(default_factory=list)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)


class GitHubStandIn(LoopbackServer):
    """The server and its state; use as a context manager (or ``start()``/``stop()``)."""

    def __init__(
        self,
        *,
        token: str = "ghs_standin_token_0123456789",
        repo: str = "acme/chat-backend",
        login: str = "github-actions[bot]",
        user_type: str = "Bot",
        prefix: str = "",
        per_page: int = 30,
    ) -> None:
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.default_per_page = per_page
        self.read_only = False
        self.push_access = True  # False: labels on new issues are silently dropped (GitHub's documented rule)
        self.labels_refused_with: int | None = None  # 403 or 422 for any new issue that carries labels
        self.search_refused_with: int | None = None  # e.g. 503 or 422 from GHES without a search index
        self.latency_s = 0.0  # added before every answer, so concurrent clients overlap as on the real API
        # Timestamps: one second per tick of the stand-in clock, starting a day ago (``since`` filters work).
        self.epoch = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        self.user_endpoint_forbidden = True  # GITHUB_TOKEN cannot call GET /user
        self.requests: list[Request] = []
        self.assignable: set[str] = {"octocat", "oncall-bot"}
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._hooks: list[_Hook] = []
        self._ids = 1000
        self._clock = 0
        self._users: dict[str, User] = {}
        self.me = self.user(login, type=user_type)
        self.repos: dict[str, Repository] = {}
        self.add_repo(repo)
        super().__init__(_handler_for(self))

    # -- lifecycle ---------------------------------------------------------------------------------------

    thread_name = "github-standin"

    @property
    def api_url(self) -> str:
        """What ``GITHUB_API_URL`` is set to."""
        return self.origin + self.prefix

    @property
    def server_url(self) -> str:
        """What ``GITHUB_SERVER_URL`` is set to (``html_url`` values live here)."""
        return self.origin

    # -- state set-up and inspection -------------------------------------------------------------------

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _tick(self) -> int:
        with self._lock:
            self._clock += 1
            return self._clock

    def user(self, login: str, *, type: str = "User") -> User:
        with self._lock:
            if login not in self._users:
                self._users[login] = User(login=login, id=self._next_id(), type=type)
            return self._users[login]

    def add_repo(self, full_name: str) -> Repository:
        with self._lock:
            repo = Repository(full_name=full_name, id=self._next_id())
            self.repos[full_name.lower()] = repo
            return repo

    def repo(self, full_name: str | None = None) -> Repository:
        if full_name is None:
            return next(iter(self.repos.values()))
        return self.repos[full_name.lower()]

    def add_pull(
        self,
        *,
        head_sha: str,
        title: str = "Change the agent pipeline",
        author: str = "dev",
        repo: str | None = None,
        head_repo: str | None = None,
        state: str = "open",
        merge_commit_sha: str | None = None,
        associate: bool = True,
    ) -> int:
        """A pull request; ``associate`` lists it under ``commits/{head_sha}/pulls`` as GitHub does."""
        with self._lock:
            r = self.repo(repo)
            number = self._next_number(r)
            now = self._tick()
            pull = Issue(
                number=number,
                id=self._next_id(),
                title=title,
                body="",
                user=self.user(author),
                created=now,
                updated=now,
                state="closed" if state == "merged" else state,
                closed=now if state in ("closed", "merged") else None,
                is_pull=True,
                head_sha=head_sha,
                head_repo=head_repo or r.full_name,
                merged=now if state == "merged" else None,
                merge_commit_sha=merge_commit_sha,
            )
            r.issues[number] = pull
            if associate:
                r.commit_pulls.setdefault(head_sha, []).append(number)
            if merge_commit_sha:
                r.commit_pulls.setdefault(merge_commit_sha, []).append(number)
            return number

    def add_issue(
        self,
        *,
        title: str,
        body: str,
        labels: tuple[str, ...] = (),
        author: str | None = None,
        state: str = "open",
        repo: str | None = None,
    ) -> int:
        with self._lock:
            r = self.repo(repo)
            for name in labels:
                self._ensure_label(r, name)
            now = self._tick()
            issue = Issue(
                number=self._next_number(r),
                id=self._next_id(),
                title=title,
                body=body,
                user=self.user(author) if author else self.me,
                created=now,
                updated=now,
                state=state,
                closed=now if state == "closed" else None,
                state_reason="completed" if state == "closed" else None,
                labels=list(labels),
            )
            r.issues[issue.number] = issue
            return issue.number

    def add_comment(
        self, number: int, body: str, *, author: str | None = None, repo: str | None = None
    ) -> int:
        with self._lock:
            r = self.repo(repo)
            now = self._tick()
            comment = Comment(
                id=self._next_id(),
                issue=number,
                body=body,
                user=self.user(author) if author else self.me,
                created=now,
                updated=now,
            )
            r.comments[comment.id] = comment
            return comment.id

    def add_label(self, name: str, *, repo: str | None = None) -> None:
        with self._lock:
            self._ensure_label(self.repo(repo), name)

    def heal(self) -> None:
        """Drop every pending fault (GitHub is well again)."""
        with self._lock:
            self._faults.clear()

    def close_as_person(
        self, number: int, reason: str, *, login: str = "maintainer", repo: str | None = None
    ) -> None:
        """A person closes the issue in the web UI (``completed``, ``not_planned`` or ``duplicate``)."""
        with self._lock:
            issue = self.repo(repo).issues[number]
            issue.closed = issue.updated = self._tick()
            issue.state, issue.state_reason = "closed", reason
            self.user(login)

    def edit_as_person(self, number: int, body: str, *, repo: str | None = None) -> None:
        """A person rewrites the issue's description (e.g. without the hidden marker line)."""
        with self._lock:
            issue = self.repo(repo).issues[number]
            issue.body, issue.updated = body, self._tick()

    def primary_rate_limit(self, path_regex: str, *, method: str | None = "GET", reset_in_s: int = 1) -> None:
        """GitHub's primary rate limit: 403, ``x-ratelimit-remaining: 0`` and the reset time (epoch seconds)."""
        headers = {
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(time.time()) + reset_in_s),
            "x-ratelimit-used": "5000",
        }
        self.fail(
            path_regex,
            status=403,
            method=method,
            headers=headers,
            message="API rate limit exceeded for installation ID 1234567.",
        )

    def issues(self, *, repo: str | None = None, pulls: bool = False) -> list[Issue]:
        with self._lock:
            return [i for i in self.repo(repo).issues.values() if i.is_pull == pulls]

    def comments(self, number: int, *, repo: str | None = None) -> list[Comment]:
        with self._lock:
            found = [c for c in self.repo(repo).comments.values() if c.issue == number]
            return sorted(found, key=lambda c: c.id)

    def label_names(self, *, repo: str | None = None) -> list[str]:
        with self._lock:
            return [label.name for label in self.repo(repo).labels]

    def count(self, method: str, path_regex: str) -> int:
        """How many logged requests match ``method`` and the (full-match) ``path_regex``."""
        pattern = re.compile(path_regex)
        return sum(1 for r in self.requests if r.method == method and pattern.fullmatch(r.path))

    # -- fault injection -------------------------------------------------------------------------------

    def fail(
        self,
        path_regex: str,
        *,
        status: int = 502,
        method: str | None = "GET",
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        apply: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (after handling them if ``apply``)."""
        body = {"message": message or _REASONS.get(status, "Server Error")}
        with self._lock:
            self._faults.append(
                _Fault(method, re.compile(path_regex), status, times, dict(headers or {}), body, apply)
            )

    def secondary_rate_limit(
        self, path_regex: str, *, method: str | None = "POST", times: int = 1, retry_after: int | None = 1
    ) -> None:
        """GitHub's secondary rate limit: 403, ``Retry-After`` (when given) and the documented message."""
        headers = {"x-ratelimit-remaining": "4990"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self.fail(
            path_regex,
            status=403,
            method=method,
            times=times,
            headers=headers,
            message=(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                "If you reach out to GitHub Support for help, please include the request ID."
            ),
        )

    def before(self, path_regex: str, callback: Callable[[], None], *, method: str | None = None) -> None:
        """Call ``callback`` once, just before the next matching request is handled."""
        with self._lock:
            self._hooks.append(_Hook(method, re.compile(path_regex), callback, 1))

    def rendezvous(
        self, path_regex: str, *, method: str | None = "POST", parties: int = 2, timeout_s: float = 5
    ) -> None:
        """Hold the next ``parties`` matching requests until all have arrived, then handle them: two clients
        that both decided to write (e.g. to create an issue) are sure to both do it, as in a real race."""
        barrier = threading.Barrier(parties, timeout=timeout_s)

        def wait() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):  # the other never came: go on alone
                barrier.wait()

        with self._lock:
            self._hooks.append(_Hook(method, re.compile(path_regex), wait, parties))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (None, method) and fault.path.fullmatch(path):
                    fault.remaining -= 1
                    return fault
            return None

    def _take_hook(self, method: str, path: str) -> _Hook | None:
        with self._lock:
            for hook in self._hooks:
                if hook.remaining > 0 and hook.method in (None, method) and hook.path.fullmatch(path):
                    hook.remaining -= 1
                    return hook
            return None

    # -- JSON shapes -----------------------------------------------------------------------------------

    def _api(self, path: str) -> str:
        return f"{self.api_url}{path}"

    def _web(self, path: str) -> str:
        return f"{self.server_url}{path}"

    def _iso(self, tick: int | None) -> str | None:
        if tick is None:
            return None
        return (self.epoch + timedelta(seconds=tick)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def user_json(self, user: User) -> dict[str, Any]:
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_{user.id}",
            "avatar_url": self._web(f"/avatars/u/{user.id}"),
            "gravatar_id": "",
            "url": self._api(f"/users/{quote(user.login)}"),
            "html_url": self._web(f"/{quote(user.login)}"),
            "type": user.type,
            "site_admin": False,
        }

    def repo_json(self, r: Repository) -> dict[str, Any]:
        owner_login = r.full_name.split("/")[0]
        base = self._api(f"/repos/{r.full_name}")
        return {
            "id": r.id,
            "node_id": f"R_{r.id}",
            "name": r.full_name.split("/")[1],
            "full_name": r.full_name,
            "private": False,
            "owner": self.user_json(self.user(owner_login, type="Organization")),
            "html_url": self._web(f"/{r.full_name}"),
            "description": None,
            "fork": False,
            "url": base,
            "issues_url": base + "/issues{/number}",
            "pulls_url": base + "/pulls{/number}",
            "labels_url": base + "/labels{/name}",
            "comments_url": base + "/comments{/number}",
            "issue_comment_url": base + "/issues/comments{/number}",
            "commits_url": base + "/commits{/sha}",
            "default_branch": r.default_branch,
            "has_issues": True,
            "archived": False,
            "disabled": False,
            "visibility": "public",
            "created_at": self._iso(0),
            "updated_at": self._iso(0),
            "pushed_at": self._iso(0),
        }

    def label_json(self, r: Repository, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": f"LA_{label.id}",
            "url": self._api(f"/repos/{r.full_name}/labels/{quote(label.name, safe='')}"),
            "name": label.name,
            "color": label.color,
            "default": False,
            "description": label.description,
        }

    def issue_json(self, r: Repository, issue: Issue) -> dict[str, Any]:
        base = self._api(f"/repos/{r.full_name}/issues/{issue.number}")
        kind = "pull" if issue.is_pull else "issues"
        labels = [self._label(r, name) for name in issue.labels]
        assignees = [self.user_json(self.user(login)) for login in issue.assignees]
        data: dict[str, Any] = {
            "url": base,
            "repository_url": self._api(f"/repos/{r.full_name}"),
            "labels_url": base + "/labels{/name}",
            "comments_url": base + "/comments",
            "events_url": base + "/events",
            "html_url": self._web(f"/{r.full_name}/{kind}/{issue.number}"),
            "id": issue.id,
            "node_id": f"I_{issue.id}",
            "number": issue.number,
            "title": issue.title,
            "user": self.user_json(issue.user),
            "labels": [self.label_json(r, label) for label in labels if label is not None],
            "state": issue.state,
            "state_reason": issue.state_reason,
            "locked": False,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees,
            "milestone": None,
            "comments": sum(1 for c in r.comments.values() if c.issue == issue.number),
            "created_at": self._iso(issue.created),
            "updated_at": self._iso(issue.updated),
            "closed_at": self._iso(issue.closed),
            "closed_by": self.user_json(self.me) if issue.closed is not None else None,
            "author_association": "NONE",
            "active_lock_reason": None,
            "body": issue.body,
        }
        if issue.is_pull:
            pull = self._api(f"/repos/{r.full_name}/pulls/{issue.number}")
            data["draft"] = issue.draft
            data["pull_request"] = {
                "url": pull,
                "html_url": self._web(f"/{r.full_name}/pull/{issue.number}"),
                "diff_url": self._web(f"/{r.full_name}/pull/{issue.number}.diff"),
                "patch_url": self._web(f"/{r.full_name}/pull/{issue.number}.patch"),
                "merged_at": self._iso(issue.merged),
            }
        return data

    def pull_json(self, r: Repository, pull: Issue) -> dict[str, Any]:
        url = self._api(f"/repos/{r.full_name}/pulls/{pull.number}")
        issue_url = self._api(f"/repos/{r.full_name}/issues/{pull.number}")
        head_repo = self.repos.get(pull.head_repo.lower()) or Repository(pull.head_repo, id=r.id + 1)
        return {
            "url": url,
            "id": pull.id,
            "node_id": f"PR_{pull.id}",
            "html_url": self._web(f"/{r.full_name}/pull/{pull.number}"),
            "diff_url": self._web(f"/{r.full_name}/pull/{pull.number}.diff"),
            "patch_url": self._web(f"/{r.full_name}/pull/{pull.number}.patch"),
            "issue_url": issue_url,
            "commits_url": url + "/commits",
            "review_comments_url": url + "/comments",
            "comments_url": issue_url + "/comments",
            "statuses_url": self._api(f"/repos/{r.full_name}/statuses/{pull.head_sha}"),
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self.user_json(pull.user),
            "body": pull.body,
            "labels": [],
            "milestone": None,
            "created_at": self._iso(pull.created),
            "updated_at": self._iso(pull.updated),
            "closed_at": self._iso(pull.closed),
            "merged_at": self._iso(pull.merged),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "draft": pull.draft,
            "head": {
                "label": f"{pull.head_repo.split('/')[0]}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": self.user_json(self.user(pull.head_repo.split("/")[0])),
                "repo": self.repo_json(head_repo),
            },
            "base": {
                "label": f"{r.full_name.split('/')[0]}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": "0" * 40,
                "user": self.user_json(self.user(r.full_name.split("/")[0], type="Organization")),
                "repo": self.repo_json(r),
            },
            "author_association": "CONTRIBUTOR",
        }

    def comment_json(self, r: Repository, comment: Comment) -> dict[str, Any]:
        issue = r.issues.get(comment.issue)
        kind = "pull" if issue is not None and issue.is_pull else "issues"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": self._api(f"/repos/{r.full_name}/issues/comments/{comment.id}"),
            "html_url": self._web(f"/{r.full_name}/{kind}/{comment.issue}#issuecomment-{comment.id}"),
            "body": comment.body,
            "user": self.user_json(comment.user),
            "created_at": self._iso(comment.created),
            "updated_at": self._iso(comment.updated),
            "issue_url": self._api(f"/repos/{r.full_name}/issues/{comment.issue}"),
            "author_association": "NONE",
        }

    # -- state helpers ---------------------------------------------------------------------------------

    def _next_number(self, r: Repository) -> int:
        return max(r.issues, default=0) + 1

    def _label(self, r: Repository, name: str) -> Label | None:
        return next((label for label in r.labels if label.name.lower() == name.lower()), None)

    def _ensure_label(self, r: Repository, name: str, color: str = "ededed") -> Label:
        label = self._label(r, name)
        if label is None:
            label = Label(id=self._next_id(), name=name, color=color)
            r.labels.append(label)
        return label

    # -- request handling ------------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, auth: str | None, body: Any
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :]
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if self.latency_s:
            time.sleep(self.latency_s)
        status, headers, payload = self._respond(method, path, query, auth, body)
        with self._lock:
            self.requests.append(Request(method, path, query, body, status))
        return status, headers, payload

    def ages(self, *, days: float, repo: str | None = None) -> None:
        """Move every issue's timestamps ``days`` into the past (an incident from long ago)."""
        with self._lock:
            shift = round(days * 86_400)
            for issue in self.repo(repo).issues.values():
                issue.created -= shift
                issue.updated -= shift
                if issue.closed is not None:
                    issue.closed -= shift

    def _respond(
        self, method: str, path: str, query: dict[str, str], auth: str | None, body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if auth is None:
            return 401, {}, _error("Requires authentication")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer") or given != self.token:
            return 401, {}, _error("Bad credentials")
        hook = self._take_hook(method, path)
        if hook is not None:
            hook.callback()
        fault = self._take_fault(method, path)
        if fault is not None and not fault.apply:
            return fault.status, fault.headers, fault.body
        if self.read_only and method in WRITE_METHODS:
            return 403, {}, _error("Resource not accessible by integration")
        with self._lock:
            try:
                result = self._route(method, path, query, body)
            except _HTTPError as exc:
                result = exc.status, {}, exc.payload
        if fault is not None:
            return fault.status, fault.headers, fault.body
        return result

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        for pattern, verb, handler in self._routes():
            match = pattern.fullmatch(path)
            if match and verb == method:
                return handler(query, body, *match.groups())
        raise _HTTPError(404, _error("Not Found"))

    def _routes(
        self,
    ) -> Iterator[tuple[re.Pattern[str], str, Callable[..., tuple[int, dict[str, str], Any]]]]:
        repo = r"/repos/([^/]+/[^/]+)"
        yield re.compile(r"/user"), "GET", self._get_user
        yield re.compile(r"/search/issues"), "GET", self._search_issues
        yield re.compile(repo), "GET", self._get_repo
        yield re.compile(repo + r"/pulls/(\d+)"), "GET", self._get_pull
        yield re.compile(repo + r"/commits/([^/]+)"), "GET", self._get_commit
        yield re.compile(repo + r"/commits/([^/]+)/pulls"), "GET", self._commit_pulls
        yield re.compile(repo + r"/issues"), "GET", self._list_issues
        yield re.compile(repo + r"/issues"), "POST", self._create_issue
        yield re.compile(repo + r"/issues/(\d+)"), "GET", self._get_issue
        yield re.compile(repo + r"/issues/(\d+)"), "PATCH", self._edit_issue
        yield re.compile(repo + r"/issues/(\d+)/comments"), "GET", self._list_comments
        yield re.compile(repo + r"/issues/(\d+)/comments"), "POST", self._create_comment
        yield re.compile(repo + r"/issues/(\d+)/labels"), "POST", self._add_labels
        yield re.compile(repo + r"/issues/comments/(\d+)"), "GET", self._get_comment
        yield re.compile(repo + r"/issues/comments/(\d+)"), "PATCH", self._edit_comment
        yield re.compile(repo + r"/issues/comments/(\d+)"), "DELETE", self._delete_comment
        yield re.compile(repo + r"/labels"), "GET", self._list_labels
        yield re.compile(repo + r"/labels"), "POST", self._create_label
        yield re.compile(repo + r"/labels/([^/]+)"), "GET", self._get_label

    def _repo(self, full_name: str) -> Repository:
        r = self.repos.get(full_name.lower())
        if r is None:
            raise _HTTPError(404, _error("Not Found"))
        return r

    def _issue(self, r: Repository, number: str) -> Issue:
        issue = r.issues.get(int(number))
        if issue is None:
            raise _HTTPError(404, _error("Not Found"))
        return issue

    def _comment(self, r: Repository, comment_id: str) -> Comment:
        comment = r.comments.get(int(comment_id))
        if comment is None:
            raise _HTTPError(404, _error("Not Found"))
        return comment

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> tuple[int, dict[str, str], Any]:
        per_page = min(int(query.get("per_page", self.default_per_page)), 100)
        page = max(int(query.get("page", 1)), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(n: int, rel: str) -> str:
            params = {**query, "page": str(n), "per_page": str(per_page)}
            return f'<{self._api(path)}?{urlencode(params)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return 200, ({"Link": ", ".join(links)} if links else {}), chunk

    # GET /user
    def _get_user(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if self.user_endpoint_forbidden:
            return 403, {}, _error("Resource not accessible by integration")
        return 200, {}, self.user_json(self.me)

    def _get_repo(self, query: dict[str, str], body: Any, name: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, self.repo_json(self._repo(name))

    def _get_pull(
        self, query: dict[str, str], body: Any, name: str, n: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        pull = self._issue(r, n)
        if not pull.is_pull:
            raise _HTTPError(404, _error("Not Found"))
        return 200, {}, self.pull_json(r, pull)

    def _get_commit(
        self, query: dict[str, str], body: Any, name: str, sha: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        url = self._api(f"/repos/{r.full_name}/commits/{sha}")
        return 200, {}, {"sha": sha, "url": url, "html_url": self._web(f"/{r.full_name}/commit/{sha}")}

    def _commit_pulls(
        self, query: dict[str, str], body: Any, name: str, sha: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        pulls = [self.pull_json(r, r.issues[n]) for n in r.commit_pulls.get(sha, [])]
        return self._page(f"/repos/{r.full_name}/commits/{sha}/pulls", query, pulls)

    def _list_issues(self, query: dict[str, str], body: Any, name: str) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        state = query.get("state", "open")
        wanted = [w.strip().lower() for w in query.get("labels", "").split(",") if w.strip()]
        since = query.get("since")
        creator = query.get("creator")
        found = []
        for issue in r.issues.values():
            if state != "all" and issue.state != state:
                continue
            if creator and issue.user.login.lower() != creator.lower():
                continue
            if since and (self._iso(issue.updated) or "") < since:
                continue
            names = {n.lower() for n in issue.labels}
            if any(w not in names for w in wanted):
                continue
            found.append(issue)
        reverse = query.get("direction", "desc") == "desc"
        found.sort(key=lambda i: (i.updated if query.get("sort") == "updated" else i.created, i.number))
        if reverse:
            found.reverse()
        return self._page(f"/repos/{r.full_name}/issues", query, [self.issue_json(r, i) for i in found])

    def _create_issue(self, query: dict[str, str], body: Any, name: str) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        if not isinstance(body, dict) or not body.get("title"):
            raise _HTTPError(422, _validation("Issue", "title", "missing_field"))
        text = body.get("body") or ""
        if len(text) > MAX_BODY_CHARS:
            raise _HTTPError(422, _validation("Issue", "body", "custom", "body is too long"))
        assignees = list(body.get("assignees") or [])
        bad = [a for a in assignees if a not in self.assignable]
        if bad:
            raise _HTTPError(422, _validation("Issue", "assignees", "invalid", value=bad[0]))
        wanted = [str(x) for x in body.get("labels") or []]
        if wanted and self.labels_refused_with == 422:
            raise _HTTPError(422, _validation("Issue", "labels", "invalid", value=wanted[0]))
        if wanted and self.labels_refused_with == 403:
            raise _HTTPError(403, _error("Resource not accessible by integration"))
        if not self.push_access and any(self._label(r, x) is None for x in wanted):
            raise _HTTPError(403, _error("Resource not accessible by integration"))
        labels = [self._ensure_label(r, x).name for x in wanted] if self.push_access else []
        now = self._tick()
        issue = Issue(
            number=self._next_number(r),
            id=self._next_id(),
            title=body["title"],
            body=text,
            user=self.me,
            created=now,
            updated=now,
            labels=labels,
            assignees=assignees,
        )
        r.issues[issue.number] = issue
        headers = {"Location": self._api(f"/repos/{r.full_name}/issues/{issue.number}")}
        return 201, headers, self.issue_json(r, issue)

    def _get_issue(
        self, query: dict[str, str], body: Any, name: str, n: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        return 200, {}, self.issue_json(r, self._issue(r, n))

    def _edit_issue(
        self, query: dict[str, str], body: Any, name: str, n: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        issue = self._issue(r, n)
        if not isinstance(body, dict):
            raise _HTTPError(400, _error("Problems parsing JSON"))
        if "body" in body and len(body["body"] or "") > MAX_BODY_CHARS:
            raise _HTTPError(422, _validation("Issue", "body", "custom", "body is too long"))
        now = self._tick()
        if "title" in body:
            issue.title = body["title"]
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body and self.push_access:
            issue.labels = [self._ensure_label(r, x).name for x in body["labels"]]
        if "assignees" in body:
            bad = [a for a in body["assignees"] or [] if a not in self.assignable]
            if bad:
                raise _HTTPError(422, _validation("Issue", "assignees", "invalid", value=bad[0]))
            issue.assignees = list(body["assignees"])
        if "state" in body:
            if body["state"] == "closed" and issue.state != "closed":
                issue.closed = now
                issue.state_reason = body.get("state_reason") or "completed"
            elif body["state"] == "open" and issue.state != "open":
                issue.closed = None
                issue.state_reason = "reopened"
            issue.state = body["state"]
        issue.updated = now
        return 200, {}, self.issue_json(r, issue)

    def _list_comments(
        self, query: dict[str, str], body: Any, name: str, n: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        self._issue(r, n)
        found = sorted((c for c in r.comments.values() if c.issue == int(n)), key=lambda c: c.id)
        return self._page(
            f"/repos/{r.full_name}/issues/{n}/comments", query, [self.comment_json(r, c) for c in found]
        )

    def _create_comment(
        self, query: dict[str, str], body: Any, name: str, n: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        issue = self._issue(r, n)
        text = body.get("body") if isinstance(body, dict) else None
        if not text:
            raise _HTTPError(422, _validation("IssueComment", "body", "missing_field"))
        if len(text) > MAX_BODY_CHARS:
            raise _HTTPError(422, _validation("IssueComment", "body", "custom", "body is too long"))
        now = self._tick()
        comment = Comment(
            id=self._next_id(), issue=issue.number, body=text, user=self.me, created=now, updated=now
        )
        r.comments[comment.id] = comment
        issue.updated = now
        data = self.comment_json(r, comment)
        return 201, {"Location": data["url"]}, data

    def _get_comment(
        self, query: dict[str, str], body: Any, name: str, cid: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        return 200, {}, self.comment_json(r, self._comment(r, cid))

    def _edit_comment(
        self, query: dict[str, str], body: Any, name: str, cid: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        comment = self._comment(r, cid)
        text = body.get("body") if isinstance(body, dict) else None
        if not text:
            raise _HTTPError(422, _validation("IssueComment", "body", "missing_field"))
        if len(text) > MAX_BODY_CHARS:
            raise _HTTPError(422, _validation("IssueComment", "body", "custom", "body is too long"))
        comment.body = text
        comment.updated = self._tick()
        return 200, {}, self.comment_json(r, comment)

    def _delete_comment(
        self, query: dict[str, str], body: Any, name: str, cid: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        self._comment(r, cid)
        del r.comments[int(cid)]
        return 204, {}, None

    def _list_labels(self, query: dict[str, str], body: Any, name: str) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        return self._page(f"/repos/{r.full_name}/labels", query, [self.label_json(r, x) for x in r.labels])

    def _get_label(
        self, query: dict[str, str], body: Any, name: str, label: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        found = self._label(r, label)
        if found is None:
            raise _HTTPError(404, _error("Not Found"))
        return 200, {}, self.label_json(r, found)

    def _create_label(self, query: dict[str, str], body: Any, name: str) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        if not self.push_access:
            raise _HTTPError(403, _error("Resource not accessible by integration"))
        if not isinstance(body, dict) or not body.get("name"):
            raise _HTTPError(422, _validation("Label", "name", "missing_field"))
        if self._label(r, body["name"]) is not None:
            raise _HTTPError(422, _validation("Label", "name", "already_exists", value=body["name"]))
        color = str(body.get("color") or "ededed").lstrip("#")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", color):
            raise _HTTPError(422, _validation("Label", "color", "invalid", value=color))
        label = Label(id=self._next_id(), name=body["name"], color=color, description=body.get("description"))
        r.labels.append(label)
        return 201, {}, self.label_json(r, label)

    def _add_labels(
        self, query: dict[str, str], body: Any, name: str, n: str
    ) -> tuple[int, dict[str, str], Any]:
        r = self._repo(name)
        issue = self._issue(r, n)
        if not self.push_access:
            raise _HTTPError(403, _error("Resource not accessible by integration"))
        names = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(names, list):
            raise _HTTPError(422, _validation("Label", "labels", "invalid"))
        for label_name in names:
            label = self._ensure_label(r, label_name)
            if label.name not in issue.labels:
                issue.labels.append(label.name)
        issue.updated = self._tick()
        return 200, {}, [self.label_json(r, x) for x in (self._label(r, y) for y in issue.labels) if x]

    def _search_issues(self, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if self.search_refused_with is not None:
            raise _HTTPError(self.search_refused_with, _error("Search is not available"))
        q = query.get("q", "")
        phrases = [p.lower() for p in re.findall(r'"([^"]*)"', q)]
        rest = re.sub(r'"[^"]*"', " ", q).split()
        quals = dict(term.split(":", 1) for term in rest if ":" in term)
        words = [w.lower() for w in rest if ":" not in w]
        repos = [self.repos[quals["repo"].lower()]] if "repo" in quals else list(self.repos.values())
        items = []
        for r in repos:
            for issue in sorted(r.issues.values(), key=lambda i: i.number):
                if quals.get("is") in ("issue",) and issue.is_pull:
                    continue
                if quals.get("type") == "issue" and issue.is_pull:
                    continue
                if quals.get("state", quals.get("is")) in ("open", "closed") and issue.state != quals.get(
                    "state", quals.get("is")
                ):
                    continue
                if "label" in quals and quals["label"].lower() not in {x.lower() for x in issue.labels}:
                    continue
                text = f"{issue.title}\n{issue.body or ''}".lower()
                if all(p in text for p in phrases) and all(w in text for w in words):
                    items.append({**self.issue_json(r, issue), "score": 1.0})
        status, headers, chunk = self._page("/search/issues", query, items)
        return status, headers, {"total_count": len(items), "incomplete_results": False, "items": chunk}


class _HTTPError(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


_REASONS = {
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
    504: "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request.",
}


def _error(message: str) -> dict[str, Any]:
    return {"message": message, "documentation_url": "https://docs.github.com/rest", "status": ""}


def _validation(
    resource: str, field_name: str, code: str, message: str = "", value: str = ""
) -> dict[str, Any]:
    error: dict[str, Any] = {"resource": resource, "field": field_name, "code": code}
    if message:
        error["message"] = message
    if value:
        error["value"] = value
    return {
        "message": "Validation Failed",
        "errors": [error],
        "documentation_url": "https://docs.github.com/rest",
    }


def _handler_for(standin: GitHubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "GitHub.com"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read standin.requests
            return

        def setup(self) -> None:
            super().setup()
            # headers and body go out in separate writes: without this, Nagle + delayed ACK cost ~40 ms each
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._send(400, {}, _error("Problems parsing JSON"))
                return
            status, headers, payload = standin.handle(
                self.command, self.path, self.headers.get("Authorization"), body
            )
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict[str, str], payload: Any) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
            self.send_header("X-GitHub-Request-Id", f"STANDIN:{len(standin.requests)}")
            defaults = {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "4999",
                "x-ratelimit-reset": "4102444800",
                "x-ratelimit-used": "1",
                "x-ratelimit-resource": "core",
            }
            lowered = {k.lower() for k in headers}
            for key, value in defaults.items():
                if key not in lowered:
                    self.send_header(key, value)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if data:
                self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return Handler
