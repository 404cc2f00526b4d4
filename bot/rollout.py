"""Move traffic for the gate through the Cloud Run Admin API, and record what Cloud Run actually did.

The plan is ``bot.traffic``'s (pure). Here the service is read, the plan sent (only ``traffic``, with the etag
read, so no template is rewritten and no write applies twice), and the outcome found out, even when Cloud Run's
answer is lost:

- the operation is polled (each poll retried on 429/500/503/504, honouring ``Retry-After``) until it is done or
  ``operation_timeout_s`` has passed; when its polls keep failing, the service is read until it has reconciled;
- a write answered 429/5xx, or not answered at all, may have been applied: the service is read. Its etag
  unchanged means it was not, and the same write is sent again within the retry budget; its ``traffic`` equal to
  what was sent means it was, and the service is read until Cloud Run has applied it;
- an etag conflict (another writer landed first) re-reads the service and retries once when the tested
  revision's traffic and tags are what they were; otherwise nothing more is sent and the record says why.

The record (``TrafficAction``) holds what serves afterwards (``trafficStatuses``) and what the spec asks for
(``traffic``): a change Cloud Run accepted but had not applied is reported as such, never as done nor as failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bot import traffic, waits
from bot.cloudrun import serving
from bot.cloudrun_api import (
    FIRST_RETRY_DELAY_S,
    MAX_RETRY_DELAY_S,
    Api,
    CloudRunClients,
    Waiter,
    api_message,
    last_segment,
    service_path,
    transient,
)
from bot.errors import CloudRunError
from bot.results import Target, TrafficAction

if TYPE_CHECKING:
    from google.cloud import run_v2
    from google.longrunning import operations_pb2

OPERATION_TIMEOUT_S = 300.0
PROGRESS_EVERY_S = 5.0  # a long-running operation is polled (and reported) at least this often
NOTHING_TO_ROLL_BACK = "nothing to roll back: the tested revision served no traffic"


def move_traffic(
    *,
    clients: CloudRunClients,
    target: Target,
    action: Literal["promote", "rollback"],
    progress: Callable[[str], None],
    service: str | None = None,
    retry_timeout_s: float = 30.0,
    operation_timeout_s: float = OPERATION_TIMEOUT_S,
    rollback_to: str | None = None,
    sleep: Callable[[float], None] = waits.sleep,
    clock: Callable[[], float] = waits.clock,
) -> TrafficAction:
    """Promote (100% to the tested revision) or roll back (its share to a revision that served users).

    ``target.traffic`` is the split before this run changed anything (``traffic-before``). A rollback of a
    revision that had 0% there changes nothing (``noop``). A rollback with no revision known to have served
    (none in ``traffic-before`` besides the tested one, no ``rollback_to`` tag) is refused as an error (exit 3).
    ``service`` is the Cloud Run service name when ``target.service`` carries a display name instead.
    """
    tested = target.revision
    if not (target.project and target.region and tested):
        return TrafficAction(action, "", 0, False, "no Cloud Run revision was resolved: traffic unchanged")
    if action == "rollback" and not target.traffic.get(tested):
        before = dict(target.traffic)
        progress(f"rollback: {NOTHING_TO_ROLL_BACK} (traffic before this run: {traffic.describe(before)})")
        return TrafficAction(
            action, "", 0, False, NOTHING_TO_ROLL_BACK, before=before, after=before, noop=True
        )
    api = Api(clients=clients, retry_timeout_s=retry_timeout_s, progress=progress, sleep=sleep, clock=clock)
    service_id = service or target.service
    change = _Change(
        api=api,
        name=service_path(target.project, target.region, service_id),
        action=action,
        tested=tested,
        before_run=target.traffic,
        rollback_to=rollback_to,
        operation_timeout_s=operation_timeout_s,
    )
    return change.run()


@dataclass(frozen=True, slots=True)
class _Plan:
    destination: str
    entries: tuple[traffic.Entry, ...]
    why: str = ""  # why a rollback destination is trusted


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: Literal["applied", "failed", "pending", "unknown"]
    service: run_v2.Service | None  # as read after the change (None: it could not be read)
    detail: str = ""  # the operation's error, or why the outcome is unknown
    lost: str = ""  # the error that answered a write Cloud Run applied anyway


@dataclass(frozen=True, slots=True)
class _Change:
    api: Api
    name: str
    action: Literal["promote", "rollback"]
    tested: str
    before_run: Mapping[str, int]
    rollback_to: str | None
    operation_timeout_s: float

    @property
    def service_id(self) -> str:
        return last_segment(self.name)

    def run(self) -> TrafficAction:
        current = self.api.get_service(self.name)
        now = serving(current)
        try:
            plan = self._plan(current)
        except traffic.NoRollbackTarget as exc:
            message = f"refused to roll back {self.tested}: {exc}"
            self.api.progress(f"rollback: {message}")
            return TrafficAction(
                self.action, "", 0, False, message, error=True, refused=True, before=now, after=now
            )
        latest_ready = last_segment(current.latest_ready_revision)
        planned = traffic.shares(plan.entries, latest_ready)
        if self.action == "rollback" and plan.entries == entries_of(current):
            message = "nothing to roll back: the tested revision serves no traffic now"
            self.api.progress(f"rollback: {message} (serving: {traffic.describe(now)})")
            return TrafficAction(self.action, "", 0, False, message, before=now, after=now, noop=True)
        if self.action == "promote" and now == {self.tested: 100}:
            message = f"{self.tested} already receives 100% of traffic: no change needed"
            self.api.progress(f"promote: {message}")
            return TrafficAction(self.action, self.tested, 100, True, message, before=now, after=now)
        percent = planned.get(plan.destination, 0)
        why = f"; {plan.destination} {plan.why}" if plan.why else ""
        self.api.progress(
            f"{self.action}: sending {percent}% of traffic on service {self.service_id} to {plan.destination} "
            f"(was: {traffic.describe(now)}){why}"
        )
        outcome, plan = self._send(current, plan)
        return self._record(outcome, plan, before=now)

    # -- plan --------------------------------------------------------------------------------------------------

    def _plan(self, service: run_v2.Service) -> _Plan:
        spec = entries_of(service)
        if self.action == "promote":
            return _Plan(self.tested, traffic.promote(spec, self.tested))
        known_good = _known_good(service, self.rollback_to, self.tested) if self.rollback_to else None
        where = traffic.rollback_destination(
            tested=self.tested, before=self.before_run, known_good=known_good
        )
        entries = traffic.rollback(
            spec,
            tested=self.tested,
            latest_ready=last_segment(service.latest_ready_revision),
            destination=where.revision,
        )
        return _Plan(where.revision, entries, where.why)

    # -- write -------------------------------------------------------------------------------------------------

    def _send(self, current: run_v2.Service, plan: _Plan) -> tuple[_Outcome, _Plan]:
        api = self.api
        start, delay, conflict_retried = api.clock(), FIRST_RETRY_DELAY_S, False
        while True:
            try:
                operation = self._write(current, plan)
            except Exception as exc:
                if _is_conflict(exc):
                    if conflict_retried:
                        raise CloudRunError(
                            f"service {self.name} changed again while trying to {self.action} ({api_message(exc)}): "
                            "re-run to act on its current state"
                        ) from exc
                    current, plan = self._after_conflict(current, exc)
                    conflict_retried = True
                    continue
                found = transient(exc)
                if found is None:
                    api.reraise(
                        exc, what="update traffic", resource=self.name, permission="run.services.update"
                    )
                fresh = api.get_service(self.name)
                if fresh.etag == current.etag:
                    # Not applied. The same write, with the same etag, can never apply twice: send it again.
                    wait = max(delay, found.retry_after_s or 0.0)
                    if api.clock() - start + wait > api.retry_timeout_s:
                        raise CloudRunError(
                            f"Cloud Run API {found.label} for update traffic on {self.name} after retrying for "
                            f"{api.retry_timeout_s:g} s: {api_message(exc)}; the service's traffic is unchanged"
                        ) from exc
                    api.progress(
                        f"Cloud Run API {found.label} ({api_message(exc)}): the service is unchanged, so the update "
                        f"was not applied: sending it again in {wait:g} s"
                    )
                    api.sleep(wait)
                    delay = min(delay * 2, MAX_RETRY_DELAY_S)
                    continue
                if _same(entries_of(fresh), plan.entries):
                    lost = api_message(exc)
                    api.progress(
                        f"{self.action}: Cloud Run answered the update with an error ({lost}), but the service's "
                        "traffic now asks for it: reading the service until Cloud Run has applied it"
                    )
                    return self._await(None, plan, lost=lost), plan
                raise CloudRunError(
                    f"Cloud Run answered the update of {self.name} with an error ({api_message(exc)}) and another "
                    f"writer changed the service meanwhile (its traffic now asks for "
                    f"{traffic.describe(requested(fresh))}): "
                    "re-run to act on its current state"
                ) from exc
            return self._await(operation, plan, lost=""), plan

    def _write(self, current: run_v2.Service, plan: _Plan) -> operations_pb2.Operation:
        """One PATCH of ``traffic`` with the etag read; never replayed by the library (``retry=None``)."""
        from google.cloud import run_v2
        from google.protobuf import field_mask_pb2

        update = run_v2.Service(name=self.name, traffic=[_target(e) for e in plan.entries], etag=current.etag)
        future = self.api.clients.services.update_service(
            service=update,
            update_mask=field_mask_pb2.FieldMask(paths=["traffic"]),
            retry=None,
            timeout=self.api.retry_timeout_s,
        )
        operation: operations_pb2.Operation = future.operation
        return operation

    def _after_conflict(self, current: run_v2.Service, exc: Exception) -> tuple[run_v2.Service, _Plan]:
        """Another writer landed first: plan again from its result, unless it touched the tested revision."""
        fresh = self.api.get_service(self.name)
        if _tested_state(fresh, self.tested) != _tested_state(current, self.tested):
            raise CloudRunError(
                f"service {self.name} changed while trying to {self.action} ({api_message(exc)}): another writer "
                f"changed the traffic or tags of {self.tested} (the service now asks for "
                f"{traffic.describe(requested(fresh))}): left as it is; re-run to act "
                "on its current state"
            ) from exc
        self.api.progress(
            f"{self.action}: another change to service {self.service_id} landed first (etag conflict); "
            f"{self.tested}'s traffic and tags are unchanged: planning again from the service as it is now and "
            "retrying once"
        )
        try:
            return fresh, self._plan(fresh)
        except traffic.NoRollbackTarget as refused:
            raise CloudRunError(
                f"refused to roll back {self.tested} after a concurrent change: {refused}"
            ) from exc

    # -- outcome -----------------------------------------------------------------------------------------------

    def _await(self, operation: operations_pb2.Operation | None, plan: _Plan, *, lost: str) -> _Outcome:
        """Poll the operation (or, without one, the service) until Cloud Run says what it did, or time is up."""
        api = self.api
        waiter = Waiter(
            timeout_s=self.operation_timeout_s,
            sleep=api.sleep,
            clock=api.clock,
            progress=api.progress,
            max_delay=PROGRESS_EVERY_S,
        )
        awaited = f"Cloud Run to apply the traffic change on service {self.service_id}"
        if operation is not None:
            awaited += f", operation {last_segment(operation.name)}"
        try:
            while True:
                if operation is not None and not operation.done:
                    try:
                        operation = api.get_operation(operation.name, service=self.name)
                    except CloudRunError as exc:
                        api.progress(
                            f"{self.action}: cannot read operation {last_segment(operation.name)} ({exc}): reading the "
                            "service until Cloud Run has applied the change"
                        )
                        operation = None
                if operation is not None and operation.done:
                    service = api.get_service(self.name)
                    if operation.HasField("error"):
                        return _Outcome(
                            "failed", service, operation.error.message or str(operation.error.code)
                        )
                    return _Outcome("applied", service, lost=lost)
                if operation is None:
                    service = api.get_service(self.name)
                    if not service.reconciling and service.observed_generation >= service.generation:
                        if _same(entries_of(service), plan.entries):
                            return _Outcome("applied", service, lost=lost)
                        return _Outcome("failed", service, "Cloud Run did not keep the change", lost=lost)
                if not waiter.pause(awaited, "not done yet"):
                    return _Outcome("pending", api.get_service(self.name), lost=lost)
        except CloudRunError as exc:
            return _Outcome("unknown", None, str(exc), lost=lost)

    def _record(self, outcome: _Outcome, plan: _Plan, *, before: dict[str, int]) -> TrafficAction:
        service = outcome.service
        latest = last_segment(service.latest_ready_revision) if service is not None else ""
        after = serving(service) if service is not None else {}
        asked = requested(service) if service is not None else {}
        planned = traffic.shares(plan.entries, latest)
        percent = planned.get(plan.destination, 0)
        was = traffic.describe(before)
        lost = (
            f"; Cloud Run answered the update with an error ({outcome.lost}), but applied it"
            if outcome.lost
            else ""
        )
        if outcome.state == "applied":
            message = f"sent {percent}% of traffic to {plan.destination} (was: {was}){lost}"
            if after != planned:
                message += f"; the service now reports {traffic.describe(after)}"
        elif outcome.state == "failed":
            message = (
                f"{self.action} to {plan.destination} failed in Cloud Run: {outcome.detail}; the service now "
                f"reports {traffic.describe(after)}"
            )
        elif outcome.state == "pending":
            accepted = "accepted" if asked == planned else "did not take"
            message = (
                f"{self.action} to {plan.destination} not confirmed: the operation was not done after "
                f"{self.operation_timeout_s:g} s (cloud_run.operation_timeout_s); Cloud Run {accepted} the change "
                f"(the service's traffic asks for {traffic.describe(asked)}) and reports "
                f"{traffic.describe(after)} serving: check its traffic before re-running"
            )
        else:
            message = (
                f"{self.action} to {plan.destination}: outcome unknown ({outcome.detail}): check the service's "
                "traffic before re-running"
            )
        self.api.progress(f"{self.action}: {message}")
        return TrafficAction(
            self.action,
            plan.destination,
            percent,
            outcome.state == "applied",
            message,
            error=outcome.state != "applied",
            before=before,
            after=after,
            requested=asked,
        )


# -- the service's traffic as plan entries -----------------------------------------------------------------------


def entries_of(service: run_v2.Service) -> tuple[traffic.Entry, ...]:
    """The service's traffic spec (``traffic``, not ``trafficStatuses``) as plan entries."""
    from google.cloud import run_v2

    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    return tuple(
        traffic.Entry(
            None if t.type_ == latest and not t.revision else last_segment(t.revision), t.percent, t.tag
        )
        for t in service.traffic
    )


def requested(service: run_v2.Service) -> dict[str, int]:
    """Revision short name -> percent the service's spec asks for (``traffic``; beside ``serving``, what serves)."""
    return traffic.shares(entries_of(service), last_segment(service.latest_ready_revision))


def _target(entry: traffic.Entry) -> run_v2.TrafficTarget:
    from google.cloud import run_v2

    kinds = run_v2.TrafficTargetAllocationType
    if entry.revision is None:
        return run_v2.TrafficTarget(
            type_=kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent=entry.percent, tag=entry.tag
        )
    return run_v2.TrafficTarget(
        type_=kinds.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
        revision=entry.revision,
        percent=entry.percent,
        tag=entry.tag,
    )


def _same(a: tuple[traffic.Entry, ...], b: tuple[traffic.Entry, ...]) -> bool:
    """The same entries, in any order (Cloud Run may list them differently from how they were sent)."""

    def key(e: traffic.Entry) -> tuple[str, int, str]:
        return (e.revision or "", e.percent, e.tag)

    return sorted(a, key=key) == sorted(b, key=key)


def _tested_state(service: run_v2.Service, tested: str) -> tuple[int, tuple[str, ...]]:
    """The tested revision's share of the spec and its tags: what a concurrent writer must not have changed."""
    entries = entries_of(service)
    share = traffic.shares(entries, last_segment(service.latest_ready_revision)).get(tested, 0)
    return share, tuple(sorted(e.tag for e in entries if e.revision == tested and e.tag))


def _known_good(service: run_v2.Service, tag: str, tested: str) -> traffic.Destination:
    """The revision the configured known-good tag names; refused when it names none, LATEST, or the tested one."""
    entry = next((e for e in entries_of(service) if e.tag == tag), None)
    if entry is None:
        tags = sorted({e.tag for e in entries_of(service) if e.tag})
        raise traffic.NoRollbackTarget(
            f"no revision carries the known-good tag {tag!r} (cloud_run.rollback_to); tags that exist: "
            f"{', '.join(tags) or 'none'}"
        )
    if entry.revision is None:
        raise traffic.NoRollbackTarget(
            f"the known-good tag {tag!r} follows LATEST (whatever revision is newest), not a revision that served "
            "users: put it on one (gcloud run services update-traffic --update-tags)"
        )
    if entry.revision == tested:
        raise traffic.NoRollbackTarget(
            f"the known-good tag {tag!r} names the tested revision {tested} itself"
        )
    return traffic.Destination(entry.revision, f"carries the known-good tag {tag}")


def _is_conflict(exc: BaseException) -> bool:
    from google.api_core import exceptions

    return isinstance(exc, exceptions.Conflict | exceptions.Aborted) and getattr(exc, "code", None) == 409
