"""A real gunicorn on a free port with its own state dir; CPU time of process trees and machine."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from bench.common import service_environ
from infra.engine import program_host_dir
from infra.settings import Settings
from tests.harness import GUNICORN, ServerFailed, ServerProcess, free_port

_TICKS = os.sysconf("SC_CLK_TCK")


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py infra_api:application`` with its own state dir."""

    def __init__(self, state_dir: Path, venv_dir: Path, log: Path, max_inflight: int,
                 **extra: str) -> None:
        self.port = free_port()
        self.log = log
        self.environ = service_environ(
            INFRA_API_HOST="127.0.0.1", INFRA_API_PORT=str(self.port),
            INFRA_API_STATE_DIR=str(state_dir), INFRA_API_VENV_DIR=str(venv_dir),
            INFRA_API_ENGINE="offline", INFRA_API_MAX_INFLIGHT=str(max_inflight), **extra)
        self.server: ServerProcess | None = None

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, deadline_s: float = 120) -> None:
        """Start gunicorn and wait until /readyz answers 200; raise ServerFailed otherwise."""
        self.server = ServerProcess(GUNICORN, self.environ, self.port, self.log)
        try:
            self.server.wait_ready(deadline_s, path="/readyz")
        except ServerFailed:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate gunicorn, then kill it if it does not exit in time."""
        if self.server is not None:
            self.server.stop()

    def tail(self, lines: int = 40) -> str:
        """The last lines of the server log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User+system CPU of gunicorn and its descendants, plus the offline engine's helpers.

        The embedded Temporal server is a child of gunicorn's master, so it is counted. Commands
        run in children of the resident engine and programs in children of the program host;
        both are detached from the server's tree and reap their children, so their trees hold
        that time. They are found by this server's own host directory in their command lines.
        """
        assert self.server is not None
        hosts = program_host_dir(Settings.from_environ(self.environ))
        return tree_cpu_seconds(self.server.proc.pid) + sum(
            tree_cpu_seconds(pid) for pid in helper_pids(str(hosts)))


def tree_cpu_seconds(root: int) -> float:
    """CPU of ``root``'s live process tree, each process with its reaped children's time.

    A finished descendant's time is added to its parent's cutime/cstime when the parent waits
    for it, so live processes' own plus children's times cover the whole tree without overlap.
    """
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total


def helper_pids(host_dir: str) -> list[int]:
    """Top processes of the offline engine's helpers of one host directory (resident engine,
    program hosts, state proxies): their command lines name a socket in it.

    A helper's children (commands, program runs) carry the same command line; only the
    processes whose parent is not one of them are returned, so no time is counted twice.
    """
    mark = host_dir.encode()
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        if mark in cmdline:
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    text = handle.read()
            except OSError:
                continue
            found[int(entry)] = int(text[text.rindex(")") + 2:].split()[1])
    return [pid for pid, ppid in found.items() if ppid not in found]


def _all_stats() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, utime+stime+cutime+cstime in seconds) for every process in /proc."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                text = handle.read()
        except OSError:
            continue  # exited while we looked
        # The command name may contain spaces and parentheses; fields resume after the last ')'.
        fields = text[text.rindex(")") + 2:].split()
        ticks = sum(int(value) for value in fields[11:15])
        stats[int(entry)] = (int(fields[1]), ticks / _TICKS)
    return stats


def backend_leftovers(state_dir: Path) -> tuple[int, int]:
    """(stacks still in the state dir's file backend, all files under the backend)."""
    meta = state_dir / "backend" / ".pulumi"
    stacks = len(list((meta / "stacks").glob("*/*.json"))) if meta.is_dir() else 0
    files = sum(1 for path in meta.rglob("*") if path.is_file()) if meta.is_dir() else 0
    return stacks, files


def busy_cpu_seconds() -> float:
    """CPU time every process on the machine has used since boot (all of /proc/stat but idle)."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICKS
