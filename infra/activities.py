"""Activities: the steps as Temporal runs them, with heartbeats, cancellation, metrics, and
the operation records and events they keep in the store.

Activities are synchronous and run in the worker's thread pool. While one runs, a heartbeat
thread reports its current phase; when Temporal asks to cancel it, that thread interrupts the
stack's Pulumi command (SIGINT, then SIGKILL after the grace), so the engine records the update
as failed and releases its lock before the activity reports itself cancelled.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from infra import logs
from infra.basic import Burner, BurnSpec, Progress, is_burner_stack
from infra.catalog import Catalog, Program
from infra.errors import ConflictError, InfraError
from infra.interrupt import interrupt_stack
from infra.kinds import BurnerRequest
from infra.stacks import StackSteps, event_recorder, mask_config, mask_outputs
from infra.store import OperationRecord, Store
from infra.webhooks import Subscriber, post
from infra.workflows import (
    ANNOUNCE,
    APPLY,
    DELIVER,
    DESTROY,
    FINISH_OPERATION,
    OPEN_OPERATION,
    PROVISION,
    REAP_ORPHANS,
    TEARDOWN,
    AnnounceInput,
    ApplyInput,
    Delivery,
    DestroyInput,
    FinishInput,
    OpenInput,
    PhaseTime,
    ProvisionInput,
    ProvisionOutput,
    TeardownInput,
    TeardownOutput,
)
from offline_pulumi.storage import redact_url

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0


BURNER_PROGRAM = "burner"


class Records:
    """Operation records, their events and the webhook deliveries their ends call for."""

    def __init__(self, store: Store, subscribers: Sequence[Subscriber]) -> None:
        self.store = store
        self.subscribers = tuple(subscribers)

    def event_sink(self, operation: str) -> Callable[[str, dict[str, Any]], None]:
        """A callback that appends events to ``operation``'s stream."""
        def append(event_type: str, data: dict[str, Any]) -> None:
            self.store.append_event(operation, event_type, data)
        return append

    def start(self, operation: str) -> None:
        """Mark a queued operation running and say so in its stream."""
        if self.store.start_operation(operation, time.time()):
            self.store.append_event(operation, "status", {"status": "running"})

    def close(self, item: FinishInput) -> list[Delivery]:
        """Record the operation's outcome and its stack's new status; return the deliveries."""
        outcome = item.outcome
        record = self.store.finish_operation(item.operation, outcome.status, time.time(),
                                             outcome.error_code, outcome.error_message,
                                             item.outputs)
        error = ({"error": {"code": outcome.error_code, "message": outcome.error_message}}
                 if outcome.error_code else {})
        self.store.append_event(item.operation, "status", {"status": outcome.status, **error})
        if item.stack_status == "gone":
            self.store.delete_stack(record.stack)
        elif item.stack_status is not None:
            self.store.update_stack(record.stack, status=item.stack_status, updated=time.time())
        logger.info("operation %s %s: %s", record.kind, record.id, outcome.status)
        types = ["operation.succeeded" if outcome.status == "succeeded" else "operation.failed"]
        if item.stack_event is not None:
            types.append(item.stack_event)
        return self.deliveries(record, types)

    def deliveries(self, record: OperationRecord, types: Sequence[str]) -> list[Delivery]:
        """One delivery per event type and subscriber that wants it (no secrets in a body)."""
        deliveries = []
        for event_type in types:
            wanted = [index for index, subscriber in enumerate(self.subscribers)
                      if event_type in subscriber.events]
            if not wanted:
                continue
            event_id = "evt-" + uuid.uuid4().hex
            operation = record.to_json()
            body = json.dumps({
                "id": event_id, "type": event_type,
                "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"
                                                                      ).replace("+00:00", "Z"),
                "stack": record.stack, "program": record.program,
                "operation": {key: operation[key] for key in ("id", "kind", "status", "error")},
            }, separators=(",", ":"))
            deliveries += [Delivery(index, event_id, event_type, record.id, body)
                           for index in wanted]
        return deliveries


class BurnerActivities:
    """The activities of one worker, around one ``Burner``.

    ``owner_status(stack)`` says whether the workflow that owns a stack is ``running``, has
    ``ended``, or is ``none`` (the reaper asks).
    """

    def __init__(self, burner: Burner, owner_status: Callable[[str], str], records: Records
                 ) -> None:
        self.burner = burner
        self.owner_status = owner_status
        self.records = records
        self.settings = burner.settings
        self.metrics = burner.metrics

    def all(self) -> list[Callable[..., object]]:
        """Every activity, for the worker's registration."""
        return [self.provision, self.teardown, self.reap_orphans]

    @activity.defn(name=PROVISION, no_thread_cancel_exception=True)
    def provision(self, item: ProvisionInput) -> ProvisionOutput:
        """Create, configure, refresh and up the stack, and read its value."""
        params = tuple((name, value) for name, value in item.order.params)
        spec = BurnSpec(BurnerRequest(item.order.kind, params), item.stack)
        progress = Progress()
        operation = item.order.operation
        if operation:
            now = time.time()
            self.records.store.record_operation(OperationRecord(
                operation, "burn", item.stack, BURNER_PROGRAM, "running", now, started=now))
            self.records.store.append_event(operation, "status", {"status": "running"})
            progress.on_event = event_recorder(self.records.event_sink(operation), ())
        with (logs.bound(logs.request_id, item.order.request_id),
              self._running(PROVISION, item.stack),
              self._heartbeats(item.stack, progress) as beat):
            # No new step starts once a cancel arrived.
            progress.on_phase = lambda name: beat.raise_if_cancelled()
            try:
                provisioned = self.burner.provision(spec, progress)
            except InfraError as exc:
                beat.raise_if_cancelled()
                raise _failure(exc, progress) from exc
            beat.raise_if_cancelled()
        return ProvisionOutput(provisioned.value, list(provisioned.extras),
                               [PhaseTime(p.name, p.duration_ms) for p in progress.phases])

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
        """Tear down burner stacks older than the orphan age that no running workflow owns."""
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
        purged = self.records.store.purge(time.time() - self.settings.event_retention)
        if purged:
            logger.info("reaper: forgot %d operations older than the event retention", purged)
        return reaped

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
        return _running(self.metrics, name, stack)

    def _heartbeats(self, stack: str, progress: Progress
                    ) -> contextlib.AbstractContextManager[_Heartbeat]:
        return _heartbeats(stack, progress, self.settings.cancel_grace)


class StackActivities:
    """The activities of persistent stacks and webhook deliveries, around ``StackSteps``."""

    def __init__(self, steps: StackSteps, catalog: Catalog, records: Records) -> None:
        self.steps = steps
        self.catalog = catalog
        self.records = records
        self.store = records.store
        self.settings = steps.burner.settings
        self.metrics = steps.burner.metrics

    def all(self) -> list[Callable[..., object]]:
        """Every activity, for the worker's registration."""
        return [self.apply_stack, self.destroy_stack, self.open_operation, self.finish_operation,
                self.announce, self.deliver_webhook]

    @activity.defn(name=APPLY, no_thread_cancel_exception=True)
    def apply_stack(self, item: ApplyInput) -> dict[str, Any]:
        """Create or update the stack with its whole config; return its outputs, masked."""
        program = self._program(item.program)
        self.records.start(item.operation)
        secrets = [str(item.config[key]) for key in item.secret_keys if key in item.config]
        progress = Progress(on_event=event_recorder(self.records.event_sink(item.operation),
                                                    secrets))
        with (logs.bound(logs.request_id, item.request_id),
              _running(self.metrics, APPLY, item.stack),
              _heartbeats(item.stack, progress, self.settings.cancel_grace) as beat):
            progress.on_phase = lambda name: beat.raise_if_cancelled()
            try:
                outputs = self.steps.apply(program.path, item.stack, item.config,
                                           item.secret_keys, item.create, progress)
            except InfraError as exc:
                beat.raise_if_cancelled()
                raise _failure(exc, progress) from exc
            beat.raise_if_cancelled()
        masked = mask_outputs(outputs)
        self.store.update_stack(item.stack, outputs=masked, updated=time.time(),
                                config=mask_config(item.config, item.secret_keys),
                                expires=item.expires)
        return masked

    @activity.defn(name=DESTROY, no_thread_cancel_exception=True)
    def destroy_stack(self, item: DestroyInput) -> dict[str, Any]:
        """Destroy the stack's resources and remove it (gone already is a success)."""
        program = self._program(item.program)
        self.records.start(item.operation)
        progress = Progress(on_event=event_recorder(self.records.event_sink(item.operation), ()))
        with (logs.bound(logs.request_id, item.request_id),
              _running(self.metrics, DESTROY, item.stack),
              _heartbeats(item.stack, progress, self.settings.cancel_grace) as beat):
            clear_lock = item.clear_lock or activity.info().attempt > 1
            try:
                self.steps.destroy(program.path, item.stack, clear_lock, progress)
            except InfraError as exc:
                beat.raise_if_cancelled()
                raise _failure(exc, progress) from exc
        return {}

    @activity.defn(name=OPEN_OPERATION)
    def open_operation(self, item: OpenInput) -> bool:
        """Record an operation the workflow starts itself; False if another one is under way."""
        record = OperationRecord(item.operation, item.kind, item.stack, item.program, "queued",
                                 time.time())
        try:
            self.store.begin_operation(record, "destroying")
        except ConflictError:
            return False
        return True

    @activity.defn(name=FINISH_OPERATION)
    def finish_operation(self, item: FinishInput) -> list[Delivery]:
        """Close the operation's record; return the webhook deliveries its end calls for."""
        return self.records.close(item)

    @activity.defn(name=ANNOUNCE)
    def announce(self, item: AnnounceInput) -> list[Delivery]:
        """The deliveries of a stack event that is not an operation's end."""
        record = self.store.get_operation(item.operation)
        if record is None:
            return []
        logger.info("stack %s: %s", item.stack, item.event_type)
        return self.records.deliveries(record, [item.event_type])

    @activity.defn(name=DELIVER)
    def deliver_webhook(self, item: Delivery) -> None:
        """POST one event to one subscriber; a failure raises, and Temporal retries with backoff."""
        attempt = activity.info().attempt
        if item.subscriber >= len(self.records.subscribers):
            logger.error("webhook: subscriber %d is no longer configured; dropping %s",
                         item.subscriber + 1, item.event_id)
            return
        subscriber = self.records.subscribers[item.subscriber]
        result = post(subscriber, item.event_id, item.event_type, item.body.encode())
        shown = redact_url(subscriber.url)
        self.store.append_event(item.operation, "webhook", {
            "subscriber": shown, "event": item.event_type, "event_id": item.event_id,
            "attempt": attempt, "outcome": "succeeded" if result.ok else "failed",
            "status": result.status})
        if not result.ok:
            logger.warning("webhook %s to %s failed (attempt %d): %s", item.event_type, shown,
                           attempt, result.error)
            raise ApplicationError(f"delivery to {shown} failed: {result.error}")
        logger.info("webhook %s delivered to %s (attempt %d)", item.event_type, shown, attempt)

    def _program(self, name: str) -> Program:
        program = self.catalog.programs().get(name)
        if program is None:
            raise ApplicationError(f"program {name!r} is no longer in the catalog",
                                   {"code": "engine_error", "phase": "set_context",
                                    "created": True, "status": 502}, non_retryable=True)
        return program


@contextmanager
def _running(metrics: Any, name: str, stack: str) -> Iterator[None]:
    """Bind the log context, log and count the activity's outcome and duration."""
    info = activity.info()
    started = time.perf_counter()
    outcome = "failed"
    with logs.bound(logs.operation, info.workflow_id or "-"), logs.bound(logs.stack_name, stack):
        logger.info("activity %s: attempt %d", name, info.attempt)
        try:
            yield
            outcome = "succeeded"
        except CancelledError:
            outcome = "cancelled"
            raise
        finally:
            seconds = time.perf_counter() - started
            logger.info("activity %s: %s in %.0f ms", name, outcome, seconds * 1000)
            if metrics is not None:
                metrics.activities.labels(name, outcome).inc()
                metrics.activity_seconds.labels(name).observe(seconds)


@contextmanager
def _heartbeats(stack: str, progress: Progress, grace: float) -> Iterator[_Heartbeat]:
    beat = _Heartbeat(stack, progress, grace)
    beat.start()
    try:
        yield beat
    finally:
        beat.stop()


class _Heartbeat:
    """A thread that heartbeats the current phase and interrupts the engine on cancellation."""

    def __init__(self, stack: str, progress: Progress, grace: float) -> None:
        self._stack = stack
        self._progress = progress
        self._grace = grace
        self._done = threading.Event()
        self.cancelled = False
        # The copied context carries the activity (for heartbeat) and the log fields.
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._loop,),
                                        name=f"heartbeat-{stack}", daemon=True)

    def start(self) -> None:
        activity.heartbeat(self._progress.current)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def raise_if_cancelled(self) -> None:
        """Report a cancelled step as cancelled, not as the failure the interrupt caused."""
        if self.cancelled or activity.is_cancelled():
            raise CancelledError("cancelled")

    def _loop(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            activity.heartbeat(self._progress.current)
            if activity.is_cancelled() and not self.cancelled:
                self.cancelled = True
                logger.warning("cancel requested during %s; interrupting the engine",
                               self._progress.current)
                interrupt_stack(self._stack, self._done.is_set, self._grace)


def _failure(exc: InfraError, progress: Progress) -> ApplicationError:
    """The activity error the workflow and the API read: code, phase, and whether it created."""
    details = {"code": exc.code, "phase": progress.current, "created": progress.created,
               "status": exc.status}
    return ApplicationError(str(exc), details, type=type(exc).__name__, non_retryable=True)
