"""Activities: the burner steps as Temporal runs them, with heartbeats, cancellation and metrics.

Activities are synchronous and run in the worker's thread pool. While one runs, a heartbeat
thread reports its current phase; when Temporal asks to cancel it, that thread interrupts the
stack's Pulumi command (SIGINT, then SIGKILL after the grace), so the engine records the update
as failed and releases its lock before the activity reports itself cancelled.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from infra import logs
from infra.basic import STACK_PREFIX, Burner, BurnSpec, Progress
from infra.errors import InfraError
from infra.interrupt import interrupt_stack
from infra.kinds import BurnerRequest
from infra.workflows import (
    PROVISION,
    REAP_ORPHANS,
    TEARDOWN,
    PhaseTime,
    ProvisionInput,
    ProvisionOutput,
    TeardownInput,
)

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0


class BurnerActivities:
    """The activities of one worker, around one ``Burner``.

    ``owner_status(stack)`` says whether the workflow that owns a stack is ``running``, has
    ``ended``, or is ``none`` (the reaper asks).
    """

    def __init__(self, burner: Burner, owner_status: Callable[[str], str]) -> None:
        self.burner = burner
        self.owner_status = owner_status
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
    def teardown(self, item: TeardownInput) -> list[PhaseTime]:
        """Destroy and remove the stack (a stack already gone is a success)."""
        progress = Progress()
        with self._running(TEARDOWN, item.stack), self._heartbeats(item.stack, progress):
            # A retry after a failed attempt may find the lock of that attempt's engine.
            clear_lock = item.clear_lock or activity.info().attempt > 1
            self.burner.teardown(item.stack, clear_lock, progress)
        return [PhaseTime(p.name, p.duration_ms) for p in progress.phases]

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
            if not name.startswith(STACK_PREFIX):
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

    @contextmanager
    def _running(self, name: str, stack: str) -> Iterator[None]:
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
                if self.metrics is not None:
                    self.metrics.activities.labels(name, outcome).inc()
                    self.metrics.activity_seconds.labels(name).observe(seconds)

    @contextmanager
    def _heartbeats(self, stack: str, progress: Progress) -> Iterator[_Heartbeat]:
        beat = _Heartbeat(stack, progress, self.settings.cancel_grace)
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
