"""An engine process does not outlive the process that started it.

When the caller dies (a killed worker), nobody will read the engine's output or wait for its
result any more: the engine then interrupts itself, which cancels the running operation
gracefully and releases the stack's lock for whoever tears the stack down.
"""

from __future__ import annotations

import os
import signal
import threading

POLL_SECONDS = 0.5


def watch_parent() -> None:
    """Interrupt this process (SIGINT) as soon as its parent process is gone."""
    parent = os.getppid()
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_SECONDS):
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGINT)
            return
