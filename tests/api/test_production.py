"""Production behaviour with real processes: gunicorn under load, deadlines, kill -9, SIGTERM, auth."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import time
import urllib.request

import psutil
import pytest

from infra.settings import Settings
from tests.api import checks
from tests.api.support import (
    CLEAN,
    GUNICORN,
    HANG_PROGRAM,
    PASSPHRASE,
    leftovers,
)
from tests.harness import ServerProcess, get_json, running_server, wait_for

pytestmark = pytest.mark.slow


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 120):
    """GET and return (status, headers, body bytes) for any status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


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


def test_hanging_program_gets_504_within_the_deadline_and_leaves_nothing(server_environ, tmp_path):
    timeout = 6.0
    environ = {**server_environ, "INFRA_API_PROGRAM_DIR": str(HANG_PROGRAM),
               "INFRA_API_REQUEST_TIMEOUT": str(timeout), "INFRA_API_CANCEL_GRACE": "8"}
    with running_server(GUNICORN, environ, tmp_path / "server.log") as server:
        started = time.monotonic()
        status, body = get_json(server.base_url + "/uuid")
        elapsed = time.monotonic() - started
        master = psutil.Process(server.proc.pid)
        assert pulumi_descendants(master, "--stack") == []
        assert not any("programs/hang" in " ".join(p.cmdline()) for p in master.children(recursive=True))
    assert status == 504, body
    assert (body["code"], body["phase"]) == ("deadline_exceeded", "up")
    # Deadline, then SIGINT (the program stops at once), destroy and remove: a few seconds at most.
    assert timeout <= elapsed < timeout + 10, elapsed
    assert leftovers(Settings.from_environ(environ)) == CLEAN
    assert f"{body['stack']}: remove done" in server.output()


def test_kill_9_during_up_then_restart_leaves_nothing(server_environ, tmp_path):
    # The hanging program keeps the killed worker's orphaned engine running and holding the
    # stack's lock: the reaper has to stop it before it can destroy the stack.
    environ = {**server_environ, "INFRA_API_PROGRAM_DIR": str(HANG_PROGRAM),
               "INFRA_API_REQUEST_TIMEOUT": "60", "INFRA_API_CANCEL_GRACE": "5"}
    settings = Settings.from_environ(environ)
    first = ServerProcess(GUNICORN, environ, int(environ["INFRA_API_PORT"]), tmp_path / "first.log")
    try:
        first.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(get, first.base_url + "/uuid")
            master = psutil.Process(first.proc.pid)
            engine = wait_for(lambda: pulumi_descendants(master, "up"), what="up")[0]
            stack = engine.cmdline()[engine.cmdline().index("--stack") + 1]
            wait_for(lambda: leftovers(settings)["locks"], what="the up to take its lock")
            engine.parent().send_signal(signal.SIGKILL)
            # The client sees its connection drop (gunicorn's master replaces the worker).
            with pytest.raises((ConnectionError, urllib.error.URLError)):
                pending.result(timeout=30)
    finally:
        first.stop()
    assert engine.is_running()  # the orphaned engine still runs `up` ...
    assert stack in leftovers(settings)["stacks"]  # ... so the stack is still there
    assert leftovers(settings)["locks"]
    with running_server(GUNICORN, environ, tmp_path / "server.log") as server:
        # The master's start-up reaper pass runs before the server answers.
        assert leftovers(settings) == CLEAN
        assert not engine.is_running()
        assert f"reaper: destroyed and removed orphaned stack {stack}" in server.output()


def test_sigterm_finishes_in_flight_requests_before_exit(server_environ, tmp_path):
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
        assert (status, json.loads(body)["status"]) == (200, "ready")
        status, _, body = get(url + "/openapi.json", auth)
        assert status == 200 and "/uuid" in json.loads(body)["paths"]
        status, _, metrics = get(url + "/metrics", auth)
        assert status == 200
        text = metrics.decode()
        assert 'burner_http_requests_total{method="GET",route="/uuid",status="200"} 1.0' in text
        assert 'burner_http_requests_total{method="GET",route="/uuid",status="401"} 2.0' in text
        assert 'burner_phase_duration_seconds_count{phase="up"} 1.0' in text
        assert "burner_inflight_stacks 0.0" in text
        log = server.output()
    mine = [json.loads(line) for line in log.splitlines()
            if line.startswith("{") and "live-req-1" in line]
    assert any(entry["stack"] == stack and entry["logger"] == "infra.basic" for entry in mine)
    assert all(entry["request_id"] == "live-req-1" for entry in mine)
    assert PASSPHRASE not in log and "t0ken-value" not in log
