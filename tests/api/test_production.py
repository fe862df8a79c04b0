"""Production behaviour with real processes: gunicorn under load, deadlines, kill -9, SIGTERM, auth."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import time
import urllib.request
import uuid

import psutil
import pytest

from infra.settings import PROJECT_ROOT, Settings
from tests.api import checks
from tests.api.support import (
    CLEAN,
    GUNICORN,
    HANG_PROGRAM,
    PASSPHRASE,
    PAUSE_PROGRAM,
    SLOW_PROGRAM,
    all_stacks,
    assert_nothing_left,
    call,
    concurrently,
    create,
    finished,
    leftovers,
    make_environ,
    processes_of,
    pulumi_descendants,
    start_worker,
    stop_worker,
)
from tests.harness import ServerProcess, free_port, get_json, running_server, wait_for

pytestmark = pytest.mark.slow


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 120):
    """GET and return (status, headers, body bytes) for any status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_gunicorn_serves_16_concurrent_requests_and_leaves_nothing(server_environ, tmp_path):
    with running_server(GUNICORN, server_environ, tmp_path / "server.log") as server:
        results = concurrently(16, server.base_url + "/uuid")
    assert [status for status, _ in results] == [200] * 16, results
    for _, body in results:
        checks.assert_uuid(body["response"])
    assert len({body["stack"] for _, body in results}) == 16
    assert leftovers(Settings.from_environ(server_environ)) == CLEAN


def test_max_inflight_one_refuses_concurrent_requests_with_503(server_environ, tmp_path):
    environ = {**server_environ, "INFRA_API_MAX_INFLIGHT": "1"}
    with (running_server(GUNICORN, environ, tmp_path / "server.log") as server,
          concurrent.futures.ThreadPoolExecutor(6) as pool):
        url = server.base_url + "/uuid"
        results = list(pool.map(lambda _: get(url), range(6)))
    statuses = sorted(status for status, _, _ in results)
    # Two workers with one slot each: at most two stacks run, every other request is refused.
    assert 1 <= statuses.count(200) <= 2, statuses
    assert statuses.count(503) == 6 - statuses.count(200), statuses
    for status, headers, body in results:
        if status == 503:
            assert int(headers["Retry-After"]) >= 1
            assert json.loads(body)["code"] == "overloaded"
    assert leftovers(Settings.from_environ(environ)) == CLEAN


def test_hanging_program_gets_504_soon_after_the_deadline_and_its_stack_goes(server_environ,
                                                                             tmp_path):
    timeout = 5.0
    environ = {**server_environ, "INFRA_API_PROGRAM_DIR": str(HANG_PROGRAM),
               "INFRA_API_REQUEST_TIMEOUT": str(timeout), "INFRA_API_CANCEL_GRACE": "8"}
    settings = Settings.from_environ(environ)
    with running_server(GUNICORN, environ, tmp_path / "server.log") as server:
        started = time.monotonic()
        status, body = get_json(server.base_url + "/uuid")
        elapsed = time.monotonic() - started
        assert status == 504, body
        assert (body["code"], body["phase"]) == ("deadline_exceeded", "up")
        assert timeout <= elapsed < timeout + 2, elapsed
        # The workflow tears down after the answer: interrupt, clear the lock, destroy, remove.
        wait_for(lambda: leftovers(settings) == CLEAN, timeout=60, what="the teardown")
        master = psutil.Process(server.proc.pid)
        wait_for(lambda: not pulumi_descendants(master, "--stack"), what="no pulumi command")
        assert not any("programs/hang" in " ".join(p.cmdline())
                       for p in master.children(recursive=True))
        assert f"stack={body['stack']}]: remove done" in server.output()


def test_one_api_node_and_two_workers_share_the_work(tmp_path, temporal_address):
    environ = make_environ(tmp_path / "state", INFRA_API_TEMPORAL_ADDRESS=temporal_address,
                           INFRA_API_TASK_QUEUE="share-" + tmp_path.name)
    workers = [start_worker(environ, tmp_path / f"worker{i}.log") for i in (1, 2)]
    api = {**environ, "INFRA_API_RUN_WORKER": "false", "INFRA_API_PORT": str(free_port())}
    try:
        with running_server(GUNICORN, api, tmp_path / "api.log") as server:
            results = concurrently(16, server.base_url + "/uuid")
            api_log = server.output()
    finally:
        worker_logs = [stop_worker(worker) for worker in workers]
    assert [status for status, _ in results] == [200] * 16, results
    assert len({body["operation"] for _, body in results}) == 16
    done = [log.count("activity burn: succeeded") for log in worker_logs]
    assert sum(done) == 16 and all(done), done
    assert "activity burn" not in api_log  # the API node runs no activity
    assert leftovers(Settings.from_environ(environ)) == CLEAN
    assert_nothing_left(tmp_path / "state")


def test_the_last_worker_stopping_mid_burn_still_lets_the_request_answer(tmp_path,
                                                                         temporal_address):
    environ = make_environ(tmp_path / "state", INFRA_API_TEMPORAL_ADDRESS=temporal_address,
                           INFRA_API_TASK_QUEUE="last-" + tmp_path.name,
                           INFRA_API_PROGRAM_DIR=str(PAUSE_PROGRAM),
                           INFRA_API_REQUEST_TIMEOUT="60")
    worker = start_worker(environ, tmp_path / "worker.log")
    api = {**environ, "INFRA_API_RUN_WORKER": "false", "INFRA_API_PORT": str(free_port())}
    try:
        with (running_server(GUNICORN, api, tmp_path / "api.log") as server,
              concurrent.futures.ThreadPoolExecutor(1) as pool):
            pending = pool.submit(get_json, server.base_url + "/uuid")
            wait_for(lambda: pulumi_descendants(psutil.Process(worker.pid), "up"),
                     what="the worker running up")
            # SIGTERM: the worker finishes the burn, then exits; no worker is left to run the
            # rest of the workflow, which only reports what the burn did.
            log = stop_worker(worker)
            assert "activity burn: succeeded" in log
            status, body = pending.result(timeout=90)
            api_log = server.output()
    finally:
        stop_worker(worker)
    assert status == 200, body
    assert "answered from the burn's result in the workflow's history" in api_log
    assert (body["request"], str(uuid.UUID(body["response"]))) == ("uuid", body["response"])
    assert leftovers(Settings.from_environ(environ)) == CLEAN


def test_a_worker_stops_on_sigterm_whichever_of_its_threads_the_signal_reaches(
        tmp_path, temporal_address):
    """The kernel hands a process's signal to any thread not blocking it: Temporal's own
    threads included. The worker still drains and stops."""
    environ = make_environ(tmp_path / "state", INFRA_API_TEMPORAL_ADDRESS=temporal_address,
                           INFRA_API_TASK_QUEUE="sigterm-" + tmp_path.name)
    worker = start_worker(environ, tmp_path / "worker.log")
    try:
        threads = [t.id for t in psutil.Process(worker.pid).threads() if t.id != worker.pid]
        assert threads, "the worker should run threads besides its main one"
        # kill() with a thread's id is meant for the process, but goes to that thread first.
        os.kill(threads[-1], signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        log = stop_worker(worker)
    assert "worker: stopped" in log


def test_kill_9_of_the_worker_running_up_then_the_other_worker_tears_down(tmp_path,
                                                                          temporal_address):
    environ = make_environ(tmp_path / "state", INFRA_API_TEMPORAL_ADDRESS=temporal_address,
                           INFRA_API_TASK_QUEUE="kill-" + tmp_path.name,
                           INFRA_API_PROGRAM_DIR=str(HANG_PROGRAM),
                           INFRA_API_REQUEST_TIMEOUT="90")
    settings = Settings.from_environ(environ)
    workers = [start_worker(environ, tmp_path / f"worker{i}.log") for i in (1, 2)]
    api = {**environ, "INFRA_API_RUN_WORKER": "false", "INFRA_API_PORT": str(free_port())}
    try:
        with (running_server(GUNICORN, api, tmp_path / "api.log") as server,
              concurrent.futures.ThreadPoolExecutor(1) as pool):
            pending = pool.submit(get_json, server.base_url + "/uuid")
            busy = wait_for(lambda: [w for w in workers
                                     if pulumi_descendants(psutil.Process(w.pid), "up")],
                            what="a worker running up")[0]
            stack = leftovers(settings)["stacks"][0]
            wait_for(lambda: leftovers(settings)["locks"], what="the up to take its lock")
            busy.kill()
            killed_at = time.monotonic()
            wait_for(lambda: leftovers(settings) == CLEAN, timeout=60,
                     what="the other worker's teardown")
            assert time.monotonic() - killed_at < 60
            status, body = pending.result(timeout=60)
        assert (status, body["code"], body["stack"]) == (502, "engine_error", stack)
    finally:
        logs = [stop_worker(worker) for worker in workers]
    survivor = logs[1] if busy is workers[0] else logs[0]
    assert f"stack={stack}]: activity teardown: succeeded" in survivor
    assert_nothing_left(tmp_path / "state")


def test_kill_9_of_the_whole_service_mid_up_then_a_restart_tears_down(server_environ, tmp_path):
    environ = {**server_environ, "INFRA_API_PROGRAM_DIR": str(HANG_PROGRAM),
               "INFRA_API_REQUEST_TIMEOUT": "90"}
    settings = Settings.from_environ(environ)
    first = ServerProcess(GUNICORN, environ, int(environ["INFRA_API_PORT"]), tmp_path / "first.log")
    try:
        first.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, first.base_url + "/uuid")
            master = psutil.Process(first.proc.pid)
            wait_for(lambda: pulumi_descendants(master, "up"), what="up")
            stack = leftovers(settings)["stacks"][0]
            wait_for(lambda: leftovers(settings)["locks"], what="the up to take its lock")
            # API, workers and the embedded Temporal server, all at once.
            family = [master, *master.children(recursive=True)]
            for proc in family:
                proc.kill()
            with pytest.raises((ConnectionError, urllib.error.URLError)):
                pending.result(timeout=30)
    finally:
        first.stop()
    wait_for(lambda: processes_of(tmp_path / "state") == [], what="the orphans to stop")
    assert stack in leftovers(settings)["stacks"]
    with running_server(GUNICORN, environ, tmp_path / "server.log") as server:
        restarted = time.monotonic()
        wait_for(lambda: leftovers(settings) == CLEAN, timeout=60, what="the teardown")
        assert time.monotonic() - restarted < 60
        assert f"stack={stack}]: activity teardown: succeeded" in server.output()


def test_a_stack_whose_program_left_the_catalog_can_still_be_destroyed(server_environ, tmp_path):
    sandbox = PROJECT_ROOT / "programs" / "sandbox"
    before = {**server_environ, "INFRA_API_PROGRAMS": f"{SLOW_PROGRAM}:{sandbox}"}
    with running_server(GUNICORN, before, tmp_path / "before.log") as server:
        stack, operation = create(server, program="slow", config={"seconds": 0})
        assert finished(server, operation)["status"] == "succeeded"

    after = {**server_environ, "INFRA_API_PROGRAMS": str(sandbox)}
    with running_server(GUNICORN, after, tmp_path / "after.log") as server:
        status, _, body = call(server, "PATCH", f"/stacks/{stack}", {"config": {"seconds": 1}})
        assert status == 409 and "no longer in the catalog" in body["description"], body
        status, _, accepted = call(server, "DELETE", f"/stacks/{stack}")
        assert status == 202, accepted
        assert finished(server, accepted["operation"]["id"])["status"] == "succeeded"
        assert call(server, "GET", f"/stacks/{stack}")[0] == 404
    assert all_stacks(Settings.from_environ(after)) == []


def test_kill_9_of_the_gunicorn_master_alone_stops_the_embedded_temporal_and_the_rest(
        server_environ, tmp_path):
    server = ServerProcess(GUNICORN, server_environ, int(server_environ["INFRA_API_PORT"]),
                           tmp_path / "server.log")
    try:
        server.wait_ready()
        assert get_json(server.base_url + "/uuid")[0] == 200
        temporal = [proc for proc in psutil.Process(server.proc.pid).children()
                    if "start-dev" in " ".join(proc.cmdline())]
        assert len(temporal) == 1
        server.proc.kill()
        # Workers notice their master is gone, the resident engine its callers, and the kernel
        # tells Temporal: nothing of the service is left to hold the state dir.
        wait_for(lambda: not temporal[0].is_running(), timeout=30, what="Temporal's exit")
        wait_for(lambda: processes_of(tmp_path / "state") == [], timeout=30,
                 what="the service's processes to exit")
    finally:
        server.stop()


def test_sigterm_finishes_in_flight_requests_then_stops_everything(server_environ, tmp_path):
    server = ServerProcess(GUNICORN, server_environ, int(server_environ["INFRA_API_PORT"]),
                           tmp_path / "server.log")
    try:
        server.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pending = [pool.submit(get_json, server.base_url + "/uuid") for _ in range(2)]
            master = psutil.Process(server.proc.pid)
            wait_for(lambda: pulumi_descendants(master, "--stack"), what="a pulumi command")
            server.proc.send_signal(signal.SIGTERM)
            results = [f.result(timeout=120) for f in pending]
        assert server.proc.wait(timeout=120) == 0
    finally:
        server.stop()
    assert [status for status, _ in results] == [200, 200]
    assert leftovers(Settings.from_environ(server_environ)) == CLEAN
    assert "embedded Temporal: stopped" in server.output()
    assert_nothing_left(tmp_path / "state")


def test_token_readiness_metrics_openapi_and_json_logs_live(server_environ, tmp_path):
    environ = {**server_environ, "INFRA_API_TOKEN": "t0ken-value", "INFRA_API_LOG_FORMAT": "json",
               "INFRA_API_LOG_LEVEL": "DEBUG"}
    auth = {"Authorization": "Bearer t0ken-value"}
    with running_server(GUNICORN, environ, tmp_path / "server.log") as server:
        url = server.base_url
        assert get(url + "/healthz")[0] == 200
        status, headers, body = get(url + "/uuid")
        assert (status, json.loads(body)["code"]) == (401, "unauthorized")
        assert get(url + "/uuid", {"Authorization": "Bearer nope"})[0] == 401
        status, headers, body = get(url + "/uuid", {**auth, "X-Request-ID": "live-req-1"})
        assert status == 200 and headers["X-Request-ID"] == "live-req-1"
        stack = json.loads(body)["stack"]
        status, _, body = get(url + "/readyz", auth)
        ready = json.loads(body)
        assert (status, ready["status"]) == (200, "ready")
        assert ready["checks"]["temporal"] and ready["checks"]["worker"]
        status, _, body = get(url + "/openapi.json", auth)
        assert status == 200 and "/uuid" in json.loads(body)["paths"]
        status, _, metrics = get(url + "/metrics", auth)
        assert status == 200
        text = metrics.decode()
        assert 'burner_http_requests_total{method="GET",route="/uuid",status="200"} 1.0' in text
        assert 'burner_http_requests_total{method="GET",route="/uuid",status="401"} 2.0' in text
        assert 'burner_phase_duration_seconds_count{phase="up"} 1.0' in text
        assert 'burner_workflows_total{outcome="succeeded"} 1.0' in text
        assert 'burner_activities_total{activity="burn",outcome="succeeded"} 1.0' in text
        assert "burner_inflight_stacks 0.0" in text
        log = server.output()
    assert "auth: bearer token required" in log
    mine = [json.loads(line) for line in log.splitlines()
            if line.startswith("{") and "live-req-1" in line]
    assert any(entry["stack"] == stack and entry["logger"] == "infra.orchestrator" for entry in mine)
    assert all(entry["request_id"] == "live-req-1" for entry in mine)
    steps = [json.loads(line) for line in log.splitlines()
             if line.startswith("{") and '"logger": "infra.basic"' in line]
    assert steps and all((e["operation"], e["stack"]) == (stack, stack) for e in steps)
    assert PASSPHRASE not in log and "t0ken-value" not in log
