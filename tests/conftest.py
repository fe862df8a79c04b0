"""Fixtures shared by every test package: a real PostgreSQL server, started on first use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgserver import PostgresServer, running_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (each test uses its own table or database)."""
    with running_server() as server:
        yield server
