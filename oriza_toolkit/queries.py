"""Running statements: one query, a concurrent batch, and DDL/DML.

On asyncpg a query is prepared (for its column types), then streamed with COPY into
pyarrow (see frames.py). A query with parameters is first materialised server-side
with ``CREATE TEMP TABLE ... AS`` so its values stay bound parameters. Other drivers
(SQLite) go through SQLAlchemy's execute.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import pandas as pd
from sqlalchemy import bindparam, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from .config import mask_url
from .engine import WRITE_OPTION
from .errors import DatabaseConnectionError, OrizaError, QueryError, QueryTimeoutError
from .frames import NULL_MARKER, CsvStream, PgColumn, copy_source, frame_from_rows, frame_from_table, read_csv
from .progress import BatchProgress

__all__ = [
    "Params",
    "QuerySpec",
    "Statement",
    "connection",
    "describe_table",
    "execute",
    "fetch_frame",
    "fetch_frames",
    "parameter_names",
    "table_names",
]

_PARAM = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")  # as sqlalchemy.text() finds them
_CAST_AFTER_PARAM = re.compile(r"(?<![:\w\\]):(\w+)::")

Statement = str | Executable
Params = Mapping[str, Any]
QuerySpec = Statement | tuple[Statement, Params]


@asynccontextmanager
async def connection(engine: AsyncEngine, *, begin: bool = False) -> AsyncIterator[AsyncConnection]:
    """Check a connection out of the pool, turning connect failures into one clear error."""
    try:
        conn = await engine.connect()
    except (OSError, sa_exc.DBAPIError, sa_exc.InterfaceError, TimeoutError) as error:
        raise _connection_error(engine, error) from None
    try:
        if begin:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield conn
        else:
            yield conn
    finally:
        await conn.close()


def _connection_error(engine: AsyncEngine, error: BaseException) -> DatabaseConnectionError:
    url = engine.url
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}" if url.host or url.port \
        else f"{url.database}"
    detail = _driver_message(error)
    return DatabaseConnectionError(
        f"cannot connect to {where} as {url.username!r}: {detail}; check that the server is running "
        f"and that host, port, user, password and database in DATABASE_URL are right",
        url=mask_url(url),
    )


def _driver_message(error: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's wrapping and background links."""
    inner = _server_error(error)
    message = " ".join(str(inner).split()) or type(inner).__name__
    return message.removeprefix(f"<class '{type(inner).__module__}.{type(inner).__name__}'>: ")


def _server_error(error: BaseException) -> BaseException:
    """The asyncpg/sqlite exception under SQLAlchemy's wrappers."""
    inner = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig is not None else error
    while inner.__cause__ is not None and type(inner).__module__.startswith("sqlalchemy"):
        inner = inner.__cause__
    return inner


def query_error(error: BaseException, name: str, sql: str) -> QueryError:
    """A one-line :class:`QueryError` for ``error`` raised while running ``sql``."""
    if isinstance(error, QueryError):
        return error
    inner = _server_error(error)
    position = getattr(inner, "position", None)
    detail = getattr(inner, "message", None) or _driver_message(inner)
    hint = getattr(inner, "hint", None)
    if hint:
        detail = f"{detail} (hint: {hint})"
    return QueryError(
        name, sql, detail,
        position=int(position) if position else None,
        sqlstate=getattr(inner, "sqlstate", None),
    )


def as_statement(sql: Statement, params: Params | None) -> Executable:
    """``sql`` as an executable; text without ``params`` is sent exactly as written.

    So a literal such as ``'{"a":1}'`` is not mistaken for a ``:1`` parameter.
    """
    if not isinstance(sql, str):
        return sql
    if not params:
        return text(sql.replace(":", "\\:"))
    # SQLAlchemy does not see ":name::type" as a parameter; PostgreSQL accepts ":name ::type".
    statement = text(_CAST_AFTER_PARAM.sub(r":\1 ::", sql))
    # Typing each parameter from its value lets asyncpg bind "select :x" (an unknown type otherwise).
    names = set(parameter_names(sql))
    return statement.bindparams(*(bindparam(key, value) for key, value in params.items() if key in names))


def parameter_names(sql: str) -> list[str]:
    """The ``:name`` parameters of ``sql``, in order of first use (``:name::type`` included)."""
    found = _PARAM.findall(_CAST_AFTER_PARAM.sub(r":\1 ::", sql))
    return [name for name in dict.fromkeys(found) if not name[0].isdigit()]


def sql_text(sql: Statement, dialect: Dialect | None = None) -> str:
    return sql if isinstance(sql, str) else str(sql.compile(dialect=dialect))  # type: ignore[attr-defined]


def _compile_positional(statement: Executable, params: Params | None, dialect: Dialect) -> tuple[str, list[Any]]:
    """``statement`` as asyncpg SQL (``$1``...) and its bound values, in order."""
    assert isinstance(statement, ClauseElement)
    compiled = cast(SQLCompiler, statement.compile(
        dialect=dialect, column_keys=list(params or ()), compile_kwargs={"render_postcompile": True}
    ))
    values = compiled.construct_params(dict(params or {}))
    args = []
    for key in compiled.positiontup or ():
        value = values[key]
        processor = compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect) \
            if key in compiled.binds else None
        args.append(processor(value) if processor else value)
    return str(compiled), args


async def fetch_frame(
    engine: AsyncEngine,
    sql: Statement,
    params: Params | None = None,
    *,
    name: str = "query",
    timeout: float | None = None,
) -> pd.DataFrame:
    """Run one query and return its rows as a DataFrame (see frames.py for dtypes)."""
    statement = as_statement(sql, params)
    try:
        # The timeout cancels the work inside (which lets cancellation through) and only
        # then raises TimeoutError, out here.
        async with asyncio.timeout(timeout):
            with _raising_query_errors(name, sql, engine.dialect):
                async with connection(engine) as conn:
                    if engine.dialect.driver == "asyncpg":
                        return await _postgres_frame(conn, statement, params)
                    result = await conn.execute(statement, dict(params or {}))
                    if not result.returns_rows:  # DML: keep it, as PostgreSQL's autocommit does
                        await conn.commit()
                        return pd.DataFrame()
                    return frame_from_rows(result.fetchall(), list(result.keys()))
    except TimeoutError:
        if timeout is None:
            raise
        raise QueryTimeoutError(name, sql_text(sql, engine.dialect), timeout) from None


@contextmanager
def _raising_query_errors(name: str, sql: Statement, dialect: Dialect) -> Iterator[None]:
    """Turn any driver or SQLAlchemy error into a one-line :class:`QueryError` naming ``name``.

    Cancellation passes through untouched.
    """
    try:
        yield
    except (OrizaError, asyncio.CancelledError):
        raise
    except Exception as error:
        raise query_error(error, name, sql_text(sql, dialect)) from None


async def _postgres_frame(conn: AsyncConnection, statement: Executable, params: Params | None) -> pd.DataFrame:
    sql, args = _compile_positional(statement, params, conn.dialect)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    prepared = await driver.prepare(sql)
    columns = await _describe(driver, prepared.get_attributes())
    if not columns:
        await prepared.fetch(*args)
        return pd.DataFrame()
    if args:
        # COPY cannot take parameters; materialising first keeps the values bound.
        table = f"_oz_{uuid.uuid4().hex}"
        names = ", ".join(f"c{i}" for i in range(len(columns)))
        async with driver.transaction():
            await driver.execute(f"CREATE TEMP TABLE {table} ({names}) ON COMMIT DROP AS {sql}", *args)
            arrow = await _copy_to_arrow(driver, copy_source(table, columns, relation=True), columns)
    else:
        arrow = await _copy_to_arrow(driver, copy_source(sql, columns), columns)
    return frame_from_table(arrow, columns)


async def _copy_to_arrow(driver: Any, query: str, columns: list[PgColumn]) -> Any:
    """COPY ``query`` out as CSV, parsed in a worker thread while it streams in."""
    stream = CsvStream()
    parsed = asyncio.get_running_loop().run_in_executor(None, read_csv, stream, columns)
    try:
        await driver.copy_from_query(query, output=stream.feed, format="csv", null=NULL_MARKER)
    finally:
        stream.end()
    return await parsed


async def _describe(driver: Any, attributes: Sequence[Any]) -> list[PgColumn]:
    """Column descriptions, with the labels of any enum types looked up in pg_enum."""
    unknown = {a.type.oid for a in attributes if a.type.kind == "scalar" and a.type.schema != "pg_catalog"}
    labels: dict[int, tuple[str, ...]] = {}
    if unknown:
        rows = await driver.fetch(
            "SELECT enumtypid, array_agg(enumlabel::text ORDER BY enumsortorder) AS labels "
            "FROM pg_enum WHERE enumtypid = any($1::oid[]) GROUP BY enumtypid",
            list(unknown),
        )
        labels = {row["enumtypid"]: tuple(row["labels"]) for row in rows}
    return [
        PgColumn(a.name, a.type.name, a.type.kind, labels.get(a.type.oid))
        for a in attributes
    ]


async def fetch_frames(
    engine: AsyncEngine,
    queries: Mapping[str, QuerySpec],
    *,
    max_concurrency: int,
    timeout: float | None = None,
    progress: BatchProgress | None = None,
) -> dict[str, pd.DataFrame | QueryError]:
    """Run every query at once (at most ``max_concurrency`` at a time); failures are returned.

    Each query's end is recorded on ``progress``. Cancelling this coroutine cancels every
    query still running, on the server too, and returns only once they have all stopped.
    """
    gate = asyncio.Semaphore(max_concurrency)

    async def one(name: str, spec: QuerySpec) -> pd.DataFrame:
        sql, params = _split(spec)
        async with gate:
            start = time.perf_counter()
            try:
                frame = await fetch_frame(engine, sql, params, name=name, timeout=timeout)
            except Exception as error:
                if progress:
                    progress.record(name, rows=None, seconds=time.perf_counter() - start, error=error)
                raise
            if progress:
                progress.record(name, rows=len(frame), seconds=time.perf_counter() - start)
            return frame

    names = list(queries)
    outcomes = await asyncio.gather(*(one(n, queries[n]) for n in names), return_exceptions=True)
    results: dict[str, pd.DataFrame | QueryError] = {}
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, Exception):
            outcome = query_error(outcome, name, sql_text(_split(queries[name])[0]))
        results[name] = outcome
    return results


async def table_names(engine: AsyncEngine) -> list[str]:
    """Names of the tables in the default schema, sorted."""
    async with connection(engine) as conn:
        return await conn.run_sync(lambda sync: sorted(inspect(sync).get_table_names()))


async def describe_table(engine: AsyncEngine, table: str) -> pd.DataFrame:
    """One row per column of ``table``: name, type, nullable, default, primary key."""

    def describe(sync: Connection) -> pd.DataFrame:
        inspector = inspect(sync)
        key = set(inspector.get_pk_constraint(table).get("constrained_columns") or ())
        rows = [(c["name"], str(c["type"]), c["nullable"], c.get("default"), c["name"] in key)
                for c in inspector.get_columns(table)]
        return pd.DataFrame(rows, columns=["column", "type", "nullable", "default", "primary_key"])

    try:
        async with connection(engine) as conn:
            return await conn.run_sync(describe)
    except sa_exc.NoSuchTableError:
        raise QueryError("describe", table, f"no table named {table!r}") from None


def _split(spec: QuerySpec) -> tuple[Statement, Params | None]:
    """A batch entry as (SQL, params): it is SQL alone or an (SQL, params) pair."""
    return spec if isinstance(spec, tuple) else (spec, None)


async def execute(engine: AsyncEngine, sql: Statement, params: Params | None = None) -> int:
    """Run one DDL/DML statement in its own transaction; return the rows it affected (0 for DDL)."""
    with _raising_query_errors("execute", sql, engine.dialect):
        async with connection(engine, begin=True) as conn:
            result = await conn.execute(as_statement(sql, params), dict(params or {}))
            return max(int(result.rowcount), 0)
