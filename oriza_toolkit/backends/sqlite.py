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
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncResult, create_async_engine

from .. import _sql
from .._sql import Params
from ..config import DEFAULT_CONNECT_TIMEOUT
from ..frames import Form, RowsAffected, frame_from_rows, holds_dates, json_texts, object_kind
from .base import TableLoaded, write_each

__all__ = ["SQLiteBackend"]

T = TypeVar("T")

# A writer waits this long for another to finish (a big write can take seconds).
_WRITER_WAIT_SECONDS = 120.0
_DATE = "%Y-%m-%d"
_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME storage format

# Execution option marking a connection that will write (SQLite then begins IMMEDIATE).
_WRITE_OPTION = "oriza_write"
# Significant digits a REAL keeps exactly, as SQLite documents for its text conversions.
_REAL_DIGITS = 15


class SQLiteBackend:
    """SQLite through aiosqlite (see the module docstring)."""

    name = "sqlite"
    stopped = "was interrupted"
    max_identifier_bytes: int | None = None
    float_type = "REAL"

    def holder_engine(self, url: URL, options: dict[str, Any]) -> None:
        return None  # a snapshot is the holder's own transaction: reads take turns on it

    def make_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine:
        options.setdefault("connect_args", {}).setdefault("timeout", _WRITER_WAIT_SECONDS)
        engine = create_async_engine(url, **options)
        _make_transactional(engine)
        return engine

    def connect_timeout(self, url: URL) -> float:
        return DEFAULT_CONNECT_TIMEOUT

    def column_types(self, frame: pd.DataFrame, generic: dict[str, Any]) -> dict[str, Any]:
        return generic  # SQLite's are the generic ones (JSON as text)

    @contextlib.asynccontextmanager
    async def begin_write(self, conn: AsyncConnection) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE: the write lock is taken at once, so two writers queue instead of
        failing "database is locked" half-way."""
        await conn.execution_options(**{_WRITE_OPTION: True})
        async with conn.begin():
            yield

    async def replace_rows(self, conn: AsyncConnection, frames: Mapping[str, pd.DataFrame],
                           encoded: Mapping[str, Any], loaded: TableLoaded) -> None:
        """Delete every row (children first, for the foreign keys), then insert parents first."""
        for name in reversed(list(frames)):
            await conn.exec_driver_sql(f"DELETE FROM {_sql.quote_identifier(name)}")
        await write_each(self, conn, frames, encoded, loaded)

    def is_lost_connection(self, error: BaseException) -> bool:
        return False  # a file does not hang up (the generic checks cover the OS's errors)

    def partition_bounds(self, inner: str, column: str) -> None:
        return None  # one file, one reader: nothing to split

    def stddev(self, expression: str) -> None:
        return None  # no such aggregate in SQLite's core

    def floor(self, expression: str) -> str:
        return f"CAST({expression} AS INTEGER)"  # truncates: the floor of a number that is not negative

    def quantile(self, expression: str, fraction: float) -> None:
        return None

    def sample_quantiles(self, inner: str, column: str, kind: str, fractions: Sequence[float], *, sampled: bool
                         ) -> None:
        return None  # nothing to split (see partition_bounds)

    def can_partition(self, kind: str) -> bool:
        return False

    def finite_bounds(self, inner: str, column: str, kind: str) -> None:
        return None

    async def literal_sql(self, conn: AsyncConnection, sql: str, params: Params | None) -> str | None:
        return None if params else sql

    async def position(self, conn: AsyncConnection) -> None:
        return None

    async def behind(self, conn: AsyncConnection, position: str) -> float:
        return 0.0

    async def lock_migrations(self, conn: AsyncConnection, engine: AsyncEngine) -> None:
        """Nothing to take: a migration's BEGIN holds SQLite's database lock already."""

    async def read(self, conn: AsyncConnection, sql: Any, params: Any, form: Form = "frame") -> Any:
        """Text SQL goes to sqlite3 itself (autocommit: a session's own BEGIN and COMMIT work
        as typed); a Core statement through SQLAlchemy, which types its results. Rows become
        columns in a worker thread, not on the loop."""
        driver = await _driver(conn)
        if not isinstance(sql, str):
            result = await _interruptible(driver, conn.execute(sql, dict(params or {})))
            if not result.returns_rows:
                await conn.commit()
                return _in_form(RowsAffected(result.rowcount if result.rowcount >= 0 else None), form)
            return _in_form(await asyncio.to_thread(frame_from_rows, result.fetchall(), list(result.keys())), form)
        statement, values = _positional(sql, params)

        async def run() -> tuple[list[Any], list[str] | None, int]:
            cursor = await driver.execute(statement, values)
            try:
                rows = list(await cursor.fetchall())
                names = [d[0] for d in cursor.description] if cursor.description else None
                return rows, names, cursor.rowcount
            finally:
                await cursor.close()

        rows, names, rowcount = await _interruptible(driver, run())
        if names is None:
            return _in_form(RowsAffected(rowcount if rowcount >= 0 else None), form)
        return _in_form(await asyncio.to_thread(frame_from_rows, rows, names), form)

    def stream(self, conn: AsyncConnection, sql: Any, params: Any, rows: int, arrow: bool
               ) -> AsyncGenerator[Any, None]:
        """The result in chunks of ``rows`` rows, each with the first chunk's dtypes."""

        async def chunks() -> AsyncGenerator[Any, None]:
            driver = await _driver(conn)
            if isinstance(sql, str):
                statement, values = _positional(sql, params)
                cursor = await _interruptible(driver, driver.execute(statement, values))
                names = [d[0] for d in cursor.description] if cursor.description else []
                fetch = cursor.fetchmany
            else:

                async def start() -> AsyncResult[Any]:
                    return cast(AsyncResult[Any], await conn.stream(sql, dict(params or {})))

                result = await _interruptible(driver, start())
                names = list(result.keys())
                fetch = result.fetchmany
            first: pd.DataFrame | None = None
            try:
                while True:
                    batch = await _interruptible(driver, fetch(rows))
                    if not batch and first is not None:
                        return
                    frame = await asyncio.to_thread(frame_from_rows, batch, names)
                    if first is None:
                        first = frame
                    else:
                        frame = frame.astype({c: t for c, t in first.dtypes.items() if t is not np.dtype(object)})
                    yield pa.RecordBatch.from_pandas(frame, preserve_index=False) if arrow else frame
                    if len(batch) < rows:
                        return
            finally:  # an unfinished SELECT holds SQLite's shared lock: writers would wait
                await (cursor.close() if isinstance(sql, str) else result.close())

        return chunks()

    async def export_snapshot(self, conn: AsyncConnection) -> None:
        """A transaction that has read once: SQLite keeps what it saw (its shared lock, or
        its WAL position) until it ends. Other connections cannot share it."""
        await conn.begin()
        await conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")

    async def import_snapshot(self, conn: AsyncConnection, snapshot: str) -> None:
        raise NotImplementedError("SQLite snapshots are read on the connection that holds them")

    def encode(self, frame: pd.DataFrame) -> list[tuple[Any, ...]] | None:
        """Rows of plain Python values (ints, floats, strings, None; dates and datetimes as
        the text SQLAlchemy stores) for sqlite3's own executemany, or None where a column
        needs pandas' type handling."""
        columns: list[list[Any]] = []
        for name, column in frame.items():
            dtype = column.dtype
            if pd.api.types.is_datetime64_any_dtype(dtype):  # as SQLAlchemy's Date and DateTime store them
                column = column.dt.strftime(_DATE if holds_dates(column) else _DATETIME)
            elif pd.api.types.is_object_dtype(dtype) and object_kind(column.dropna()) == "json":
                try:  # as SQLAlchemy's JSON stores them: their text
                    column = pd.Series(json_texts(column), dtype=object)
                except ValueError as error:
                    raise ValueError(f"column {name!r} {error}") from None
            elif pd.api.types.is_object_dtype(dtype) and object_kind(column.dropna()) == "bool":
                columns.append([bool(v) if ok else None for v, ok in zip(column, column.notna(), strict=True)])
                continue
            elif _holds_decimals(column):
                columns.append([_sqlite_number(name, v) for v in column.astype(object)])
                continue
            elif not (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype)
                      or pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
                return None
            values = column.astype(object).where(column.notna(), None).tolist()
            if pd.api.types.is_object_dtype(dtype) and not all(isinstance(v, (str, type(None))) for v in values):
                return None
            columns.append(values)
        return list(zip(*columns, strict=True))

    async def write(
        self, conn: AsyncConnection, frame: pd.DataFrame, table: str, schema: str | None, encoded: Any
    ) -> None:
        """sqlite3's executemany of the encoded rows (pandas' inserts for other types), after
        checking each value fits its column's declared type."""
        await conn.run_sync(_check_fits, frame, table, schema)
        if encoded is None:
            await conn.run_sync(lambda sync: frame.to_sql(table, sync, schema=schema, if_exists="append",
                                                          index=False))
            return
        target = f"{_sql.quote_identifier(schema)}.{_sql.quote_identifier(table)}" if schema \
            else _sql.quote_identifier(table)
        names = ", ".join(_sql.quote_identifier(str(c)) for c in frame.columns)
        marks = ", ".join("?" for _ in frame.columns)
        driver = await _driver(conn)
        await _interruptible(driver, driver.executemany(f"INSERT INTO {target} ({names}) VALUES ({marks})", encoded))


def _holds_decimals(column: pd.Series) -> bool:
    dtype = column.dtype
    if isinstance(dtype, pd.ArrowDtype):
        return bool(pa.types.is_decimal(dtype.pyarrow_dtype))
    return pd.api.types.is_object_dtype(dtype) and object_kind(column.dropna()) == "decimal"


def _sqlite_number(column: Hashable, value: Any) -> int | float | None:
    """A Decimal as the number SQLite stores exactly in the NUMERIC column the toolkit
    creates for it: an INTEGER when whole (64 bits), else a REAL, which keeps 15
    significant digits; a value that needs more, or NaN (SQLite stores NULL for it), is
    refused rather than rounded."""
    if value is None or value is pd.NA or (value != value and not isinstance(value, Decimal)):
        return None  # missing: None, pd.NA, or the float NaN pandas uses
    if value.is_nan():
        raise ValueError(f"column {column!r} holds Decimal('NaN'), which SQLite cannot store (it would become "
                         "NULL); replace it first, e.g. with None")
    if value.is_infinite():
        return float(value)
    if value == value.to_integral_value() and -(1 << 63) <= value < (1 << 63):
        return int(value)
    if len(value.normalize().as_tuple().digits) > _REAL_DIGITS:
        raise ValueError(f"column {column!r} holds {value}, more significant digits than SQLite's numbers keep "
                         f"({_REAL_DIGITS}); round it, or store it as text: frame[{column!r}].astype(str)")
    return float(value)


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


def _positional(sql: str, params: Any) -> tuple[str, tuple[Any, ...]]:
    """``sql`` with ``?`` placeholders where the lexer found parameters, and their values."""
    parsed = _sql.parse(sql)
    parsed.require(params)
    values = dict(params or {})
    statement, _ = parsed.render(lambda key: "?")
    return statement, tuple(values[key] for key in parsed.params)


def _in_form(frame: pd.DataFrame, form: Form) -> Any:
    """A read's DataFrame as the form asked for (never "chunks": SQLite reads whole)."""
    if form == "arrow":
        return pa.Table.from_pandas(frame, preserve_index=False)
    return frame


def _make_transactional(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "BEGIN")


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
    prefix = f"{_sql.quote_identifier(schema)}." if schema else ""
    rows = sync.exec_driver_sql(f"PRAGMA {prefix}table_info({_sql.quote_identifier(table)})").fetchall()
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
