"""A fleet: two hosts that share only Temporal's and PostgreSQL's addresses.

Each host has its own HOME, temp dir, state dir (with its PULUMI_HOME) and program venv; the
stacks live in one postgres:// backend. A stack a dead host created is destroyed by the other.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from infra.settings import PROGRAM_DIR
from infra.venv import ensure_venv
from tests.api.support import (
    HANG_PROGRAM,
    SHARED_VENV_DIR,
    SLOW_PROGRAM,
    assert_nothing_left,
    call,
    concurrently,
    create,
    finished,
    make_environ,
    pulumi_descendants,
    read_stream,
    start_worker,
    stop_worker,
)
from tests.harness import GUNICORN, free_port, get_json, running_server, wait_for
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.slow


@pytest.fixture(name="host_tmp")
def host_tmp_fixture() -> Iterator[dict[str, Path]]:
    """Each host's TMPDIR, short (unix socket paths must fit in 108 bytes), deleted after."""
    dirs = {name: Path(tempfile.mkdtemp(prefix=f"fleet-{name}-")) for name in ("a", "b")}
    yield dirs
    for directory in dirs.values():
        shutil.rmtree(directory, ignore_errors=True)


def host_environ(root: Path, tmp: Path, shared: dict[str, str]) -> dict[str, str]:
    """One host's environment: its own dirs and venv, plus the shared addresses."""
    (root / "home").mkdir(parents=True)
    # Its own copy of the program venv (building one per host would only cost time).
    venv = ensure_venv(PROGRAM_DIR, SHARED_VENV_DIR)
    shutil.copytree(venv, root / "venvs" / venv.name, symlinks=True)
    return make_environ(root / "state", HOME=str(root / "home"), TMPDIR=str(tmp),
                        INFRA_API_VENV_DIR=str(root / "venvs"), **shared)


def fleet(tmp_path: Path, host_tmp: dict[str, Path], temporal_address: str, server: PostgresServer,
          table: str, **extra: str) -> tuple[dict[str, str], dict[str, str]]:
    shared = {"INFRA_API_TEMPORAL_ADDRESS": temporal_address,
              "INFRA_API_TASK_QUEUE": f"{table}-{tmp_path.name}",
              "INFRA_API_BACKEND_URL": server.url(table=table), **extra}
    return (host_environ(tmp_path / "a", host_tmp["a"], shared),
            host_environ(tmp_path / "b", host_tmp["b"], shared))


def processes_under(*paths: Path) -> list[psutil.Process]:
    """Processes whose command line names one of the paths (a host's engines and proxies)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(str(path) in cmdline for path in paths):
            found.append(proc)
    return found


def burner_keys(server: PostgresServer, table: str) -> dict[str, list[str]]:
    """What is left of burner stacks in the table, apart from their history and backups."""
    with psycopg.connect(server.url()) as conn:
        keys = [k for (k,) in conn.execute(f"SELECT key FROM {table}".encode()).fetchall()]
    return {"stacks": [k for k in keys if "burner-" in k and "/history/" not in k
                       and "/backups/" not in k and "/locks/" not in k],
            "locks": [k for k in keys if "/locks/" in k]}


CLEAN: dict[str, list[str]] = {"stacks": [], "locks": []}


def test_two_hosts_serve_16_concurrent_requests_from_one_backend(
        tmp_path, host_tmp, temporal_address, postgres_server) -> None:
    host_a, host_b = fleet(tmp_path, host_tmp, temporal_address, postgres_server, "fleet_share")
    workers = [start_worker(host_a, tmp_path / "a.log"), start_worker(host_b, tmp_path / "b.log")]
    api = {**host_b, "INFRA_API_RUN_WORKER": "false", "INFRA_API_PORT": str(free_port())}
    try:
        with running_server(GUNICORN, api, tmp_path / "api.log") as server:
            results = concurrently(16, server.base_url + "/uuid")
            # Each host's engines reached the database through their host's own state proxy.
            proxies = {host: [p for p in processes_under(tmp)
                              if "state.sock" in " ".join(p.info["cmdline"])]
                       for host, tmp in host_tmp.items()}
    finally:
        logs = [stop_worker(worker) for worker in workers]
    assert [status for status, _ in results] == [200] * 16, results
    assert all(proxies.values()), proxies
    done = [log.count("activity burn: succeeded") for log in logs]
    assert sum(done) == 16 and all(done), done  # both hosts did some of the work
    assert burner_keys(postgres_server, "fleet_share") == CLEAN
    for host in ("a", "b"):  # the state dirs hold no stack: the backend is the table
        assert not list((tmp_path / host / "state").glob("backend/.pulumi/stacks/*/*.json"))
    assert_nothing_left(tmp_path / "a" / "state")
    assert_nothing_left(tmp_path / "b" / "state")
    wait_for(lambda: not processes_under(*host_tmp.values()), timeout=10,
             what="the hosts' state proxies to stop")


def test_host_a_dies_mid_up_and_host_b_destroys_and_removes_its_stack(
        tmp_path, host_tmp, temporal_address, postgres_server) -> None:
    table = "fleet_kill"
    host_a, host_b = fleet(tmp_path, host_tmp, temporal_address, postgres_server, table,
                           INFRA_API_PROGRAM_DIR=str(HANG_PROGRAM), INFRA_API_REQUEST_TIMEOUT="90")
    worker_a = start_worker(host_a, tmp_path / "a.log")
    worker_b: subprocess.Popen[bytes] | None = None
    api = {**host_b, "INFRA_API_RUN_WORKER": "false", "INFRA_API_PORT": str(free_port())}
    try:
        with (running_server(GUNICORN, api, tmp_path / "api.log") as server,
              concurrent.futures.ThreadPoolExecutor(1) as pool):
            pending = pool.submit(get_json, server.base_url + "/uuid")
            wait_for(lambda: pulumi_descendants(psutil.Process(worker_a.pid), "up"),
                     what="host A running up")
            [lock] = wait_for(lambda: burner_keys(postgres_server, table)["locks"],
                              what="the up's lock row")
            [stack] = burner_keys(postgres_server, table)["stacks"]
            worker_b = start_worker(host_b, tmp_path / "b.log")
            # Host A dies: its worker, every process under it and its detached helpers, at once.
            doomed = {psutil.Process(worker_a.pid), *psutil.Process(worker_a.pid).children(True),
                      *processes_under(tmp_path / "a", host_tmp["a"])}
            for proc in doomed:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            wait_for(lambda: burner_keys(postgres_server, table) == CLEAN, timeout=60,
                     what="host B's teardown")
            status, body = pending.result(timeout=60)
        assert (status, body["code"]) == (502, "engine_error"), body
        assert body["stack"] in stack and lock.split("/")[-2] == body["stack"]
    finally:
        stop_worker(worker_a)
        log_b = stop_worker(worker_b) if worker_b is not None else ""
    assert f"stack={body['stack']}]: activity teardown: succeeded" in log_b
    assert_nothing_left(tmp_path / "b" / "state")
    wait_for(lambda: not processes_under(host_tmp["b"]), timeout=10,
             what="host B's state proxy to stop")


def test_any_api_node_answers_and_streams_for_a_stack_another_node_created(
        tmp_path, host_tmp, temporal_address, postgres_server) -> None:
    host_a, host_b = fleet(tmp_path, host_tmp, temporal_address, postgres_server, "fleet_stacks",
                           INFRA_API_PROGRAMS=str(SLOW_PROGRAM))
    worker = start_worker(host_a, tmp_path / "worker.log")
    api_a = {**host_a, "INFRA_API_RUN_WORKER": "false", "INFRA_API_PORT": str(free_port())}
    api_b = {**host_b, "INFRA_API_RUN_WORKER": "false", "INFRA_API_PORT": str(free_port())}
    try:
        with (running_server(GUNICORN, api_a, tmp_path / "api-a.log") as node_a,
              running_server(GUNICORN, api_b, tmp_path / "api-b.log") as node_b):
            stack, operation = create(node_a, program="slow", config={"seconds": 1})
            # Node B never saw the request; the store they share has the operation's events.
            events = read_stream(node_b, operation)
            assert events[-1][2]["data"] == {"status": "succeeded"}
            assert any(kind == "resource" for _, kind, _ in events)
            _, _, seen_by_b = call(node_b, "GET", f"/stacks/{stack}")
            assert seen_by_b == call(node_a, "GET", f"/stacks/{stack}")[2]
            assert seen_by_b["status"] == "ready" and seen_by_b["outputs"]["id"]

            _, _, accepted = call(node_b, "DELETE", f"/stacks/{stack}")
            assert finished(node_a, accepted["operation"]["id"])["status"] == "succeeded"
            assert call(node_a, "GET", f"/stacks/{stack}")[0] == 404
    finally:
        stop_worker(worker)
    with psycopg.connect(postgres_server.url()) as conn:
        kinds = conn.execute(b"SELECT kind FROM burner_operations WHERE stack = %s ORDER BY created",
                             (stack,)).fetchall()
    assert kinds == [("create",), ("destroy",)]
    for host in ("a", "b"):  # neither host kept records of its own
        assert not (tmp_path / host / "state" / "operations.db").exists()
