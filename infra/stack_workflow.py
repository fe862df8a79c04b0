"""The workflow of a persistent stack: its create, then its updates and its destroy one at a
time as the API signals them, and its own destroy when its TTL ends.

Its id is ``stack-<name>``. Like every workflow it is replayed after a crash and must be
deterministic: no I/O here, the steps are activities named by string. Every operation's status
and events go to the operation store through those activities.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

from infra.workflows import (
    HEARTBEAT_TIMEOUT,
    ONCE,
    STEP_TIMEOUT,
    TEARDOWN_RETRY,
    Delivery,
    FinishInput,
    Outcome,
    fan_out,
    finish,
    outcome_of,
    shielded,
    typed_payloads,
)

APPLY = "apply_stack"
DESTROY = "destroy_stack"
OPEN_OPERATION = "open_operation"
ANNOUNCE = "announce"


# The signal that hands the workflow an update or destroy the API accepted.
SUBMIT_SIGNAL = "submit"


def stack_workflow_id(stack: str) -> str:
    """The id of the workflow that owns persistent stack ``stack``."""
    return f"stack-{stack}"


# An operation on a persistent stack may run long (real clouds); a dead worker is still found
# within the heartbeat timeout.
OPERATION_TIMEOUT = timedelta(hours=2)
# How long an expiry waits for an operation the API accepted but whose signal is still on its way.
EXPIRY_WAIT = timedelta(seconds=60)


@dataclasses.dataclass
class StackOrder:
    """A persistent stack: what it runs, its full config, and when it expires (epoch seconds).

    ``operation`` is the create operation; it is empty when the workflow continues as new.
    """

    stack: str
    program: str
    config: dict[str, Any]
    secret_keys: list[str]
    ttl_s: float | None
    operation: str
    request_id: str = "-"
    expires: float | None = None


@dataclasses.dataclass
class OperationRequest:
    """An update or destroy the API accepted (its record exists, queued) and signals."""

    operation: str
    kind: str
    config: dict[str, Any] | None = None
    ttl_s: float | None = None
    request_id: str = "-"


@dataclasses.dataclass
class ApplyInput:
    """Create (or select) the stack, set its whole config, and ``up``."""

    operation: str
    stack: str
    program: str
    config: dict[str, Any]
    secret_keys: list[str]
    create: bool
    expires: float | None
    request_id: str = "-"


@dataclasses.dataclass
class DestroyInput:
    """Destroy the stack's resources and remove it."""

    operation: str
    stack: str
    program: str
    clear_lock: bool
    request_id: str = "-"


@dataclasses.dataclass
class OpenInput:
    """An operation the workflow starts by itself (an expiry)."""

    operation: str
    kind: str
    stack: str
    program: str


@dataclasses.dataclass
class AnnounceInput:
    """A stack event that is not an operation's end (``stack.expiring``)."""

    stack: str
    program: str
    operation: str
    event_type: str


@workflow.defn(name="Stack")
class StackWorkflow:
    """One persistent stack, from its create to its destroy or expiry, one operation at a time."""

    def __init__(self) -> None:
        self._queue: list[OperationRequest] = []
        self._cancelled: set[str] = set()
        self._running: str | None = None
        self._task: asyncio.Future[Any] | None = None

    @workflow.signal(name=SUBMIT_SIGNAL)
    def submit(self, request: OperationRequest) -> None:
        """Queue an update or destroy (the API allows one at a time per stack)."""
        self._queue.append(request)

    @workflow.signal
    def cancel(self, operation: str) -> None:
        """Cancel an operation: interrupt it if it runs, skip it if it waits."""
        if operation == self._running and self._task is not None:
            self._task.cancel()
        else:
            self._cancelled.add(operation)

    @workflow.run
    async def run(self, order: StackOrder) -> None:
        """Create the stack (unless continuing), then serve its operations until it is gone."""
        state = order
        if order.operation:
            state.expires = (_now() + order.ttl_s) if order.ttl_s else None
            apply = ApplyInput(order.operation, order.stack, order.program, order.config,
                               order.secret_keys, True, state.expires, order.request_id)
            outcome, outputs = await self._step(order.operation, APPLY, apply)
            if outcome.status != "succeeded":
                # A create that failed or was cancelled leaves nothing behind, if it can.
                try:
                    await shielded(self._destroy_step(order, order.operation, clear_lock=True),
                                   order.stack)
                except ActivityError:
                    # Its resources stay (a protected one, say): the create ends as failed,
                    # the stack stays listed as failed, and DELETE can try again.
                    await fan_out(await finish(FinishInput(order.operation, outcome, "failed")))
                    await self._serve(state)
                    return
                await fan_out(await finish(FinishInput(order.operation, outcome, "gone")))
                return
            await fan_out(await finish(FinishInput(order.operation, outcome, "ready",
                                                    "stack.created", outputs)))
        await self._serve(state)

    async def _serve(self, state: StackOrder) -> None:
        while True:
            if not self._queue:
                timeout = None if state.expires is None else max(0.0, state.expires - _now())
                try:
                    await workflow.wait_condition(lambda: bool(self._queue), timeout=timeout)
                except TimeoutError:
                    if await self._expire(state):
                        return
                    continue
            request = self._queue.pop(0)
            if request.kind == "destroy":
                if await self._destroy(request.operation, state, request.request_id):
                    return
            else:
                await self._update(request, state)
            if not self._queue and workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(dataclasses.replace(state, operation=""))

    async def _update(self, request: OperationRequest, state: StackOrder) -> None:
        config = {**state.config, **(request.config or {})}
        expires = state.expires if request.ttl_s is None else _now() + request.ttl_s
        apply = ApplyInput(request.operation, state.stack, state.program, config,
                           state.secret_keys, False, expires, request.request_id)
        outcome, outputs = await self._step(request.operation, APPLY, apply)
        if outcome.status == "succeeded":
            state.config, state.expires = config, expires
            closing = FinishInput(request.operation, outcome, "ready", "stack.updated", outputs)
        else:
            closing = FinishInput(request.operation, outcome,
                                  "ready" if outcome.status == "cancelled" else "failed")
        await fan_out(await finish(closing))

    async def _expire(self, state: StackOrder) -> bool:
        operation = "op-" + workflow.uuid4().hex[:16]
        opened = await workflow.execute_activity(
            OPEN_OPERATION, OpenInput(operation, "expire", state.stack, state.program),
            result_type=bool, start_to_close_timeout=STEP_TIMEOUT, retry_policy=TEARDOWN_RETRY)
        if not opened:
            # The API just accepted another operation: serve it first, then expire.
            await workflow.wait_condition(lambda: bool(self._queue),
                                          timeout=EXPIRY_WAIT.total_seconds())
            return False
        await fan_out(await workflow.execute_activity(
            ANNOUNCE, AnnounceInput(state.stack, state.program, operation, "stack.expiring"),
            result_type=list[Delivery], start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=TEARDOWN_RETRY))
        destroyed = await self._destroy(operation, state, "-")
        if not destroyed:
            state.expires = None  # a failed expiry is not retried in a loop; DELETE still works
        return destroyed

    async def _destroy(self, operation: str, state: StackOrder, request_id: str) -> bool:
        outcome, _ = await self._step(operation, DESTROY, DestroyInput(
            operation, state.stack, state.program, False, request_id))
        if outcome.status == "succeeded":
            await fan_out(await finish(FinishInput(operation, outcome, "gone", "stack.destroyed")))
            return True
        await fan_out(await finish(FinishInput(
            operation, outcome, "ready" if outcome.status == "cancelled" else "failed")))
        return False

    def _destroy_step(self, order: StackOrder, operation: str, clear_lock: bool
                      ) -> Awaitable[Any]:
        return workflow.execute_activity(
            DESTROY, DestroyInput(operation, order.stack, order.program, clear_lock,
                                  order.request_id),
            start_to_close_timeout=OPERATION_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=TEARDOWN_RETRY)

    async def _step(self, operation: str, name: str, item: Any
                    ) -> tuple[Outcome, dict[str, Any] | None]:
        """Run one operation's activity; a cancel signal interrupts it."""
        if operation in self._cancelled:
            return Outcome("cancelled", "cancelled", "cancelled before it started"), None
        self._running = operation
        self._task = asyncio.ensure_future(workflow.execute_activity(
            name, item, result_type=dict[str, Any], start_to_close_timeout=OPERATION_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=ONCE,
            # Whatever follows (teardown, the next operation) waits until the engine stopped.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED))
        try:
            outputs: dict[str, Any] = await self._task
            return Outcome("succeeded"), outputs
        except ActivityError as exc:
            return outcome_of(exc), None
        except asyncio.CancelledError:
            return Outcome("cancelled", "cancelled", "cancelled on request"), None
        finally:
            self._running = None
            self._task = None


def _now() -> float:
    return workflow.now().timestamp()


typed_payloads(StackOrder, OperationRequest, ApplyInput, DestroyInput, OpenInput, AnnounceInput)
