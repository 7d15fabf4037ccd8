"""SQLite (the embedded default) through aiosqlite.

SQLite's own BEGIN covers DDL too (SQLAlchemy's recipe), so a failed write or migration
rolls back whole; writers take the write lock at BEGIN IMMEDIATE so two of them queue
instead of failing. Parameters are found by the toolkit's own lexer and sent as ``?``
placeholders, so nothing inside a string literal is ever taken for one. A timeout
interrupts the running statement (``sqlite3.Connection.interrupt``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .. import _sql
from ..frames import frame_from_rows, rows_affected

__all__ = ["WRITE_OPTION", "SQLiteBackend"]

T = TypeVar("T")

# Execution option marking a connection that will write (SQLite then begins IMMEDIATE).
WRITE_OPTION = "oriza_write"


class SQLiteBackend:
    """SQLite through aiosqlite (see the module docstring)."""

    name = "sqlite"

    def make_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine:
        # A writer waits this long for another to finish (a big write can take seconds).
        options.setdefault("connect_args", {}).setdefault("timeout", 120)
        engine = create_async_engine(url, **options)
        _make_transactional(engine)
        return engine

    async def read(self, conn: AsyncConnection, sql: Any, params: Any) -> pd.DataFrame:
        """Text SQL goes to sqlite3 itself (autocommit: a session's own BEGIN and COMMIT work
        as typed); a Core statement through SQLAlchemy, which types its results."""
        if not isinstance(sql, str):
            result = await _interruptible(await _driver(conn), conn.execute(sql, dict(params or {})))
            if not result.returns_rows:
                await conn.commit()
                return rows_affected(result.rowcount if result.rowcount >= 0 else None)
            return frame_from_rows(result.fetchall(), list(result.keys()))
        parsed = _sql.parse(sql)
        parsed.require(params)
        values = dict(params or {})
        statement, _ = parsed.render(lambda key: "?")
        driver = await _driver(conn)

        async def run() -> tuple[list[Any], list[str] | None, int]:
            cursor = await driver.execute(statement, tuple(values[key] for key in parsed.params))
            try:
                rows = list(await cursor.fetchall())
                names = [d[0] for d in cursor.description] if cursor.description else None
                return rows, names, cursor.rowcount
            finally:
                await cursor.close()

        rows, names, rowcount = await _interruptible(driver, run())
        if names is None:
            return rows_affected(rowcount if rowcount >= 0 else None)
        return frame_from_rows(rows, names)

    def encode(self, frame: pd.DataFrame) -> None:
        return None

    async def write(
        self, conn: AsyncConnection, frame: pd.DataFrame, table: str, schema: str | None, encoded: Any
    ) -> None:
        """pandas' inserts, after checking each value fits its column's declared type."""
        await conn.run_sync(_check_fits, frame, table, schema)
        await conn.run_sync(lambda sync: frame.to_sql(table, sync, schema=schema, if_exists="append",
                                                      index=False))


async def _driver(conn: AsyncConnection) -> Any:
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return driver


async def _interruptible(driver: Any, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; if cancelled (a timeout, Ctrl-C), interrupt the statement in
    aiosqlite's thread and wait for it to stop, rather than abandon the connection mid-statement."""
    running = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await driver.interrupt()
        with contextlib.suppress(Exception):
            await running
        raise


def _make_transactional(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


def _affinity(declared: str) -> str:
    """SQLite's type affinity of a declared column type (its documented rules, in order)."""
    kind = declared.upper()
    if "INT" in kind:
        return "integer"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in kind or not kind:
        return "blob"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def _check_fits(sync: Any, frame: pd.DataFrame, table: str, schema: str | None) -> None:
    prefix = f'"{schema}".' if schema else ""
    rows = sync.execute(text(f'PRAGMA {prefix}table_info("{table}")')).fetchall()
    declared = {row[1]: _affinity(row[2] or "") for row in rows}
    for column in frame.columns:
        affinity = declared.get(str(column))
        if affinity not in ("integer", "real"):  # NUMERIC also covers DATETIME, DATE, BOOLEAN
            continue
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            if affinity == "integer" and pd.api.types.is_float_dtype(values.dtype):
                fractional = values.dropna() % 1 != 0
                if fractional.any():
                    bad = values.dropna()[fractional].iloc[0]
                    raise ValueError(f"column {column!r} is INTEGER but the frame holds {bad!r}")
            continue
        for value in values.dropna():
            if not isinstance(value, (int, float, Decimal)):
                raise ValueError(f"column {column!r} is {affinity.upper()} but the frame holds {value!r}")
            if affinity == "integer" and not float(value).is_integer():
                raise ValueError(f"column {column!r} is INTEGER but the frame holds {value!r}")
