"""Hand a burn's report from the activity straight to the request waiting in the same process.

A burn's answer is ready once its activity has torn the stack down and closed the operation's
record. Through Temporal it would still wait for the activity's completion to reach the
server, a new workflow task, the workflow's completion and the client's history poll: about
20 ms. When the activity ran in the process whose request waits for it (the usual case: the
workflow starts eagerly on the local worker), it hands the report over directly; the workflow
still completes on its own. A request whose burn ran elsewhere waits for the workflow's result
(or, past a grace, reads the burn's result from the workflow's history).

A failed burn hands over its error too: the request still waits for the workflow (which
tears the stack down before it fails), but not for a teardown that cannot finish soon.
"""

from __future__ import annotations

import asyncio
import threading

from infra.errors import InfraError
from infra.workflows import BurnReport


class LocalResults:
    """Burn reports that requests of this process wait for, by stack (workflow id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, asyncio.Future[BurnReport]] = {}

    def expect(self, stack: str) -> asyncio.Future[BurnReport]:
        """A future of the stack's report; call in the event loop that awaits it."""
        future: asyncio.Future[BurnReport] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting[stack] = future
        return future

    def forget(self, stack: str) -> None:
        """Stop waiting for the stack's report."""
        with self._lock:
            self._waiting.pop(stack, None)

    def deliver(self, report: BurnReport) -> None:
        """Give a finished burn's report to the request waiting for it, if it is in this process."""
        self._settle(report.stack, report)

    def fail(self, stack: str, error: InfraError) -> None:
        """Give a failed burn's error to the request waiting for it, if it is in this process."""
        self._settle(stack, error)

    def _settle(self, stack: str, outcome: BurnReport | InfraError) -> None:
        with self._lock:
            future = self._waiting.pop(stack, None)
        if future is not None:
            future.get_loop().call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[BurnReport], outcome: BurnReport | InfraError) -> None:
    if future.done():  # the request may have given up meanwhile
        return
    if isinstance(outcome, InfraError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
