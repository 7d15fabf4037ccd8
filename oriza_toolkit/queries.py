"""Running statements, whatever the dialect: one query, a concurrent batch, DDL/DML.

Checks that need no server run first, on the caller's thread (:func:`check_statement`,
:func:`check_batch`); the backend of the engine's dialect reads the result
(``backends/``); driver errors become one-line :class:`QueryError` naming the query.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import pandas as pd
from sqlalchemy import JSON, bindparam, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from . import _sql, warm
from ._sql import Params, QuerySpec, Statement
from .backends import Backend, Form
from .config import describe_location, mask_url
from .errors import DatabaseConnectionError, OrizaError, QueryError, QueryTimeoutError
from .progress import BatchProgress

__all__ = [
    "ConnectionLost",
    "Reader",
    "Session",
    "check_batch",
    "check_params",
    "check_statement",
    "check_timeout",
    "connection",
    "describe_table",
    "execute",
    "fetch_frame",
    "fetch_frames",
    "first_error",
    "query_error",
    "running",
    "schema_revision",
    "server_error",
    "split_spec",
    "split_table_name",
    "stream_chunks",
    "table_names",
]


# -- checks on the caller's thread ------------------------------------------------------

# "... in :ids" or "... in (:ids" just before a parameter.
_IN_BEFORE = re.compile(r"\bin\s*\(?\s*$", re.IGNORECASE)


def check_statement(sql: object, params: object = None, *, name: str = "query") -> None:
    """Raise ``TypeError``/``ValueError`` for SQL or parameters that cannot be run.

    Example::

        >>> check_statement("select 1;")
        >>> check_statement("")
        Traceback (most recent call last):
        ...
        ValueError: query 'query': the SQL is empty
    """
    if not isinstance(sql, (str, Executable)):
        raise TypeError(f"query {name!r}: the SQL must be a string or a SQLAlchemy statement, "
                        f"not {type(sql).__name__}")
    check_params(params, name=name)
    if isinstance(sql, str):
        try:
            parsed = _sql.parse(sql)
        except ValueError as error:
            raise ValueError(f"query {name!r}: {error}") from None
        if missing := parsed.missing(cast(Mapping[str, Any] | None, params)):
            given = "no params were given" if params is None else "params has no key " + repr(missing[0])
            raise ValueError(f"query {name!r} uses :{missing[0]} but {given}")
        for before, key in zip(parsed.pieces, parsed.params, strict=False):
            value = cast(Mapping[str, Any], params)[key]
            if isinstance(value, (list, tuple)) and _IN_BEFORE.search(before):
                raise ValueError(f"query {name!r}: a list binds as one array, so 'in :{key}' cannot take it; "
                                 f"write '= any(:{key})'")


def check_params(params: object, *, name: str = "query") -> None:
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"query {name!r}: params must be a mapping of parameter names to values "
                        f"(e.g. {{'id': 1}} for :id), not {type(params).__name__}")
    if params is not None:
        bad = next((key for key in params if not isinstance(key, str)), None)
        if bad is not None:
            raise TypeError(f"query {name!r}: parameter names must be strings, not {bad!r}")


def check_timeout(timeout: object) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__} {timeout!r}")
    if not timeout > 0 or math.isinf(timeout):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")


def check_batch(queries: object, errors: object, max_concurrency: object) -> None:
    if not isinstance(queries, Mapping):
        raise TypeError("queries must be a mapping of names to SQL or (SQL, params) pairs, "
                        f"e.g. {{'n': 'select count(*) from t'}}, not {type(queries).__name__}")
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return', not {errors!r}")
    if max_concurrency is not None and (isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
                                        or max_concurrency < 1):
        raise ValueError(f"max_concurrency must be a whole number of at least 1, not {max_concurrency!r}")
    for name, spec in queries.items():
        if not isinstance(name, str):
            raise TypeError(f"query names must be strings, not {name!r}")
        if isinstance(spec, tuple):
            if len(spec) != 2:
                raise TypeError(f"query {name!r}: give SQL or a (SQL, params) pair, not a {len(spec)}-tuple")
            check_statement(spec[0], spec[1], name=name)
        else:
            check_statement(spec, name=name)


# -- connections and errors -------------------------------------------------------------


@asynccontextmanager
async def connection(engine: AsyncEngine, backend: Backend, *, begin: bool = False) -> AsyncIterator[AsyncConnection]:
    """Check a connection out of the pool (or take the one the last read left warm:
    ``warm.py``), turning connect failures into one clear error; with ``begin``, inside a
    write transaction (committed at the end, rolled back on error).

    A connection whose driver connection has died is invalidated, so the pool replaces it.
    One left idle (no transaction open, whether its statement failed or not) is kept warm
    for the next read.
    """
    taken = warm.take(engine)
    if taken is not None and _driver_closed(taken[0]):  # the server closed it while it waited
        with contextlib.suppress(Exception):
            await taken[0].invalidate()
        taken = None
    if taken is None:
        try:
            conn, out_since = await engine.connect(), asyncio.get_running_loop().time()
        except (OSError, sa_exc.DBAPIError, sa_exc.InterfaceError, TimeoutError) as error:
            raise _connection_error(engine, backend, error) from None
    else:
        conn, out_since = taken
    keepable = True  # unless cancelled: a connection a cancel reached goes back to the pool
    try:
        if begin:
            async with backend.begin_write(conn):
                yield conn
        else:
            yield conn
    except Exception as error:
        if _is_dead_connection(error, backend) or _driver_closed(conn):
            await conn.invalidate()
            if isinstance(error.__context__, OrizaError):  # the rollback after the body's own error found
                raise error.__context__ from None  # the connection gone: the body's error says what happened
            if not isinstance(error, OrizaError):
                raise ConnectionLost(error) from error
        raise
    except BaseException:  # cancellation: the driver may have closed a connection it could not cancel
        keepable = False
        if _driver_closed(conn):
            await conn.invalidate()
        raise
    finally:
        # (an invalidated one is never kept, and never holds a transaction to end)
        if not keepable:
            await conn.close()
        else:
            driver = _driver_outside_transactions(conn)
            in_transaction = None if driver is None else _driver_in_transaction(driver)
            # Execution options (an isolation level, read-only) are put back by the pool's reset.
            idle = in_transaction is False and not _own_execution_options(conn)
            if not warm.keep(engine, conn, out_since, idle=idle):
                if in_transaction:
                    await _end_unseen_transaction(conn, driver)
                await conn.close()


def _driver_outside_transactions(conn: AsyncConnection) -> Any | None:
    """The driver's own connection under ``conn``, where SQLAlchemy still hands it out and
    holds no transaction on it; else None."""
    sync = conn.sync_connection
    if sync is None or sync.invalidated or sync.closed or sync.in_transaction():
        return None
    try:
        return sync.connection.driver_connection
    except sa_exc.SQLAlchemyError:  # no longer handed out: the pool drops it
        return None


def _driver_in_transaction(driver: Any) -> bool | None:
    """Whether the server holds ``driver`` in a transaction; None where the driver does not
    say (aiosqlite) or is closed."""
    in_transaction = getattr(driver, "is_in_transaction", None)
    is_closed = getattr(driver, "is_closed", None)
    if not callable(in_transaction) or not callable(is_closed) or is_closed():
        return None
    return bool(in_transaction())


def _own_execution_options(conn: AsyncConnection) -> bool:
    """Whether ``conn`` carries execution options beyond its engine's."""
    sync = conn.sync_connection
    return sync is not None and sync.get_execution_options() != sync.engine.get_execution_options()


async def _end_unseen_transaction(conn: AsyncConnection, driver: Any) -> None:
    """Roll back the transaction a statement run as written began on ``driver``
    (``db.query("begin")``), which SQLAlchemy does not know of and so would not reset:
    left open, it would go back to the pool with it, and later reads there would see its
    snapshot or fail as aborted."""
    try:
        await driver.execute("ROLLBACK")
    except Exception:  # not to be trusted with anyone's reads now
        await conn.invalidate()


class ConnectionLost(Exception):
    """The connection died under a statement (server restart, a proxy dropping it, a terminated
    backend); the pool has forgotten it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(_driver_message(error))


def _driver_closed(conn: AsyncConnection) -> bool:
    """Whether the driver's own connection under ``conn`` has been closed."""
    sync = conn.sync_connection
    if sync is not None and (sync.invalidated or sync.closed):
        return True  # asking an invalidated Connection for its connection would open a new one
    try:
        driver = sync.connection.driver_connection if sync is not None else None
    except sa_exc.SQLAlchemyError:
        return True
    is_closed = getattr(driver, "is_closed", None)
    return bool(is_closed()) if callable(is_closed) else False


def _is_dead_connection(error: BaseException, backend: Backend | None) -> bool:
    inner = server_error(error)
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return False  # SQLAlchemy saw it already
    return isinstance(inner, (ConnectionError, BrokenPipeError)) or (
        backend is not None and backend.is_lost_connection(inner))


_LOST = "the connection to the server was lost"


def _lost(detail: str) -> str:
    return f"{_LOST} ({detail}); the next query opens a new one"


def _connection_error(engine: AsyncEngine, backend: Backend, error: BaseException) -> DatabaseConnectionError:
    url = engine.url
    where = describe_location(url)
    inner = server_error(error)
    if isinstance(inner, TimeoutError):
        timeout = backend.connect_timeout(url)
        return DatabaseConnectionError(
            f"cannot connect to {where}: the server did not answer within {timeout:g} s; check the host and "
            "port, and that a firewall or VPN lets you reach it (connect_timeout=SECONDS in the URL waits longer)",
            url=mask_url(url))
    detail = _driver_message(error)
    return DatabaseConnectionError(
        f"cannot connect to {where} as {url.username!r}: {detail}",
        check="check that the server is running and that host, port, user, password and database in {source} "
              "are right",
        url=mask_url(url),
    )


def _driver_message(error: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's wrapping and background links."""
    inner = server_error(error)
    message = " ".join(str(inner).split()) or type(inner).__name__
    return message.removeprefix(f"<class '{type(inner).__module__}.{type(inner).__name__}'>: ")


def server_error(error: BaseException) -> BaseException:
    """The asyncpg/sqlite exception under SQLAlchemy's wrappers."""
    inner = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig is not None else error
    while inner.__cause__ is not None and type(inner).__module__.startswith("sqlalchemy"):
        inner = inner.__cause__
    return inner


def query_error(error: BaseException, name: str, sql: str, backend: Backend | None = None) -> QueryError:
    """A one-line :class:`QueryError` for ``error`` raised while running ``sql`` (on ``backend``,
    which tells a lost connection from other errors)."""
    if isinstance(error, QueryError):
        return error.renamed(name, sql)
    inner = server_error(error)
    position = getattr(inner, "position", None)
    detail = getattr(inner, "message", None) or _driver_message(inner)
    hint = getattr(inner, "hint", None)
    if hint:
        detail = f"{detail} (hint: {hint})"
    if isinstance(error, ConnectionLost) or _is_dead_connection(error, backend):
        detail = _lost(detail)
    return QueryError(
        name, sql, detail,
        position=int(position) if position else None,
        sqlstate=getattr(inner, "sqlstate", None),
    )


def sql_text(sql: Statement, dialect: Dialect | None = None) -> str:
    return sql if isinstance(sql, str) else str(sql.compile(dialect=dialect))  # type: ignore[attr-defined]


@contextmanager
def _raising_query_errors(name: str, sql: Statement, dialect: Dialect, backend: Backend) -> Iterator[None]:
    """Turn any driver or SQLAlchemy error into a one-line :class:`QueryError` naming ``name``.

    Cancellation passes through untouched.
    """
    try:
        yield
    except (asyncio.CancelledError, DatabaseConnectionError):
        raise
    except QueryError as error:
        raise error.renamed(name, sql_text(sql, dialect)) from None
    except OrizaError:
        raise
    except Exception as error:
        raise query_error(error, name, sql_text(sql, dialect), backend) from None


# -- running ----------------------------------------------------------------------------

# Reads a query in some context of its own (a snapshot): (sql, params, form) -> result.
Reader = Callable[[Statement, Params | None, Form], Awaitable[Any]]


async def fetch_frame(
    engine: AsyncEngine,
    backend: Backend,
    sql: Statement,
    params: Params | None = None,
    *,
    name: str = "query",
    timeout: float | None = None,
    form: Form = "frame",
    reader: Reader | None = None,
    conn: AsyncConnection | None = None,
) -> Any:
    """Run one query and return its rows as a DataFrame (see frames.py for dtypes), or in
    another ``form``: a pyarrow Table, or parsed chunks to join with others'. ``reader``
    reads it instead of a pooled connection (a snapshot's ``read``), or ``conn``, one
    checked out already."""
    async with running(name, sql, timeout, engine, backend):
        if reader is not None:
            return await reader(sql, params, form)
        if conn is not None:
            return await backend.read(conn, sql, params, form)
        async with connection(engine, backend) as pooled:
            return await backend.read(pooled, sql, params, form)


async def stream_chunks(
    engine: AsyncEngine, backend: Backend, sql: Statement, params: Params | None, *, rows: int, arrow: bool
) -> AsyncGenerator[Any, None]:
    """The rows of one query in chunks of ``rows``, on one pooled connection held until the
    last chunk is read or the iterator is closed (which cancels the query on the server)."""
    with _raising_query_errors("stream", sql, engine.dialect, backend):
        async with connection(engine, backend) as conn:
            chunks = backend.stream(conn, sql, params, rows, arrow)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk


@asynccontextmanager
async def running(name: str, sql: Statement, timeout: float | None, engine: AsyncEngine, backend: Backend
                  ) -> AsyncIterator[None]:
    """Run the body under ``timeout``, its errors as one-line :class:`QueryError` naming ``name``."""
    try:
        # The timeout cancels the work inside (which lets cancellation through) and only
        # then raises TimeoutError, out here.
        async with asyncio.timeout(timeout):
            with _raising_query_errors(name, sql, engine.dialect, backend):
                yield
    except TimeoutError:
        if timeout is None:
            raise
        raise QueryTimeoutError(name, sql_text(sql, engine.dialect), timeout, stopped=backend.stopped) from None


async def fetch_frames(
    engine: AsyncEngine,
    backend: Backend,
    queries: Mapping[str, QuerySpec],
    *,
    max_concurrency: int,
    timeout: float | None = None,
    progress: BatchProgress | None = None,
    reader: Reader | None = None,
    timings: dict[str, tuple[dt.datetime, float]] | None = None,
) -> dict[str, pd.DataFrame | QueryError]:
    """Run every query at once (at most ``max_concurrency`` at a time), each through
    ``reader`` if given (see :func:`fetch_frame`); failures are returned.

    Each query's end is recorded on ``progress``, and its start (UTC) and seconds in
    ``timings``. Cancelling this coroutine cancels every query still running, on the
    server too, and returns only once they have all stopped.
    """

    async def one(name: str, spec: QuerySpec, conn: AsyncConnection | None) -> pd.DataFrame:
        sql, params = split_spec(spec)
        started = dt.datetime.now(dt.UTC)
        start = time.perf_counter()
        try:
            frame = await fetch_frame(engine, backend, sql, params, name=name, timeout=timeout, reader=reader,
                                      conn=conn)
        except Exception as error:
            if progress:
                progress.record(name, rows=None, seconds=time.perf_counter() - start, error=error)
            raise
        seconds = time.perf_counter() - start
        if timings is not None:
            timings[name] = (started, seconds)
        if progress:
            progress.record(name, rows=len(frame), seconds=seconds)
        return cast(pd.DataFrame, frame)

    names = list(queries)
    results: dict[str, pd.DataFrame | QueryError] = {}
    waiting = iter(names)

    def failed(name: str, error: Exception) -> None:
        results[name] = query_error(error, name, sql_text(split_spec(queries[name])[0]), backend)

    async def in_turn(conn: AsyncConnection | None) -> bool:
        """Read the queries left, in turn, on ``conn``; False if it died on the way."""
        for name in waiting:
            try:
                results[name] = await one(name, queries[name], conn)
            except Exception as error:
                failed(name, error)
                if conn is not None and _driver_closed(conn):  # the pool replaces it
                    await conn.invalidate()
                    return False
        return True

    async def runner() -> None:
        # A few runners take the queries in turn, each on one connection while it works:
        # a task and a checkout per connection, not per query.
        if reader is not None:
            await in_turn(None)
            return
        while True:
            entered = False
            try:
                async with connection(engine, backend) as conn:
                    entered = True
                    if await in_turn(conn):
                        return
            except Exception as error:
                if entered:
                    raise
                unread = next(waiting, None)
                if unread is None:
                    return
                failed(unread, error)  # no connection: the next query says why

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(max_concurrency, len(names))):
                group.create_task(runner())
    except BaseExceptionGroup as stopped:  # only what is not an Exception gets here (KeyboardInterrupt, ...)
        raise first_error(stopped) from None
    return {name: results[name] for name in names}


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a task group's failure, unwrapped (to raise as it was)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def schema_revision(engine: AsyncEngine, backend: Backend) -> str | None:
    """The database's Alembic revision (heads joined by ","), or None where it has no
    ``alembic_version`` table (or it cannot be read)."""
    try:
        frame = await fetch_frame(engine, backend, "SELECT version_num FROM alembic_version ORDER BY 1")
    except (QueryError, DatabaseConnectionError):
        return None
    return ",".join(str(v) for v in frame.iloc[:, 0]) or None


def split_table_name(table: str, schema: str | None) -> tuple[str, str | None]:
    """``"analytics.t"`` as ``("t", "analytics")``; an explicit ``schema`` wins."""
    if not isinstance(table, str) or not table.strip():
        raise TypeError(f"the table name must be a non-empty string, not {table!r}")
    if schema is not None or "." not in table:
        return table, schema
    head, _, tail = table.rpartition(".")
    return tail.strip('"'), head.strip('"')


async def table_names(engine: AsyncEngine, backend: Backend, schema: str | None = None) -> list[str]:
    """Names of the tables in ``schema`` (default: the default schema), sorted."""
    async with connection(engine, backend) as conn:
        return await conn.run_sync(lambda sync: sorted(inspect(sync).get_table_names(schema=schema)))


async def describe_table(engine: AsyncEngine, backend: Backend, table: str, schema: str | None = None
                         ) -> pd.DataFrame:
    """One row per column of ``table``: name, type, nullable, default, primary key."""

    def describe(sync: Connection) -> pd.DataFrame:
        inspector = inspect(sync)
        key = set(inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or ())
        rows = [(c["name"], str(c["type"]), c["nullable"], c.get("default"), c["name"] in key)
                for c in inspector.get_columns(table, schema=schema)]
        return pd.DataFrame(rows, columns=["column", "type", "nullable", "default", "primary_key"])

    full = f"{schema}.{table}" if schema else table
    try:
        async with connection(engine, backend) as conn:
            return await conn.run_sync(describe)
    except sa_exc.NoSuchTableError:
        raise QueryError("describe", full, f"no table named {full!r}") from None


def split_spec(spec: QuerySpec) -> tuple[Statement, Params | None]:
    """A batch entry as (SQL, params): it is SQL alone or an (SQL, params) pair."""
    return spec if isinstance(spec, tuple) else (spec, None)


async def execute(engine: AsyncEngine, backend: Backend, sql: Statement, params: Params | None = None) -> int:
    """Run one DDL/DML statement in its own transaction; return the rows it affected (0 for DDL)."""
    with _raising_query_errors("execute", sql, engine.dialect, backend):
        async with connection(engine, backend, begin=True) as conn:
            return await execute_on(conn, sql, params)


async def execute_on(conn: AsyncConnection, sql: Statement, params: Params | None = None) -> int:
    """Run one DDL/DML statement on ``conn`` (in whatever transaction it is in); return the
    rows it affected (0 for DDL)."""
    if isinstance(sql, str):
        result = await conn.execute(_as_text(sql, params))
    else:
        result = await conn.execute(sql, dict(params or {}))
    return max(int(result.rowcount), 0)


def _as_text(sql: str, params: Params | None) -> Executable:
    """``sql`` for SQLAlchemy, its ``:name`` parameters found by the toolkit's lexer: every
    other colon (in literals, comments, casts) is escaped so SQLAlchemy leaves it alone.
    Each parameter is typed from its value, so asyncpg can bind ``select :x``."""
    parsed = _sql.parse(sql)
    escaped = [piece.replace(":", "\\:") for piece in parsed.pieces]
    rebuilt = escaped[0] + "".join(f":{key}{piece}" for key, piece in zip(parsed.params, escaped[1:], strict=True))
    values = dict(params or {})
    return text(rebuilt).bindparams(*(
        bindparam(key, values[key], type_=JSON() if isinstance(values[key], dict) else None)
        for key in parsed.names if key in values))


class Session:
    """One connection kept out of the pool, for statements that build on each other: temp
    tables, ``SET`` and transactions persist from one :meth:`run` to the next (the ``%sql``
    magic's session). If the connection dies, the next run opens a new one and
    :attr:`reconnected` says so once.
    """

    def __init__(self, engine: AsyncEngine, backend: Backend) -> None:
        self.engine = engine
        self.backend = backend
        self._conn: AsyncConnection | None = None
        self._lost = False
        self.reconnected = False

    @property
    def active(self) -> bool:
        """Whether the session holds a connection now."""
        return self._conn is not None

    async def run(self, sql: str, params: Params | None = None, *, timeout: float | None = None
                  ) -> list[pd.DataFrame]:
        """Run each statement of ``sql`` in order; return each one's result (a
        :class:`~oriza_toolkit.frames.RowsAffected` for statements that return no rows)."""
        statements = _sql.split_statements(sql)
        if not statements:
            raise ValueError("the SQL is empty")
        conn = await self._connection()
        results = []
        for number, statement in enumerate(statements, start=1):
            name = "query" if len(statements) == 1 else f"statement {number}"
            used = set(_sql.parameter_names(statement))
            wanted = {key: value for key, value in (params or {}).items() if key in used}
            try:
                async with running(name, statement, timeout, self.engine, self.backend):
                    results.append(await self.backend.read(conn, statement, wanted))
            except BaseException as error:
                if _is_dead_connection(error, self.backend) or _driver_closed(conn):
                    await self._drop()
                    if isinstance(error, QueryError) and not error.detail.startswith(_LOST):
                        raise QueryError(error.name, error.sql, _lost(error.detail)) from None
                raise
        return results

    async def _connection(self) -> AsyncConnection:
        if self._conn is not None and _driver_closed(self._conn):
            await self._drop()  # the server closed it since the last run (a restart, a terminated backend)
        self.reconnected = self._lost
        self._lost = False
        if self._conn is None:
            try:
                self._conn = await self.engine.connect()
            except (OSError, sa_exc.DBAPIError, sa_exc.InterfaceError, TimeoutError) as error:
                raise _connection_error(self.engine, self.backend, error) from None
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._lost = True
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()

    async def close(self) -> None:
        """Give the connection back (rolling back an open transaction)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
