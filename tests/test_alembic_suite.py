"""pytest-alembic's built-in tests of the repository's migrations, on PostgreSQL and SQLite,
through the env.py the toolkit scaffolds, with each engine it may be handed: the toolkit's
own, a pooled AsyncEngine and a sync Engine (as pytest-alembic's documentation shows)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_alembic.runner import MigrationContext
from pytest_alembic.tests import (  # noqa: F401  (collected as this module's tests)
    experimental,
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from pytest_alembic.tests.experimental import test_downgrade_leaves_no_trace  # noqa: F401
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from oriza_toolkit import migrations

ROOT = Path(__file__).resolve().parents[1]
MODELS = "oriza_toolkit.examples.nycflights13"  # the package whose modules hold the models


@pytest.fixture
def alembic_config() -> dict[str, str]:
    return {"file": str(ROOT / "alembic.ini"), "script_location": str(ROOT / "alembic")}


@pytest.fixture(params=[("postgresql", "toolkit"), ("sqlite", "toolkit"), ("postgresql", "pooled async"),
                        ("sqlite", "pooled async"), ("postgresql", "sync"), ("sqlite", "sync")],
                ids=lambda p: "-".join(p))
def alembic_engine(request: pytest.FixtureRequest, scratch_database: Callable[[], str],
                   tmp_path: Path) -> Iterator[AsyncEngine | Engine]:
    """The toolkit's own engine, and the two pytest-alembic's documentation shows: a pooled
    ``create_async_engine(url)`` and a plain ``create_engine(url)``."""
    dialect, kind = request.param
    url = make_url(scratch_database()) if dialect == "postgresql" else make_url(f"sqlite:///{tmp_path / 'a.db'}")
    engine: AsyncEngine | Engine
    if kind == "toolkit":
        engine = migrations.async_engine(url)
    elif kind == "pooled async":
        engine = create_async_engine(url.set(drivername="postgresql+asyncpg" if dialect == "postgresql"
                                             else "sqlite+aiosqlite"))
    else:
        engine = create_engine(url.set(drivername="postgresql+psycopg2" if dialect == "postgresql" else "sqlite"))
    yield engine
    if isinstance(engine, AsyncEngine):
        asyncio.run(engine.dispose())
    else:
        engine.dispose()


def test_all_models_register_on_metadata(alembic_runner: MigrationContext) -> None:
    experimental.test_all_models_register_on_metadata(alembic_runner, MODELS)
