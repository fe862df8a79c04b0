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
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from pulumi import automation as auto

from infra.engine import Engine, ensure_passphrase
from infra.errors import EngineError
from infra.kinds import BurnerRequest
from infra.settings import Settings
from infra.venv import ensure_venv

logger = logging.getLogger(__name__)

STACK_PREFIX = "burner-"
# Outputs the program exports besides the one named after the request kind.
EXTRA_OUTPUTS = {"id": {"hex": "id_hex"}}


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
    extras: tuple[tuple[str, str], ...]
    stack: str
    phases: tuple[Phase, ...]

    @property
    def duration_ms(self) -> float:
        """Total time of all phases."""
        return sum(phase.duration_ms for phase in self.phases)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What every run shares: the program's virtualenv and the workspace environment."""

    venv: Path
    env_vars: dict[str, str]


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


def workspace_options(ctx: Context, prepared: Prepared, engine: Engine,
                      settings: Settings) -> auto.LocalWorkspaceOptions:
    """Options for a per-run workspace whose generated Pulumi.yaml points at the program and venv."""
    project = auto.ProjectSettings(
        name=ctx.project,
        runtime=auto.ProjectRuntimeInfo(name="python", options={"virtualenv": str(prepared.venv)}),
        main=str(ctx.program_dir),
    )
    return auto.LocalWorkspaceOptions(
        pulumi_command=engine.command(),
        pulumi_home=str(settings.pulumi_home),
        env_vars=prepared.env_vars,
        project_settings=project,
    )


def create_stack(ctx: Context, work_dir: Path, opts: auto.LocalWorkspaceOptions) -> auto.Stack:
    """Create the run's stack in its own temporary workspace directory."""
    return auto.create_stack(ctx.stack_name, work_dir=str(work_dir), opts=opts)


def configure(stack: auto.Stack, request: BurnerRequest) -> None:
    """Set the request kind and its parameters as stack config, in one call."""
    stack.set_all_config({key: auto.ConfigValue(value) for key, value in request.config().items()})


def refresh(stack: auto.Stack) -> None:
    """Refresh the stack's state from its resources."""
    stack.refresh(on_output=_output_logger(stack.name))


def up(stack: auto.Stack) -> auto.UpResult:
    """Run the program and create its resources."""
    return stack.up(on_output=_output_logger(stack.name))


def read_outputs(ctx: Context, result: auto.UpResult) -> tuple[str, tuple[tuple[str, str], ...]]:
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


class Pipeline:
    """Runs burner stacks with one settings object and one engine, injected by the caller."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._prepared: Prepared | None = None
        self._lock = threading.Lock()

    def prepare(self) -> Prepared:
        """Create the state dir, passphrase and program venv once; later calls are free."""
        with self._lock:
            if self._prepared is None:
                settings = self.settings
                try:
                    settings.backend_dir.mkdir(parents=True, exist_ok=True)
                    settings.pulumi_home.mkdir(parents=True, exist_ok=True)
                    passphrase = ensure_passphrase(settings)
                except OSError as exc:
                    raise EngineError("prepare", None, f"state directory unusable: {exc}") from exc
                env_vars = {
                    "PULUMI_BACKEND_URL": settings.backend_url,
                    "PULUMI_CONFIG_PASSPHRASE": passphrase,
                    "PULUMI_SKIP_UPDATE_CHECK": "true",
                    # Burner stacks live for one request: checkpoint backups would only pile up.
                    "PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS": "true",
                }
                if settings.passphrase is None:
                    # The generated passphrase sits in the state dir already, so caching the
                    # derived key beside it exposes nothing new and saves ~0.25 s per stack.
                    env_vars["OFFLINE_PULUMI_KEY_CACHE"] = str(settings.state_dir / "keys")
                started = time.perf_counter()
                venv = ensure_venv(settings.program_dir, settings.venv_dir)
                logger.info("ensure_venv: %s (%.0f ms)", venv, _ms_since(started))
                self._prepared = Prepared(venv=venv, env_vars=env_vars)
            return self._prepared

    def run(self, request: BurnerRequest) -> BurnerResult:
        """Provision, read and tear down one burner stack; raise EngineError if Pulumi fails."""
        phases: list[Phase] = []
        ctx = set_context(request, self.settings)
        logger.info("%s: set_context request=%s", ctx.stack_name, ctx.request.config())
        with _phase("ensure_venv", ctx, phases):
            prepared = self.prepare()
        work_dir = Path(tempfile.mkdtemp(prefix=ctx.stack_name + "-"))
        try:
            with _phase("create_stack", ctx, phases):
                stack = create_stack(ctx, work_dir,
                                     workspace_options(ctx, prepared, self.engine, self.settings))
            failed = True
            try:
                with _phase("configure", ctx, phases):
                    configure(stack, request)
                with _phase("refresh", ctx, phases):
                    refresh(stack)
                with _phase("up", ctx, phases):
                    result = up(stack)
                with _phase("read_outputs", ctx, phases):
                    value, extras = read_outputs(ctx, result)
                failed = False
            finally:
                _teardown(ctx, stack, phases, failed)
        finally:
            shutil.rmtree(work_dir, onerror=_log_rmtree_error)
        return BurnerResult(request.kind, value, extras, ctx.stack_name, tuple(phases))


def _teardown(ctx: Context, stack: auto.Stack, phases: list[Phase], failed: bool) -> None:
    """Destroy then remove the stack; after a failed run, report the first error, not this one."""
    try:
        with _phase("destroy", ctx, phases):
            destroy(stack)
        # Only an empty stack is removed: if destroy failed, the log names what to clean up.
        with _phase("remove", ctx, phases):
            remove(stack)
    except EngineError:
        if not failed:
            raise
        logger.error("%s: teardown failed after an earlier error; the stack is left behind",
                     ctx.stack_name)


@contextmanager
def _phase(name: str, ctx: Context, phases: list[Phase]) -> Iterator[None]:
    """Time and log one step; turn a Pulumi command failure into EngineError (detail to the log)."""
    logger.info("%s: %s", ctx.stack_name, name)
    started = time.perf_counter()
    try:
        yield
    except auto.errors.CommandError as exc:
        logger.error("%s: %s failed:\n%s", ctx.stack_name, name, exc)
        raise EngineError(name, ctx.stack_name, type(exc).__name__) from exc
    finally:
        phases.append(Phase(name, round(_ms_since(started), 1)))
        logger.info("%s: %s done in %.0f ms", ctx.stack_name, name, phases[-1].duration_ms)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _log_rmtree_error(function: object, path: str, excinfo: object) -> None:
    logger.warning("could not remove temporary workspace file %s: %s", path, excinfo)


if __name__ == "__main__":
    from infra.cli import main

    sys.exit(main())
