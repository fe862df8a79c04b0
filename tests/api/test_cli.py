"""``python -m infra.basic`` (``burner burn``) runs one burner stack in-process."""

from __future__ import annotations

import json
import subprocess

import pytest

from infra.settings import PROJECT_ROOT
from tests.api import checks
from tests.api.support import PYTHON, make_environ

pytestmark = pytest.mark.slow


def run_cli(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **make_environ(tmp_path / "state")}
    return subprocess.run([PYTHON, "-m", "infra.basic", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_prints_a_uuid(tmp_path):
    proc = run_cli(tmp_path, "uuid")
    assert proc.returncode == 0, proc.stderr
    checks.assert_uuid(proc.stdout.strip())


def test_takes_parameters(tmp_path):
    proc = run_cli(tmp_path, "string", "length=7")
    assert proc.returncode == 0, proc.stderr
    checks.assert_string(proc.stdout.strip(), 7)


def test_bad_parameter_fails_without_a_stack(tmp_path):
    proc = run_cli(tmp_path, "id", "bytes=100")
    assert proc.returncode == 1
    assert "bytes" in proc.stderr and "1 to 64" in proc.stderr
    assert not (tmp_path / "state" / "backend").exists()


def test_json_prints_the_body_of_the_http_route_and_leaves_no_files(tmp_path):
    proc = run_cli(tmp_path, "id", "bytes=4", "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert set(body) == {"request", "response", "hex", "operation", "params", "stack",
                         "duration_ms", "phases_ms"}
    assert body["params"] == {"bytes": "4"}
    checks.assert_id(body["response"], body["hex"], 4)
    state = tmp_path / "state"
    assert list((state / "work").iterdir()) == []
    assert not (state / "tmp").exists()


def test_a_standalone_worker_needs_the_cluster_address(tmp_path):
    import os
    from pathlib import Path

    env = {**os.environ, **make_environ(tmp_path / "state")}
    env.pop("INFRA_API_TEMPORAL_ADDRESS", None)
    proc = subprocess.run([str(Path(PYTHON).parent / "burner"), "worker"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "INFRA_API_TEMPORAL_ADDRESS" in proc.stderr and "Traceback" not in proc.stderr
