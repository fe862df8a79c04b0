"""Run work in a thread that a deadline can abandon (the caller decides how to cancel it)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")


def run_before(deadline: float, work: Callable[[], T],
               on_expiry: Callable[[Callable[[], bool]], NoReturn], grace: float,
               name: str) -> T:
    """Return ``work()``, or at ``deadline`` (monotonic) call ``on_expiry(finished)``.

    ``on_expiry`` gets a callable telling whether the work has ended, cancels the work and
    raises; the thread is then given ``grace`` seconds more to wind down. An exception of
    ``work`` is re-raised in the caller's thread.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    # copy_context: the thread's log lines keep the request id and stack name.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,),
                              name=name, daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        try:
            on_expiry(lambda: not thread.is_alive())
        finally:
            thread.join(grace)
    if failure:
        raise failure[0]
    return outcome[0]
