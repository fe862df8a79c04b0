"""Workflows: a burner stack's life (provision, then always teardown) and the orphan reaper.

Workflow code runs in Temporal's sandbox and is replayed after a crash, so this module does no
I/O and imports nothing of Pulumi's: the steps are activities (``infra.activities``), named
here by string so the sandbox never loads them.

A burner workflow's id is its stack's name, so "which workflow owns this stack" is a lookup.
Provisioning runs once (a half-done ``up`` is never blindly repeated); teardown runs in
``finally``, survives cancellation and retries until it succeeds, on whichever worker is alive.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

# A worker that stops heartbeating this long is dead: its step is over, its locks are stale.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
TEARDOWN_TIMEOUT = timedelta(minutes=10)
REAP_TIMEOUT = timedelta(minutes=30)
TEARDOWN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(seconds=30), maximum_attempts=0)
ONCE = RetryPolicy(maximum_attempts=1)

PROVISION = "provision"
TEARDOWN = "teardown"
REAP_ORPHANS = "reap_orphans"


@dataclasses.dataclass
class BurnOrder:
    """What to burn: a request kind, its validated parameters, and how long provisioning may take."""

    kind: str
    params: list[tuple[str, str]]
    timeout_s: float
    # The HTTP request's id, so that the worker's log lines carry it too.
    request_id: str = "-"


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
class TeardownInput:
    """Which stack to destroy and remove, and whether a dead step's locks must be cleared."""

    stack: str
    clear_lock: bool


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
        try:
            provisioned = await workflow.execute_activity(
                PROVISION, ProvisionInput(order, stack), result_type=ProvisionOutput,
                start_to_close_timeout=timedelta(seconds=order.timeout_s) + HEARTBEAT_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=ONCE,
                # Teardown may clear the stack's lock only once the engine holding it stopped.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        except ActivityError as exc:
            needs_teardown = _may_have_created(exc)
            raise
        finally:
            teardown_phases = (await _shielded_teardown(stack, provisioned is None)
                               if needs_teardown else [])
        assert provisioned is not None  # a failed provision re-raised above
        return BurnReport(order.kind, stack, provisioned.value, provisioned.extras,
                          provisioned.phases + teardown_phases)


def _may_have_created(exc: ActivityError) -> bool:
    """False only when provisioning failed cleanly and says it never got to create the stack."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        details: Any = cause.details[0]
        if isinstance(details, dict):
            return bool(details.get("created", True))
    return True


async def _shielded_teardown(stack: str, clear_lock: bool) -> list[PhaseTime]:
    # A cancel that arrives while tearing down must not stop the teardown it would need.
    task = asyncio.ensure_future(workflow.execute_activity(
        TEARDOWN, TeardownInput(stack, clear_lock), result_type=list[PhaseTime],
        start_to_close_timeout=TEARDOWN_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=TEARDOWN_RETRY))
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            workflow.logger.warning("cancel requested during teardown of %s; finishing it", stack)


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
