"""The record of one update: old and new state, the steps taken, deletes at the end.

``Ledger`` applies and records steps and runs the deletes of an update, a destroy or a
refresh; ``deployment.Deployment`` decides the step for each registration. Thread-safe: the
SDK registers resources from a thread pool.

Every change (an operation begun, a step's outcome) is in a saved snapshot before the step is
reported or the program hears of it, and a create or replace is saved as pending before its
provider runs. Steps running at the same time share saves (group commit): a step whose change
a save taken after it already covers does not write again, and a save waits a moment for the
registrations under way to reach theirs. A killed update still leaves every reported step,
and every operation in flight, in the checkpoint. Deletes, which run one
after another and change nothing outside the state, share saves too (``_Deletes``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from offline_pulumi.backend import now_rfc3339
from offline_pulumi.engine.events import EventStream
from offline_pulumi.engine.steps import (
    Registered,
    Registration,
    Resource,
    StepFailed,
    dependents,
    is_default_provider,
    needs,
    step_metadata,
)
from offline_pulumi.manifest import PROVIDER_PREFIX, STACK_TYPE

# Deletes made one after another are saved together, each at most this long after it.
DELETES_SAVED_WITHIN = 0.05
# A save waits at most this long for the registrations under way to reach a save of their
# own, so that one write covers them all: with the SDK's dozen registrations in flight, a
# 100-resource update wrote its checkpoint 46 times instead of 28.
SAVE_GATHER = 0.002


class Ledger:
    """The state of one update while the program runs, and its bookkeeping."""

    def __init__(self, stack: str, project: str, old: list[Resource], events: EventStream,
                 dry_run: bool, persist: Callable[[list[Resource], list[dict[str, Any]]], None]
                 | None = None, force_replace: frozenset[str] = frozenset(),
                 pending: list[dict[str, Any]] | None = None,
                 stack_outputs: Callable[[str], dict[str, Any]] | None = None,
                 targets: frozenset[str] = frozenset(),
                 excludes: frozenset[str] = frozenset()) -> None:
        self.stack, self.project = stack, project
        # --target: only these resources change (none: every resource); --exclude: these don't.
        self.targets, self.excludes = targets, excludes
        self.stack_outputs_of = stack_outputs
        self.events, self.dry_run, self.persist = events, dry_run, persist
        self.force_replace = force_replace
        self.old: dict[str, Resource] = {}
        self.original = {resource["urn"]: resource for resource in old}
        self.doomed: list[Resource] = []   # replaced originals, deleted at the end
        for resource in old:
            if resource.get("delete"):
                self.doomed.append(resource)
            else:
                self.old[resource["urn"]] = resource
        self.new: dict[str, Resource] = {}
        self.in_flight: dict[str, dict[str, Any]] = {}
        self.carried_pending = [p for p in pending or [] if p.get("type") == "creating"]
        self.changes: Counter[str] = Counter()
        self.step_ops: dict[str, str] = {}   # the op of each resource's step, by URN
        self.stack_outputs: dict[str, Any] | None = None
        self.failure: str | None = None
        self.kept_protected = 0   # protected resources a destroy --exclude-protected kept
        self._lock = threading.RLock()
        # Group commit: ``_changes`` counts changes, ``_saved`` how many of them are saved.
        # One thread saves at a time (``_writing``), so a later snapshot is never overwritten
        # by an earlier one; the others wait on ``_saves`` for a save that covers them.
        # ``_saves``'s lock is never held while taking ``_lock``.
        # Before writing, the saving thread waits on ``_gathered`` (``SAVE_GATHER``) while
        # more registrations are under way (``_running``) than wait for a save (``_parked``).
        saves_lock = threading.Lock()
        self._saves = threading.Condition(saves_lock)
        self._gathered = threading.Condition(saves_lock)
        self._writing = False
        self._running = 0
        self._parked = 0
        self._changes = 0
        self._saved = 0
        self.saves = 0   # snapshots written
        self._default_providers = threading.Lock()   # one thread makes each default provider

    # -- URNs --------------------------------------------------------------------------
    def urn(self, type_token: str, name: str, parent: str) -> str:
        """The URN the real engine gives a resource (children of components nest types)."""
        qualified = type_token
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != STACK_TYPE:
                qualified = f"{parent_type}${type_token}"
        return f"urn:pulumi:{self.stack}::{self.project}::{qualified}::{name}"

    def _targeted(self, urn: str, type_token: str) -> bool:
        """Whether ``--target`` lets this resource change (the root stack always may)."""
        if type_token == STACK_TYPE or type_token.startswith(PROVIDER_PREFIX):
            return True
        return urn not in self.excludes and (not self.targets or urn in self.targets)

    # -- step mechanics ----------------------------------------------------------------
    def _state(self, urn: str, request: Registration, resource_id: str,
               outputs: dict[str, Any], old: Resource | None, provider: str = "") -> Resource:
        stamp = now_rfc3339()
        state: Resource = {"urn": urn, "custom": request.custom, "type": request.type,
                           "inputs": request.inputs, "outputs": outputs}
        if request.custom:
            state["id"] = resource_id
        optional = {"parent": request.parent, "provider": provider,
                    "protect": request.protect, "retainOnDelete": request.retain_on_delete,
                    "dependencies": list(request.dependencies),
                    "propertyDependencies": request.property_dependencies or {},
                    "additionalSecretOutputs": list(request.additional_secret_outputs)}
        state.update({k: v for k, v in optional.items() if v})
        state["created"] = (old or {}).get("created", stamp)
        state["modified"] = stamp if old is None or old.get("inputs") != request.inputs \
            else old.get("modified", stamp)
        return state

    def _run_step(self, op: str, old: Resource | None, new: Resource, counted: bool,
                  outputs_event: bool = True, quiet: bool = False) -> None:
        started = time.monotonic()
        metadata = step_metadata(op, old, new)
        self.events.step_pre(metadata, quiet=quiet)
        with self._lock:
            self.new[new["urn"]] = new
            self.step_ops[new["urn"]] = op
            if counted:
                self.changes[op] += 1
            if op == "replace" and old is not None:
                self.doomed.append({**old, "delete": True})
            self._forget_old(new["urn"], old)
            change = self._changed() if op != "same" else 0
        self._save(change)
        if outputs_event or op != "same":
            self.events.step_done(metadata, time.monotonic() - started, quiet=quiet)

    def _forget_old(self, urn: str, old: Resource | None) -> None:
        """The old state is taken over (under its own URN, or an alias's)."""
        self.old.pop(urn, None)
        if old is not None:
            self.old.pop(old["urn"], None)

    def _begin(self, urn: str, draft: Resource, kind: str) -> None:
        with self._lock:
            self.in_flight[urn] = {"resource": draft, "type": kind}
            change = self._changed()
        self._save(change)

    def fail_registration(self, urn: str, type_token: str, message: str) -> None:
        """Report a registration that failed before its step (e.g. in a transform)."""
        try:
            self._fail(urn, type_token, message)
        except StepFailed:
            return

    def _fail(self, urn: str, type_token: str, message: str) -> Registered:
        with self._lock:
            self.failure = self.failure or message
        self.events.diagnostic("error", message, urn=urn)
        self.events.step_failed({"op": "create", "urn": urn, "type": type_token,
                                 "old": None, "new": None, "provider": ""})
        raise StepFailed(message)

    def _changed(self) -> int:
        """Note a change to save (under ``_lock``); its number is for ``_save``."""
        self._changes += 1
        return self._changes

    def _save(self, change: int) -> None:
        """Return once change number ``change`` (and every one before) is in a saved snapshot.

        Called without ``_lock`` held: the thread that saves takes it to copy the state, and
        a step waiting here must not stop others from recording their changes meanwhile.
        """
        if self.persist is None or self.dry_run:
            return
        with self._saves:
            self._parked += 1
            self._wake_gatherer()
            try:
                while self._saved < change:
                    if not self._writing:
                        self._writing = True
                        self._gather()
                        break
                    # A save is under way: the one after it covers this change, if it doesn't.
                    self._saves.wait()
                else:
                    return
            finally:
                self._parked -= 1
        saved = None
        try:
            with self._lock:
                covered = self._changes
                resources = [dict(r) for r in self.snapshot()]
                pending = self.pending_operations()
            self.persist(resources, pending)
            saved = covered
        finally:
            with self._saves:
                self._writing = False
                if saved is not None:
                    self._saved = saved
                    self.saves += 1
                self._saves.notify_all()

    def _gather(self) -> None:
        """Let the registrations under way reach their own saves, briefly, before this one
        is written (called holding ``_saves``)."""
        deadline = time.monotonic() + SAVE_GATHER
        while self._running > self._parked:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._gathered.wait(left)

    @contextlib.contextmanager
    def registering(self) -> Iterator[None]:
        """Count a registration as under way while it runs, for ``_gather``."""
        with self._saves:
            self._running += 1
        try:
            yield
        finally:
            with self._saves:
                self._running -= 1
                self._wake_gatherer()

    def _wake_gatherer(self) -> None:
        """Wake a save waiting in ``_gather`` once it need wait no longer (holding ``_saves``).

        Woken at every registration that parked, it woke about twice per save only to wait
        again: 2 ms of the engine's CPU per 100-resource update."""
        if self._running <= self._parked:
            self._gathered.notify()

    # -- outputs and the end of the update ---------------------------------------------
    def register_outputs(self, urn: str, outputs: dict[str, Any]) -> None:
        """Record a component's outputs (the root stack's are the stack outputs)."""
        with self._lock:
            resource = self.new.get(urn)
            if resource is None:
                return
            resource["outputs"] = outputs
            if resource["type"] == STACK_TYPE:
                self.stack_outputs = outputs
            change = self._changed()
        self._save(change)
        # Reported with the op of the resource's own step, as the CLI does (OnResourceOutputs).
        op = self.step_ops.get(urn, "create")
        old = self.original.get(urn) if op != "create" else None
        self.events.step_done(step_metadata(op, old, resource), 0, quiet=True)

    def finish(self, succeeded: bool) -> None:
        """After a successful program: delete what it no longer declares, and originals."""
        if not succeeded:
            self._keep_stack_outputs()
            return
        in_use = {r.get("provider", "").rsplit("::", 1)[0] for r in self.new.values()}
        leftovers = [r for r in self.old.values() if not is_default_provider(r)]
        untargeted = {r["urn"] for r in leftovers if not self._targeted(r["urn"], r["type"])}
        self._delete_in_order(reversed(leftovers), untargeted, counted=lambda r: True)
        deletes = _Deletes()
        for resource in list(self.doomed):
            self._delete(resource, op="delete-replaced", counted=False, deletes=deletes)
        for resource in list(self.old.values()):
            if is_default_provider(resource) and resource["urn"] not in in_use:
                self._delete(resource, op="delete", counted=False, deletes=deletes)
        self._report_deletes(deletes)

    def _keep_stack_outputs(self) -> None:
        """A failed program does not wipe the outputs of the last good update."""
        with self._lock:
            for urn, resource in self.new.items():
                if resource["type"] == STACK_TYPE and urn in self.original:
                    resource["outputs"] = self.original[urn].get("outputs", {})
                    self.stack_outputs = resource["outputs"]

    def destroy_all(self, exclude_protected: bool = False, target_dependents: bool = False,
                    exclude_dependents: bool = False) -> None:
        """Delete every resource, dependents first.

        ``exclude_protected`` keeps protected resources and everything they need (parents,
        dependencies, providers), as ``destroy --exclude-protected`` does.
        """
        resources = [*self.doomed, *self.old.values()]
        keep: set[str] = set()
        if self.targets:
            targets = self._with_dependents(resources, target_dependents)
            keep = {r["urn"] for r in resources if r["urn"] not in targets}
        keep |= self.excludes
        if exclude_dependents:
            keep |= dependents(resources, self.excludes)
        if exclude_protected:
            protected = [r for r in resources if r.get("protect") and not r.get("delete")]
            keep |= {r["urn"] for r in protected}
            self.kept_protected = len(protected)
        self._delete_in_order(reversed(resources), keep, counted=lambda r: not
                              is_default_provider(r) and not r.get("delete"))

    def _with_dependents(self, resources: list[Resource], include: bool) -> set[str]:
        """The targets, and (with ``--target-dependents``) every resource that needs one.

        Without the flag a dependent outside the targets fails the destroy, as the real
        engine refuses to delete what an untargeted resource still needs.
        """
        targets = set(self.targets)
        if include:
            return targets | dependents(resources, targets)
        for resource in resources:   # dependents come after what they need
            needed = needs(resource) & targets
            if not needed or resource["urn"] in targets:
                continue
            message = (f"Resource '{resource['urn']}' depends on '{sorted(needed)[0]}', "
                       "which is targeted for deletion; pass --target-dependents to delete "
                       "it as well")
            self.events.diagnostic("error", message, urn=resource["urn"])
            self.failure = self.failure or message
            return set()
        return targets

    def _delete_in_order(self, resources: Iterable[Resource], keep: set[str],
                         counted: Callable[[Resource], bool], op: str = "delete") -> None:
        """Delete resources (dependents before what they need) unless kept or blocked.

        A resource that is kept, or whose delete fails, blocks what it needs: its parent, its
        dependencies and its provider stay, so the state never points at a missing resource
        (the real engine skips a failed step's dependents the same way).
        """
        blocked = set(keep)
        deletes = _Deletes()
        for resource in resources:
            urn = resource["urn"]
            if urn in blocked and not resource.get("delete"):
                blocked |= needs(resource)
                continue
            if resource.get("external"):
                # A read resource is only forgotten (pkg/resource/deploy/step.go: read-discard).
                self._delete(resource, op="discard", counted=False, deletes=deletes)
            elif not self._delete(resource, op=op, counted=counted(resource), deletes=deletes):
                blocked |= needs(resource) | {urn}
        self._report_deletes(deletes)

    def refresh_all(self, clear_pending_creates: bool, counted: bool = True) -> None:
        """Read every resource back; the built-in providers' reads change nothing."""
        for resource in [*self.old.values(), *self.doomed]:
            metadata = step_metadata("refresh", resource, resource)
            quiet = is_default_provider(resource)
            self.events.step_pre(metadata, quiet=quiet)
            self.events.step_done({**metadata, "op": "same"}, 0, quiet=True)
            if counted and not quiet and not resource.get("delete"):
                self.changes["same"] += 1
        if clear_pending_creates:
            self.carried_pending = []

    def _delete(self, resource: Resource, op: str, counted: bool,
                deletes: _Deletes | None = None) -> bool:
        """Delete one resource; False (after an error diagnostic) if it may not be deleted.

        With ``deletes``, its save (and then its report) is shared with the deletes that follow.
        """
        if resource.get("protect") and not resource.get("delete"):
            message = (f"unable to delete resource \"{resource['urn']}\"\nas it is currently "
                       "marked for protection. To unprotect the resource, remove the "
                       "`protect` flag from the resource in your Pulumi program and run "
                       "`pulumi up`")
            self.events.diagnostic("error", message, urn=resource["urn"])
            self.failure = self.failure or message
            return False
        started = time.monotonic()
        metadata = step_metadata(op, resource, None)
        self.events.step_pre(metadata, quiet=not counted)
        with self._lock:
            if not self.dry_run:
                if not resource.get("delete"):
                    self.old.pop(resource["urn"], None)
                if resource in self.doomed:
                    self.doomed.remove(resource)
            if counted:
                self.changes["delete"] += 1
            change = self._changed()
        if deletes is None:
            self._save(change)
            self.events.step_done(metadata, time.monotonic() - started, quiet=not counted)
        elif deletes.add(change, (metadata, started, not counted)):
            self._report_deletes(deletes)
        return True

    def _report_deletes(self, deletes: _Deletes) -> None:
        """Save the deletes made so far, then report them."""
        change, reports = deletes.take()
        if reports:
            self._save(change)
        for metadata, started, quiet in reports:
            self.events.step_done(metadata, time.monotonic() - started, quiet=quiet)

    def snapshot(self) -> list[Resource]:
        """Resources as they stand now: new ones, then originals awaiting deletion and the rest."""
        with self._lock:
            return [*self.new.values(), *self.doomed,
                    *(r for urn, r in self.old.items() if urn not in self.new)]

    def pending_operations(self) -> list[dict[str, Any]]:
        """Operations in flight, plus interrupted creates carried over from before."""
        with self._lock:
            return [*self.carried_pending, *self.in_flight.values()]


class _Deletes:
    """Deletes made one after another that share a save, each reported once it is saved.

    A delete changes nothing outside the state (the engine's providers keep nothing
    elsewhere), so a stop before the save loses nothing; a save per delete rewrote the whole
    checkpoint each time: 1.4 s of a 1000-resource destroy.
    """

    def __init__(self) -> None:
        self._change = 0
        self._reports: list[tuple[dict[str, Any], float, bool]] = []
        self._since = 0.0

    def add(self, change: int, report: tuple[dict[str, Any], float, bool]) -> bool:
        """Note a delete; whether the ones noted so far are due to be saved and reported."""
        if not self._reports:
            self._since = time.monotonic()
        self._change = change
        self._reports.append(report)
        return time.monotonic() - self._since >= DELETES_SAVED_WITHIN

    def take(self) -> tuple[int, list[tuple[dict[str, Any], float, bool]]]:
        """The last change noted and the reports waiting for its save; none wait after this."""
        reports, self._reports = self._reports, []
        return self._change, reports
