"""Fixtures of the reporting tests: a session-wide local PostgreSQL, and read-model stores on
either backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redress_reporting.store import ReadModelStore, create_store_engine

from tests.integration.reporting.postgres import PostgresServer, provide_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    yield from provide_postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store's URL on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[ReadModelStore]:
    opened = ReadModelStore(create_store_engine(store_url))
    yield opened
    opened.dispose()
