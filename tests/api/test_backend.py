"""A shared postgres:// state backend: the service runs on it, and never shows its password."""

from __future__ import annotations

import logging

import falcon.testing
import psycopg
import pytest

import infra_api
from infra.service import Service
from infra.settings import Settings
from tests.api.support import make_environ
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.slow


def test_service_on_postgres_serves_and_leaves_no_stack_or_lock(
        tmp_path, postgres_server: PostgresServer, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    table = "service_state"
    settings = Settings.from_environ(make_environ(
        tmp_path / "state", INFRA_API_BACKEND_URL=postgres_server.url(table=table)))
    service = Service(settings)
    service.start()
    try:
        client = falcon.testing.TestClient(infra_api.create_app(settings, operations=service))
        values = {client.simulate_get("/uuid").json["response"] for _ in range(2)}
        assert len(values) == 2
        ready = client.simulate_get("/readyz")
        assert (ready.status_code, ready.json["checks"]["backend"]) == (200, True)
        metrics = client.simulate_get("/metrics").text
    finally:
        service.stop()

    with psycopg.connect(postgres_server.url()) as conn:
        keys = [k for (k,) in conn.execute(f"SELECT key FROM {table}".encode()).fetchall()]
    assert "burner/.pulumi/meta.yaml" in keys  # the engine wrote here, not to the state dir
    assert not (settings.backend_dir / ".pulumi").exists()
    assert [k for k in keys if "burner-" in k and "/history/" not in k
            and "/backups/" not in k] == []
    assert [k for k in keys if "/locks/" in k] == []
    assert postgres_server.password not in caplog.text + metrics + ready.text


def test_readyz_reports_an_unusable_backend_without_its_credentials(
        tmp_path, postgres_server: PostgresServer, caplog) -> None:
    password = "wrong-Pa55word-417"
    url = postgres_server.url().replace(postgres_server.password, password)
    settings = Settings.from_environ(make_environ(tmp_path / "state", INFRA_API_BACKEND_URL=url))
    assert password not in repr(settings)
    service = Service(settings)
    client = falcon.testing.TestClient(infra_api.create_app(settings, operations=service))

    ready = client.simulate_get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["backend"] is False
    assert "password authentication failed" in caplog.text  # the reason is logged ...
    assert "burner:***@127.0.0.1" in caplog.text  # ... naming the store, without the secret
    assert password not in caplog.text + ready.text + client.simulate_get("/metrics").text
