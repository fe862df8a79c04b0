"""Fixtures of the service tests: settings on temp state dirs, the real pipeline, a server port."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

import infra_api
from infra.basic import Pipeline
from infra.engine import select_engine
from infra.settings import Settings
from tests.api.support import make_environ
from tests.harness import free_port


@pytest.fixture(scope="session")
def live_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for end-to-end tests: offline engine, one temp state dir for the session."""
    return Settings.from_environ(make_environ(tmp_path_factory.mktemp("live") / "state"))


@pytest.fixture(scope="session")
def live_pipeline(live_settings: Settings) -> Pipeline:
    """The real pipeline (real pulumi.automation, offline engine, real program), prepared once."""
    pipeline = Pipeline(live_settings, select_engine(live_settings))
    pipeline.prepare()
    return pipeline


@pytest.fixture(scope="session")
def live_client(live_settings: Settings, live_pipeline: Pipeline) -> falcon.testing.TestClient:
    """A test client on the app wired to the real pipeline."""
    return falcon.testing.TestClient(infra_api.create_app(live_settings, burner=live_pipeline))


@pytest.fixture
def server_environ(tmp_path: Path) -> dict[str, str]:
    """Environment for a server process: its own state dir and port, the shared venv."""
    return make_environ(tmp_path / "state", INFRA_API_HOST="127.0.0.1",
                        INFRA_API_PORT=str(free_port()))


