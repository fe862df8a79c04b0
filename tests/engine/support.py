"""Fixtures and helpers for the offline engine's end-to-end tests (``conftest.py`` registers the fixtures).

Every test gets its own backend (a state dir, or a table of the session's PostgreSQL),
``PULUMI_HOME`` and project copy under ``tmp_path``; the engine is driven only through the
unmodified ``pulumi.automation`` client. A module runs against both storage drivers with
``pytestmark = BOTH_BACKENDS``; the others use ``file://``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

import offline_pulumi
from offline_pulumi.storage import Storage, open_storage, proxy

PROGRAMS = Path(__file__).resolve().parent / "programs"
PASSPHRASE = "engine-test-passphrase"
_COUNTER = itertools.count()
BACKENDS = ("file", "postgres")
BOTH_BACKENDS = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


def pulumi_yaml(name: str) -> str:
    """A Pulumi.yaml that runs the program with the test interpreter's environment."""
    return (f"name: {name}\n"
            "runtime:\n"
            "  name: python\n"
            "  options:\n"
            f"    virtualenv: {sys.prefix}\n")


@dataclass(frozen=True)
class Engine:
    """One isolated backend (state dir or table + PULUMI_HOME) and the shared offline command."""

    command: auto.PulumiCommand
    root: Path
    backend_url: str
    storage: Storage

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def env(self) -> dict[str, str]:
        # postgres:// as the service runs it: through the state proxy (the first command of
        # each test, before the proxy is up, uses the database directly).
        # A proxy that a late command starts after close() ends 5 s after its last call.
        proxy = ({"OFFLINE_PULUMI_STATE_PROXY": "1", "OFFLINE_PULUMI_PROGRAM_HOST_IDLE": "5"}
                 if self.backend_url.startswith("postgres") else {})
        return {"PULUMI_BACKEND_URL": self.backend_url,
                "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                "PULUMI_HOME": str(self.home), **proxy}

    def close(self) -> None:
        """Close our storage client and stop the backend's state proxy, if one runs."""
        self.storage.close()
        path = proxy.socket_path(self.backend_url)
        if path is not None:
            path.unlink(missing_ok=True)  # the proxy exits within a second

    def opts(self, **kwargs: Any) -> auto.LocalWorkspaceOptions:
        return auto.LocalWorkspaceOptions(pulumi_command=self.command, env_vars=self.env, **kwargs)

    def project(self, program: str, name: str | None = None) -> Path:
        """Copy ``programs/<program>`` into a fresh work dir with a generated Pulumi.yaml."""
        work_dir = self.root / f"{program}-{next(_COUNTER)}"
        shutil.copytree(PROGRAMS / program, work_dir)
        (work_dir / "Pulumi.yaml").write_text(pulumi_yaml(name or f"e2e-{program.replace('_', '-')}"))
        return work_dir

    def stack(self, program: str, stack_name: str | None = None,
              config: Mapping[str, str] | None = None, work_dir: Path | None = None) -> auto.Stack:
        """create_or_select a stack for ``program`` and set plain ``config`` on it."""
        work_dir = work_dir or self.project(program)
        stack = auto.create_or_select_stack(stack_name or unique_stack(), work_dir=str(work_dir),
                                            opts=self.opts())
        if config:
            stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})
        return stack

    def state_blobs(self, prefix: str = "") -> list[bytes]:
        """Every blob the backend holds (under ``prefix``)."""
        return [self.storage.get(key) for key in self.storage.list(prefix)]

    def checkpoint_key(self, stack: auto.Stack) -> str:
        """The backend key of the stack's current checkpoint."""
        project = stack.workspace.project_settings().name
        return f".pulumi/stacks/{project}/{stack.name}.json"

    def checkpoint_text(self, stack: auto.Stack) -> str:
        return self.storage.get(self.checkpoint_key(stack)).decode()

    def checkpoint(self, stack: auto.Stack) -> dict[str, Any]:
        """The stack's checkpoint, parsed."""
        data: dict[str, Any] = json.loads(self.checkpoint_text(stack))
        return data

    def locks(self, stack: auto.Stack) -> list[str]:
        """The keys of the stack's lock files."""
        project = stack.workspace.project_settings().name
        return self.storage.list(f".pulumi/locks/organization/{project}/{stack.name}/", "/")

    def lock_info(self, key: str) -> dict[str, Any]:
        """What a lock file says about its holder (pid, hostname, ...)."""
        info: dict[str, Any] = json.loads(self.storage.get(key))
        return info


class Background:
    """Runs one stack operation on a thread and keeps its result or exception."""

    def __init__(self, operation: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(operation,), daemon=True)
        self._thread.start()

    def _run(self, operation: Callable[[], Any]) -> None:
        try:
            self.result = operation()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 120) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background operation did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def unique_stack(prefix: str = "s") -> str:
    """A stack name no other test in this run uses."""
    return f"{prefix}{next(_COUNTER)}-{time.monotonic_ns() % 10**9}"


def plain_outputs(outputs: auto.OutputMap) -> dict[str, Any]:
    """Output values without their secret flags."""
    return {key: out.value for key, out in outputs.items()}


def secret_keys(outputs: auto.OutputMap) -> set[str]:
    return {key for key, out in outputs.items() if out.secret}


@pytest.fixture(scope="session", name="engine_command")
def engine_command_fixture() -> auto.PulumiCommand:
    """The offline engine's PulumiCommand (its construction runs a version probe: once)."""
    return offline_pulumi.pulumi_command()


def make_engine(command: auto.PulumiCommand, root: Path, backend_url: str | None = None) -> Engine:
    """An Engine on a fresh home dir under ``root`` and a fresh backend (default: ``root/state``)."""
    (root / "home").mkdir()
    url = backend_url or f"file://{root / 'state'}"
    return Engine(command, root, url, open_storage(url, root))


@pytest.fixture(scope="session", name="backend")
def backend_fixture(request: pytest.FixtureRequest) -> str:
    """The storage driver under test: ``file`` unless a module asks for both."""
    return str(getattr(request, "param", "file"))


def backend_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """A fresh backend URL of that driver (a new table for postgres; None: a temp dir)."""
    if backend == "file":
        return None
    server = request.getfixturevalue("postgres_server")
    return str(server.url(table=f"state_{next(_COUNTER)}_{time.monotonic_ns() % 10**9}"))


@pytest.fixture(name="engine")
def engine_fixture(engine_command: auto.PulumiCommand, tmp_path: Path, backend: str,
                   request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An isolated backend for one test."""
    engine = make_engine(engine_command, tmp_path, backend_url(request, backend))
    yield engine
    engine.close()


def stdout_of(error: auto.CommandError) -> str:
    """The CLI stdout carried by an automation error (its text is ``code/stdout/stderr``)."""
    text = str(error)
    return text.split("\n stdout: ", 1)[1].rsplit("\n stderr: ", 1)[0]


def stderr_of(error: auto.CommandError) -> str:
    """The CLI stderr carried by an automation error."""
    return str(error).rsplit("\n stderr: ", 1)[1]
