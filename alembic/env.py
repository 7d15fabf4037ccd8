"""Alembic environment (async), as oriza_toolkit scaffolds it.

The URL: ``DATABASE_URL`` from the environment, else a ``.env`` file, else the toolkit's
embedded SQLite default (``oriza_toolkit.config.database_url``). The models: the
``target_metadata`` option of alembic.ini (``package.module:Base.metadata``).

Online, a connection handed in through ``config.attributes["connection"]`` is used as it
is: a ``Connection`` (oriza_toolkit's ``%alembic`` and ``migrations`` functions), an
``Engine`` or an ``AsyncEngine`` (pytest-alembic's recipe). Otherwise this file makes its
own async engine and runs it with ``asyncio.run`` (in a fresh thread if a loop is
already running, as in a notebook). Offline (``--sql``), the SQL is rendered instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
from collections.abc import Coroutine
from logging.config import fileConfig
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import context
from oriza_toolkit.config import database_url
from oriza_toolkit.migrations import async_engine, include_object

config = context.config

# Called from a notebook, oriza_toolkit sets configure_logger False so the notebook's
# logging set-up is left alone.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _load_metadata(spec: str | None) -> MetaData | None:
    """``package.module:Base.metadata`` -> that MetaData (None when not configured)."""
    if not spec:
        return None
    module, _, attribute = spec.partition(":")
    found: Any = importlib.import_module(module)
    for part in attribute.split(".") if attribute else []:
        found = getattr(found, part)
    return found  # type: ignore[no-any-return]


target_metadata = _load_metadata(config.get_main_option("target_metadata"))


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        include_object=include_object,  # never propose dropping tables the models do not know
        **options,
    )


def run_migrations_offline() -> None:
    """``--sql``: render the migrations as SQL, with no database connection."""
    dialect = config.attributes.get("dialect_name")  # set by oriza_toolkit.migrations
    target = {"dialect_name": dialect} if dialect else {"url": database_url().render_as_string(hide_password=False)}
    _configure(**target, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(engine: AsyncEngine | None = None) -> None:
    engine = engine or async_engine()
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        # This loop ends with the migration: a pooled engine handed in (pytest-alembic's
        # create_async_engine) must not keep connections that belong to it.
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
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        do_run_migrations(connectable)
    elif isinstance(connectable, Engine):
        with connectable.begin() as connection:
            do_run_migrations(connection)
    else:
        _run(run_async_migrations(connectable if isinstance(connectable, AsyncEngine) else None))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
