"""Fixtures: a real PostgreSQL (TEST_DATABASE_URL, else a throwaway cluster) and SQLite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import oriza_toolkit as oz

from .pgcluster import Cluster


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL server for the whole run."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    cluster = Cluster().start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on PostgreSQL and once on the embedded SQLite."""
    name = "pg_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def db(db_url: str) -> Iterator[oz.Database]:
    with oz.connect(db_url) as database:
        yield database


@pytest.fixture
def pg(pg_url: str) -> Iterator[oz.Database]:
    with oz.connect(pg_url) as database:
        yield database


@pytest.fixture
def table(db: oz.Database) -> Iterator[str]:
    """A unique table name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    db.execute(f"DROP TABLE IF EXISTS {name}")
