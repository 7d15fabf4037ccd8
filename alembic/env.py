"""Alembic environment for oriza_toolkit: async engine, models' metadata, shared connections."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Coroutine
from logging.config import fileConfig
from typing import Any

from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from oriza_toolkit.config import database_url
from oriza_toolkit.migrations import include_object
from oriza_toolkit.models import Base

config = context.config

# Called from a notebook, oriza_toolkit.migrations sets configure_logger False so the
# notebook's logging set-up is left alone.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    """DATABASE_URL if set, else the toolkit's configuration (.env, else embedded SQLite)."""
    url = database_url(os.environ.get("DATABASE_URL") or None)
    return url.render_as_string(hide_password=False)


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        include_object=include_object,
        **options,
    )


def run_migrations_offline() -> None:
    """``--sql``: render the migrations as SQL, with no database connection."""
    dialect = config.attributes.get("dialect_name")  # set by oriza_toolkit.migrations
    target = {"dialect_name": dialect} if dialect else {"url": _url()}
    _configure(**target, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, or in a fresh thread when this thread already runs a loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        executor.submit(asyncio.run, coro).result()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        _run(run_async_migrations())
    else:  # handed in by oriza_toolkit.migrations (Alembic's connection-sharing recipe)
        do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
