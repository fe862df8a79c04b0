"""The burner activities: burn, teardown and the reaper's pass, as Temporal runs them.

Activities are synchronous and run in the worker's thread pool, heartbeating and cancellable
(``infra.step_runner``); each burn keeps its operation record and events in the store.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Callable

from temporalio import activity

from infra import logs
from infra.basic import Burner, BurnSpec, Progress, is_burner_stack
from infra.errors import InfraError
from infra.handoff import LocalResults
from infra.kinds import BurnerRequest
from infra.records import Records
from infra.stacks import event_recorder
from infra.step_runner import Heartbeat, failure, heartbeats, running
from infra.store import OperationRecord, StoreError
from infra.workflows import (
    BURN,
    REAP_ORPHANS,
    TEARDOWN,
    BurnInput,
    BurnOutput,
    BurnReport,
    Delivery,
    FinishInput,
    Outcome,
    PhaseTime,
    TeardownInput,
    TeardownOutput,
)

logger = logging.getLogger(__name__)

# What the API accepts queued and then hands to a stack's workflow (an expiry is the
# workflow's own, and a burn starts running).
HANDED_OVER_KINDS = ("create", "update", "destroy")


class BurnerActivities:
    """The activities of one worker, around one ``Burner``.

    ``owner_status(stack)`` says whether the workflow that owns a stack is ``running``, has
    ``ended``, or is ``none``; ``handed_over(operation)`` whether a persistent stack's
    workflow has an operation the API accepted (the reaper asks both).
    """

    def __init__(self, burner: Burner, owner_status: Callable[[str], str],
                 handed_over: Callable[[OperationRecord], bool], records: Records,
                 local_results: LocalResults | None = None) -> None:
        self.burner = burner
        self.owner_status = owner_status
        self.handed_over = handed_over
        self.records = records
        self.local_results = local_results
        self.settings = burner.settings
        self.metrics = burner.metrics

    def all(self) -> list[Callable[..., object]]:
        """Every activity, for the worker's registration."""
        return [self.burn, self.teardown, self.reap_orphans]

    @activity.defn(name=BURN, no_thread_cancel_exception=True)
    def burn(self, item: BurnInput) -> BurnOutput:
        """Provision the stack and read its value, then destroy and remove it; close the burn's
        operation record if it did."""
        params = tuple((name, value) for name, value in item.order.params)
        spec = BurnSpec(BurnerRequest(item.order.kind, params), item.stack)
        progress = Progress()
        operation = item.order.operation
        with (logs.bound(logs.request_id, item.order.request_id),
              self._running(BURN, item.stack),
              self._heartbeats(item.stack, progress) as beat):
            # No new step starts once a cancel arrived.
            progress.on_phase = lambda name: beat.raise_if_cancelled()
            try:
                if operation:
                    # A store that is down fails the burn before it creates anything.
                    self.records.open_burn(operation, item.stack)
                    progress.on_event = event_recorder(self.records.event_sink(operation), ())
                burned = self.burner.burn(spec, progress)
            except InfraError as exc:
                beat.raise_if_cancelled()
                if self.local_results is not None:
                    self.local_results.fail(item.stack, exc)
                # The cause chain (the CLI output) stays out of Temporal: its log has it.
                raise failure(exc, progress) from None
            beat.raise_if_cancelled()
        deliveries = None
        if burned.torn_down:
            deliveries = self._close(operation)
        provisioned = burned.provisioned
        phases = [PhaseTime(p.name, p.duration_ms) for p in progress.phases]
        if deliveries is not None and self.local_results is not None:
            # Nothing is left to do for the answer: a request of this process may have it now.
            self.local_results.deliver(BurnReport(item.order.kind, item.stack, provisioned.value,
                                                  list(provisioned.extras), phases))
        return BurnOutput(provisioned.value, list(provisioned.extras), phases, burned.torn_down,
                          deliveries)

    def _close(self, operation: str) -> list[Delivery] | None:
        """Close a burn's record as succeeded; None if the store failed (the workflow retries)."""
        if not operation:
            return []
        try:
            return self.records.close(FinishInput(operation, Outcome("succeeded")))
        except StoreError as exc:
            logger.warning("could not close operation %s yet: %s", operation, exc)
            return None

    @activity.defn(name=TEARDOWN, no_thread_cancel_exception=True)
    def teardown(self, item: TeardownInput) -> TeardownOutput:
        """Destroy and remove the stack (a stack already gone is a success); then close the
        burn's operation record."""
        progress = Progress()
        if item.operation:
            progress.on_event = event_recorder(self.records.event_sink(item.operation), ())
        with self._running(TEARDOWN, item.stack), self._heartbeats(item.stack, progress):
            # A retry after a failed attempt may find the lock of that attempt's engine.
            clear_lock = item.clear_lock or activity.info().attempt > 1
            self.burner.teardown(item.stack, clear_lock, progress)
        deliveries = []
        if item.operation and item.outcome is not None:
            deliveries = self.records.close(FinishInput(item.operation, item.outcome))
        return TeardownOutput([PhaseTime(p.name, p.duration_ms) for p in progress.phases],
                              deliveries)

    @activity.defn(name=REAP_ORPHANS, no_thread_cancel_exception=True)
    def reap_orphans(self) -> list[str]:
        """Tear down burner stacks older than the orphan age that no running workflow owns, and
        fail the stack operations no workflow received."""
        reaped = []
        progress = Progress()
        with self._running(REAP_ORPHANS, "-"), self._heartbeats("-", progress):
            for name in self._orphans():
                logger.warning("reaper: %s has no running workflow; tearing it down", name)
                try:
                    with logs.bound(logs.stack_name, name):
                        self.burner.teardown(name, clear_lock=True, progress=progress)
                except InfraError as exc:
                    # One stack that resists must not keep the others: the next pass retries.
                    logger.error("reaper: could not tear down %s: %s", name, exc)
                    continue
                reaped.append(name)
                if self.metrics is not None:
                    self.metrics.reaped.inc()
        if reaped:
            logger.warning("reaper: destroyed and removed %s", ", ".join(reaped))
        self._close_unhanded()
        purged = self.records.store.purge(time.time() - self.settings.event_retention)
        if purged:
            logger.info("reaper: forgot %d operations older than the event retention", purged)
        return reaped

    def _close_unhanded(self) -> None:
        """Fail the operations the API accepted and then stopped before handing to a workflow:
        nothing would ever run them, and their stack would refuse every other operation."""
        store = self.records.store
        for record in store.queued_before(time.time() - self.settings.orphan_age):
            if record.kind not in HANDED_OVER_KINDS or self.handed_over(record):
                continue
            logger.error("reaper: %s %s of %s never reached a workflow; failing it",
                         record.kind, record.id, record.stack)
            store.finish_operation(record.id, "failed", time.time(), "orchestration_unavailable",
                                   "the API stopped before it handed the operation to a workflow")
            if record.kind == "create":
                store.delete_stack(record.stack)  # its workflow, which would create it, never ran
            else:
                store.update_stack(record.stack, status="ready")

    def _orphans(self) -> list[str]:
        """Burner stacks no running workflow owns, and old enough (or whose workflow ended)."""
        cutoff = (datetime.datetime.now(datetime.UTC)
                  - datetime.timedelta(seconds=self.settings.orphan_age))
        with self.burner.workspace("reaper") as workspace:
            summaries = workspace.list_stacks(include_all=True)
        orphans = []
        for summary in summaries:
            name = summary.name.rsplit("/", 1)[-1]
            if not is_burner_stack(name):
                continue
            owner = self.owner_status(name)
            if owner == "running":
                continue
            last = summary.last_update
            if last is None:
                # Never updated: its age is unknown, so only a workflow that ended vouches
                # that nobody works on it (an in-process run has no workflow at all).
                if owner == "ended":
                    orphans.append(name)
            elif last.replace(tzinfo=last.tzinfo or datetime.UTC) <= cutoff:
                # The Automation API parses the CLI's UTC times as naive datetimes.
                orphans.append(name)
        return orphans

    def _running(self, name: str, stack: str) -> contextlib.AbstractContextManager[None]:
        return running(self.metrics, name, stack)

    def _heartbeats(self, stack: str, progress: Progress
                    ) -> contextlib.AbstractContextManager[Heartbeat]:
        return heartbeats(stack, progress, self.settings.cancel_grace)
