"""The burner steps: one ephemeral Pulumi stack, provisioned, read, then always torn down.

Steps, each logged and timed: set the context, ensure the program's virtualenv, create the
stack, configure it, up (refreshing first, in the same engine command), read the outputs; then
destroy and remove it. ``Burner.burn`` runs them all in one workspace; ``Burner.teardown``
destroys and removes a stack that is left (a failed step, a dead worker), from anywhere. The
workflow (``infra.activities``) runs them as activities, ``Burner.run`` in-process
(``python -m infra.basic uuid``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from infra import logs
from infra.backend import BackendProbe
from infra.engine import Engine
from infra.errors import EngineError, StateDirError
from infra.kinds import BurnerRequest
from infra.metrics import Metrics
from infra.settings import Settings
from infra.toolchain import Toolchain, build_toolchain, readiness
from infra.venv import ensure_venv

logger = logging.getLogger(__name__)

STACK_PREFIX = "burner-"
# Outputs the program exports besides the one named after the request kind.
EXTRA_OUTPUTS = {"id": {"hex": "id_hex"}}

Extras = tuple[tuple[str, str], ...]


_BURNER_NAME = re.compile(STACK_PREFIX + "[0-9a-f]{16}")


def new_stack_name() -> str:
    """A fresh burner stack name (also the id of the workflow that owns the stack)."""
    return STACK_PREFIX + uuid.uuid4().hex[:16]


def is_burner_stack(name: str) -> bool:
    """Whether ``name`` has the form of a burner stack's (the reaper's to clean up)."""
    return _BURNER_NAME.fullmatch(name) is not None


@dataclasses.dataclass(frozen=True)
class BurnSpec:
    """Everything one burner stack needs to know, fixed before the stack exists."""

    request: BurnerRequest
    stack_name: str


@dataclasses.dataclass(frozen=True)
class Phase:
    """How long one step took."""

    name: str
    duration_ms: float


@dataclasses.dataclass(frozen=True)
class Provisioned:
    """The value a burner stack produced and its other encodings."""

    value: str
    extras: Extras


@dataclasses.dataclass(frozen=True)
class Burned:
    """The value a burner stack produced, and whether the stack is destroyed and removed."""

    provisioned: Provisioned
    torn_down: bool


@dataclasses.dataclass(frozen=True)
class BurnerResult:
    """The value a burner stack produced, its other encodings, and where the time went."""

    kind: str
    value: str
    extras: Extras
    stack: str
    phases: tuple[Phase, ...]
    operation: str | None = None

    @property
    def duration_ms(self) -> float:
        """Total time of all phases."""
        return sum(phase.duration_ms for phase in self.phases)


@dataclasses.dataclass
class Progress:
    """What a provisioning or teardown has done so far (read by whoever runs it)."""

    phases: list[Phase] = dataclasses.field(default_factory=list)
    current: str = "set_context"
    created: bool = False
    # Called with each phase's name as it starts (the workflow heartbeats with it).
    on_phase: Callable[[str], None] = lambda name: None
    # Called with each engine event of up and destroy (the operation's event stream).
    on_event: auto.OnEvent | None = None


@functools.cache
def _project(program_dir: Path) -> dict[str, Any]:
    with open(program_dir / "Pulumi.yaml") as handle:
        project: dict[str, Any] = yaml.safe_load(handle)
    return project


def project_name(program_dir: Path) -> str:
    """The project name in the program's own Pulumi.yaml."""
    return str(_project(program_dir)["name"])


def program_main(program_dir: Path) -> Path:
    """Where the program's code is: its Pulumi.yaml's ``main:`` (a file or directory), or
    beside it."""
    return program_dir / str(_project(program_dir).get("main") or ".")


def open_workspace(program_dir: Path, work_dir: Path, venv: Path, toolchain: Toolchain,
                   engine: Engine, settings: Settings) -> auto.LocalWorkspace:
    """A workspace in ``work_dir`` whose generated Pulumi.yaml points at the program and venv."""
    project_settings = auto.ProjectSettings(
        name=project_name(program_dir),
        runtime=auto.ProjectRuntimeInfo(name="python", options={"virtualenv": str(venv)}),
        main=str(program_main(program_dir)),
    )
    return auto.LocalWorkspace(
        work_dir=str(work_dir),
        pulumi_command=engine.command(),
        pulumi_home=str(settings.pulumi_home),
        env_vars=toolchain.env_vars,
        project_settings=project_settings,
    )


def create_stack(stack_name: str, workspace: auto.LocalWorkspace) -> auto.Stack:
    """Create the stack, or select it if a retried step created it already."""
    # Not Stack.create_or_select: it tries to select first, a process more on every request.
    try:
        return auto.Stack.create(stack_name, workspace)
    except auto.errors.StackAlreadyExistsError:
        return auto.Stack.select(stack_name, workspace)


def select_existing(workspace: auto.LocalWorkspace, stack_name: str) -> auto.Stack | None:
    """The stack if it exists in the backend, else None."""
    try:
        return auto.Stack.select(stack_name, workspace)
    except auto.errors.StackNotFoundError:
        return None


def configure(stack: auto.Stack, request: BurnerRequest) -> None:
    """Set the request kind and its parameters as stack config, in one call."""
    stack.set_all_config({key: auto.ConfigValue(value) for key, value in request.config().items()})


def up(stack: auto.Stack, on_event: auto.OnEvent | None = None, refresh: bool = False
       ) -> auto.UpResult:
    """Run the program and create its resources; with ``refresh``, first refresh the stack's
    state from its resources."""
    # `up --refresh` rather than a `refresh` first: the Automation API runs two engine
    # commands for a refresh (the refresh and a history read), which cost a burn 60-80 ms.
    return stack.up(refresh=refresh or None, on_output=_output_logger(), on_event=on_event)


def read_outputs(spec: BurnSpec, result: auto.UpResult) -> Provisioned:
    """Pick the requested value (and any other encodings) from the up result's outputs."""
    kind = spec.request.kind
    wanted = {kind: kind, **EXTRA_OUTPUTS.get(kind, {})}
    missing = sorted(set(wanted.values()) - set(result.outputs))
    if missing:
        raise EngineError("read_outputs", spec.stack_name, f"program did not export {missing}")
    extras = tuple((label, str(result.outputs[key].value)) for label, key in wanted.items()
                   if label != kind)
    return Provisioned(str(result.outputs[kind].value), extras)


def destroy(stack: auto.Stack, on_event: auto.OnEvent | None = None) -> None:
    """Delete every resource of the stack."""
    stack.destroy(on_output=_output_logger(), on_event=on_event)


def remove(stack: auto.Stack) -> None:
    """Remove the (now empty) stack from the backend."""
    stack.workspace.remove_stack(stack.name)


def _output_logger() -> auto.OnOutput:
    # The Automation API may call this from a reader thread of its own: each line is logged
    # in a copy of the step's context, so it carries the step's request id, workflow and stack.
    context = contextvars.copy_context()

    def log_line(line: str) -> None:
        context.copy().run(logger.debug, "pulumi | %s", line)

    return log_line


class Burner:
    """Runs the burner steps with one settings object and one engine, injected by the caller."""

    def __init__(self, settings: Settings, engine: Engine, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self._toolchain: Toolchain | None = None
        self._venvs: dict[Path, Path] = {}
        self._lock = threading.Lock()
        self._backend = BackendProbe(settings)

    def toolchain(self) -> Toolchain:
        """The state dir, passphrase and program venv, made once; later calls are free."""
        with self._lock:
            if self._toolchain is None:
                self._toolchain = build_toolchain(self.settings, self.engine)
            return self._toolchain

    def venv(self, program_dir: Path) -> Path:
        """The virtualenv of a catalog program, built once per requirements."""
        toolchain = self.toolchain()
        if program_dir == self.settings.program_dir:
            return toolchain.venv
        with self._lock:
            if program_dir not in self._venvs:
                self._venvs[program_dir] = ensure_venv(program_dir, self.settings.venv_dir)
            return self._venvs[program_dir]

    def readiness(self) -> dict[str, bool]:
        """Whether the engine starts, the program venv is built, the state dir is writable and
        the state backend answers."""
        return readiness(self.settings, self.engine, self._backend)

    @contextmanager
    def workspace(self, stack_name: str, program_dir: Path | None = None
                  ) -> Iterator[auto.LocalWorkspace]:
        """A workspace of the program (the burner's by default) in a fresh work dir of its own,
        deleted afterwards."""
        program_dir = program_dir or self.settings.program_dir
        venv = self.venv(program_dir)
        work_dir = self.settings.work_dir / stack_name
        try:
            shutil.rmtree(work_dir, ignore_errors=True)  # a retried step's leftover
            work_dir.mkdir(parents=True)
        except OSError as exc:
            raise StateDirError(self.settings.state_dir, f"unusable: {exc.strerror or exc}") from exc
        try:
            yield open_workspace(program_dir, work_dir, venv, self.toolchain(), self.engine,
                                 self.settings)
        finally:
            shutil.rmtree(work_dir, onerror=_log_rmtree_error)

    def burn(self, spec: BurnSpec, progress: Progress) -> Burned:
        """Provision the stack and read its value, then destroy and remove it in the same
        workspace.

        A failed destroy or remove is logged and reported as ``torn_down=False``: the value
        stands, and ``teardown`` finishes the job. Raises EngineError naming the failed
        provisioning step; ``progress.created`` tells whether the stack may exist.
        """
        with (logs.bound(logs.stack_name, spec.stack_name),
              self._provisioned(spec, progress) as (stack, provisioned)):
            try:
                self._destroy_and_remove(stack, progress)
            except EngineError as exc:
                logger.error("teardown after reading the value failed (retried): %s", exc)
                return Burned(provisioned, torn_down=False)
            return Burned(provisioned, torn_down=True)

    def provision(self, spec: BurnSpec, progress: Progress) -> Provisioned:
        """Create, configure, refresh and up the stack, then read its value; leave it standing.

        Raises EngineError naming the failed step; ``progress.created`` tells whether the
        stack may exist.
        """
        with (logs.bound(logs.stack_name, spec.stack_name),
              self._provisioned(spec, progress) as (_, provisioned)):
            return provisioned

    @contextmanager
    def _provisioned(self, spec: BurnSpec, progress: Progress
                     ) -> Iterator[tuple[auto.Stack, Provisioned]]:
        logger.info("set_context request=%s", spec.request.config())
        with self.step("ensure_venv", progress):
            self.toolchain()
        with self.workspace(spec.stack_name) as workspace:
            with self.step("create_stack", progress):
                # Set first: a create that fails half-way may still have made the stack.
                progress.created = True
                stack = create_stack(spec.stack_name, workspace)
            with self.step("configure", progress):
                configure(stack, spec.request)
            with self.step("up", progress):
                result = up(stack, progress.on_event, refresh=True)
            with self.step("read_outputs", progress):
                provisioned = read_outputs(spec, result)
            yield stack, provisioned

    def teardown(self, stack_name: str, clear_lock: bool, progress: Progress,
                 program_dir: Path | None = None) -> None:
        """Destroy and remove the stack if it exists; with ``clear_lock``, first drop stale locks.

        Idempotent: a stack that is already gone is a success. Raises EngineError.
        """
        with (logs.bound(logs.stack_name, stack_name),
              self.workspace(stack_name, program_dir) as workspace):
            with self.step("select", progress):
                stack = select_existing(workspace, stack_name)
            if stack is None:
                logger.info("teardown: the stack does not exist (any more)")
                return
            if clear_lock:
                # Whoever held the lock is known to be gone (its step ended or timed out).
                with self.step("clear_lock", progress):
                    stack.cancel()
            self._destroy_and_remove(stack, progress)

    def _destroy_and_remove(self, stack: auto.Stack, progress: Progress) -> None:
        with self.step("destroy", progress):
            destroy(stack, progress.on_event)
        # Only an empty stack is removed: if destroy failed, the error names what is left.
        with self.step("remove", progress):
            remove(stack)

    def run(self, request: BurnerRequest) -> BurnerResult:
        """Provision, read and tear down one burner stack in this process.

        Raises EngineError if a step fails (the stack is still torn down).
        """
        spec = BurnSpec(request, new_stack_name())
        progress = Progress()
        with logs.bound(logs.stack_name, spec.stack_name):
            try:
                burned = self.burn(spec, progress)
            except BaseException:
                self._teardown_after_failure(spec.stack_name, progress)
                raise
            if not burned.torn_down:
                # The engine command that failed has ended: any lock it left is stale.
                self.teardown(spec.stack_name, clear_lock=True, progress=progress)
        provisioned = burned.provisioned
        return BurnerResult(request.kind, provisioned.value, provisioned.extras, spec.stack_name,
                            tuple(progress.phases))

    def _teardown_after_failure(self, stack_name: str, progress: Progress) -> None:
        if not progress.created:
            return
        try:
            self.teardown(stack_name, clear_lock=True, progress=progress)
        except EngineError as exc:
            # The first error is the one to report; this one goes to the log.
            logger.error("teardown after a failed step failed too: %s", exc)

    @contextmanager
    def step(self, name: str, progress: Progress) -> Iterator[None]:
        """Time, log and count one step; turn a Pulumi failure into EngineError (detail to the log)."""
        progress.current = name
        progress.on_phase(name)
        logger.info("%s", name)
        started = time.perf_counter()
        try:
            yield
        except auto.errors.CommandError as exc:
            logger.error("%s failed:\n%s", name, exc)
            raise EngineError(name, logs.stack_name.get(), type(exc).__name__) from exc
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            progress.phases.append(Phase(name, round(elapsed, 1)))
            if self.metrics is not None:
                self.metrics.phase_seconds.labels(name).observe(elapsed / 1000)
            logger.info("%s done in %.0f ms", name, elapsed)


def _log_rmtree_error(function: object, path: str, excinfo: object) -> None:
    logger.warning("could not remove temporary workspace file %s: %s", path, excinfo)


if __name__ == "__main__":
    from infra.cli import main

    sys.exit(main(["burn", *sys.argv[1:]]))
