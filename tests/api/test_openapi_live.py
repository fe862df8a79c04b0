"""schemathesis against the live app: every status documented, no 500, no schema violation."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.api.support import CLEAN, GUNICORN, PYTHON, leftovers
from tests.harness import running_server

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(PYTHON).parent / "schemathesis")
TOKEN = "openapi-test-token"


def schemathesis(base_url: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One bounded schemathesis run with every check, authenticated with the token."""
    argv = [SCHEMATHESIS, "run", base_url + "/openapi.json", "--checks", "all",
            "--max-examples", "5", "--workers", "2", "--seed", "20261123",
            "--request-timeout", "120", "--generation-database", "none",
            "--header", f"Authorization: Bearer {TOKEN}", *extra]
    # Run where schemathesis may leave its own files: the test's temp dir, not the checkout.
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=cwd)


def test_schemathesis_finds_no_issue(server_environ, tmp_path):
    environ = {**server_environ, "INFRA_API_TOKEN": TOKEN}
    with running_server(GUNICORN, environ, tmp_path / "server.log") as server:
        # The coverage phase enumerates enums, and /time's tz enum has every IANA zone: one
        # stack each would take minutes, so /time gets the random phases only.
        most = schemathesis(server.base_url, tmp_path, "--phases", "examples,coverage,fuzzing",
                            "--exclude-path", "/time")
        time = schemathesis(server.base_url, tmp_path, "--phases", "examples,fuzzing",
                            "--include-path", "/time")
    for run in (most, time):
        assert run.returncode == 0, run.stdout + run.stderr
        assert "No issues found" in run.stdout
    assert "Tested: 9" in most.stdout  # every operation but /time
    assert leftovers(Settings.from_environ(environ)) == CLEAN
