"""Workflows: a burner stack's life, webhook deliveries, the reaper; what they share with the
persistent stacks' workflow (``infra.stack_workflow``).

Workflow code is replayed after a crash and must be deterministic, so this module does no
I/O and imports nothing of Pulumi's: the steps are activities (``infra.activities``), named
here by string so workflow code never loads them.

A burner workflow's id is its stack's name, so "which workflow owns this stack" is a lookup.
The burn activity runs once (a half-done ``up`` is never blindly repeated): it provisions, reads
the value and, in the same workspace, destroys and removes the stack. Whenever it did not finish
that teardown (a failed step, a dead worker, a cancel), the workflow's ``finally`` runs teardown
as an activity of its own, which survives cancellation and retries until it succeeds, on
whichever worker is alive.

Each webhook delivery is a workflow of its own, so a dead endpoint never holds up an operation
or another subscriber.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar, get_type_hints

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

BURN = "burn"
TEARDOWN = "teardown"
REAP_ORPHANS = "reap_orphans"
FINISH_OPERATION = "finish_operation"
DELIVER = "deliver_webhook"


def delivery_queue(task_queue: str) -> str:
    """The task queue of webhook attempts: its own worker slots, so an endpoint that hangs
    never holds the ones stack operations run in."""
    return f"{task_queue}-webhooks"


def typed_payloads(*classes: type) -> None:
    """Give payload dataclasses their annotations as types, not strings.

    Temporal's converter reads a dataclass's type hints on every decode; postponed annotations
    would be compiled and evaluated anew each time (half the decoding CPU of a burn's payloads).
    """
    for cls in classes:
        cls.__annotations__ = get_type_hints(cls)


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
class BurnInput:
    """A burn activity's input: the order and the stack the workflow fixed."""

    order: BurnOrder
    stack: str


@dataclasses.dataclass
class PhaseTime:
    """How long one step took, as a workflow result carries it."""

    name: str
    duration_ms: float


@dataclasses.dataclass
class BurnOutput:
    """The stack's value, its other encodings and the steps' times; whether the stack is
    already destroyed and removed, and the operation's webhook deliveries once its record is
    closed (None: not closed yet)."""

    value: str
    extras: list[tuple[str, str]]
    phases: list[PhaseTime]
    torn_down: bool
    deliveries: list[Delivery] | None


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


class BurnFailure(NamedTuple):
    """How a burn activity failed, as it reported it: its error code, phase and detail. Read from
    the activity's error in this process; it never crosses Temporal as a payload."""

    code: str
    phase: str
    detail: str


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
        burned: BurnOutput | None = None
        needs_teardown = True
        dropped = False
        outcome = Outcome("succeeded")
        try:
            burned = await workflow.execute_activity(
                BURN, BurnInput(order, stack), result_type=BurnOutput,
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
        except GeneratorExit:
            # The worker dropped this run from memory (it stops, or evicted it): nothing may
            # be awaited now, and nothing is lost: the run goes on from its history wherever
            # a worker picks it up again, teardown included.
            dropped = True
            raise
        finally:
            if not dropped:
                teardown = await _conclude(order, stack, burned, needs_teardown, outcome)
                await fan_out(teardown.deliveries)
        assert burned is not None  # a failed burn re-raised above
        return BurnReport(order.kind, stack, burned.value, burned.extras,
                          burned.phases + teardown.phases)


async def _conclude(order: BurnOrder, stack: str, burned: BurnOutput | None,
                    needs_teardown: bool, outcome: Outcome) -> TeardownOutput:
    """Tear down what the burn left standing and record its outcome; the webhook deliveries."""
    if burned is not None and burned.torn_down:
        deliveries = burned.deliveries
        if deliveries is None:
            deliveries = await finish(FinishInput(order.operation, outcome))
        return TeardownOutput([], deliveries)
    if needs_teardown:
        # Whatever step stopped has ended (or timed out): its lock is stale.
        return await shielded(_teardown(TeardownInput(stack, True, order.operation, outcome)),
                              stack)
    return TeardownOutput([], await finish(FinishInput(order.operation, outcome)))


def _may_have_created(exc: ActivityError) -> bool:
    """False only when provisioning failed cleanly and says it never got to create the stack."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        details: Any = cause.details[0]
        if isinstance(details, dict):
            return bool(details.get("created", True))
    return True


def reported_failure(cause: BaseException | None) -> BurnFailure | None:
    """The failure a burn activity reported itself, from the cause of its ActivityError (None
    if it timed out or was cancelled)."""
    if isinstance(cause, ApplicationError) and cause.details:
        details: Any = cause.details[0]
        if isinstance(details, dict):
            return BurnFailure(str(details.get("code", "engine_error")),
                               str(details.get("phase", "provision")),
                               str(details.get("detail", cause.message)))
    return None


def outcome_of(exc: ActivityError) -> Outcome:
    """The failed or cancelled outcome of an activity error, with the code the step reported."""
    cause = exc.cause
    if isinstance(cause, CancelledError):
        return Outcome("cancelled", "cancelled", "cancelled")
    if isinstance(cause, ApplicationError) and cause.details:
        details: Any = cause.details[0]
        if isinstance(details, dict):
            reason = f": {details['reason']}" if details.get("reason") else ""
            return Outcome("failed", str(details.get("code", "engine_error")),
                           f"the {details.get('phase', 'operation')} step failed{reason}")
    if isinstance(cause, StepTimeout):
        return Outcome("failed", "engine_error", "the worker running it stopped responding")
    return Outcome("failed", "engine_error", "the operation failed")


def _teardown(item: TeardownInput) -> Awaitable[TeardownOutput]:
    return workflow.execute_activity(
        TEARDOWN, item, result_type=TeardownOutput,
        start_to_close_timeout=TEARDOWN_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=TEARDOWN_RETRY)


async def shielded(step: Awaitable[T], stack: str) -> T:
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


@dataclasses.dataclass
class FinishInput:
    """Close an operation's record, set its stack's status (``gone`` deletes the record), and
    name the stack event (``stack.created`` ...) its webhooks announce besides the outcome."""

    operation: str
    outcome: Outcome
    stack_status: str | None = None
    stack_event: str | None = None
    outputs: dict[str, Any] | None = None


def finish(item: FinishInput) -> Awaitable[list[Delivery]]:
    """Close an operation's record (retried until it is); return its webhook deliveries."""
    return workflow.execute_activity(FINISH_OPERATION, item, result_type=list[Delivery],
                                     start_to_close_timeout=STEP_TIMEOUT, retry_policy=TEARDOWN_RETRY)


@workflow.defn(name="Deliver")
class DeliverWorkflow:
    """One webhook event to one subscriber, retried with backoff until it is accepted."""

    @workflow.run
    async def run(self, delivery: Delivery) -> None:
        """Deliver, retrying for up to a day."""
        await workflow.execute_activity(DELIVER, delivery, start_to_close_timeout=STEP_TIMEOUT,
                                        schedule_to_close_timeout=DELIVERY_PATIENCE,
                                        retry_policy=DELIVERY_RETRY,
                                        task_queue=delivery_queue(workflow.info().task_queue))


typed_payloads(BurnOrder, BurnInput, PhaseTime, BurnOutput, Outcome, Delivery, TeardownInput,
               TeardownOutput, BurnReport, FinishInput)
