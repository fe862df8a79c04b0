"""The reaper: destroy and remove burner stacks that no running request owns any more.

A pass (under a file lock, so processes sharing a state dir never reap at the same time):

1. every ``burner-`` stack of the program's project in the backend whose owner record (see
   ``infra.owners``) is missing, names a dead process, or is older than ``orphan_age`` is
   orphaned; an engine process that still holds its lock (a killed worker's ``up`` runs on)
   is interrupted first, SIGINT then SIGKILL after ``cancel_grace``;
2. an orphaned stack gets ``cancel`` (clears stale locks), ``destroy`` and ``stack rm``;
3. leftovers of dead processes go too: owner records, per-stack work dirs, lock dirs, workspace
   selection files in the Pulumi home and per-process temp dirs.

Every action is logged; ``burner_reaped_stacks_total`` counts the stacks.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from pulumi import automation as auto

from infra import cancel, owners
from infra.basic import STACK_PREFIX, Pipeline, project_name, select_existing
from infra.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReapReport:
    """What one pass did."""

    reaped: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    files_removed: int = 0


class Reaper:
    """Finds and tears down orphaned burner stacks of one pipeline's state dir."""

    def __init__(self, pipeline: Pipeline, metrics: Metrics | None = None) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.metrics = metrics
        self._stop = threading.Event()

    def run_once(self) -> ReapReport:
        """One pass; returns at once (reaping nothing) if another process is reaping."""
        with _try_lock(self.settings.state_dir / "reaper.lock") as locked:
            if not locked:
                logger.info("reaper: another process is reaping; skipping this pass")
                return ReapReport()
            return self._pass()

    def start(self, interval: float) -> threading.Thread:
        """Run a pass every ``interval`` seconds in a daemon thread until ``stop()``."""
        thread = threading.Thread(target=self._loop, args=(interval,), name="reaper", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """End the timer thread after its current pass."""
        self._stop.set()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.run_once()
            # The timer thread is its own error boundary: one bad pass must not end reaping.
            except Exception:
                logger.exception("reaper: pass failed; retrying in %g s", interval)

    def _pass(self) -> ReapReport:
        reaped, failed = [], []
        for name in self.backend_stacks():
            if not self._orphaned(name):
                continue
            if self._reap(name):
                reaped.append(name)
            else:
                failed.append(name)
        removed = self._sweep(set(self.backend_stacks()))
        report = ReapReport(tuple(reaped), tuple(failed), removed)
        if reaped or failed or removed:
            logger.info("reaper: reaped %s, failed %s, removed %d leftover files",
                        reaped or "none", failed or "none", removed)
        return report

    def backend_stacks(self) -> list[str]:
        """Names of the burner stacks of the program's project in the file backend."""
        directory = self.settings.backend_dir / ".pulumi" / "stacks" / self._project()
        names = {path.name.split(".json")[0] for path in directory.glob(STACK_PREFIX + "*.json*")}
        return sorted(names)

    def _project(self) -> str:
        return project_name(self.settings.program_dir)

    def _lock_dir(self, name: str) -> Path:
        return (self.settings.backend_dir / ".pulumi" / "locks" / "organization" / self._project()
                / name)

    def _orphaned(self, name: str) -> bool:
        """Whether no live request owns ``name``; if so, stop any engine still working on it."""
        owner = owners.read_owner(self.settings.owners_dir, name)
        too_old = owner is not None and owner.age() > self.settings.orphan_age
        if owner is not None and owner.is_alive() and not too_old:
            return False
        why = "no owner record" if owner is None else (
            f"owner pid {owner.pid} is older than {self.settings.orphan_age:g} s" if too_old
            else f"owner pid {owner.pid} is gone")
        logger.warning("reaper: %s is orphaned (%s)", name, why)
        # An engine whose owner is gone works for no one (a killed worker's `up` goes on as an
        # orphan process): interrupt it so it records the update as failed and unlocks.
        for pid in self._live_lock_holders(name):
            if _runs_pulumi_on(pid, name):
                logger.warning("reaper: %s: interrupting its engine, pid %d", name, pid)
                cancel.interrupt_pid(pid, self.settings.cancel_grace)
        return True

    def _live_lock_holders(self, name: str) -> list[int]:
        pids = []
        for path in self._lock_dir(name).glob("*.json"):
            try:
                info = json.loads(path.read_text())
                pid, host = int(info["pid"]), str(info.get("hostname", ""))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if host == socket.gethostname() and owners.process_alive(pid):
                pids.append(pid)
        return pids

    def _reap(self, name: str) -> bool:
        """Cancel, destroy and remove one stack; return whether it is gone."""
        work_dir = self.settings.work_dir / name
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        try:
            workspace = self.pipeline.open_workspace(work_dir)
            stack = select_existing(workspace, name)
            if stack is not None:
                stack.cancel()
                stack.destroy(on_output=lambda line: logger.debug("%s | %s", name, line))
                workspace.remove_stack(name)
        except auto.errors.CommandError as exc:
            logger.error("reaper: could not tear down %s; will retry next pass:\n%s", name, exc)
            return False
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        owners.remove_owner(self.settings.owners_dir, name)
        logger.warning("reaper: destroyed and removed orphaned stack %s", name)
        if self.metrics is not None:
            self.metrics.reaped.inc()
        return True

    def _sweep(self, stacks: set[str]) -> int:
        """Delete what dead processes left besides stacks; return how many entries went."""
        settings = self.settings

        def unowned(name: str) -> bool:
            if name in stacks:
                return False
            owner = owners.read_owner(settings.owners_dir, name)
            return owner is None or not owner.is_alive()

        doomed: list[Path] = []
        doomed += [p for p in settings.owners_dir.glob(STACK_PREFIX + "*.json") if unowned(p.stem)]
        doomed += [p for p in settings.work_dir.glob(STACK_PREFIX + "*") if unowned(p.name)]
        lock_root = self._lock_dir("x").parent
        doomed += [p for p in lock_root.glob(STACK_PREFIX + "*")
                   if unowned(p.name) and not self._live_lock_holders(p.name)]
        doomed += [p for p in settings.tmp_dir.glob("*") if not owners.tmp_dir_alive(p)]
        for path in (settings.pulumi_home / "workspaces").glob("*-workspace.json"):
            selected = _selected_burner(path)
            if selected is not None and unowned(selected):
                doomed.append(path)
        for path in doomed:
            logger.info("reaper: removing leftover %s", path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return len(doomed)


def _runs_pulumi_on(pid: int, stack_name: str) -> bool:
    try:
        return cancel.is_pulumi_command(psutil.Process(pid).cmdline(), stack_name)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _selected_burner(path: Path) -> str | None:
    """The burner stack a workspace selection file names, if it names one."""
    try:
        fqn = str(json.loads(path.read_text()).get("stack") or "")
    except (OSError, ValueError, AttributeError):
        return None
    name = fqn.rsplit("/", 1)[-1]
    return name if name.startswith(STACK_PREFIX) else None


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
