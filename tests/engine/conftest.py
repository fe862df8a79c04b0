"""Fixtures of the offline engine's tests: an isolated backend per test, one shared launcher."""

from tests.engine.support import (  # noqa: F401 - fixtures
    backend_fixture,
    engine_command_fixture,
    engine_fixture,
)
