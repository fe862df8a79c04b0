"""Workflows: a burner stack's life, a persistent stack's life, webhook deliveries, the reaper.

Workflow code runs in Temporal's sandbox and is replayed after a crash, so this module does no
I/O and imports nothing of Pulumi's: the steps are activities (``infra.activities``), named
here by string so the sandbox never loads them.

A burner workflow's id is its stack's name, so "which workflow owns this stack" is a lookup.
Provisioning runs once (a half-done ``up`` is never blindly repeated); teardown runs in
``finally``, survives cancellation and retries until it succeeds, on whichever worker is alive.

A persistent stack's workflow (id ``stack-<name>``) lives as long as the stack: it creates it,
then runs the updates and the destroy the API signals, one at a time, and destroys the stack
itself when its TTL ends. Every operation's status and events go to the operation store through
the activities; each webhook delivery is a workflow of its own, so a dead endpoint never holds
up an operation or another subscriber.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as StepTimeout
from temporalio.workflow import ActivityCancellationType, ParentClosePolicy

T = TypeVar("T")

# A worker that stops heartbeating this long is dead: its step is over, its locks are stale.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
TEARDOWN_TIMEOUT = timedelta(minutes=10)
REAP_TIMEOUT = timedelta(minutes=30)
TEARDOWN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(seconds=30), maximum_attempts=0)
ONCE = RetryPolicy(maximum_attempts=1)

DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=5), maximum_attempts=0)
DELIVERY_PATIENCE = timedelta(hours=24)
STEP_TIMEOUT = timedelta(seconds=30)

PROVISION = "provision"
TEARDOWN = "teardown"
REAP_ORPHANS = "reap_orphans"
APPLY = "apply_stack"
DESTROY = "destroy_stack"
OPEN_OPERATION = "open_operation"
FINISH_OPERATION = "finish_operation"
ANNOUNCE = "announce"
DELIVER = "deliver_webhook"


def stack_workflow_id(stack: str) -> str:
    """The id of the workflow that owns persistent stack ``stack``."""
    return f"stack-{stack}"


@dataclasses.dataclass
class BurnOrder:
    """What to burn: a request kind, its validated parameters, and how long provisioning may take."""

    kind: str
    params: list[tuple[str, str]]
    timeout_s: float
    # The HTTP request's id, so that the worker's log lines carry it too.
    request_id: str = "-"
    # The operation record this burn keeps up to date.
    operation: str = ""


@dataclasses.dataclass
class ProvisionInput:
    """A provision activity's input: the order and the stack the workflow fixed."""

    order: BurnOrder
    stack: str


@dataclasses.dataclass
class PhaseTime:
    """How long one step took, as a workflow result carries it."""

    name: str
    duration_ms: float


@dataclasses.dataclass
class ProvisionOutput:
    """The stack's value, its other encodings and the provisioning steps' times."""

    value: str
    extras: list[tuple[str, str]]
    phases: list[PhaseTime]


@dataclasses.dataclass
class Outcome:
    """How an operation ended, as its record and webhooks report it."""

    status: str  # succeeded, failed or cancelled
    error_code: str | None = None
    error_message: str | None = None


@dataclasses.dataclass
class Delivery:
    """One webhook event for one subscriber (by its place in the subscribers file)."""

    subscriber: int
    event_id: str
    event_type: str
    operation: str
    body: str


@dataclasses.dataclass
class TeardownInput:
    """Which stack to destroy and remove, and whether a dead step's locks must be cleared.

    With ``operation``, teardown also closes that burn operation's record with ``outcome``.
    """

    stack: str
    clear_lock: bool
    operation: str = ""
    outcome: Outcome | None = None


@dataclasses.dataclass
class TeardownOutput:
    """The teardown steps' times and the webhook deliveries the operation's end calls for."""

    phases: list[PhaseTime]
    deliveries: list[Delivery]


@dataclasses.dataclass
class BurnReport:
    """A burner workflow's result."""

    kind: str
    stack: str
    value: str
    extras: list[tuple[str, str]]
    phases: list[PhaseTime]


@workflow.defn(name="Burn")
class BurnWorkflow:
    """One burner stack: provision once, then destroy and remove it whatever happened."""

    @workflow.run
    async def run(self, order: BurnOrder) -> BurnReport:
        """Provision, read the value, tear down; fail with the provisioning error if any."""
        stack = workflow.info().workflow_id
        provisioned: ProvisionOutput | None = None
        needs_teardown = True
        outcome = Outcome("succeeded")
        try:
            provisioned = await workflow.execute_activity(
                PROVISION, ProvisionInput(order, stack), result_type=ProvisionOutput,
                start_to_close_timeout=timedelta(seconds=order.timeout_s) + HEARTBEAT_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=ONCE,
                # Teardown may clear the stack's lock only once the engine holding it stopped.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        except ActivityError as exc:
            needs_teardown = _may_have_created(exc)
            outcome = outcome_of(exc)
            raise
        except asyncio.CancelledError:
            outcome = Outcome("cancelled", "cancelled", "cancelled at the request timeout")
            raise
        finally:
            if needs_teardown:
                teardown = await _shielded(_teardown(TeardownInput(
                    stack, provisioned is None, order.operation, outcome)), stack)
            else:
                teardown = TeardownOutput([], await _finish(FinishInput(order.operation, outcome)))
            await fan_out(teardown.deliveries)
        assert provisioned is not None  # a failed provision re-raised above
        return BurnReport(order.kind, stack, provisioned.value, provisioned.extras,
                          provisioned.phases + teardown.phases)


def _may_have_created(exc: ActivityError) -> bool:
    """False only when provisioning failed cleanly and says it never got to create the stack."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        details: Any = cause.details[0]
        if isinstance(details, dict):
            return bool(details.get("created", True))
    return True


def outcome_of(exc: ActivityError) -> Outcome:
    """The failed or cancelled outcome of an activity error, with the code the step reported."""
    cause = exc.cause
    if isinstance(cause, CancelledError):
        return Outcome("cancelled", "cancelled", "cancelled")
    if isinstance(cause, ApplicationError) and cause.details:
        details: Any = cause.details[0]
        if isinstance(details, dict):
            return Outcome("failed", str(details.get("code", "engine_error")),
                           f"the {details.get('phase', 'operation')} step failed")
    if isinstance(cause, StepTimeout):
        return Outcome("failed", "engine_error", "the worker running it stopped responding")
    return Outcome("failed", "engine_error", "the operation failed")


def _teardown(item: TeardownInput) -> Awaitable[TeardownOutput]:
    return workflow.execute_activity(
        TEARDOWN, item, result_type=TeardownOutput,
        start_to_close_timeout=TEARDOWN_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=TEARDOWN_RETRY)


async def _shielded(step: Awaitable[T], stack: str) -> T:
    # A cancel that arrives while tearing down must not stop the teardown it would need.
    task = asyncio.ensure_future(step)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            workflow.logger.warning("cancel requested during teardown of %s; finishing it", stack)


async def fan_out(deliveries: list[Delivery]) -> None:
    """Start one delivery workflow per webhook event and subscriber, and leave them running."""
    for delivery in deliveries:
        await workflow.start_child_workflow(
            DeliverWorkflow.run, delivery,
            id=f"deliver-{delivery.event_id}-{delivery.subscriber}",
            parent_close_policy=ParentClosePolicy.ABANDON)




@workflow.defn(name="Reap")
class ReapWorkflow:
    """One pass of the safety net: tear down burner stacks that no running workflow owns."""

    @workflow.run
    async def run(self) -> list[str]:
        """Return the names of the stacks it destroyed and removed."""
        reaped: list[str] = await workflow.execute_activity(
            REAP_ORPHANS, result_type=list[str], start_to_close_timeout=REAP_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=ONCE)
        return reaped


# -- persistent stacks ----------------------------------------------------------------------

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
class FinishInput:
    """Close an operation's record, set its stack's status (``gone`` deletes the record), and
    name the stack event (``stack.created`` ...) its webhooks announce besides the outcome."""

    operation: str
    outcome: Outcome
    stack_status: str | None = None
    stack_event: str | None = None
    outputs: dict[str, Any] | None = None


@dataclasses.dataclass
class AnnounceInput:
    """A stack event that is not an operation's end (``stack.expiring``)."""

    stack: str
    program: str
    operation: str
    event_type: str


def _finish(item: FinishInput) -> Awaitable[list[Delivery]]:
    return workflow.execute_activity(FINISH_OPERATION, item, result_type=list[Delivery],
                                     start_to_close_timeout=STEP_TIMEOUT, retry_policy=TEARDOWN_RETRY)


@workflow.defn(name="Stack")
class StackWorkflow:
    """One persistent stack, from its create to its destroy or expiry, one operation at a time."""

    def __init__(self) -> None:
        self._queue: list[OperationRequest] = []
        self._cancelled: set[str] = set()
        self._running: str | None = None
        self._task: asyncio.Future[Any] | None = None

    @workflow.signal
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
                # A create that failed or was cancelled leaves nothing behind.
                await _shielded(self._destroy_step(order, order.operation, clear_lock=True),
                                order.stack)
                await fan_out(await _finish(FinishInput(order.operation, outcome, "gone")))
                return
            await fan_out(await _finish(FinishInput(order.operation, outcome, "ready",
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
            finish = FinishInput(request.operation, outcome, "ready", "stack.updated", outputs)
        else:
            finish = FinishInput(request.operation, outcome,
                                 "ready" if outcome.status == "cancelled" else "failed")
        await fan_out(await _finish(finish))

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
            await fan_out(await _finish(FinishInput(operation, outcome, "gone", "stack.destroyed")))
            return True
        await fan_out(await _finish(FinishInput(
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


@workflow.defn(name="Deliver")
class DeliverWorkflow:
    """One webhook event to one subscriber, retried with backoff until it is accepted."""

    @workflow.run
    async def run(self, delivery: Delivery) -> None:
        """Deliver, retrying for up to a day."""
        await workflow.execute_activity(DELIVER, delivery, start_to_close_timeout=STEP_TIMEOUT,
                                        schedule_to_close_timeout=DELIVERY_PATIENCE,
                                        retry_policy=DELIVERY_RETRY)


def _now() -> float:
    return workflow.now().timestamp()
