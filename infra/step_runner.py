"""How an activity runs a Pulumi step: logged and counted, heartbeating its phase, and
interrupted when Temporal cancels it.

While an activity runs, a heartbeat thread reports its current phase every second; when
Temporal asks to cancel it, that thread interrupts the stack's Pulumi command (SIGINT, then
SIGKILL after the grace), so the engine records the update as failed and releases its lock
before the activity reports itself cancelled.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from infra import logs
from infra.basic import Progress
from infra.errors import InfraError
from infra.interrupt import interrupt_stack

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0


@contextmanager
def running(metrics: Any, name: str, stack: str) -> Iterator[None]:
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
def heartbeats(stack: str, progress: Progress, grace: float) -> Iterator[Heartbeat]:
    beat = Heartbeat(stack, progress, grace)
    beat.start()
    try:
        yield beat
    finally:
        beat.stop()


class Heartbeat:
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


def failure(exc: InfraError, progress: Progress) -> ApplicationError:
    """The activity error the workflow and the API read: code, phase, and whether it created."""
    details = {"code": exc.code, "phase": progress.current, "created": progress.created,
               "status": exc.status, "detail": getattr(exc, "detail", str(exc))}
    if getattr(exc, "detail_shown", False):
        details["reason"] = details["detail"]
    return ApplicationError(str(exc), details, type=type(exc).__name__, non_retryable=True)
