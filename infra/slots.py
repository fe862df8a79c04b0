"""Backpressure: at most N burner stacks at once in this process; the next request gets 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from infra.errors import OverloadedError

# A burner request takes one to two seconds when the host is not overloaded.
RETRY_AFTER_SECONDS = 2


class Slots:
    """A non-blocking counting semaphore: taking a slot never waits."""

    def __init__(self, limit: int, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self._semaphore = threading.BoundedSemaphore(limit)

    @contextmanager
    def take(self) -> Iterator[None]:
        """Hold one slot for the block; raise OverloadedError at once if none is free."""
        if not self._semaphore.acquire(blocking=False):
            raise OverloadedError(self.limit, self.retry_after)
        try:
            yield
        finally:
            self._semaphore.release()
