"""The activities of persistent stacks and of webhook deliveries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from infra import logs
from infra.basic import Progress
from infra.catalog import Catalog, Program
from infra.errors import ConflictError, InfraError, NotFoundError
from infra.masking import mask_config, secret_texts
from infra.records import Records
from infra.stack_workflow import (
    ANNOUNCE,
    APPLY,
    DESTROY,
    OPEN_OPERATION,
    AnnounceInput,
    ApplyInput,
    DestroyInput,
    OpenInput,
)
from infra.stacks import StackSteps, event_recorder
from infra.step_runner import failure, heartbeats, running
from infra.store import OperationRecord
from infra.webhooks import post
from infra.workflows import DELIVER, FINISH_OPERATION, Delivery, FinishInput
from offline_pulumi.storage import redact_url

logger = logging.getLogger(__name__)


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
        """Every activity, for the worker's registration (webhook attempts run on a task queue
        of their own, but one scheduled on this queue by an earlier release still runs)."""
        return [self.apply_stack, self.destroy_stack, self.open_operation, self.finish_operation,
                self.announce, self.deliver_webhook]

    @activity.defn(name=APPLY, no_thread_cancel_exception=True)
    def apply_stack(self, item: ApplyInput) -> dict[str, Any]:
        """Create or update the stack with its whole config; return its outputs, masked."""
        program = self._program(item.program)
        self.records.start(item.operation)
        secrets = secret_texts(item.config, item.secret_keys)
        progress = Progress(on_event=event_recorder(self.records.event_sink(item.operation),
                                                    secrets))
        with (logs.bound(logs.request_id, item.request_id), logs.masking(secrets),
              running(self.metrics, APPLY, item.stack),
              heartbeats(item.stack, progress, self.settings.cancel_grace) as beat):
            progress.on_phase = lambda name: beat.raise_if_cancelled()
            try:
                masked = self.steps.apply(program.path, item.stack, item.config,
                                           item.secret_keys, item.create, progress)
            except InfraError as exc:
                beat.raise_if_cancelled()
                # The cause chain (the CLI output) stays out of Temporal: its log has it.
                raise failure(exc, progress) from None
            beat.raise_if_cancelled()
        self.store.update_stack(item.stack, outputs=masked, updated=time.time(),
                                config=mask_config(item.config, item.secret_keys),
                                expires=item.expires)
        return masked

    @activity.defn(name=DESTROY, no_thread_cancel_exception=True)
    def destroy_stack(self, item: DestroyInput) -> dict[str, Any]:
        """Destroy the stack's resources and remove it (gone already is a success)."""
        program = self.catalog.programs().get(item.program)
        # A program that left the catalog still names its stacks' project: destroy reads
        # the state, not the program, so its stacks can still go.
        program_dir = program.path if program else self.steps.stand_in(item.program)
        self.records.start(item.operation)
        progress = Progress(on_event=event_recorder(self.records.event_sink(item.operation), ()))
        with (logs.bound(logs.request_id, item.request_id),
              running(self.metrics, DESTROY, item.stack),
              heartbeats(item.stack, progress, self.settings.cancel_grace) as beat):
            clear_lock = item.clear_lock or activity.info().attempt > 1
            try:
                self.steps.destroy(program_dir, item.stack, clear_lock, progress)
            except InfraError as exc:
                beat.raise_if_cancelled()
                # The cause chain (the CLI output) stays out of Temporal: its log has it.
                raise failure(exc, progress) from None
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
        try:
            self.store.append_event(item.operation, "webhook", {
                "subscriber": shown, "event": item.event_type, "event_id": item.event_id,
                "attempt": attempt, "outcome": "succeeded" if result.ok else "failed",
                "status": result.status})
        except NotFoundError:
            # The operation was forgotten (INFRA_API_EVENT_RETENTION) while its deliveries
            # still retried: the attempt stands, and an accepted one must not be sent again.
            logger.info("webhook %s: operation %s is forgotten; attempt %d not recorded",
                        item.event_type, item.operation, attempt)
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
