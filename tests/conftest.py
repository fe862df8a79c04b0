"""Shared fixtures: settings on temp state dirs, the real pipeline, and server processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import falcon.testing
import pytest
from pulumi import automation as auto

import infra_api
from infra.basic import Pipeline, project_name
from infra.engine import select_engine
from infra.settings import PROJECT_ROOT, Settings

# One program virtualenv for the whole suite (and across runs): it is keyed by the
# requirements hash, so it is rebuilt only when burner-program/requirements.txt changes.
SHARED_VENV_DIR = PROJECT_ROOT / ".state" / "venvs"
PASSPHRASE = "test-passphrase"


def make_environ(state_dir: Path, **extra: str) -> dict[str, str]:
    """INFRA_API_* variables for an isolated state dir that shares the suite's venv."""
    return {
        "INFRA_API_STATE_DIR": str(state_dir),
        "INFRA_API_VENV_DIR": str(SHARED_VENV_DIR),
        "INFRA_API_ENGINE": "offline",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        **extra,
    }


def burner_stacks(settings: Settings) -> list[str]:
    """Names of the burner stacks in the settings' backend, listed through the Automation API."""
    if not settings.backend_dir.exists():
        return []
    work_dir = settings.state_dir / "list-workspace"
    work_dir.mkdir(parents=True, exist_ok=True)
    ws = auto.LocalWorkspace(
        work_dir=str(work_dir),
        pulumi_home=str(settings.pulumi_home),
        pulumi_command=select_engine(settings).command(),
        env_vars={"PULUMI_BACKEND_URL": settings.backend_url, "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
        project_settings=auto.ProjectSettings(name=project_name(settings.program_dir), runtime="python"),
    )
    return [stack.name for stack in ws.list_stacks(include_all=True) if "burner-" in stack.name]


@pytest.fixture(scope="session")
def live_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for end-to-end tests: offline engine, one temp state dir for the session."""
    return Settings.from_environ(make_environ(tmp_path_factory.mktemp("live") / "state"))


@pytest.fixture(scope="session")
def live_pipeline(live_settings: Settings) -> Pipeline:
    """The real pipeline (real pulumi.automation, offline engine, real program), prepared once."""
    pipeline = Pipeline(live_settings, select_engine(live_settings))
    pipeline.prepare()
    return pipeline


@pytest.fixture(scope="session")
def live_client(live_settings: Settings, live_pipeline: Pipeline) -> falcon.testing.TestClient:
    """A test client on the app wired to the real pipeline."""
    return falcon.testing.TestClient(infra_api.create_app(live_settings, burner=live_pipeline))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(url: str, timeout: float = 120) -> tuple[int, dict]:
    """GET ``url`` and return (status, parsed JSON body), for 2xx and error statuses alike."""
    import json

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class ServerProcess:
    """A real server process on a free port, with a readiness deadline and sure cleanup."""

    def __init__(self, argv: list[str], environ: Mapping[str, str], port: int, log: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_handle = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env={**os.environ, **environ},
                                     stdout=self._log_handle, stderr=subprocess.STDOUT)

    def wait_ready(self, deadline_s: float = 90) -> None:
        """Poll /healthz until it answers; fail with the server log if it dies or times out."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if get_json(self.base_url + "/healthz", timeout=2)[0] == 200:
                    return
            except (OSError, ValueError):
                time.sleep(0.2)
        pytest.fail(f"server not ready after {deadline_s}s:\n{self.output()}")

    def stop(self) -> int | None:
        """Terminate, then kill if it does not exit in time; return the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_handle.close()
        return self.proc.returncode

    def output(self) -> str:
        """Everything the server wrote so far."""
        if not self._log_handle.closed:
            self._log_handle.flush()
        return self.log.read_text(errors="replace")


@pytest.fixture
def server_environ(tmp_path: Path) -> dict[str, str]:
    """Environment for a server process: its own state dir and port, the shared venv."""
    return make_environ(tmp_path / "state", INFRA_API_HOST="127.0.0.1",
                        INFRA_API_PORT=str(free_port()))


def start_server(argv: list[str], environ: Mapping[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    """Start a server, wait for it to be ready, and always stop it afterwards."""
    server = ServerProcess(argv, environ, int(environ["INFRA_API_PORT"]), tmp_path / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


PYTHON = sys.executable


GUNICORN = [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "infra_api:application"]
HANG_PROGRAM = PROJECT_ROOT / "tests" / "programs" / "hang"


def leftovers(settings: Settings) -> dict[str, list[str]]:
    """Everything a burner run may leave behind in a state dir; all lists empty when clean."""
    from infra.owners import tmp_dir_alive

    def names(directory: Path, pattern: str = "*") -> list[str]:
        return sorted(p.name for p in directory.glob(pattern)) if directory.exists() else []

    locks = settings.backend_dir / ".pulumi" / "locks"
    return {
        "stacks": burner_stacks(settings),
        "locks": sorted(str(p.relative_to(locks)) for p in locks.rglob("*.json")) if locks.exists() else [],
        "owners": names(settings.owners_dir),
        "work_dirs": names(settings.work_dir),
        "dead_tmp_dirs": [p.name for p in settings.tmp_dir.glob("*") if not tmp_dir_alive(p)]
        if settings.tmp_dir.exists() else [],
        "workspace_files": names(settings.pulumi_home / "workspaces", "*burner*"),
    }


CLEAN: dict[str, list[str]] = {"stacks": [], "locks": [], "owners": [], "work_dirs": [], "dead_tmp_dirs": [],
         "workspace_files": []}


running_server = contextlib.contextmanager(start_server)
