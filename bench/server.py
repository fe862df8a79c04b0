"""A real gunicorn on a free port with its own state dir; CPU time of process trees and machine."""

from __future__ import annotations

import dataclasses
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
        """User+system CPU of gunicorn and its descendants, plus the offline engine's helpers."""
        return sum(self.cpu_by_part().values())

    def cpu_by_part(self) -> dict[str, float]:
        """User+system CPU of everything that serves requests, by what spent it (``PARTS``).

        The embedded Temporal server is a child of gunicorn's master; the ``pulumi`` launchers
        are the workers' children, reaped by them. Commands run in children of the resident
        engine and programs in children of the program host; both are detached from the
        server's tree and reap their children, so their trees hold that time. They are found
        by this server's own host directory in their command lines.
        """
        assert self.server is not None
        stats = _all_stats()
        parts = dict.fromkeys(PARTS, 0.0)
        temporal = [pid for pid in _tree(stats, self.server.proc.pid)
                    if b"start-dev" in _cmdline(pid)]
        for pid in _tree(stats, self.server.proc.pid, prune=set(temporal)):
            parts[API] += stats[pid].own
            parts[LAUNCHERS] += stats[pid].reaped
        parts[TEMPORAL] = sum(_tree_seconds(stats, pid) for pid in temporal)
        hosts = program_host_dir(Settings.from_environ(self.environ))
        parts[COMMANDS], parts[PROGRAMS] = helper_seconds(str(hosts), stats)
        return parts


API = "API processes (gunicorn master and workers)"
LAUNCHERS = "`pulumi` launchers (reaped by the workers)"
COMMANDS = "engine commands (resident engine and its children)"
PROGRAMS = "program runs (program host and its children)"
TEMPORAL = "embedded Temporal server"
PARTS = (API, LAUNCHERS, COMMANDS, PROGRAMS, TEMPORAL)


@dataclasses.dataclass(frozen=True)
class _Stat:
    ppid: int
    own: float  # utime + stime
    reaped: float  # cutime + cstime: children it waited for


def _tree(stats: dict[int, _Stat], root: int, prune: set[int] | None = None) -> list[int]:
    """``root`` and its live descendants, without the subtrees of ``prune``."""
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in (prune or ()):
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def _tree_seconds(stats: dict[int, _Stat], root: int) -> float:
    """CPU of ``root``'s live process tree, each process with its reaped children's time.

    A finished descendant's time is added to its parent's cutime/cstime when the parent waits
    for it, so live processes' own plus children's times cover the whole tree without overlap.
    """
    return sum(stats[pid].own + stats[pid].reaped for pid in _tree(stats, root))


def tree_seconds(root: int) -> float:
    """CPU of ``root``'s live process tree, with the time of the children each one reaped."""
    return _tree_seconds(_all_stats(), root)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def helper_seconds(host_dir: str, stats: dict[int, _Stat] | None = None
                   ) -> tuple[float, float]:
    """CPU of the offline engine's helpers of one host directory, split in two: (the resident
    engine with the commands it ran, the program host with the program runs it forked)."""
    stats = stats if stats is not None else _all_stats()
    commands = programs = 0.0
    for top in helper_pids(host_dir):
        hosts = [pid for pid in _tree(stats, top) if b"program_host.py" in _cmdline(pid)
                 and b"program_host.py" not in _cmdline(stats[pid].ppid)]
        ran = sum(_tree_seconds(stats, pid) for pid in hosts)
        programs += ran
        commands += _tree_seconds(stats, top) - ran
    return commands, programs


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


def _all_stats() -> dict[int, _Stat]:
    """Every process in /proc: its parent, its own CPU and its reaped children's, in seconds."""
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
        own, reaped = (int(fields[11]) + int(fields[12])), (int(fields[13]) + int(fields[14]))
        stats[int(entry)] = _Stat(int(fields[1]), own / _TICKS, reaped / _TICKS)
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
