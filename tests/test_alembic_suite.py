"""pytest-alembic's built-in tests of the repository's migrations, on PostgreSQL and SQLite,
through the env.py the toolkit scaffolds (it takes the AsyncEngine pytest-alembic hands in)."""

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
from sqlalchemy.ext.asyncio import AsyncEngine

from oriza_toolkit import migrations

ROOT = Path(__file__).resolve().parents[1]
MODELS = "oriza_toolkit.examples.nycflights13"  # the package whose modules hold the models


@pytest.fixture
def alembic_config() -> dict[str, str]:
    return {"file": str(ROOT / "alembic.ini"), "script_location": str(ROOT / "alembic")}


@pytest.fixture(params=["postgresql", "sqlite"])
def alembic_engine(request: pytest.FixtureRequest, scratch_database: Callable[[], str],
                   tmp_path: Path) -> Iterator[AsyncEngine]:
    url = scratch_database() if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    engine = migrations.async_engine(url)
    yield engine
    asyncio.run(engine.dispose())


def test_all_models_register_on_metadata(alembic_runner: MigrationContext) -> None:
    experimental.test_all_models_register_on_metadata(alembic_runner, MODELS)
