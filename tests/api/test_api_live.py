"""Every endpoint through the Falcon app and the real pipeline."""

from __future__ import annotations

import logging

import pytest

from tests.api import checks
from tests.api.support import burner_stacks
from tests.harness import wait_for

pytestmark = pytest.mark.slow


def test_uuid(live_client):
    result = live_client.simulate_get("/uuid")
    assert result.status_code == 200, result.text
    assert result.json["request"] == "uuid"
    assert result.json["stack"].startswith("burner-")
    checks.assert_uuid(result.json["response"])


def test_an_answer_comes_from_the_local_activity_once_its_operation_is_closed_and_the_workflow_still_completes(
        live_client, live_service, caplog):
    with caplog.at_level(logging.DEBUG, logger="infra.orchestrator"):
        result = live_client.simulate_get("/uuid")
    assert result.status_code == 200, result.text
    assert "answered from the burn activity in this process" in caplog.text
    record = live_service.store.get_operation(result.json["operation"])
    assert record is not None and record.status == "succeeded"
    assert result.json["stack"] not in burner_stacks(live_service.settings)
    wait_for(lambda: live_service.orchestrator.owner_status(result.json["stack"]) == "ended",
             timeout=10, what="the burn's workflow to complete")


def test_id_with_bytes(live_client):
    result = live_client.simulate_get("/id", params={"bytes": "16"})
    assert result.status_code == 200, result.text
    checks.assert_id(result.json["response"], result.json["hex"], 16)


def test_id_default_is_eight_bytes(live_client):
    result = live_client.simulate_get("/id")
    checks.assert_id(result.json["response"], result.json["hex"], 8)


def test_string_with_length(live_client):
    result = live_client.simulate_get("/string", params={"length": "40"})
    assert result.status_code == 200, result.text
    checks.assert_string(result.json["response"], 40)


def test_time_in_zone(live_client):
    result = live_client.simulate_get("/time", params={"tz": "Europe/Berlin"})
    assert result.status_code == 200, result.text
    checks.assert_time(result.json["response"], "Europe/Berlin")


@pytest.mark.parametrize(("path", "params"), [
    ("/id", {"bytes": "0"}),
    ("/string", {"length": "1000"}),
    ("/time", {"tz": "Nowhere/Special"}),
    ("/uuid", {"x": "1"}),
])
def test_bad_parameters_create_no_stack(tmp_path, path, params):
    import falcon.testing

    import infra_api
    from infra.settings import Settings
    from tests.api.support import make_environ

    # A fresh state dir with the real pipeline: a stack would leave a backend behind.
    settings = Settings.from_environ(make_environ(tmp_path / "state"))
    client = falcon.testing.TestClient(infra_api.create_app(settings))
    result = client.simulate_get(path, params=params)
    assert result.status_code == 400
    assert result.json["parameter"] == next(iter(params))
    assert not settings.backend_dir.exists()
    assert burner_stacks(settings) == []


def test_no_stack_is_left_after_the_requests(live_client, live_settings):
    assert live_client.simulate_get("/uuid").status_code == 200
    assert burner_stacks(live_settings) == []
