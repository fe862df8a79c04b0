"""Every endpoint through the Falcon app and the real pipeline."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time

import falcon.testing
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

import infra_api
from infra.codec import data_converter
from infra.kinds import parse_request
from infra.orchestrator import WORKFLOW_RUNNER, WORKFLOWS, burn_operation_id
from infra.service import Service
from infra.settings import Settings
from tests.api import checks
from tests.api.support import (
    PASSPHRASE,
    burner_stacks,
    make_environ,
    start_worker,
    stop_worker,
)
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


def test_a_service_stopped_right_after_an_answer_drops_the_still_open_workflow_quietly(
        tmp_path, monkeypatch):
    """The answer comes before the burn's workflow completes: the worker stops with that run in
    memory, and drops it without running (or failing) any of its teardown code."""
    unraisable: list[sys.UnraisableHookArgs] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    service = Service(Settings.from_environ(make_environ(tmp_path / "state")))
    service.start()
    try:
        for _ in range(3):
            assert service.burn(parse_request("uuid", {})).value
    finally:
        service.stop()
    gc.collect()
    assert [repr(item.exc_value) for item in unraisable] == []


def test_a_burn_on_a_broken_backend_is_answered_before_its_teardown_can_finish(tmp_path):
    """The burn fails at once and its teardown cannot succeed until the backend is back: the
    request gets the burn's own error soon, not a timeout, and the teardown finishes later."""
    _answer_soon_on_a_broken_backend(
        Settings.from_environ(make_environ(tmp_path / "state", INFRA_API_REQUEST_TIMEOUT="90")),
        tmp_path)


def test_a_burn_that_failed_on_another_worker_is_answered_before_its_teardown_can_finish(
        tmp_path, temporal_address):
    """The same with the burn on a worker of its own: nothing is handed over in-process, so
    the API node reads the burn's failure from its workflow."""
    environ = make_environ(tmp_path / "state", INFRA_API_REQUEST_TIMEOUT="90",
                           INFRA_API_TEMPORAL_ADDRESS=temporal_address,
                           INFRA_API_TASK_QUEUE="broken-" + tmp_path.name)
    worker = start_worker(environ, tmp_path / "worker.log")
    try:
        _answer_soon_on_a_broken_backend(
            Settings.from_environ({**environ, "INFRA_API_RUN_WORKER": "false"}), tmp_path)
    finally:
        worker_log = stop_worker(worker)
    assert "activity burn: failed" in worker_log


def test_a_burn_while_the_store_is_down_is_a_503_soon_and_its_workflow_ends(
        tmp_path, temporal_address, postgres_server):
    """The store and the state on PostgreSQL, whose database stops taking connections: the
    burn fails before it creates anything, and once the database is back its workflow ends
    (it has no operation record to close, and must not retry closing one forever)."""
    postgres_server.create_database("store_down")
    queue = "store-down-" + tmp_path.name
    settings = Settings.from_environ(make_environ(
        tmp_path / "state", INFRA_API_BACKEND_URL=postgres_server.url("store_down"),
        INFRA_API_REQUEST_TIMEOUT="60", INFRA_API_TEMPORAL_ADDRESS=temporal_address,
        INFRA_API_TASK_QUEUE=queue))
    service = Service(settings)
    service.start()
    try:
        client = falcon.testing.TestClient(infra_api.create_app(settings, operations=service))
        assert client.simulate_get("/uuid").status_code == 200
        _database_connections(postgres_server, "store_down", allowed=False)
        try:
            asked = time.monotonic()
            result = client.simulate_get("/uuid")
            waited = time.monotonic() - asked
        finally:
            _database_connections(postgres_server, "store_down", allowed=True)
        assert (result.status_code, result.json["code"]) == (503, "store_unavailable"), \
            result.text
        assert waited < 30, f"answered after {waited:.0f} s of a 60 s request timeout"
        running = f'WorkflowType = "Burn" AND ExecutionStatus = "Running" AND TaskQueue = "{queue}"'
        wait_for(lambda: not asyncio.run(_workflow_ids(temporal_address, running)), timeout=90,
                 what="the failed burn's workflow to end")
    finally:
        service.stop()


def _database_connections(server, database: str, allowed: bool) -> None:
    import psycopg

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'
                     .encode())
        if not allowed:
            conn.execute(b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         b"WHERE datname = %s", (database,))


async def _workflow_ids(address: str, query: str) -> list[str]:
    client = await Client.connect(address)
    return [execution.id async for execution in client.list_workflows(query)]


def _answer_soon_on_a_broken_backend(settings: Settings, tmp_path) -> None:
    service = Service(settings)
    service.start()
    try:
        _ask_with_the_backend_broken(settings, service, tmp_path)
    finally:
        service.stop()


def _ask_with_the_backend_broken(settings: Settings, service: Service, tmp_path) -> None:
    client = falcon.testing.TestClient(infra_api.create_app(settings, operations=service))
    assert client.simulate_get("/uuid").status_code == 200
    backend, away = settings.backend_dir, tmp_path / "backend-away"
    backend.rename(away)
    backend.write_text("a file where the backend's directory should be")
    asked = time.monotonic()
    result = client.simulate_get("/uuid")
    waited = time.monotonic() - asked

    assert (result.status_code, result.json["code"]) == (502, "engine_error"), result.text
    assert "create_stack" in result.json["description"]
    assert waited < 45, f"answered after {waited:.0f} s of a 90 s request timeout"
    stack = result.json["stack"]
    backend.unlink()
    away.rename(backend)
    wait_for(lambda: service.orchestrator.owner_status(stack) == "ended", timeout=90,
             what="the failed burn's workflow to finish its teardown")
    record = service.store.get_operation(burn_operation_id(stack))
    assert record is not None and record.status == "failed"
    assert stack not in burner_stacks(settings)


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


def _finished(live_client, operation: str) -> dict:
    def done():
        body = live_client.simulate_get(f"/operations/{operation}").json
        return body if body["status"] not in ("queued", "running") else None
    return wait_for(done, timeout=120, what=f"operation {operation} to end")


async def _replay_finished_workflows(address: str, namespace: str) -> list[str]:
    """Replay the history of every finished workflow with the worker's own workflow code,
    runner and payload codec; the Replayer raises on any nondeterminism."""
    client = await Client.connect(address, namespace=namespace)
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=WORKFLOW_RUNNER,
                        data_converter=data_converter(PASSPHRASE))
    replayed = []
    async for execution in client.list_workflows('ExecutionStatus != "Running"'):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        await replayer.replay_workflow(await handle.fetch_history())
        replayed.append(execution.workflow_type)
    return replayed


def test_every_finished_workflow_replays_with_the_same_decisions(live_service):
    live_client = falcon.testing.TestClient(live_service.app())
    burned = live_client.simulate_get("/uuid")
    assert burned.status_code == 200, burned.text
    created = live_client.simulate_post("/stacks", json={
        "program": "sandbox", "config": {"owner": "ann", "access_key": "hunter2-key"}})
    assert created.status_code == 202, created.text
    stack = created.json["stack"]
    assert _finished(live_client, created.json["operation"]["id"])["status"] == "succeeded"
    deleted = live_client.simulate_delete(f"/stacks/{stack}")
    assert deleted.status_code == 202, deleted.text
    assert _finished(live_client, deleted.json["operation"]["id"])["status"] == "succeeded"
    for workflow in (burned.json["stack"], f"stack-{stack}"):
        wait_for(lambda w=workflow: live_service.orchestrator.owner_status(w) == "ended",
                 timeout=30, what=f"workflow {workflow} to end")

    replayed = asyncio.run(_replay_finished_workflows(
        live_service.orchestrator.address, live_service.settings.temporal_namespace))

    assert {"Burn", "Stack"} <= set(replayed)


async def _history_bytes(address: str, namespace: str, workflow_id: str) -> bytes:
    """Every event of the workflow's history as Temporal stores it (read without the codec)."""
    client = await Client.connect(address, namespace=namespace)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


def test_temporal_keeps_no_engine_output_of_a_failed_operation(live_service):
    live_client = falcon.testing.TestClient(live_service.app())
    # The sandbox program refuses more than 5 words when it runs: the engine prints why.
    created = live_client.simulate_post("/stacks", json={
        "program": "sandbox", "config": {"owner": "ann", "access_key": "k", "words": 9}})
    assert created.status_code == 202, created.text
    ended = _finished(live_client, created.json["operation"]["id"])
    assert ended["error"] == {"code": "engine_error", "message": "the up step failed"}
    stored = asyncio.run(_history_bytes(live_service.orchestrator.address,
                                        live_service.settings.temporal_namespace,
                                        f"stack-{created.json['stack']}"))
    assert b"up failed for stack" in stored  # the failure's message stays readable
    assert b"must be from 1 to 5" not in stored and b"Traceback" not in stored


def test_temporal_keeps_no_secret_of_a_stack_only_ciphertext(live_service):
    live_client = falcon.testing.TestClient(live_service.app())
    secret = "s3cret-" + os.urandom(6).hex()
    created = live_client.simulate_post("/stacks", json={
        "program": "sandbox", "config": {"owner": "ann", "access_key": secret}})
    assert created.status_code == 202, created.text
    stack = created.json["stack"]
    assert _finished(live_client, created.json["operation"]["id"])["status"] == "succeeded"

    stored = asyncio.run(_history_bytes(live_service.orchestrator.address,
                                        live_service.settings.temporal_namespace,
                                        f"stack-{stack}"))
    assert b"ann" not in stored and secret.encode() not in stored
    assert b"binary/encrypted" in stored  # the inputs are there, sealed
    deleted = live_client.simulate_delete(f"/stacks/{stack}")
    assert _finished(live_client, deleted.json["operation"]["id"])["status"] == "succeeded"
