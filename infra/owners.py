"""Owner records: which process created which burner stack, so the reaper can tell orphans.

A record is ``<state>/owners/<stack>.json`` with the pid, its start time, the host name and
when the stack was created. It is written (atomically) before the stack exists and deleted
after the stack is removed, so a stack whose record is missing or names a dead process has
no one left to tear it down.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import psutil


@dataclasses.dataclass(frozen=True)
class Owner:
    """The process that owns a burner stack."""

    pid: int
    process_started: float
    hostname: str
    created_at: float

    def is_alive(self) -> bool:
        """Whether the owning process still runs (a reused pid has a different start time)."""
        if self.hostname != socket.gethostname():
            return True  # another host's process: only the age bound can declare it gone
        return process_alive(self.pid, self.process_started)

    def age(self) -> float:
        """Seconds since the stack was created."""
        return time.time() - self.created_at


def current_owner() -> Owner:
    """An owner record for this process, created now."""
    return Owner(os.getpid(), psutil.Process().create_time(), socket.gethostname(), time.time())


def process_alive(pid: int, started: float | None = None) -> bool:
    """Whether ``pid`` runs (and, if ``started`` is given, is the process that started then)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False


def record_path(owners_dir: Path, stack_name: str) -> Path:
    """Where the owner record of ``stack_name`` lives."""
    return owners_dir / f"{stack_name}.json"


def write_owner(owners_dir: Path, stack_name: str, owner: Owner) -> None:
    """Record ``owner`` for ``stack_name`` (a whole file or none, via rename)."""
    owners_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stack_name}-", dir=owners_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump(dataclasses.asdict(owner), handle)
    os.replace(tmp, record_path(owners_dir, stack_name))


def read_owner(owners_dir: Path, stack_name: str) -> Owner | None:
    """The recorded owner of ``stack_name``, or None if there is no readable record."""
    try:
        data = json.loads(record_path(owners_dir, stack_name).read_text())
        return Owner(int(data["pid"]), float(data["process_started"]), str(data["hostname"]),
                     float(data["created_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_owner(owners_dir: Path, stack_name: str) -> None:
    """Forget the owner of ``stack_name``."""
    record_path(owners_dir, stack_name).unlink(missing_ok=True)


def recorded_stacks(owners_dir: Path) -> list[str]:
    """Stack names that have an owner record."""
    return sorted(path.stem for path in owners_dir.glob("*.json"))


def process_tmp_dir(tmp_root: Path) -> Path:
    """This process's own temp directory under ``tmp_root``, named by pid and start time."""
    owner = current_owner()
    return tmp_root / f"{owner.pid}-{owner.process_started:.3f}"


def tmp_dir_alive(path: Path) -> bool:
    """Whether the process named by a ``process_tmp_dir`` still runs."""
    pid, _, started = path.name.partition("-")
    try:
        return process_alive(int(pid), float(started))
    except ValueError:
        return False


_tmp_pid: int | None = None


def use_process_tmp(tmp_root: Path) -> None:
    """Point ``tempfile`` at this process's own temp dir (once per process, forks included).

    The Automation API keeps each command's event log in a temp dir it deletes when the command
    returns; a killed worker leaves it behind. In a per-process directory the reaper can tell
    whose it was and delete it once that process is gone.
    """
    global _tmp_pid
    if _tmp_pid == os.getpid():
        return
    directory = process_tmp_dir(tmp_root)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tempfile.tempdir = str(directory)
    _tmp_pid = os.getpid()


def drop_process_tmp() -> None:
    """Delete this process's own temp dir on a clean exit (the reaper handles unclean ones)."""
    global _tmp_pid
    if _tmp_pid == os.getpid() and tempfile.tempdir is not None:
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)
        tempfile.tempdir = None
        _tmp_pid = None
