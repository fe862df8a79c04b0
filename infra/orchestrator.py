"""This process's link to Temporal: one event-loop thread, the client, and optionally a worker.

The WSGI app is synchronous and the Temporal SDK is asyncio-only, so every call crosses into
the loop thread with ``run_coroutine_threadsafe``. A serving process runs a worker too unless
``INFRA_API_RUN_WORKER=false``; ``burner worker`` runs only the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.converter import DataConverter
from temporalio.exceptions import (
    ActivityError,
    CancelledError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import TimeoutError as StepTimeout
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from infra import logs
from infra.activities import BurnerActivities
from infra.basic import STACK_PREFIX, Burner, BurnerResult, Phase, new_stack_name
from infra.catalog import Catalog
from infra.codec import PayloadKeyError, data_converter
from infra.errors import (
    DeadlineError,
    EngineError,
    InfraError,
    OrchestrationError,
    StateDirError,
)
from infra.handoff import LocalResults
from infra.kinds import BurnerRequest
from infra.records import Records
from infra.stack_activities import StackActivities
from infra.stack_workflow import (
    SUBMIT_SIGNAL,
    OperationRequest,
    StackOrder,
    StackWorkflow,
    stack_workflow_id,
)
from infra.stacks import StackSteps
from infra.store import OperationRecord, StoreError
from infra.webhooks import POST_TIMEOUT_SECONDS
from infra.workflows import (
    BURN,
    BurnFailure,
    BurnOrder,
    BurnOutput,
    BurnReport,
    BurnWorkflow,
    DeliverWorkflow,
    ReapWorkflow,
    delivery_queue,
    reported_failure,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_SECONDS = 30.0
# How long a request whose burn failed waits for the teardown before it answers anyway (a
# teardown normally takes well under a second; one against a broken backend retries for long).
TEARDOWN_GRACE_SECONDS = 5.0
# How often a request whose workflow outlives that grace reads how its burn went.
HISTORY_POLL_SECONDS = 2.0
# Past the request deadline, how long the API waits for the cancel call and the phase lookup.
CANCEL_SECONDS = 5.0
# How long a create waits for the workflow of an ended stack of the same name to complete.
PREVIOUS_STACK_SECONDS = 10.0
# The workflow modules import only temporalio and the standard library, keep no state and do
# no I/O; a replay test guards their determinism. The sandbox would cost every workflow task
# several milliseconds of CPU on the burn path (it re-enters itself for each payload).
WORKFLOW_RUNNER = UnsandboxedWorkflowRunner()
WORKFLOWS = (BurnWorkflow, ReapWorkflow, StackWorkflow, DeliverWorkflow)


async def connect(address: str, **options: Any) -> Client:
    """A client of the cluster at ``address``, retrying for CONNECT_SECONDS while it starts (a
    server that just opened its port may still answer that its frontend is not healthy)."""
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:
        try:
            return await Client.connect(address, **options)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


class Orchestrator:
    """Starts burner workflows and waits for them; with ``run_worker``, also executes them."""

    def __init__(self, burner: Burner, catalog: Catalog, records: Records, address: str,
                 run_worker: bool) -> None:
        self.burner = burner
        self.catalog = catalog
        self.records = records
        self.settings = burner.settings
        self.metrics = burner.metrics
        self.address = address
        self.run_worker = run_worker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="temporal-loop",
                                        daemon=True)
        self._client: Client | None = None
        # The steps' worker, then the webhook attempts' (a task queue and slots of their own).
        self._workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._executors: list[concurrent.futures.ThreadPoolExecutor] = []
        self._local_results = LocalResults()

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying while the cluster starts) and start the worker; raise OrchestrationError."""
        self._thread.start()
        self._call(self._start(), CONNECT_SECONDS + 30)

    async def _start(self) -> None:
        try:
            self._client = await connect(
                self.address, namespace=self.settings.temporal_namespace,
                data_converter=data_converter(self.burner.toolchain().passphrase))
        except RuntimeError as exc:  # the SDK's connection failure
            raise OrchestrationError(f"cannot reach Temporal at {self.address}: {exc}") from exc
        logger.info("connected to Temporal at %s, namespace %s, task queue %s", self.address,
                    self.settings.temporal_namespace, self.settings.task_queue)
        if self.run_worker:
            await self._start_worker()

    async def _start_worker(self) -> None:
        assert self._client is not None
        settings = self.settings
        burns = BurnerActivities(self.burner, self.owner_status, self.handed_over, self.records,
                                 self._local_results)
        stacks = StackActivities(StackSteps(self.burner), self.catalog, self.records)
        self._start_one_worker(
            settings.task_queue, settings.worker_concurrency, "activity",
            workflows=WORKFLOWS, activities=burns.all() + stacks.all(),
            workflow_runner=WORKFLOW_RUNNER,
            # Cancellation reaches an activity with its next heartbeat: keep that prompt.
            max_heartbeat_throttle_interval=timedelta(seconds=1),
            default_heartbeat_throttle_interval=timedelta(seconds=1),
            # On shutdown, running steps get the time a request may take to finish.
            graceful_shutdown_timeout=timedelta(seconds=settings.request_timeout
                                                + settings.cancel_grace))
        deliveries = delivery_queue(settings.task_queue)
        self._start_one_worker(
            deliveries, settings.webhook_concurrency, "webhook",
            activities=[stacks.deliver_webhook],
            # An attempt ends within its POST timeout; one cut short is retried.
            graceful_shutdown_timeout=timedelta(seconds=POST_TIMEOUT_SECONDS))
        await self._ensure_reaper_schedule()
        logger.info("worker polling task queue %s (%d at once) and %s (%d at once)",
                    settings.task_queue, settings.worker_concurrency, deliveries,
                    settings.webhook_concurrency)

    def _start_one_worker(self, queue: str, slots: int, thread_names: str,
                          **options: Any) -> None:
        assert self._client is not None
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=slots,
                                                         thread_name_prefix=thread_names)
        worker = Worker(self._client, task_queue=queue, activity_executor=executor,
                        max_concurrent_activities=slots, **options)
        self._executors.append(executor)
        self._workers.append(worker)
        self._worker_tasks.append(asyncio.ensure_future(worker.run()))

    async def _ensure_reaper_schedule(self) -> None:
        assert self._client is not None
        queue = self.settings.task_queue
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(ReapWorkflow.run, id=f"reaper-{queue}",
                                               task_queue=queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(
                every=timedelta(seconds=self.settings.reap_interval))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP))
        try:
            await self._client.create_schedule(f"reaper-{queue}", schedule,
                                               trigger_immediately=True)
            logger.info("reaper schedule created: every %g s", self.settings.reap_interval)
        except ScheduleAlreadyRunningError:
            pass  # another worker made it; the interval is the one it was created with

    def stop(self) -> None:
        """Let running activities finish (bounded), stop the worker and the loop thread."""
        if self._thread.is_alive():
            try:
                self._call(self._stop(),
                           self.settings.request_timeout + self.settings.cancel_grace + 30)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()
        for executor in self._executors:
            executor.shutdown(wait=True)

    async def _stop(self) -> None:
        if self._workers:
            logger.info("worker: draining running activities")
            await asyncio.gather(*(worker.shutdown() for worker in self._workers))
            logger.info("worker: stopped")

    # -- the API's calls ---------------------------------------------------------------------

    def burn(self, request: BurnerRequest) -> BurnerResult:
        """Run one burner workflow; at the request timeout cancel it and raise DeadlineError."""
        stack = new_stack_name()
        with logs.bound(logs.operation, stack), logs.bound(logs.stack_name, stack):
            started = time.perf_counter()
            outcome = "failed"
            try:
                report = self._call(self._burn(request, stack, logs.request_id.get()),
                                    self.settings.request_timeout + 2 * CANCEL_SECONDS + 30)
                outcome = "succeeded"
            except DeadlineError:
                outcome = "timed_out"
                raise
            finally:
                if self.metrics is not None:
                    self.metrics.workflows.labels(outcome).inc()
                    self.metrics.workflow_seconds.observe(time.perf_counter() - started)
        return BurnerResult(report.kind, report.value, tuple((k, v) for k, v in report.extras),
                            report.stack, tuple(Phase(p.name, p.duration_ms) for p in report.phases),
                            operation=burn_operation_id(stack))

    async def _burn(self, request: BurnerRequest, stack: str, request_id: str) -> BurnReport:
        # This coroutine runs in the loop thread: it binds the caller's log fields itself.
        with (logs.bound(logs.request_id, request_id), logs.bound(logs.operation, stack),
              logs.bound(logs.stack_name, stack)):
            return await self._run_workflow(request, stack, request_id)

    async def _run_workflow(self, request: BurnerRequest, stack: str, request_id: str
                            ) -> BurnReport:
        client = self._require_client()
        order = BurnOrder(request.kind, list(request.params), self.settings.request_timeout,
                          request_id, burn_operation_id(stack))
        try:
            handle = await client.start_workflow(
                BurnWorkflow.run, order, id=stack, task_queue=self.settings.task_queue,
                # A worker in this process takes the first task from the start call itself.
                request_eager_start=self.run_worker)
        except RPCError as exc:
            raise OrchestrationError(f"cannot start the workflow: {exc.message}") from exc
        logger.info("workflow started")
        try:
            return await asyncio.wait_for(self._first_report(handle, request.kind, stack),
                                          self.settings.request_timeout)
        except TimeoutError:
            phase = await self._cancel_at_deadline(handle)
            raise DeadlineError(phase, stack, self.settings.request_timeout) from None
        except WorkflowFailureError as exc:
            raise _failure(exc, stack) from exc
        except RPCError as exc:
            raise OrchestrationError(f"lost the workflow: {exc.message}") from exc

    async def _first_report(self, handle: WorkflowHandle[Any, BurnReport], kind: str,
                            stack: str) -> BurnReport:
        """The burn's report from its activity, if that ran in this process, or else from the
        workflow's result. A failure is the workflow's, after its teardown, unless that
        teardown takes longer than TEARDOWN_GRACE_SECONDS: then the activity's own error,
        handed over in this process or read from the workflow's history. A burn whose workflow
        cannot finish (no worker is left to run it) is answered from that history too."""
        result = asyncio.ensure_future(handle.result())
        local = self._local_results.expect(stack)
        recorded = asyncio.ensure_future(self._recorded_outcome(handle, kind, stack))
        try:
            waiters: set[asyncio.Future[Any]] = {result, local, recorded}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if local.done() and local.exception() is None:
                logger.debug("answered from the burn activity in this process")
                return local.result()
            if recorded.done() and recorded.exception() is None:
                logger.info("answered from the burn's result in the workflow's history (no "
                            "worker has completed the workflow yet)")
                return recorded.result()
            if not result.done() and not recorded.done():
                await asyncio.wait({result}, timeout=TEARDOWN_GRACE_SECONDS)
            if not result.done():
                logger.warning("the teardown after the failed burn is not done after %g s; "
                               "answering now, the workflow goes on tearing down",
                               TEARDOWN_GRACE_SECONDS)
                return local.result() if local.done() else recorded.result()  # the burn's error
            return await result
        finally:
            self._local_results.forget(stack)
            for waiter in (local, recorded, result):
                if not waiter.done():
                    waiter.cancel()
                elif not waiter.cancelled():
                    waiter.exception()  # answered above, or moot: either way, seen

    async def _recorded_outcome(self, handle: WorkflowHandle[Any, BurnReport], kind: str,
                                stack: str) -> BurnReport:
        """The burn's outcome as the workflow's history holds it, asked after
        TEARDOWN_GRACE_SECONDS, then every HISTORY_POLL_SECONDS: its report once it tore the
        stack down itself, or its own error (raised). Reading the history needs no worker."""
        converter = self._require_client().data_converter
        await asyncio.sleep(TEARDOWN_GRACE_SECONDS)
        while True:
            try:
                outcome = await burn_outcome(await handle.fetch_history(), converter)
            except RPCError as exc:
                logger.debug("could not read the workflow's history: %s", exc.message)
                outcome = None
            if isinstance(outcome, BurnFailure):
                raise _step_error(outcome, stack)
            if outcome is not None:
                return BurnReport(kind, stack, outcome.value, outcome.extras, outcome.phases)
            await asyncio.sleep(HISTORY_POLL_SECONDS)

    async def _cancel_at_deadline(self, handle: WorkflowHandle[Any, Any]) -> str:
        """Cancel the workflow (it tears down by itself); return the phase it was in."""
        phase = "provision"
        try:
            description = await asyncio.wait_for(handle.describe(), CANCEL_SECONDS)
            converter = self._require_client().data_converter
            for pending in description.raw_description.pending_activities:
                details = pending.heartbeat_details.payloads
                if details:
                    (phase_name,) = await converter.decode(details[:1], [str])
                    phase = phase_name or phase
        except (RPCError, TimeoutError, PayloadKeyError) as exc:
            logger.error("could not read the phase at the deadline: %s", exc)
        try:
            await asyncio.wait_for(handle.cancel(), CANCEL_SECONDS)
        except (RPCError, TimeoutError) as exc:
            logger.error("could not cancel at the deadline: %s", exc)
        logger.error("request timeout (%g s) during %s; workflow cancelled, it tears down",
                     self.settings.request_timeout, phase)
        return phase

    # -- persistent stacks -----------------------------------------------------------------

    def start_stack(self, order: StackOrder) -> None:
        """Start the workflow of a new persistent stack."""
        self._call(self._start_stack(order), CONNECT_SECONDS)

    async def _start_stack(self, order: StackOrder) -> None:
        client = self._require_client()
        workflow_id = stack_workflow_id(order.stack)
        for attempt in range(2):
            try:
                await client.start_workflow(
                    StackWorkflow.run, order, id=workflow_id,
                    task_queue=self.settings.task_queue, request_eager_start=self.run_worker)
                return
            except WorkflowAlreadyStartedError:
                if attempt:
                    raise OrchestrationError(f"the workflow of the previous stack named "
                                             f"{order.stack} is still finishing") from None
            except RPCError as exc:
                raise OrchestrationError(f"cannot start the stack's workflow: {exc.message}"
                                         ) from exc
            # A stack of this name just ended: its operation is closed, and its workflow is
            # only starting the webhook deliveries before it completes too.
            with contextlib.suppress(TimeoutError, WorkflowFailureError, RPCError):
                await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(),
                                       PREVIOUS_STACK_SECONDS)

    def submit(self, stack: str, request: OperationRequest) -> None:
        """Hand an accepted update or destroy to the stack's workflow."""
        self._call(self._signal(stack, StackWorkflow.submit, request), CONNECT_SECONDS)

    def cancel(self, operation: OperationRecord) -> None:
        """Cancel a running or queued operation through the workflow that runs it."""
        if operation.kind == "burn":
            self._call(self._cancel_burn(operation.stack), CONNECT_SECONDS)
        else:
            self._call(self._signal(operation.stack, StackWorkflow.cancel, operation.id),
                       CONNECT_SECONDS)

    async def _signal(self, stack: str, signal: Any, argument: Any) -> None:
        handle = self._require_client().get_workflow_handle(stack_workflow_id(stack))
        try:
            await handle.signal(signal, argument)
        except RPCError as exc:
            raise OrchestrationError(f"cannot reach the workflow of {stack}: {exc.message}"
                                     ) from exc

    async def _cancel_burn(self, stack: str) -> None:
        try:
            await self._require_client().get_workflow_handle(stack).cancel()
        except RPCError as exc:
            raise OrchestrationError(f"cannot cancel the workflow of {stack}: {exc.message}"
                                     ) from exc

    def owner_status(self, stack: str) -> str:
        """``running``, ``ended`` or ``none``: the workflow of ``stack`` (from activity threads)."""
        return self._call(self._owner_status(stack), 30)

    async def _owner_status(self, stack: str) -> str:
        try:
            description = await self._require_client().get_workflow_handle(stack).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return "none"
            raise
        return "running" if description.status == WorkflowExecutionStatus.RUNNING else "ended"

    def handed_over(self, operation: OperationRecord) -> bool:
        """Whether the workflow of the operation's persistent stack has it: it started with the
        create, or received the update or destroy (from activity threads)."""
        return self._call(self._handed_over(operation), 30)

    async def _handed_over(self, operation: OperationRecord) -> bool:
        client = self._require_client()
        handle = client.get_workflow_handle(stack_workflow_id(operation.stack))
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        if description.status != WorkflowExecutionStatus.RUNNING:
            return False
        if operation.kind == "create":
            return True  # a stack's workflow starts with its create, and runs until it is gone
        # The workflow continues as new only with nothing queued: a request it holds came
        # to this run.
        async for event in handle.fetch_history_events():
            if not event.HasField("workflow_execution_signaled_event_attributes"):
                continue
            signaled = event.workflow_execution_signaled_event_attributes
            if signaled.signal_name != SUBMIT_SIGNAL:
                continue
            (request,) = await client.data_converter.decode(signaled.input.payloads,
                                                             [OperationRequest])
            if request.operation == operation.id:
                return True
        return False

    def readiness(self) -> dict[str, bool]:
        """Whether Temporal answers and some worker polls the task queue."""
        try:
            return self._call(self._readiness(), 5)
        except (InfraError, concurrent.futures.TimeoutError):
            return {"temporal": False, "worker": False}

    async def _readiness(self) -> dict[str, bool]:
        client = self._require_client()
        try:
            healthy = await client.service_client.check_health(timeout=timedelta(seconds=2))
            polled = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.settings.temporal_namespace,
                    task_queue=TaskQueue(name=self.settings.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
                timeout=timedelta(seconds=2))
        except RPCError:
            return {"temporal": False, "worker": False}
        return {"temporal": bool(healthy), "worker": len(polled.pollers) > 0}

    def _require_client(self) -> Client:
        if self._client is None:
            raise OrchestrationError("not connected to Temporal")
        return self._client

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise OrchestrationError("the Temporal link is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


def burn_operation_id(stack: str) -> str:
    """The operation id of a burner stack's workflow (the same hex as its name)."""
    return "op-" + stack.removeprefix(STACK_PREFIX)


async def burn_outcome(history: WorkflowHistory, converter: DataConverter
                       ) -> BurnOutput | BurnFailure | None:
    """What the burn activity recorded: its output if it tore the stack down itself (then it
    is all the workflow's report holds), its own failure, or None (not ended yet, or the
    workflow still has to tear down or tell what happened)."""
    scheduled = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == BURN:
                scheduled = event.event_id
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes
            if completed.scheduled_event_id == scheduled:
                (burned,) = await converter.decode(completed.result.payloads, [BurnOutput])
                return burned if burned.torn_down else None
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = event.activity_task_failed_event_attributes
            if failed.scheduled_event_id == scheduled:
                return reported_failure(await converter.decode_failure(failed.failure))
    return None


def _failure(exc: WorkflowFailureError, stack: str) -> InfraError:
    """The service error for a failed workflow: the provisioning step's own, as it reported it."""
    cause = exc.cause
    if isinstance(cause, ActivityError):
        reported = reported_failure(cause.cause)
        if reported is not None:
            return _step_error(reported, stack)
        inner = cause.cause
        if isinstance(inner, StepTimeout):
            return EngineError("provision", stack, "the worker running it stopped responding")
        if isinstance(inner, CancelledError):
            return EngineError("provision", stack, "cancelled")
    logger.error("workflow failed: %s", exc.cause)
    return EngineError("workflow", stack, "failed")


def _step_error(failure: BurnFailure, stack: str) -> InfraError:
    """The service error for a burn step's own failure."""
    if failure.code == StateDirError.code:
        return StateDirError("of the worker", "is unusable")
    if failure.code == StoreError.code:
        return StoreError(failure.detail or "the operation store is unavailable")
    return EngineError(failure.phase, stack, failure.detail or "failed")
