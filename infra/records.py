"""Operation records as activities keep them: status, engine events, and the webhook
deliveries an operation's end calls for."""

from __future__ import annotations

import datetime
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from infra.errors import NotFoundError
from infra.store import OperationRecord, Store
from infra.webhooks import Subscriber
from infra.workflows import Delivery, FinishInput

logger = logging.getLogger(__name__)

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

    def open_burn(self, operation: str, stack: str) -> None:
        """Record a burn as running: a value route's burn is queued nowhere, it starts here."""
        now = time.time()
        self.store.record_operation(OperationRecord(operation, "burn", stack, BURNER_PROGRAM,
                                                    "running", now, started=now))
        self.store.append_event(operation, "status", {"status": "running"})

    def start(self, operation: str) -> None:
        """Mark a queued operation running and say so in its stream."""
        if self.store.start_operation(operation, time.time()):
            self.store.append_event(operation, "status", {"status": "running"})

    def close(self, item: FinishInput) -> list[Delivery]:
        """Record the operation's outcome and its stack's new status; return the deliveries."""
        outcome = item.outcome
        try:
            record = self.store.finish_operation(item.operation, outcome.status, time.time(),
                                                 outcome.error_code, outcome.error_message,
                                                 item.outputs)
        except NotFoundError:
            # Never recorded (a burn that the store was down for) or already forgotten: there
            # is nothing to close, and retrying would never change that.
            logger.warning("operation %s has no record to close as %s", item.operation,
                           outcome.status)
            return []
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
