"""Helpers of the service tests: isolated settings, the stacks and files a run may leave."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from pulumi import automation as auto

from infra.basic import project_name
from infra.engine import select_engine
from infra.settings import PROJECT_ROOT, Settings
from tests.harness import (  # noqa: F401 - GUNICORN and SHARED_VENV_DIR re-exported
    GUNICORN,
    PYTHON,
    SHARED_VENV_DIR,
    ServerProcess,
    get_json,
    wait_for,
)

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


def _workspace(settings: Settings, project: str) -> auto.LocalWorkspace:
    work_dir = settings.state_dir / "list-workspace"
    work_dir.mkdir(parents=True, exist_ok=True)
    return auto.LocalWorkspace(
        work_dir=str(work_dir),
        pulumi_home=str(settings.pulumi_home),
        pulumi_command=select_engine(settings).command(),
        env_vars={"PULUMI_BACKEND_URL": settings.backend_url, "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
        project_settings=auto.ProjectSettings(name=project, runtime="python"),
    )


def all_stacks(settings: Settings) -> list[str]:
    """Names of every stack in the settings' backend, listed through the Automation API."""
    if settings.backend is None and not settings.backend_dir.exists():
        return []
    workspace = _workspace(settings, project_name(settings.program_dir))
    return sorted(stack.name for stack in workspace.list_stacks(include_all=True))


def force_remove(settings: Settings, project: str, stack: str) -> None:
    """Remove a stack that still has resources (a protected one), as an operator would."""
    _workspace(settings, project).remove_stack(stack, force=True)


def burner_stacks(settings: Settings) -> list[str]:
    """Names of the burner stacks in the settings' backend."""
    return [name for name in all_stacks(settings) if "burner-" in name]


HANG_PROGRAM = PROJECT_ROOT / "tests" / "api" / "programs" / "hang"
AWKWARD_PROGRAM = PROJECT_ROOT / "tests" / "api" / "programs" / "awkward"
PAUSE_PROGRAM = PROJECT_ROOT / "tests" / "api" / "programs" / "pause"
# A catalog program that creates one resource, then waits `seconds` (default: an hour).
SLOW_PROGRAM = PROJECT_ROOT / "tests" / "api" / "programs" / "slow"


def leftovers(settings: Settings) -> dict[str, list[str]]:
    """Everything a burner run may leave behind in a state dir; all lists empty when clean."""

    def names(directory: Path, pattern: str = "*") -> list[str]:
        return sorted(p.name for p in directory.glob(pattern)) if directory.exists() else []

    locks = settings.backend_dir / ".pulumi" / "locks"
    return {
        "stacks": burner_stacks(settings),
        "locks": sorted(str(p.relative_to(locks)) for p in locks.rglob("*.json")) if locks.exists() else [],
        "work_dirs": names(settings.work_dir),
        "workspace_files": names(settings.pulumi_home / "workspaces", "*burner*"),
    }


CLEAN: dict[str, list[str]] = {"stacks": [], "locks": [], "work_dirs": [], "workspace_files": []}


def processes_of(state_dir: Path) -> list[str]:
    """Running processes of a state dir's service: Temporal, engines, program hosts."""
    from infra.engine import program_host_dir

    marks = (str(state_dir), str(program_host_dir(Settings.from_environ(
        {"INFRA_API_STATE_DIR": str(state_dir)}))))
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(mark in cmdline for mark in marks):
            found.append(f"{proc.pid}: {cmdline}")
    return found


def assert_nothing_left(state_dir: Path) -> None:
    """Fail unless every process of the state dir's service is gone (program hosts take 1 s),
    and the directory of its engine helpers with them."""
    from infra.engine import program_host_dir
    from tests.harness import wait_for

    wait_for(lambda: processes_of(state_dir) == [], timeout=10,
             what=f"no process left: {processes_of(state_dir)}")
    helpers = program_host_dir(Settings.from_environ({"INFRA_API_STATE_DIR": str(state_dir)}))
    assert not helpers.exists(), sorted(p.name for p in helpers.iterdir())


def concurrently(count: int, url: str) -> list[tuple[int, dict]]:
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: get_json(url), range(count)))


def pulumi_descendants(root: psutil.Process, arg: str) -> list[psutil.Process]:
    """Descendants of ``root`` running a pulumi command whose arguments include ``arg``."""
    found = []
    for proc in root.children(recursive=True):
        try:
            argv = proc.cmdline()
        except psutil.Error:
            continue
        if any(a.endswith("/pulumi") for a in argv[:3]) and arg in argv:
            found.append(proc)
    return found


def start_worker(environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``burner worker`` as its own process (its own session, like one started by hand)."""
    with open(log, "wb") as handle:
        proc = subprocess.Popen([str(Path(PYTHON).parent / "burner"), "worker"],
                                env={**os.environ, **environ}, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = log  # type: ignore[attr-defined]
    wait_for(lambda: "worker polling task queue" in log.read_text() or proc.poll() is not None,
             what="the worker to poll")
    assert proc.poll() is None, log.read_text()
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM (drain), then kill if needed; return its log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.log.read_text()  # type: ignore[attr-defined]


# -- the stack routes over real HTTP ------------------------------------------------------

FINAL = ("succeeded", "failed", "cancelled")


def call(server: ServerProcess, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """One request (``body`` sent as JSON, or ``raw`` as it is); returns status, headers and
    the JSON body."""
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        data = raw if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                json.loads(raw) if raw else None)
    finally:
        conn.close()


def post_chunked(server: ServerProcess, path: str, chunks: list[bytes]) -> tuple[int, Any]:
    """A JSON POST whose body goes in chunks, without a Content-Length; status and body."""
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        conn.request("POST", path, body=iter(chunks), encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def finished(server: ServerProcess, operation: str, timeout: float = 120) -> dict[str, Any]:
    """The operation once it ended."""
    def done() -> dict[str, Any] | None:
        _, _, body = call(server, "GET", f"/operations/{operation}")
        return body if body["status"] in FINAL else None
    result: dict[str, Any] = wait_for(done, timeout, f"operation {operation} to end")
    return result


def create(server: ServerProcess, **fields: Any) -> tuple[str, str]:
    """POST /stacks; return (stack, operation)."""
    status, headers, body = call(server, "POST", "/stacks", fields)
    assert status == 202, body
    assert headers["location"] == f"/operations/{body['operation']['id']}"
    return body["stack"], body["operation"]["id"]


def read_stream(server: ServerProcess, operation: str, last_event_id: int | None = None,
                stop_after: int | None = None) -> list[tuple[int, str, dict[str, Any]]]:
    """Read the SSE stream until it ends (or ``stop_after`` events, then drop the connection)."""
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    events: list[tuple[int, str, dict[str, Any]]] = []
    try:
        conn.request("GET", f"/operations/{operation}/events", headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        fields: dict[str, str] = {}
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line:
                if not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
                continue
            if "data" in fields:
                events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                if stop_after is not None and len(events) >= stop_after:
                    break
            fields = {}
    finally:
        conn.close()
    return events
