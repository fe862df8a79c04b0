"""Real server processes for tests and benchmarks: free ports, readiness deadlines, sure cleanup."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "infra_api:application"]
# One program virtualenv for the tests and the benchmarks (and across runs): it is keyed by the
# requirements hash, so it is rebuilt only when burner-program/requirements.txt changes.
SHARED_VENV_DIR = PROJECT_ROOT / ".cache" / "program-venvs"


class ServerFailed(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(url: str, timeout: float = 120, headers: Mapping[str, str] | None = None
             ) -> tuple[int, dict[str, Any]]:
    """GET ``url`` and return (status, parsed JSON body), for 2xx and error statuses alike."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; raise AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class ServerProcess:
    """A real server process on a known port, with a readiness deadline and sure cleanup."""

    def __init__(self, argv: list[str], environ: Mapping[str, str], port: int, log: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_handle = open(log, "wb")  # noqa: SIM115 - closed in stop()
        # A session of its own, like a server started from a terminal: a test can send
        # the terminal's Ctrl-C to the whole process group.
        self.proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env={**os.environ, **environ},
                                     stdout=self._log_handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, deadline_s: float = 120, path: str = "/healthz") -> None:
        """Poll ``path`` until it answers 200; raise ServerFailed if the server dies or times out."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if get_json(self.base_url + path, timeout=2)[0] == 200:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise ServerFailed(f"server not ready after {deadline_s}s:\n{self.output()}")

    def stop(self, timeout: float = 60) -> int | None:
        """Terminate, then kill if it does not exit in time; return the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
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


def start_server(argv: list[str], environ: Mapping[str, str], log: Path,
                 ready_path: str = "/healthz") -> Iterator[ServerProcess]:
    """Start a server on ``INFRA_API_PORT``, wait until it is ready, and always stop it."""
    server = ServerProcess(argv, environ, int(environ["INFRA_API_PORT"]), log)
    try:
        server.wait_ready(path=ready_path)
        yield server
    finally:
        server.stop()


running_server = contextlib.contextmanager(start_server)
