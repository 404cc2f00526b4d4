"""The P0 issue lifecycle: open one issue per fingerprint, comment when it recurs, close it when it recovers.

Everything receives its client; the GitHub plumbing (retries, error translation, ``post_once``) is in
``bot.github``. The rules, in one place:

* **Ours.** An issue is ours when it carries ``report.issue_marker(fingerprint)`` as a whole line and the
  fingerprint's service part (``diagnose.service_key``) is exactly this run's service: ``chat`` never touches
  ``chat:canary``'s issues. Issues are listed by the tracking label (``golden-path`` when configured, else the
  first label; with no labels, the search API, whose hits the marker confirms).
* **Bounded cost.** A run lists the *open* issues (one request per 100). Closed ones are listed only when a P0
  fingerprint has no open issue, and only those updated within ``reopen_window_days``. Fields are read from the
  listed JSON, never by completing PyGithub objects (a GET each).
* **One open issue per fingerprint, without a lock.** Find, then create (labels only: no assignee, no comment),
  then list again and converge: the lowest-numbered open issue is canonical and every later one is closed as
  ``not_planned``, "Duplicate of #N", *before* anything that notifies people (assignment, comments). Every run
  converges the same way, so two runs that both created one agree on which survives. A closed duplicate is
  never reopened: a recurrence reopens the most recent closed issue that is not a duplicate. (Without labels
  the listings go through search, which GitHub indexes with a delay: races then converge less reliably.)
* **Recurrence.** One comment per workflow run on the canonical issue (``GITHUB_RUN_ID`` in its hidden marker:
  a re-run of the same workflow run finds its earlier comment and posts no second one); a closed issue within
  the window is reopened first.
* **Recovery.** Only a run that got through the golden path (``pass`` or ``degraded``) counts one pass for each
  open issue of this service whose fingerprint it did not see. A ``fail`` run breaks every streak. After
  ``close_after_passes`` passes in a row: a recovery comment naming the passing run, then the issue is closed as
  completed. The streak lives in the issue body, in a hidden ``<!-- golden-path:state {...} -->`` line.
* **Faults.** Edits (PATCH) are retried with backoff by the client; creations go through ``post_once``, which
  looks for a POST answered 5xx by its marker before ever sending it again.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import github as pygithub
from github.GithubException import GithubException
from github.Issue import Issue
from github.IssueComment import IssueComment
from github.NamedUser import NamedUser
from github.Repository import Repository

from bot import diagnose, report
from bot.errors import GitHubError, TemplateError
from bot.github import (
    ISSUES_WRITE,
    CannotPublish,
    Identity,
    calling,
    has_marker,
    list_json,
    post_once,
    require_marker,
)
from bot.results import Finding, Kind, Run, Severity, Step, Verdict
from bot.settings import GitHubSettings
from bot.untrusted import Redactor

log = logging.getLogger(__name__)

TRACKING_LABEL = "golden-path"
LABEL_COLORS = {"p0": "b60205", "golden-path": "5319e7"}
LABEL_DESCRIPTIONS = {
    "p0": "Blocks the golden path: users cannot complete the journey",
    "golden-path": "Opened by golden-path after verifying a deployed revision",
}
_STATE = re.compile(r"(?m)^<!-- golden-path:state (\{.*\}) -->[ \t]*$")
_DUPLICATE = re.compile(r"(?m)^> Duplicate of #(\d+)\b")
_PLACEHOLDER = "GOLDENPATHFINGERPRINTPLACEHOLDER"
_E = TypeVar("_E", Kind, Step)


@dataclass(frozen=True, slots=True)
class Tracked:
    """One of our issues, as listed (plain JSON: no lazy completion)."""

    number: int
    url: str
    html_url: str
    title: str
    body: str
    state: str
    state_reason: str | None
    marker_fingerprint: str  # the fingerprint as written in the marker
    data: dict[str, Any] = field(default_factory=dict)  # the hidden state line

    @property
    def duplicate_of(self) -> int | None:
        value = self.data.get("duplicate_of")
        if isinstance(value, int):
            return value
        match = _DUPLICATE.search(self.body)
        return int(match.group(1)) if match and self.state_reason == "not_planned" else None


@dataclass(frozen=True, slots=True)
class Context:
    """What every step of one sync needs."""

    gh: pygithub.Github
    repo: Repository
    repo_name: str
    run: Run
    settings: GitHubSettings
    identity: Identity
    trail: report.Trail
    rerun: bool
    templates_dir: Path | None
    notes: list[str]
    backoff_s: float
    redactor: Redactor = field(default_factory=Redactor)  # every text we render passes it before it is sent

    @property
    def tries(self) -> int:
        return self.settings.max_retries + 1

    def issue(self, number: int) -> Issue:
        return self.repo.get_issue(number)  # lazy: no request until it is written to


def sync(
    *,
    gh: pygithub.Github,
    repo: Repository,
    repo_name: str,
    run: Run,
    settings: GitHubSettings,
    identity: Identity,
    trail: report.Trail = report.NO_TRAIL,
    rerun: bool = False,
    templates_dir: Path | None = None,
    warnings: list[str] | None = None,
    backoff_s: float = 0.5,
    redactor: Redactor | None = None,
) -> list[report.IssueLink]:
    """Open, update, reopen and close P0 issues for ``run``; returns the issues it opened, reopened, updated
    (this run's P0 issues) and closed (rules: module doc)."""
    ctx = Context(
        gh=gh, repo=repo, repo_name=repo_name, run=run, settings=settings, identity=identity, trail=trail,
        rerun=rerun, templates_dir=templates_dir, notes=warnings if warnings is not None else [],
        backoff_s=backoff_s, redactor=redactor or Redactor(),
    )  # fmt: skip
    p0: dict[str, Finding] = {}
    for finding in run.findings:
        if finding.severity is Severity.P0:
            p0.setdefault(marker_fingerprint(finding.fingerprint), finding)
    open_issues = _list(ctx, state="open")
    by_fingerprint: dict[str, list[Tracked]] = {}
    for item in open_issues:
        by_fingerprint.setdefault(item.marker_fingerprint, []).append(item)
    closed = _list(ctx, state="closed") if any(fp not in by_fingerprint for fp in p0) else []

    links: list[report.IssueLink] = []
    label_notes: list[str] | None = None
    for fp, finding in p0.items():
        current = by_fingerprint.get(fp, [])
        if current:
            canonical = current[0]
            for extra in current[1:]:  # an earlier race that did not finish converging
                _close_as_duplicate(ctx, extra, canonical.number)
            _recur(ctx, canonical, finding)
            links.append(_link(canonical, "updated"))
            continue
        reopenable = [t for t in closed if t.marker_fingerprint == fp and t.duplicate_of is None]
        if reopenable:
            mine, action = _reopen(ctx, max(reopenable, key=lambda t: t.number), finding), "reopened"
        else:
            if label_notes is None:
                label_notes = ensure_labels(ctx)
            mine, action = _open(ctx, finding), "opened"
            ctx.notes.extend(label_notes)
            label_notes = []
        canonical = _converge(ctx, fp, mine)
        if canonical.number != mine.number:
            links.append(_link(canonical, "updated"))  # a concurrent run filed it first and reports there
            continue
        if action == "opened":
            _assign(ctx, mine)
        else:
            _comment_recurrence(ctx, mine, finding)
        links.append(_link(mine, action))

    for item in open_issues:
        if item.marker_fingerprint not in p0 and _count_pass(ctx, item):
            links.append(_link(item, "closed"))
    return links


def _link(item: Tracked, action: str) -> report.IssueLink:
    return report.IssueLink(number=item.number, url=item.html_url, title=item.title, action=action)


# -- listing ---------------------------------------------------------------------------------------------------


def tracking_label(labels: Iterable[str]) -> str | None:
    names = list(labels)
    for name in names:
        if name.lower() == TRACKING_LABEL:
            return name
    return names[0] if names else None


def _marker_pattern() -> re.Pattern[str]:
    template = report.issue_marker(_PLACEHOLDER)
    before, found, after = template.partition(_PLACEHOLDER)
    if not found:
        raise TemplateError("report.issue_marker() does not include the fingerprint")
    return re.compile(r"(?m)^[ \t]*" + re.escape(before) + r"(\S+?)" + re.escape(after) + r"[ \t]*\r?$")


def marker_fingerprint(fingerprint: str) -> str:
    """The fingerprint as it appears inside the marker (percent-encoded, possibly shortened with a digest)."""
    template = report.issue_marker(_PLACEHOLDER)
    before, _, after = template.partition(_PLACEHOLDER)
    marker = str(report.issue_marker(fingerprint))
    return marker[len(before) : len(marker) - len(after)] if after else marker[len(before) :]


def _list(ctx: Context, *, state: str) -> list[Tracked]:
    """Our issues of this service in ``state`` ("open", or "closed" within the reopen window), by number."""
    label = tracking_label(ctx.settings.labels)
    since = datetime.now(UTC) - timedelta(days=ctx.settings.reopen_window_days)
    since_text = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    with calling(f"list the {state} golden-path issues"):
        if label is not None:
            params: dict[str, Any] = {"state": state, "labels": label, "per_page": 100}
            if state == "closed":
                params["since"] = since_text
            items = list_json(ctx.gh, f"/repos/{ctx.repo_name}/issues", params)
        else:
            prefix = report.issue_marker(_PLACEHOLDER).partition(_PLACEHOLDER)[0]
            phrase = (prefix + diagnose.service_key(ctx.run.target.service)).replace("<!--", "")
            phrase = phrase.replace('"', " ").strip()
            query = f'repo:{ctx.repo_name} is:issue is:{state} in:body "{phrase}"'
            if state == "closed":
                query += f" closed:>={since_text[:10]}"
            items = list_json(ctx.gh, "/search/issues", {"q": query, "per_page": 100})
    pattern = _marker_pattern()
    key = diagnose.service_key(ctx.run.target.service)
    found: dict[int, Tracked] = {}
    for item in items:
        if "pull_request" in item or item.get("state") != state or not isinstance(item.get("number"), int):
            continue
        body = str(item.get("body") or "")
        match = pattern.search(body)
        if match is None or diagnose.fingerprint_service_key(unquote(match.group(1))) != key:
            continue
        if state == "closed" and str(item.get("closed_at") or "") < since_text:
            continue
        found[item["number"]] = Tracked(
            number=item["number"],
            url=str(item.get("url") or ""),
            html_url=str(item.get("html_url") or ""),
            title=str(item.get("title") or ""),
            body=body,
            state=state,
            state_reason=item.get("state_reason"),
            marker_fingerprint=match.group(1),
            data=_read_state(body),
        )
    return [found[n] for n in sorted(found)]


# -- the hidden state line -------------------------------------------------------------------------------------


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


def _new_state(finding: Finding) -> dict[str, Any]:
    return {
        "fingerprint": finding.fingerprint,
        "kind": finding.kind.value,
        "step": finding.step.value,
        "title": finding.title,
        "passes": 0,
    }


def _tracked_from(issue: Issue | Mapping[str, Any], fallback: Tracked | None = None) -> Tracked:
    data: Mapping[str, Any] = issue if isinstance(issue, Mapping) else issue.raw_data
    body = str(data.get("body") or "")
    match = _marker_pattern().search(body)
    return Tracked(
        number=int(data["number"]),
        url=str(data.get("url") or ""),
        html_url=str(data.get("html_url") or ""),
        title=str(data.get("title") or ""),
        body=body,
        state=str(data.get("state") or "open"),
        state_reason=data.get("state_reason"),
        marker_fingerprint=match.group(1) if match else (fallback.marker_fingerprint if fallback else ""),
        data=_read_state(body),
    )


# -- opening, converging, assigning ----------------------------------------------------------------------------


def ensure_labels(ctx: Context) -> list[str]:
    """Create the configured labels that do not exist yet (names compare case-insensitively, as on GitHub).

    Returns a warning naming the permission when the token may not create labels: the issue is still filed
    (the warning is shown only if filing it works; otherwise that refusal says it all).
    """
    wanted = list(dict.fromkeys(ctx.settings.labels))
    if not wanted:
        return []
    with calling("list the repository's labels"):
        present = {
            str(label.get("name", "")).lower()
            for label in list_json(ctx.gh, f"/repos/{ctx.repo_name}/labels", {"per_page": 100})
        }
    for name in wanted:
        if name.lower() in present:
            continue
        try:
            with calling(f"create the label {name!r}", write=True, permission=ISSUES_WRITE):
                ctx.repo.create_label(
                    name=name,
                    color=LABEL_COLORS.get(name.lower(), "ededed"),
                    description=LABEL_DESCRIPTIONS.get(name.lower(), "Managed by golden-path"),
                )
        except CannotPublish as exc:
            return [str(exc)]
        except GitHubError as exc:
            cause = exc.__cause__
            if isinstance(cause, GithubException) and (cause.status == 422 or cause.status >= 500):
                continue  # created meanwhile by a concurrent run, or maybe created: GitHub makes it on use
            raise
    return []


def _open(ctx: Context, finding: Finding) -> Tracked:
    """File the issue: labels only (no assignees: they are notified, and this one may be a duplicate)."""
    marker = report.issue_marker(finding.fingerprint)
    body = ctx.redactor.clean(
        report.render_issue(ctx.run, finding, templates_dir=ctx.templates_dir, trail=ctx.trail)
    )
    require_marker(body, marker, "issue")
    body = _with_state(body, _new_state(finding))
    title = ctx.redactor.clean(report.issue_title(ctx.run, finding))
    fp = marker_fingerprint(finding.fingerprint)

    def already_there() -> Issue | None:
        found = [t for t in _list(ctx, state="open") if t.marker_fingerprint == fp]
        return ctx.issue(found[0].number) if found else None

    created = post_once(
        f"open an issue for {finding.fingerprint}",
        send=lambda: ctx.repo.create_issue(title=title, body=body, labels=list(ctx.settings.labels)),
        find=already_there,
        permission=ISSUES_WRITE,
        tries=ctx.tries,
        backoff_s=ctx.backoff_s,
    )
    if created.raw_data.get("user"):
        ctx.identity.learn(created.user)
    return _tracked_from(created.raw_data)


def _converge(ctx: Context, fp: str, mine: Tracked) -> Tracked:
    """List again; the lowest-numbered open issue wins and every later one is closed as its duplicate."""
    same = {t.number: t for t in _list(ctx, state="open") if t.marker_fingerprint == fp}
    same.setdefault(mine.number, mine)  # a listing may lag behind our own write
    canonical = same[min(same)]
    for number in sorted(same):
        if number != canonical.number:
            _close_as_duplicate(ctx, same[number], canonical.number)
    return canonical


def _close_as_duplicate(ctx: Context, item: Tracked, canonical: int) -> None:
    note = f"> Duplicate of #{canonical} (golden-path: a concurrent run filed the same incident first)."
    body = _with_state(f"{note}\n\n{item.body}", {**item.data, "duplicate_of": canonical})
    with calling(
        f"close issue #{item.number} as a duplicate of #{canonical}", write=True, permission=ISSUES_WRITE
    ):
        ctx.issue(item.number).edit(state="closed", state_reason="not_planned", body=body)


def _assign(ctx: Context, item: Tracked) -> None:
    assignees: list[NamedUser | str] = list(ctx.settings.assignees)
    if not assignees:
        return
    try:
        with calling(f"assign issue #{item.number}", write=True, permission=ISSUES_WRITE):
            ctx.issue(item.number).edit(assignees=assignees)
    except CannotPublish as exc:
        ctx.notes.append(str(exc))
    except GitHubError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, GithubException) and cause.status == 422):
            raise
        ctx.notes.append(
            f"GitHub refused the assignees {', '.join(ctx.settings.assignees)} for P0 issue #{item.number} "
            "(not collaborators with access to the repository?); it stays unassigned"
        )


# -- recurrence and recovery -----------------------------------------------------------------------------------


def _reopen(ctx: Context, item: Tracked, finding: Finding) -> Tracked:
    state = {**_new_state(finding), **item.data, "passes": 0}
    with calling(f"reopen issue #{item.number}", write=True, permission=ISSUES_WRITE):
        ctx.issue(item.number).edit(state="open", body=_with_state(item.body, state))
    return Tracked(
        number=item.number, url=item.url, html_url=item.html_url, title=item.title,
        body=_with_state(item.body, state), state="open", state_reason="reopened",
        marker_fingerprint=item.marker_fingerprint, data=state,
    )  # fmt: skip


def _run_key(ctx: Context) -> str:
    return ctx.trail.run_key or ctx.run.run_id


def _find_comment(ctx: Context, number: int, marker: str) -> IssueComment | None:
    with calling(f"list the comments on issue #{number}"):
        return next((c for c in ctx.issue(number).get_comments() if has_marker(c.body, marker)), None)


def _post_comment(ctx: Context, number: int, body: str, marker: str, doing: str) -> None:
    if ctx.rerun and _find_comment(ctx, number, marker) is not None:
        return  # a re-run of a workflow run that already commented here
    body = ctx.redactor.clean(body)
    created = post_once(
        doing,
        send=lambda: ctx.issue(number).create_comment(body),
        find=lambda: _find_comment(ctx, number, marker),
        permission=ISSUES_WRITE,
        tries=ctx.tries,
        backoff_s=ctx.backoff_s,
    )
    ctx.identity.learn(created.user)


def _comment_recurrence(ctx: Context, item: Tracked, finding: Finding) -> None:
    marker = report.issue_comment_marker(finding.fingerprint, _run_key(ctx))
    update = report.render_issue_update(ctx.run, finding, templates_dir=ctx.templates_dir, trail=ctx.trail)
    _post_comment(ctx, item.number, update, marker, f"comment on issue #{item.number}")


def _recur(ctx: Context, item: Tracked, finding: Finding) -> None:
    if item.data.get("passes"):
        state = {**_new_state(finding), **item.data, "passes": 0}
        with calling(
            f"reset the recovery count of issue #{item.number}", write=True, permission=ISSUES_WRITE
        ):
            ctx.issue(item.number).edit(body=_with_state(item.body, state))
    _comment_recurrence(ctx, item, finding)


def _count_pass(ctx: Context, item: Tracked) -> bool:
    """Count this run for ``item``'s recovery; True when that closed it."""
    number, run = item.number, ctx.run
    previous = int(item.data.get("passes") or 0)
    if run.verdict is Verdict.FAIL:
        if previous:
            with calling(f"reset the recovery count of issue #{number}", write=True, permission=ISSUES_WRITE):
                ctx.issue(number).edit(body=_with_state(item.body, {**item.data, "passes": 0}))
        return False
    key = _run_key(ctx)
    if item.data.get("last_pass") == key:
        return False  # a re-run of a workflow run that was already counted
    passes = previous + 1
    if passes < ctx.settings.close_after_passes:
        state = {**item.data, "passes": passes, "last_pass": key}
        with calling(f"record a passing run on issue #{number}", write=True, permission=ISSUES_WRITE):
            ctx.issue(number).edit(body=_with_state(item.body, state))
        return False
    finding = _finding_from(item)
    marker = report.issue_comment_marker(finding.fingerprint, key)
    recovery = report.render_recovery(
        run, finding, passes=passes, templates_dir=ctx.templates_dir, trail=ctx.trail
    )
    _post_comment(ctx, number, recovery, marker, f"comment the recovery on issue #{number}")
    with calling(f"close issue #{number}", write=True, permission=ISSUES_WRITE):
        ctx.issue(number).edit(
            state="closed",
            state_reason="completed",
            body=_with_state(item.body, {**item.data, "passes": 0, "last_pass": key}),
        )
    return True


def _finding_from(item: Tracked) -> Finding:
    """The finding an issue was opened for, rebuilt from its state line (best effort for older issues)."""
    state = item.data
    fingerprint = str(state.get("fingerprint") or unquote(item.marker_fingerprint))
    kind_part = [*fingerprint.split(":"), ""][1]
    kind = _enum(Kind, state.get("kind"), _enum(Kind, kind_part, Kind.EVENT_ERROR))
    step = _enum(Step, state.get("step"), Step.CONNECT)
    title = str(state.get("title") or item.title)
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
