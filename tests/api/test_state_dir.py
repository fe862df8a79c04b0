"""An unusable state directory: a clear 503, the first error reported, readiness turns not-ready."""

from __future__ import annotations

import shutil

import falcon.testing
import pytest

import infra_api
from infra.service import Service
from infra.settings import Settings
from tests.api.support import burner_stacks, make_environ
from tests.harness import wait_for

pytestmark = pytest.mark.slow


def test_a_state_dir_that_cannot_be_written_gives_503_and_not_ready(tmp_path, caplog):
    settings = Settings.from_environ(make_environ(tmp_path / "state"))
    service = Service(settings)
    service.start()
    try:
        client = falcon.testing.TestClient(infra_api.create_app(settings, operations=service))
        # Ready once the worker's first poll reached Temporal (a loaded machine takes a moment).
        wait_for(lambda: client.simulate_get("/readyz").status_code == 200, timeout=60,
                 what="the service to be ready")
        # Where each stack's workspace goes can no longer be written.
        shutil.rmtree(settings.work_dir)
        settings.work_dir.write_text("")
        result = client.simulate_get("/uuid")
        assert result.status_code == 503, result.text
        assert result.json["code"] == "state_dir_unusable"
        assert int(result.headers["Retry-After"]) > 0
        ready = client.simulate_get("/readyz")
        assert (ready.status_code, ready.json["checks"]["state_dir"]) == (503, False)
    finally:
        service.stop()
    assert burner_stacks(settings) == []
    # One report per failed activity (the request's, the reaper's pass) and one from the API
    # node: no retry storm.
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) <= 3, [r.getMessage() for r in tracebacks]
