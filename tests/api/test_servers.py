"""``python infra_api.py`` and gunicorn as real processes on free ports."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from infra import devserver
from infra.devserver import SOCKET_TIMEOUT_SECONDS
from infra.errors import InfraError
from infra.settings import Settings
from tests.api import checks
from tests.api.support import PYTHON, assert_nothing_left, burner_stacks, post_chunked
from tests.harness import free_port, get_json, start_server, wait_for

pytestmark = pytest.mark.slow


def assert_all_endpoints_answer(base_url: str) -> None:
    status, body = get_json(base_url + "/uuid")
    assert status == 200, body
    checks.assert_uuid(body["response"])
    status, body = get_json(base_url + "/id?bytes=12")
    assert status == 200, body
    checks.assert_id(body["response"], body["hex"], 12)
    status, body = get_json(base_url + "/string?length=9")
    assert status == 200, body
    checks.assert_string(body["response"], 9)
    status, body = get_json(base_url + "/time?tz=Pacific/Auckland")
    assert status == 200, body
    checks.assert_time(body["response"], "Pacific/Auckland")
    status, body = get_json(base_url + "/id?bytes=99")
    assert (status, body["parameter"]) == (400, "bytes")
    status, body = get_json(base_url + "/missing")
    assert status == 404


@pytest.fixture
def dev_server(server_environ, tmp_path):
    """``python infra_api.py`` on a free port."""
    yield from start_server([PYTHON, "infra_api.py"], server_environ, tmp_path / "server.log")


@pytest.fixture
def gunicorn_server(server_environ, tmp_path):
    """``gunicorn -c gunicorn.conf.py infra_api:application`` on a free port."""
    yield from start_server([PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "infra_api:application"], server_environ, tmp_path / "server.log")


def assert_no_stack_left(environ) -> None:
    from infra.settings import Settings

    assert burner_stacks(Settings.from_environ(environ)) == []


def test_dev_server_answers_every_endpoint(dev_server, server_environ):
    assert_all_endpoints_answer(dev_server.base_url)
    assert_no_stack_left(server_environ)
    assert "auth: off (INFRA_API_TOKEN is not set)" in dev_server.output()


def test_dev_server_serves_requests_concurrently(dev_server):
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: get_json(dev_server.base_url + "/uuid"), range(3)))
    assert [status for status, _ in results] == [200, 200, 200]
    assert len({body["stack"] for _, body in results}) == 3


def test_dev_server_stops_cleanly_on_ctrl_c(dev_server):
    dev_server.proc.send_signal(signal.SIGINT)
    assert dev_server.proc.wait(timeout=30) == 0
    assert "stopped" in dev_server.output()


def test_dev_server_finishes_in_flight_requests_on_ctrl_c(dev_server):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(get_json, dev_server.base_url + "/uuid")
        time.sleep(0.5)  # let the request reach the pipeline
        dev_server.proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
        dev_server.proc.send_signal(signal.SIGINT)  # an impatient second Ctrl-C
        status, body = pending.result(timeout=120)
    assert status == 200
    checks.assert_uuid(body["response"])
    assert dev_server.proc.wait(timeout=60) == 0
    assert f"stack={body['stack']}]: remove done" in dev_server.output()


def test_dev_server_asks_for_a_length_instead_of_waiting_for_a_chunked_body(dev_server):
    # wsgiref cannot find a chunked body's end: reading on would wait for the client forever.
    status, body = post_chunked(dev_server, "/stacks", [b'{"program": "sandbox"}'])
    assert status == 411 and body["code"] == "length_required", body


def test_dev_server_rejects_a_bad_setting_at_startup(server_environ, tmp_path):
    env = {**server_environ, "INFRA_API_PORT": "http"}
    proc = subprocess.run([PYTHON, "infra_api.py"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0
    assert "INFRA_API_PORT" in proc.stderr


def test_gunicorn_rejects_a_bad_setting_in_one_line(server_environ):
    env = {**os.environ, **server_environ, "INFRA_API_ENGINE": "terraform"}
    proc = subprocess.run([PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: INFRA_API_ENGINE='terraform' is invalid: expected one of auto, cli, offline"], \
        proc.stderr


def test_gunicorn_answers_every_endpoint(gunicorn_server, server_environ):
    assert_all_endpoints_answer(gunicorn_server.base_url)
    assert_no_stack_left(server_environ)
    assert "infra.basic" in gunicorn_server.output()


def test_ctrl_c_in_the_terminal_fails_no_in_flight_request(dev_server, server_environ):
    # The terminal signals the whole foreground process group: the server and every process
    # it started that stayed in the group.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pending = [pool.submit(get_json, dev_server.base_url + "/uuid") for _ in range(2)]
        wait_for(lambda: "activity burn: attempt" in dev_server.output(), what="a provision")
        time.sleep(0.3)
        os.killpg(dev_server.proc.pid, signal.SIGINT)
        results = [future.result(timeout=120) for future in pending]
    assert [status for status, _ in results] == [200, 200], results
    assert dev_server.proc.wait(timeout=60) == 0
    assert_nothing_left(Path(server_environ["INFRA_API_STATE_DIR"]))


def test_an_idle_half_sent_request_does_not_hold_the_stop(dev_server):
    with socket.create_connection(("127.0.0.1", dev_server.port)) as idle:
        idle.sendall(b"GET /uuid HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        time.sleep(0.2)
        started = time.monotonic()
        dev_server.proc.send_signal(signal.SIGTERM)
        assert dev_server.proc.wait(timeout=60) == 0
    assert time.monotonic() - started < SOCKET_TIMEOUT_SECONDS + 15


@pytest.mark.parametrize(("setting", "message"), [
    ({"INFRA_API_HOST": "no-such-host.invalid"}, "cannot listen on no-such-host.invalid"),
    ({"INFRA_API_PROGRAM_DIR": "/nonexistent/program"}, "cannot serve"),
    # Directories that cannot be made are named by their own settings, not taken for the port
    # or the state dir.
    ({"INFRA_API_VENV_DIR": "/proc/no-venvs"}, "INFRA_API_VENV_DIR='/proc/no-venvs'"),
    ({"INFRA_API_PULUMI_HOME": "/proc/no-home"}, "INFRA_API_PULUMI_HOME='/proc/no-home'"),
])
def test_start_up_failures_are_one_line_errors(server_environ, setting, message):
    env = {**os.environ, **server_environ, **setting}
    proc = subprocess.run([PYTHON, "infra_api.py"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_nothing_left(Path(server_environ["INFRA_API_STATE_DIR"]))


def test_a_busy_port_is_a_one_line_error(dev_server, server_environ, tmp_path):
    env = {**os.environ, **server_environ, "INFRA_API_STATE_DIR": str(tmp_path / "other")}
    proc = subprocess.run([PYTHON, "infra_api.py"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1
    assert "cannot listen on 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr
    assert_nothing_left(tmp_path / "other")


def test_gunicorn_keeps_room_for_keep_alive_at_the_highest_max_inflight(server_environ):
    # gunicorn's own start-up check of our settings, as its arbiter runs it.
    code = ("import runpy\n"
            "from gunicorn.config import Config\n"
            "from gunicorn.workers.gthread import ThreadWorker\n"
            "settings = runpy.run_path('gunicorn.conf.py')\n"
            "config = Config()\n"
            "for name in ('threads', 'worker_connections', 'keepalive'):\n"
            "    if name in settings:\n"
            "        config.set(name, settings[name])\n"
            "class Log:\n"
            "    def warning(self, message, *args):\n"
            "        print('WARNING', message % args)\n"
            "ThreadWorker.check_config(config, Log())\n"
            "print('threads', config.threads)\n")
    environ = {**server_environ, "INFRA_API_MAX_INFLIGHT": "1024"}
    result = subprocess.run([PYTHON, "-c", code], env=environ, capture_output=True, text=True,
                            timeout=60, check=True)
    assert "threads 1024" in result.stdout
    assert "WARNING" not in result.stdout, result.stdout


def test_dev_server_takes_its_port_before_the_service_starts_anything(monkeypatch, tmp_path):
    """The embedded Temporal server picks a free port of its own as the service starts: the
    API's port must already be taken then, or it could pick that one."""
    port = free_port()
    settings = Settings.from_environ({"INFRA_API_PORT": str(port),
                                      "INFRA_API_STATE_DIR": str(tmp_path / "state")})
    listening: list[bool] = []

    def start(self, run_worker=None):
        with socket.socket() as probe:
            listening.append(probe.connect_ex(("127.0.0.1", port)) == 0)
        raise InfraError("stopped by the test")

    monkeypatch.setattr(devserver.Service, "start", start)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(InfraError, match="stopped by the test"):
            devserver.serve(settings)
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert listening == [True]
