"""The P0 issue lifecycle: one issue per incident, a comment when it recurs, closed when its track recovers.

Everything receives its client; the GitHub plumbing (retries, error translation, ``post_once``) is in
``bot.github``, and what an issue says about itself (its marker, its hidden state line) in ``bot.issue_state``.
The rules, in one place:

* **Incidents.** A run's P0 findings are grouped by root cause (``incidents``, pure): findings at a later step
  whose users all failed at an earlier step, and findings of one kind at one step (events missing after the
  same stall, one handshake failing every user in several ways), form one incident listing all of them. Its
  fingerprint is the root cause's. Kinds marked ``own_incident`` in ``bot.kinds`` (an isolation leak, an
  unauthenticated WebSocket) are never grouped.
* **Tracks.** An incident's identity is (service, track): the track is ``github.track``, else the tested Cloud
  Run tag, else ``pr-N``, else the branch (``github.track_for``). Only a run on the same track recurs, counts a
  pass or closes. Markers without ``track=`` (every issue written before tracks) are the default track,
  ``production``, whose markers are still written that way.
* **Ours.** An issue is ours when it carries ``report.issue_marker(fingerprint, track)`` as a whole line and
  the fingerprint's service part (``diagnose.service_key``) is exactly this run's service: ``chat`` never
  touches ``chat:canary``'s issues. Found by the marker whatever labels GitHub kept (it drops them silently for
  a token without push access; a person may remove them): every run searches the marker (``in:body``: every
  label, both states, one request per 100); an incident the search does not show (GitHub indexes new issues
  with a delay) is looked for in the open, then the recently closed, issues listed by the tracking label, which
  are consistent. When search is refused (GHES without a search index, a search rate limit), plain listings
  replace it. Every listing pages to its end within ``github.max_list_requests`` and warns when that budget is
  reached. Fields are read from the listed JSON, never by completing PyGithub objects (a GET each).
* **Labels.** After filing, the labels GitHub kept are read from its answer; dropped ones are a warning with
  the real cause (push access). A creation refused (403/422) because of its labels is sent again without them.
* **One open issue per incident, without a lock.** Find, then create (labels only: no assignee, no comment),
  then list again and converge: the lowest-numbered open issue is canonical and every later one is closed as
  ``not_planned``, "Duplicate of #N", *before* anything that notifies people (assignment, comments). A closed
  duplicate is never reopened.
* **People decide.** An issue a person closed as not planned or duplicate is never reopened: the failure is
  shown in the PR comment, counted in the closed issue's state line, and after ``reopen_after_runs`` failing
  runs a new issue is filed that links it. An issue whose marker line was removed by hand is recognised by its
  title (which names the track), warned about, and reported to; never duplicated.
* **Recurrence.** One "seen again" comment per workflow run (``recurrence_marker`` carries ``GITHUB_RUN_ID``:
  a re-run finds it and posts no second); a closed issue within ``reopen_window_days`` is reopened first, which
  starts a new episode.
* **Recovery.** Only a run that got through the golden path (``pass`` or ``degraded``) counts one pass for each
  open issue of its track whose incident it did not see. A ``fail`` run breaks every streak. After
  ``close_after_passes`` passes in a row: a recovery comment (``recovery_marker``: one per episode, so neither a
  re-run nor a close that keeps failing posts a second), then the issue is closed as completed. The streak
  lives in the issue body, in a hidden ``<!-- golden-path:state {...} -->`` line.
* **Faults.** Edits (PATCH) are retried with backoff by the client; creations go through ``post_once``, which
  looks for a POST answered 5xx by its marker before ever sending it again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import github as pygithub
from github.GithubException import GithubException
from github.Issue import Issue
from github.IssueComment import IssueComment
from github.NamedUser import NamedUser
from github.Repository import Repository

from bot import diagnose, report
from bot.errors import GitHubError
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
from bot.incidents import Incident, incidents
from bot.issue_state import (
    Tracked,
    finding_from,
    marker_fingerprint,
    marker_pattern,
    marker_prefix,
    new_state,
    read_state,
    tracked,
    tracking_label,
    with_state,
)
from bot.results import Run, Verdict
from bot.settings import GitHubSettings
from bot.untrusted import Redactor

log = logging.getLogger(__name__)

LABEL_COLORS = {"p0": "b60205", "golden-path": "5319e7"}
LABEL_DESCRIPTIONS = {
    "p0": "Blocks the golden path: users cannot complete the journey",
    "golden-path": "Opened by golden-path after verifying a deployed revision",
}
LABELS_NEED_PUSH = (
    "labels need push access to the repository (GitHub sets them only for users with push access and drops "
    "them otherwise); the issue is filed without them and golden-path finds it again by its hidden marker"
)


# -- what a run knows about its issues -------------------------------------------------------------------------


@dataclass(slots=True)
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
    track: str = report.DEFAULT_TRACK
    known: dict[int, Tracked] = field(default_factory=dict)  # ours, this service, every track
    unmarked: dict[int, Mapping[str, Any]] = field(default_factory=dict)  # listed issues without a marker
    searched: bool = False
    closed_listed: bool = False
    labels_kept: bool = True
    redactor: Redactor = field(default_factory=Redactor)  # every text we render passes it before it is sent

    @property
    def tries(self) -> int:
        return self.settings.max_retries + 1

    def issue(self, number: int) -> Issue:
        return self.repo.get_issue(number)  # lazy: no request until it is written to

    def mine(self, state: str) -> list[Tracked]:
        """Ours on this run's track in ``state``, by number."""
        return sorted(
            (t for t in self.known.values() if t.state == state and t.track == self.track),
            key=lambda t: t.number,
        )


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
    track: str = report.DEFAULT_TRACK,
    links: list[report.IssueLink] | None = None,
    redactor: Redactor | None = None,
) -> list[report.IssueLink]:
    """Open, update, reopen and close the P0 issues of ``run``'s track; returns the issues it opened, reopened,
    updated, left closed (a person's decision) and closed (rules: module doc). ``links`` collects them as they
    happen, so a failure half-way still reports what was done."""
    ctx = Context(
        gh=gh, repo=repo, repo_name=repo_name, run=run, settings=settings, identity=identity, trail=trail,
        rerun=rerun, templates_dir=templates_dir, notes=warnings if warnings is not None else [],
        backoff_s=backoff_s, track=track, redactor=redactor or Redactor(),
    )  # fmt: skip
    done: list[report.IssueLink] = links if links is not None else []
    found = incidents(run.findings)
    seen = {marker_fingerprint(f.fingerprint) for f in run.findings}
    _search(ctx)
    if any(_open_for(ctx, incident) is None for incident in found):
        _learn(ctx, _list_labelled(ctx, "open"))  # consistent: sees what the search index has not yet
    if any(_open_for(ctx, i) is None and not _closed_for(ctx, i) for i in found):
        _learn(ctx, _list_labelled(ctx, "closed"))

    label_notes: list[str] | None = None
    for incident in found:
        current = _open_for(ctx, incident)
        if current is not None:
            _recur(ctx, current, incident)
            done.append(_link(current, "updated"))
            continue
        closed = [t for t in _closed_for(ctx, incident) if t.duplicate_of is None]
        latest = max(closed, key=lambda t: t.number) if closed else None
        previous: Tracked | None = None
        if latest is not None and latest.declined:
            if _count_declined(ctx, latest):
                done.append(_link(latest, _declined_action(ctx, latest)))
                continue
            previous = latest
        elif latest is not None:
            reopened = _reopen(ctx, latest, incident)
            canonical = _converge(ctx, reopened)
            if canonical.number == reopened.number:
                _comment_recurrence(ctx, reopened, incident)
            done.append(_link(canonical, "reopened" if canonical.number == reopened.number else "updated"))
            continue
        by_title = _recognised_by_title(ctx, incident)
        if by_title is not None:
            _recur(ctx, by_title, incident)
            done.append(_link(by_title, "updated"))
            continue
        if label_notes is None:
            label_notes = ensure_labels(ctx)
        mine = _open(ctx, incident, previous)
        ctx.notes.extend(label_notes)
        label_notes = []
        canonical = _converge(ctx, mine)
        if canonical.number != mine.number:
            done.append(_link(canonical, "updated"))  # a concurrent run filed it first and reports there
            continue
        _assign(ctx, mine)
        done.append(_link(mine, "opened"))

    for item in ctx.mine("open"):
        if item.marked and item.marker_fingerprint not in seen and _count_pass(ctx, item):
            done.append(_link(item, "closed"))
    return done


def _link(item: Tracked, action: str) -> report.IssueLink:
    return report.IssueLink(number=item.number, url=item.html_url, title=item.title, action=action)


def _fingerprints(incident: Incident) -> list[str]:
    return [marker_fingerprint(f.fingerprint) for f in incident.members]


def _open_for(ctx: Context, incident: Incident) -> Tracked | None:
    """The canonical open issue of ``incident`` on this track (its root's, else one filed for a member by an
    earlier version), after closing later copies of it as duplicates."""
    for fp in _fingerprints(incident):
        same = [t for t in ctx.mine("open") if t.marker_fingerprint == fp]
        if same:
            for extra in same[1:]:  # an earlier race that did not finish converging
                _close_as_duplicate(ctx, extra, same[0].number)
            return same[0]
    return None


def _closed_for(ctx: Context, incident: Incident) -> list[Tracked]:
    fps = set(_fingerprints(incident))
    return [t for t in ctx.mine("closed") if t.marker_fingerprint in fps]


# -- listing ---------------------------------------------------------------------------------------------------


def _since(ctx: Context) -> str:
    since = datetime.now(UTC) - timedelta(days=ctx.settings.reopen_window_days)
    return since.strftime("%Y-%m-%dT%H:%M:%SZ")


def _listing(ctx: Context, path: str, params: Mapping[str, Any], what: str) -> list[Any]:
    return list_json(
        ctx.gh, path, params, max_requests=ctx.settings.max_list_requests, what=what, warn=ctx.notes.append
    )


def _list_labelled(ctx: Context, state: str) -> list[Any]:
    """Our issues in ``state`` by the tracking label (closed ones: updated within the reopen window); without
    labels configured, the search instead."""
    label = tracking_label(ctx.settings.labels)
    if label is None:
        _search(ctx)
        return []
    if state == "closed":
        ctx.closed_listed = True
    params: dict[str, Any] = {"state": state, "labels": label, "per_page": 100}
    if state == "closed":
        params["since"] = _since(ctx)
    with calling(f"list the {state} golden-path issues"):
        return _listing(
            ctx, f"/repos/{ctx.repo_name}/issues", params, f"the {state} issues labelled {label!r}"
        )


def _search(ctx: Context) -> None:
    """Our issues by their marker, whatever their labels and state (once per run); plain listings when GitHub
    refuses the search."""
    if ctx.searched:
        return
    ctx.searched = True
    prefix = marker_prefix()
    phrase = (prefix + diagnose.service_key(ctx.run.target.service)).replace("<!--", "")
    phrase = phrase.replace('"', " ").strip()
    query = f'repo:{ctx.repo_name} is:issue in:body "{phrase}"'
    try:
        with calling("search the golden-path issues by their marker"):
            items = _listing(
                ctx, "/search/issues", {"q": query, "sort": "updated", "per_page": 100}, "the issue search"
            )
    except (CannotPublish, GitHubError) as exc:
        cause = exc.__cause__
        status = cause.status if isinstance(cause, GithubException) else None
        if status not in (403, 404, 410, 422):
            raise
        log.info("GitHub refused the issue search (%s): listing the issues instead", status)
        with calling("list the open issues (the search was refused)"):
            items = _listing(
                ctx, f"/repos/{ctx.repo_name}/issues", {"state": "open", "per_page": 100}, "the open issues"
            )
        with calling("list the recently closed issues (the search was refused)"):
            items += _listing(
                ctx,
                f"/repos/{ctx.repo_name}/issues",
                {"state": "closed", "since": _since(ctx), "per_page": 100},
                "the closed issues",
            )
    _learn(ctx, items)


def _learn(ctx: Context, items: Iterable[Any]) -> None:
    """Remember our issues of this service among ``items`` (and, for title recognition, unmarked ones)."""
    pattern = marker_pattern()
    key = diagnose.service_key(ctx.run.target.service)
    since = _since(ctx)
    for item in items:
        if not isinstance(item, Mapping) or "pull_request" in item or not isinstance(item.get("number"), int):
            continue
        state = str(item.get("state") or "")
        if state == "closed" and str(item.get("closed_at") or "") < since:
            continue
        body = str(item.get("body") or "")
        match = pattern.search(body)
        if match is None:
            if state == "open":
                ctx.unmarked[item["number"]] = item
            continue
        if diagnose.fingerprint_service_key(unquote(match.group(1))) != key:
            continue
        ctx.known[item["number"]] = tracked(item, match)


def _recognised_by_title(ctx: Context, incident: Incident) -> Tracked | None:
    """An open issue whose marker line was removed by hand, recognised by its exact title (service, track)."""
    title = report.issue_title(ctx.run, incident.root, ctx.track)
    for number in sorted(ctx.unmarked):
        item = ctx.unmarked[number]
        if str(item.get("title") or "") != title:
            continue
        marker = report.issue_marker(incident.root.fingerprint, ctx.track)
        ctx.notes.append(
            f"P0 issue #{number} has lost its hidden marker line (edited by hand?): golden-path recognised it "
            f"by its title and track and reports there instead of filing a duplicate; put the line {marker} "
            "back into its description so it is found (and closed on recovery) reliably"
        )
        return Tracked(
            number=number, url=str(item.get("url") or ""), html_url=str(item.get("html_url") or ""), title=title,
            body=str(item.get("body") or ""), state="open", state_reason=item.get("state_reason"),
            marker_fingerprint=marker_fingerprint(incident.root.fingerprint), track=ctx.track,
            data=read_state(str(item.get("body") or "")), marked=False,
        )  # fmt: skip
    return None


def _edit_state(ctx: Context, item: Tracked, data: Mapping[str, Any], doing: str, **fields: Any) -> Tracked:
    """Write ``data`` into ``item``'s state line (and any other ``fields``); returns the item as it is now."""
    body = with_state(item.body, data)
    with calling(doing, write=True, permission=ISSUES_WRITE):
        ctx.issue(item.number).edit(body=body, **fields)
    return Tracked(
        number=item.number, url=item.url, html_url=item.html_url, title=item.title, body=body,
        state=fields.get("state", item.state), state_reason=item.state_reason,
        marker_fingerprint=item.marker_fingerprint, track=item.track, data=dict(data), marked=item.marked,
    )  # fmt: skip


# -- opening, converging, assigning ----------------------------------------------------------------------------


def ensure_labels(ctx: Context) -> list[str]:
    """Create the configured labels that do not exist yet (names compare case-insensitively, as on GitHub).

    Returns a warning naming the cause when the token may not create labels: the issue is still filed (the
    warning is shown only if filing it works; otherwise that refusal says it all).
    """
    wanted = list(dict.fromkeys(ctx.settings.labels))
    if not wanted:
        return []
    with calling("list the repository's labels"):
        present = {
            str(label.get("name", "")).lower()
            for label in _listing(ctx, f"/repos/{ctx.repo_name}/labels", {"per_page": 100}, "the labels")
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
            return [
                f"could not create the label {name!r}: GitHub answered {exc.status}; creating labels needs push "
                "access to the repository (for a workflow's token: `issues: write`), and a new issue keeps "
                "only labels that exist"
            ]
        except GitHubError as exc:
            cause = exc.__cause__
            if isinstance(cause, GithubException) and (cause.status == 422 or cause.status >= 500):
                continue  # created meanwhile by a concurrent run, or maybe created: GitHub makes it on use
            raise
    return []


def _refused_for_labels(exc: CannotPublish | GitHubError) -> bool:
    """A creation GitHub refused in a way its labels may cause: 403 (labels it may not create) or a 422
    naming the labels."""
    cause = exc.__cause__
    if not isinstance(cause, GithubException):
        return False
    if cause.status == 403:
        return True
    return cause.status == 422 and "label" in json.dumps(cause.data).lower()


def _open(ctx: Context, incident: Incident, previous: Tracked | None) -> Tracked:
    """File the issue: labels only (no assignees: they are notified, and this one may be a duplicate)."""
    root = incident.root
    marker = report.issue_marker(root.fingerprint, ctx.track)
    body = ctx.redactor.clean(
        report.render_issue(
            ctx.run, root, templates_dir=ctx.templates_dir, trail=ctx.trail, track=ctx.track,
            related=incident.related, previous_url=previous.html_url if previous else None,
        )
    )  # fmt: skip
    require_marker(body, marker, "issue")
    state = {**new_state(root), "related": [f.fingerprint for f in incident.related]}
    if previous is not None:
        state["follows"] = previous.number
    body = with_state(body, state)
    title = ctx.redactor.clean(report.issue_title(ctx.run, root, ctx.track))
    fp = marker_fingerprint(root.fingerprint)

    def already_there() -> Issue | None:
        _relist_open(ctx)
        found = [t for t in ctx.mine("open") if t.marker_fingerprint == fp]
        return ctx.issue(found[0].number) if found else None

    def send(labels: list[str]) -> Issue:
        return post_once(
            f"open an issue for {root.fingerprint}",
            send=lambda: ctx.repo.create_issue(title=title, body=body, labels=labels),
            find=already_there,
            permission=ISSUES_WRITE,
            tries=ctx.tries,
            backoff_s=ctx.backoff_s,
        )

    wanted = list(ctx.settings.labels)
    try:
        created = send(wanted)
    except (CannotPublish, GitHubError) as exc:
        if not wanted or not _refused_for_labels(exc):
            raise
        created = send([])
        ctx.notes.append(
            f"GitHub refused P0 issue with the labels {', '.join(wanted)} ({exc}): {LABELS_NEED_PUSH}"
        )
    else:
        kept = {str(label.get("name", "")).lower() for label in created.raw_data.get("labels") or []}
        dropped = [name for name in wanted if name.lower() not in kept]
        if dropped:
            ctx.notes.append(
                f"GitHub dropped the labels {', '.join(dropped)} from P0 issue #{created.number}: {LABELS_NEED_PUSH}"
            )
    if not wanted or tracking_label(wanted) not in {
        str(label.get("name", "")) for label in created.raw_data.get("labels") or []
    }:
        ctx.labels_kept = False
    if created.raw_data.get("user"):
        ctx.identity.learn(created.user)
    mine = tracked(created.raw_data, marker_pattern().search(created.raw_data.get("body") or ""))
    ctx.known[mine.number] = mine
    return mine


def _converge(ctx: Context, mine: Tracked) -> Tracked:
    """List again; the lowest-numbered open issue wins and every later one is closed as its duplicate."""
    _relist_open(ctx)
    ctx.known[mine.number] = ctx.known.get(mine.number, mine)  # a listing may lag behind our own write
    same = [t for t in ctx.mine("open") if t.marker_fingerprint == mine.marker_fingerprint]
    canonical = same[0] if same else mine
    for item in same:
        if item.number != canonical.number:
            _close_as_duplicate(ctx, item, canonical.number)
    return canonical


def _relist_open(ctx: Context) -> None:
    """Forget the open issues known so far and list them again: by label when ours keep it, else by search (a
    concurrent run's copy has no label either)."""
    ctx.known = {n: t for n, t in ctx.known.items() if t.state != "open"}
    if ctx.labels_kept and tracking_label(ctx.settings.labels) is not None:
        _learn(ctx, _list_labelled(ctx, "open"))
    else:
        ctx.searched = False
        _search(ctx)


def _close_as_duplicate(ctx: Context, item: Tracked, canonical: int) -> None:
    note = f"> Duplicate of #{canonical} (golden-path: a concurrent run filed the same incident first)."
    body = with_state(f"{note}\n\n{item.body}", {**item.data, "duplicate_of": canonical})
    with calling(
        f"close issue #{item.number} as a duplicate of #{canonical}", write=True, permission=ISSUES_WRITE
    ):
        ctx.issue(item.number).edit(state="closed", state_reason="not_planned", body=body)
    ctx.known[item.number] = Tracked(
        number=item.number, url=item.url, html_url=item.html_url, title=item.title, body=body, state="closed",
        state_reason="not_planned", marker_fingerprint=item.marker_fingerprint, track=item.track,
        data={**item.data, "duplicate_of": canonical},
    )  # fmt: skip


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


# -- a person's decision ---------------------------------------------------------------------------------------


def _count_declined(ctx: Context, item: Tracked) -> bool:
    """Count this failing run against an issue a person closed as not planned; True while it stays closed
    (fewer than ``reopen_after_runs`` failing runs in a row), False when a new issue is due."""
    key = _run_key(ctx)
    failures = int(item.data.get("declined_failures") or 0)
    if item.data.get("declined_last") != key:
        failures += 1
    if failures >= ctx.settings.reopen_after_runs:
        state = {**item.data, "declined_failures": 0, "declined_last": key}
    else:
        state = {**item.data, "declined_failures": failures, "declined_last": key}
    if state != item.data:  # editing a closed issue's description notifies no one
        ctx.known[item.number] = _edit_state(
            ctx, item, state, f"count a failing run on closed issue #{item.number}"
        )
    return failures < ctx.settings.reopen_after_runs


def _declined_action(ctx: Context, item: Tracked) -> str:
    reason = "duplicate" if item.state_reason == "duplicate" else "not planned"
    count = int(ctx.known[item.number].data.get("declined_failures") or 0)
    return (
        f"closed as {reason} by a person, not reopened (failing again: {count} of "
        f"{ctx.settings.reopen_after_runs} runs before a new issue)"
    )


# -- recurrence and recovery -----------------------------------------------------------------------------------


def _reopen(ctx: Context, item: Tracked, incident: Incident) -> Tracked:
    state = {**new_state(incident.root), **item.data, "passes": 0, "episode": item.episode + 1}
    reopened = _edit_state(ctx, item, state, f"reopen issue #{item.number}", state="open")
    ctx.known[item.number] = reopened
    return reopened


def _run_key(ctx: Context) -> str:
    return ctx.trail.run_key or ctx.run.run_id


def _find_comment(ctx: Context, number: int, markers: Sequence[str]) -> IssueComment | None:
    with calling(f"list the comments on issue #{number}"):
        return next(
            (c for c in ctx.issue(number).get_comments() if any(has_marker(c.body, m) for m in markers)), None
        )


def _post_comment(
    ctx: Context, number: int, body: str, markers: Sequence[str], doing: str, *, look_first: bool
) -> None:
    """Post ``body`` unless ``look_first`` finds a comment carrying one of ``markers`` already."""
    if look_first and _find_comment(ctx, number, markers) is not None:
        return
    body = ctx.redactor.clean(body)
    created = post_once(
        doing,
        send=lambda: ctx.issue(number).create_comment(body),
        find=lambda: _find_comment(ctx, number, markers[:1]),
        permission=ISSUES_WRITE,
        tries=ctx.tries,
        backoff_s=ctx.backoff_s,
    )
    ctx.identity.learn(created.user)


def _comment_recurrence(ctx: Context, item: Tracked, incident: Incident) -> None:
    root, key = incident.root, _run_key(ctx)
    update = report.render_issue_update(
        ctx.run,
        root,
        templates_dir=ctx.templates_dir,
        trail=ctx.trail,
        track=ctx.track,
        related=incident.related,
    )
    markers = [
        report.recurrence_marker(root.fingerprint, key, ctx.track),
        report.issue_comment_marker(root.fingerprint, key),  # written by earlier versions
    ]
    _post_comment(ctx, item.number, update, markers, f"comment on issue #{item.number}", look_first=ctx.rerun)


def _recur(ctx: Context, item: Tracked, incident: Incident) -> None:
    if item.data.get("passes") and item.marked:
        state = {**new_state(incident.root), **item.data, "passes": 0}
        item = _edit_state(ctx, item, state, f"reset the recovery count of issue #{item.number}")
        ctx.known[item.number] = item
    _comment_recurrence(ctx, item, incident)


def _count_pass(ctx: Context, item: Tracked) -> bool:
    """Count this run for ``item``'s recovery; True when that closed it."""
    number, run = item.number, ctx.run
    previous = int(item.data.get("passes") or 0)
    if run.verdict is Verdict.FAIL:
        if previous:
            _edit_state(ctx, item, {**item.data, "passes": 0}, f"reset the recovery count of issue #{number}")
        return False
    key = _run_key(ctx)
    if item.data.get("last_pass") == key:
        return False  # a re-run of a workflow run that was already counted
    passes = previous + 1
    if passes < ctx.settings.close_after_passes:
        state = {**item.data, "passes": passes, "last_pass": key}
        _edit_state(ctx, item, state, f"record a passing run on issue #{number}")
        return False
    finding = finding_from(item)
    recovery = report.render_recovery(
        run, finding, passes=passes, templates_dir=ctx.templates_dir, trail=ctx.trail, track=item.track,
        episode=item.episode,
    )  # fmt: skip
    marker = report.recovery_marker(finding.fingerprint, item.episode, item.track)
    # Always looked for first: a close that failed after its recovery comment must not post a second one.
    _post_comment(
        ctx, number, recovery, [marker], f"comment the recovery on issue #{number}", look_first=True
    )
    state = {**item.data, "passes": 0, "last_pass": key}
    _edit_state(ctx, item, state, f"close issue #{number}", state="closed", state_reason="completed")
    return True
