"""The burner pipeline: one ephemeral Pulumi stack per request, always torn down.

Steps, each logged: set the context, ensure the program's virtualenv, create the stack,
configure it, refresh, up, read the outputs, then destroy and remove the stack.
Run one from the command line with ``python -m infra.basic uuid`` (see ``infra.cli``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import yaml
from pulumi import automation as auto

from infra import cancel, logs, owners
from infra.deadline import run_before
from infra.engine import Engine
from infra.errors import DeadlineError, EngineError
from infra.kinds import BurnerRequest
from infra.metrics import Metrics
from infra.prepare import Prepared, prepare, readiness
from infra.settings import Settings

logger = logging.getLogger(__name__)

STACK_PREFIX = "burner-"
# Outputs the program exports besides the one named after the request kind.
EXTRA_OUTPUTS = {"id": {"hex": "id_hex"}}

Extras = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything one burner run needs to know, fixed before any stack exists."""

    request: BurnerRequest
    stack_name: str
    project: str
    program_dir: Path


@dataclasses.dataclass(frozen=True)
class Phase:
    """How long one pipeline step took."""

    name: str
    duration_ms: float


@dataclasses.dataclass(frozen=True)
class BurnerResult:
    """The value a burner stack produced, its other encodings, and where the time went."""

    kind: str
    value: str
    extras: Extras
    stack: str
    phases: tuple[Phase, ...]

    @property
    def duration_ms(self) -> float:
        """Total time of all phases."""
        return sum(phase.duration_ms for phase in self.phases)


def set_context(request: BurnerRequest, settings: Settings) -> Context:
    """Fix the stack name and program for one run."""
    return Context(
        request=request,
        stack_name=STACK_PREFIX + uuid.uuid4().hex[:16],
        project=project_name(settings.program_dir),
        program_dir=settings.program_dir,
    )


@functools.cache
def project_name(program_dir: Path) -> str:
    """The project name in the program's own Pulumi.yaml."""
    with open(program_dir / "Pulumi.yaml") as handle:
        name: str = yaml.safe_load(handle)["name"]
    return name


def open_workspace(project: str, program_dir: Path, work_dir: Path, prepared: Prepared,
                   engine: Engine, settings: Settings) -> auto.LocalWorkspace:
    """A workspace in ``work_dir`` whose generated Pulumi.yaml points at the program and venv."""
    project_settings = auto.ProjectSettings(
        name=project,
        runtime=auto.ProjectRuntimeInfo(name="python", options={"virtualenv": str(prepared.venv)}),
        main=str(program_dir),
    )
    return auto.LocalWorkspace(
        work_dir=str(work_dir),
        pulumi_command=engine.command(),
        pulumi_home=str(settings.pulumi_home),
        env_vars=prepared.env_vars,
        project_settings=project_settings,
    )


def create_stack(ctx: Context, workspace: auto.LocalWorkspace) -> auto.Stack:
    """Create the run's stack in its workspace."""
    return auto.Stack.create(ctx.stack_name, workspace)


def select_existing(workspace: auto.LocalWorkspace, stack_name: str) -> auto.Stack | None:
    """The stack if it exists in the backend, else None."""
    try:
        return auto.Stack.select(stack_name, workspace)
    except auto.errors.StackNotFoundError:
        return None


def configure(stack: auto.Stack, request: BurnerRequest) -> None:
    """Set the request kind and its parameters as stack config, in one call."""
    stack.set_all_config({key: auto.ConfigValue(value) for key, value in request.config().items()})


def refresh(stack: auto.Stack) -> None:
    """Refresh the stack's state from its resources."""
    stack.refresh(on_output=_output_logger(stack.name))


def up(stack: auto.Stack) -> auto.UpResult:
    """Run the program and create its resources."""
    return stack.up(on_output=_output_logger(stack.name))


def read_outputs(ctx: Context, result: auto.UpResult) -> tuple[str, Extras]:
    """Pick the requested value (and any other encodings) from the up result's outputs."""
    kind = ctx.request.kind
    wanted = {kind: kind, **EXTRA_OUTPUTS.get(kind, {})}
    missing = sorted(set(wanted.values()) - set(result.outputs))
    if missing:
        raise EngineError("read_outputs", ctx.stack_name, f"program did not export {missing}")
    extras = tuple((label, str(result.outputs[key].value)) for label, key in wanted.items()
                   if label != kind)
    return str(result.outputs[kind].value), extras


def destroy(stack: auto.Stack) -> None:
    """Delete every resource of the stack."""
    stack.destroy(on_output=_output_logger(stack.name))


def remove(stack: auto.Stack) -> None:
    """Remove the (now empty) stack from the backend."""
    stack.workspace.remove_stack(stack.name)


def _output_logger(stack_name: str) -> auto.OnOutput:
    def log_line(line: str) -> None:
        logger.debug("%s | %s", stack_name, line)

    return log_line


@dataclasses.dataclass
class _Progress:
    """Shared between a run's request thread and its provisioning thread."""

    phases: list[Phase] = dataclasses.field(default_factory=list)
    current: str = "set_context"
    stack: auto.Stack | None = None
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)


class Pipeline:
    """Runs burner stacks with one settings object and one engine, injected by the caller."""

    def __init__(self, settings: Settings, engine: Engine, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self._prepared: Prepared | None = None
        self._lock = threading.Lock()

    def prepare(self) -> Prepared:
        """Create the state dir, passphrase and program venv once; later calls are free."""
        with self._lock:
            if self._prepared is None:
                self._prepared = prepare(self.settings)
            return self._prepared

    def readiness(self) -> dict[str, bool]:
        """Whether the engine starts, the program venv is built and the state dir is writable."""
        return readiness(self.settings, self.engine)

    def open_workspace(self, work_dir: Path) -> auto.LocalWorkspace:
        """A workspace for any burner stack of this pipeline's program (the reaper uses it too)."""
        return open_workspace(project_name(self.settings.program_dir), self.settings.program_dir,
                              work_dir, self.prepare(), self.engine, self.settings)

    def run(self, request: BurnerRequest) -> BurnerResult:
        """Provision, read and tear down one burner stack.

        Raises EngineError if Pulumi fails, DeadlineError if the request timeout cancelled it.
        """
        ctx = set_context(request, self.settings)
        with logs.bound(logs.stack_name, ctx.stack_name):
            return self._run(ctx)

    def _run(self, ctx: Context) -> BurnerResult:
        deadline = time.monotonic() + self.settings.request_timeout
        progress = _Progress()
        logger.info("%s: set_context request=%s", ctx.stack_name, ctx.request.config())
        with self._phase("ensure_venv", ctx, progress):
            self.prepare()
        owners.use_process_tmp(self.settings.tmp_dir)
        work_dir = self.settings.work_dir / ctx.stack_name
        # The owner record exists before the stack and outlives it: see infra.owners.
        owners.write_owner(self.settings.owners_dir, ctx.stack_name, owners.current_owner())
        try:
            work_dir.mkdir(parents=True)
            workspace = self.open_workspace(work_dir)
            failed = True
            try:
                value, extras = self._provision_before(ctx, workspace, progress, deadline)
                failed = False
            finally:
                self._teardown(ctx, workspace, progress, failed)
        finally:
            shutil.rmtree(work_dir, onerror=_log_rmtree_error)
            owners.remove_owner(self.settings.owners_dir, ctx.stack_name)
        return BurnerResult(ctx.request.kind, value, extras, ctx.stack_name,
                            tuple(progress.phases))

    def _provision_before(self, ctx: Context, workspace: auto.LocalWorkspace,
                          progress: _Progress, deadline: float) -> tuple[str, Extras]:
        """Provision in a thread; at the deadline cancel its Pulumi command and raise."""
        def on_expiry(finished: Callable[[], bool]) -> NoReturn:
            phase = progress.current
            logger.error("%s: request timeout (%g s) during %s; cancelling", ctx.stack_name,
                         self.settings.request_timeout, phase)
            progress.cancelled.set()
            cancel.cancel(ctx.stack_name, finished, self.settings.cancel_grace)
            raise DeadlineError(phase, ctx.stack_name, self.settings.request_timeout)

        return run_before(deadline, lambda: self._provision(ctx, workspace, progress),
                          on_expiry, grace=self.settings.cancel_grace,
                          name=f"{ctx.stack_name}-provision")

    def _provision(self, ctx: Context, workspace: auto.LocalWorkspace,
                   progress: _Progress) -> tuple[str, Extras]:
        with self._phase("create_stack", ctx, progress, cancellable=True):
            progress.stack = stack = create_stack(ctx, workspace)
        with self._phase("configure", ctx, progress, cancellable=True):
            configure(stack, ctx.request)
        with self._phase("refresh", ctx, progress, cancellable=True):
            refresh(stack)
        with self._phase("up", ctx, progress, cancellable=True):
            result = up(stack)
        with self._phase("read_outputs", ctx, progress, cancellable=True):
            return read_outputs(ctx, result)

    def _teardown(self, ctx: Context, workspace: auto.LocalWorkspace, progress: _Progress,
                  failed: bool) -> None:
        """Destroy then remove the stack; after a failed run, report the first error, not this one."""
        cancelled = progress.cancelled.is_set()
        try:
            stack = progress.stack
            if stack is None and cancelled:
                # Cancelled during create: the stack may or may not exist by now.
                with self._phase("select", ctx, progress):
                    stack = select_existing(workspace, ctx.stack_name)
            if stack is None:
                return
            if cancelled:
                # A killed command leaves its lock behind; `cancel` deletes the lock files.
                with self._phase("cancel", ctx, progress):
                    stack.cancel()
            with self._phase("destroy", ctx, progress):
                destroy(stack)
            # Only an empty stack is removed: if destroy failed, the log names what to clean up.
            with self._phase("remove", ctx, progress):
                remove(stack)
        except EngineError:
            if not failed:
                raise
            logger.error("%s: teardown failed after an earlier error; the reaper will retry",
                         ctx.stack_name)

    @contextmanager
    def _phase(self, name: str, ctx: Context, progress: _Progress,
               cancellable: bool = False) -> Iterator[None]:
        """Time, log and count one step; turn a Pulumi failure into EngineError (detail to the log)."""
        if cancellable and progress.cancelled.is_set():
            raise EngineError(name, ctx.stack_name, "cancelled before it started")
        progress.current = name
        logger.info("%s: %s", ctx.stack_name, name)
        started = time.perf_counter()
        try:
            yield
        except auto.errors.CommandError as exc:
            logger.error("%s: %s failed:\n%s", ctx.stack_name, name, exc)
            raise EngineError(name, ctx.stack_name, type(exc).__name__) from exc
        finally:
            elapsed = _ms_since(started)
            progress.phases.append(Phase(name, round(elapsed, 1)))
            if self.metrics is not None:
                self.metrics.phase_seconds.labels(name).observe(elapsed / 1000)
            logger.info("%s: %s done in %.0f ms", ctx.stack_name, name, elapsed)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _log_rmtree_error(function: object, path: str, excinfo: object) -> None:
    logger.warning("could not remove temporary workspace file %s: %s", path, excinfo)


if __name__ == "__main__":
    from infra.cli import main

    sys.exit(main())
