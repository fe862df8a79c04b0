"""``python infra_api.py`` and gunicorn as real processes on free ports."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import pytest

from tests.api import checks
from tests.api.support import PYTHON, burner_stacks
from tests.harness import get_json, start_server

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
                             "infra_api:application"], server_environ, tmp_path)


def assert_no_stack_left(environ) -> None:
    from infra.settings import Settings

    assert burner_stacks(Settings.from_environ(environ)) == []


def test_dev_server_answers_every_endpoint(dev_server, server_environ):
    assert_all_endpoints_answer(dev_server.base_url)
    assert_no_stack_left(server_environ)


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
    assert f"{body['stack']}: remove done" in dev_server.output()


def test_dev_server_rejects_a_bad_setting_at_startup(server_environ, tmp_path):
    import subprocess

    env = {**server_environ, "INFRA_API_PORT": "http"}
    proc = subprocess.run([PYTHON, "infra_api.py"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0
    assert "INFRA_API_PORT" in proc.stderr


def test_gunicorn_answers_every_endpoint(gunicorn_server, server_environ):
    assert_all_endpoints_answer(gunicorn_server.base_url)
    assert_no_stack_left(server_environ)
    assert "infra.basic" in gunicorn_server.output()
