"""Interrupt the running Pulumi command of one stack: SIGINT first, SIGKILL if it does not stop.

The Automation API runs each command in a subprocess it does not expose, so this module finds
it instead: a descendant of this process whose command line is the ``pulumi`` executable with
``--stack <name>``. The offline engine and the real CLI both treat SIGINT as "cancel
gracefully": they stop the program, record the update as failed and release the stack lock.
This is the only place that signals processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence

import psutil

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1


def is_pulumi_command(argv: Sequence[str], stack_name: str) -> bool:
    """Whether ``argv`` runs pulumi (the binary, or a script named pulumi) on ``stack_name``."""
    if not any(os.path.basename(arg) == "pulumi" for arg in argv[:3]):
        return False
    for i, arg in enumerate(argv):
        if arg in ("--stack", "-s") and argv[i + 1:i + 2] == [stack_name]:
            return True
        if arg == f"--stack={stack_name}":
            return True
    return False


def stack_processes(stack_name: str) -> Iterator[psutil.Process]:
    """Descendants of this process that run a pulumi command on ``stack_name``."""
    for proc in psutil.Process().children(recursive=True):
        try:
            argv = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if is_pulumi_command(argv, stack_name):
            yield proc


def interrupt_stack(stack_name: str, finished: Callable[[], bool], grace: float) -> bool:
    """Interrupt the stack's pulumi commands until ``finished()``; kill them after ``grace`` s.

    Keeps watching for the whole time, because the caller's thread may start one more command
    before it notices the cancellation. Returns whether ``finished()`` became true.
    """
    interrupted: set[int] = set()
    started = time.monotonic()
    while not finished():
        elapsed = time.monotonic() - started
        if elapsed > 2 * grace:
            logger.error("%s: the pulumi command did not stop even when killed", stack_name)
            return False
        for proc in stack_processes(stack_name):
            if elapsed < grace:
                if proc.pid not in interrupted:
                    logger.warning("%s: interrupting pulumi (pid %d)", stack_name, proc.pid)
                    _send(proc, signal.SIGINT)
                    interrupted.add(proc.pid)
            else:
                logger.warning("%s: killing pulumi (pid %d) after a %g s grace", stack_name,
                               proc.pid, grace)
                kill_tree(proc)
        time.sleep(POLL_SECONDS)
    return True


def kill_tree(proc: psutil.Process) -> None:
    """SIGKILL a process and every descendant (a killed engine would leave its program running)."""
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        _send(member, signal.SIGKILL)


def _send(proc: psutil.Process, sig: signal.Signals) -> None:
    # Already gone is what we wanted.
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        proc.send_signal(sig)
