"""Fixtures of the service tests: settings on temp state dirs, the real steps and service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

import infra_api
from infra.basic import Burner
from infra.embedded import EmbeddedTemporal
from infra.engine import select_engine
from infra.service import Service
from infra.settings import Settings
from tests.api.support import make_environ
from tests.harness import free_port


@pytest.fixture(scope="session")
def live_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for end-to-end tests: offline engine, one temp state dir for the session."""
    return Settings.from_environ(make_environ(tmp_path_factory.mktemp("live") / "state"))


@pytest.fixture(scope="session")
def live_burner(live_settings: Settings) -> Iterator[Burner]:
    """The real steps (real pulumi.automation, offline engine, real program), run in-process."""
    burner = Burner(live_settings, select_engine(live_settings))
    burner.toolchain()
    yield burner
    burner.engine.stop_helpers()


@pytest.fixture(scope="session")
def live_service(live_settings: Settings) -> Iterator[Service]:
    """The real service in this process: embedded Temporal, a worker, the offline engine."""
    service = Service(live_settings)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def live_client(live_settings: Settings, live_service: Service) -> falcon.testing.TestClient:
    """A test client on the app wired to the real, started service."""
    return falcon.testing.TestClient(infra_api.create_app(live_settings, operations=live_service))


@pytest.fixture
def server_environ(tmp_path: Path) -> dict[str, str]:
    """Environment for a server process: its own state dir and port, the shared venv."""
    return make_environ(tmp_path / "state", INFRA_API_HOST="127.0.0.1",
                        INFRA_API_PORT=str(free_port()))


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory) -> Iterator[str]:
    """A Temporal dev server shared by the tests that run API nodes and workers apart (a fresh
    task queue each keeps their work apart)."""
    server = EmbeddedTemporal(tmp_path_factory.mktemp("temporal"))
    try:
        yield server.start()
    finally:
        server.stop()
