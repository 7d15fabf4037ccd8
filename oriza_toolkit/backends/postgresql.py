"""PostgreSQL through asyncpg: a result streamed with COPY into arrow, writes with COPY.

Reading a query:

1. Prepare the statement (unnamed: the statement cache is off) for its column types and
   the types the server inferred for its parameters.
2. With parameters, render each value as a typed literal (``'text'::type``): the text is
   the server's own output for the value, produced by binding it at the protocol level
   (or, for numbers, strings and NULL, written directly; a string is taken as the
   value's input text, as psycopg does), and
   :func:`oriza_toolkit._sql.quote_literal` is the one function that quotes it. So COPY,
   which cannot take parameters, needs no temp table, no TEMP privilege and no writable
   transaction: it runs on hot standbys and as read-only roles.
3. ``SET LOCAL`` of the output settings the parser relies on and ``COPY (query) TO
   STDOUT`` (the text format: ``pgread.py``), in one message and so one implicit transaction (pgbouncer's
   transaction mode keeps it on one server connection; nothing is sent at connect time
   that pgbouncer refuses; a user's own session settings cannot break parsing). The
   output is parsed off the loop while it streams in (``pgread.py``).

A read is two round trips (three with parameters that need the server's output); a read
of a statement described before is one (``pgflight.py``: the describe and the COPY sent
together). A small result's DataFrame is built straight from the COPY's text
(``pgread.small_frame``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import io
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
from sqlalchemy import JSON, Interval, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from .. import _sql
from .._sql import Params
from ..config import DEFAULT_CONNECT_TIMEOUT, asyncpg_connect_args
from ..errors import MigrationError, QueryError
from ..frames import Chunk, Form, RowsAffected, frame_from_rows, from_chunks, object_kind, stream_decimals
from . import pgwrite
from .asyncpg_private import Described, describe_and_copy_out, flies
from .base import TableLoaded, write_each
from .pgflight import Flight, Shapes, value_text
from .pgread import SETTINGS, PgColumn, arrow_message, copy_query, copy_stream, copy_whole, small_frame
from .pgwrite import BinaryRows

__all__ = ["PostgresBackend"]

# Startup parameters pgbouncer accepts by default (it tracks these per client).
STARTUP_SETTINGS = {"TimeZone": "UTC", "application_name": "oriza_toolkit"}
_TRANSACTION_CONTROL = {"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"}
# Statements COPY can run; anything else (EXPLAIN, SHOW, ...) is fetched row by row.
_COPYABLE = {"select", "with", "values", "table", "(", "insert", "update", "delete", "merge"}
_DML = {"insert", "update", "delete", "merge"}
# Driver errors that mean the connection itself is gone (the server restarted, a proxy
# dropped it): the pool must forget that connection.
_DEAD_CONNECTION = ("ConnectionDoesNotExistError", "ConnectionResetError", "BrokenPipeError",
                    "InterfaceError", "ConnectionFailureError")
# Column types a partitioned read can split into ranges (as pg_typeof names them).
_PARTITION_TYPES = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision", "date",
                              "timestamp without time zone", "timestamp with time zone"})
# ... of which these may hold NaN or infinities, which no range between two edges contains.
_NOT_ALWAYS_FINITE = frozenset({"numeric", "real", "double precision"})
# How often a COPY into a table checks that its connection is still open.
_WATCH_SECONDS = 0.25
# A server's WAL position: what a standby has replayed, what a primary has written.
_POSITION = "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)"
# The advisory lock that serialises schema changes ("ozmg"), and how long a second one waits.
LOCK_KEY = 0x6F7A6D67
LOCK_WAIT_SECONDS = 60.0


class PostgresBackend:
    """PostgreSQL through asyncpg (see the module docstring)."""

    name = "postgresql"
    stopped = "was cancelled on the server"
    max_identifier_bytes: int | None = _sql.MAX_IDENTIFIER_BYTES
    float_type = "float8"

    def __init__(self) -> None:
        self._shapes = Shapes()

    def holder_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine:
        """The same connections as :meth:`make_engine`'s, unpooled: a held snapshot (a Dask
        graph's, for a while after the graph is dropped) never takes a pooled connection."""
        unpooled = {key: value for key, value in options.items()
                    if not key.startswith("pool") and key != "max_overflow"}
        return self.make_engine(url, {**unpooled, "poolclass": NullPool})

    def make_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine:
        bare, args = asyncpg_connect_args(url)
        given = dict(options.pop("connect_args", None) or {})
        settings = {**STARTUP_SETTINGS, **args.pop("server_settings", {}), **given.pop("server_settings", {})}
        # No statement state on the server beyond one transaction: transaction-mode
        # pgbouncer may give the next transaction another server connection.
        connect_args = {"statement_cache_size": 0, "prepared_statement_cache_size": 0, **args, **given,
                        "server_settings": settings}
        # The engine keeps the URL as given (shown masked); the libpq parameters that
        # SQLAlchemy would pass to asyncpg as keywords go through connect_args instead.
        engine = create_async_engine(url, connect_args=connect_args, **options)
        translated = set(url.query) - set(bare.query)

        @event.listens_for(engine.sync_engine, "do_connect")
        def _without_libpq_keywords(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            for key in translated:
                if key not in connect_args:
                    cparams.pop(key, None)

        @event.listens_for(engine.sync_engine, "checkout")
        def _alive(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            # Instead of a pre-ping round trip per query: the loop thread sees a server
            # or proxy closing an idle connection as it happens, so a closed one is known.
            if dbapi_connection.driver_connection.is_closed():
                raise sa_exc.DisconnectionError("the server closed this pooled connection")

        return engine

    def connect_timeout(self, url: URL) -> float:
        timeout = asyncpg_connect_args(url)[1].get("timeout")
        return float(timeout or DEFAULT_CONNECT_TIMEOUT)

    async def read(self, conn: AsyncConnection, sql: Any, params: Any, form: Form = "frame") -> Any:
        """The whole result as a DataFrame, an arrow table, or its parsed chunks."""
        driver = await _driver(conn)
        positional = _positional(sql, params, conn.dialect)
        statement, args, _ = positional
        if flies() and not driver.is_in_transaction() and (
                flight := self._shapes.flight(statement.parsed, statement.keys, args)) is not None:
            done, result = await _read_in_one_flight(driver, flight, args, self._shapes, form)
            if done:
                return result
        plan = await _plan(driver, positional, self._shapes)
        if not isinstance(plan, _Copy):
            return _without_rows(plan, form)
        with plan.errors():
            return await copy_whole(driver, plan.text, plan.columns, functools.partial(from_chunks, form=form),
                                    small=small_frame if form == "frame" else None, form=form)

    def stream(self, conn: AsyncConnection, sql: Any, params: Any, rows: int, arrow: bool) -> AsyncGenerator[Any, None]:
        """The result in chunks of ``rows`` rows: DataFrames, or arrow record batches."""
        form: Form = "arrow" if arrow else "frame"

        async def chunks() -> AsyncGenerator[Any, None]:
            driver = await _driver(conn)
            plan = await _plan(driver, _positional(sql, params, conn.dialect))
            if not isinstance(plan, _Copy):
                yield _without_rows(plan, form)
                return
            fixed: list[dict[int, pa.DataType]] = []  # arrow's numeric types, fixed by the first chunk

            def convert(chunks: list[Chunk]) -> Any:
                if form == "frame":  # numeric becomes floats or Decimals: no decimal type to fix
                    return from_chunks(chunks, form)
                if not fixed:
                    fixed.append(stream_decimals(chunks[0]))
                return from_chunks(chunks, form, fixed[0])

            with plan.errors():
                parts = copy_stream(driver, plan.text, plan.columns, convert, rows, form)
                async with contextlib.aclosing(parts):
                    async for chunk in parts:
                        yield chunk

        return chunks()

    async def export_snapshot(self, conn: AsyncConnection) -> str:
        """``pg_export_snapshot()`` in a REPEATABLE READ READ ONLY transaction (on a hot
        standby too)."""
        await _begin_repeatable_read(conn)
        return str((await conn.exec_driver_sql("SELECT pg_export_snapshot()")).scalar_one())

    async def import_snapshot(self, conn: AsyncConnection, snapshot: str) -> None:
        """``SET TRANSACTION SNAPSHOT``: its own statement, first in the transaction (so
        pgbouncer's transaction mode keeps the reads after it on the same server connection)."""
        # SET takes no parameter and no typed literal: the id, which the server made, is
        # checked to be only hex digits and dashes before it is written in quotes.
        if not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"not a snapshot id: {snapshot!r}")
        await _begin_repeatable_read(conn)
        await conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")

    def encode(self, frame: pd.DataFrame) -> BinaryRows | bytes | None:
        """Arrow rows for binary COPY (pgpq), or CSV where a column has no exact binary encoding."""
        return pgwrite.encode(frame) or _arrow_csv(frame)

    def column_types(self, frame: pd.DataFrame, generic: dict[str, Any]) -> dict[str, Any]:
        """``jsonb`` for JSON, ``interval`` for timedeltas."""
        types = {name: JSONB() if isinstance(kind, JSON) else kind for name, kind in generic.items()}
        for name, column in frame.items():
            if pd.api.types.is_timedelta64_dtype(column.dtype):
                types[str(name)] = Interval()
        return types

    @contextlib.asynccontextmanager
    async def begin_write(self, conn: AsyncConnection) -> AsyncIterator[None]:
        async with conn.begin():
            # SQLAlchemy's asyncpg adapter sends BEGIN with its first statement; the driver's
            # own calls (COPY, reads) that may come first would otherwise run outside it.
            await conn.exec_driver_sql("SELECT 1")
            yield

    def is_lost_connection(self, error: BaseException) -> bool:
        # 57P01-57P03: the server was shut down or restarted under us; 08...: connection exceptions
        sqlstate = str(getattr(error, "sqlstate", "") or "")
        return type(error).__name__ in _DEAD_CONNECTION or sqlstate.startswith(("57P0", "08"))

    def partition_bounds(self, inner: str, column: str) -> str:
        ident = _sql.quote_identifier(column)
        return (f"SELECT min({ident}) AS low, max({ident}) AS high, pg_typeof(min({ident}))::text AS kind, "
                f"count(*) AS n, count({ident}) AS present FROM ({inner}\n) AS _oz_q")

    def stddev(self, expression: str) -> str:
        return f"stddev_samp({expression})"

    def floor(self, expression: str) -> str:
        return f"CAST(floor({expression}) AS int8)"  # a cast alone rounds to the nearest

    def quantile(self, expression: str, fraction: float) -> str:
        return f"percentile_cont({float(fraction)!r}) WITHIN GROUP (ORDER BY {expression})"

    def sample_quantiles(self, inner: str, column: str, kind: str, fractions: Sequence[float], *, sampled: bool
                         ) -> str:
        ident = _sql.quote_identifier(column)
        where = [f"{ident} IS NOT NULL"]
        if kind in _NOT_ALWAYS_FINITE:
            where.append(_finite(ident))
        if sampled:
            where.append("random() < :_oz_sample")
        quantiles = ", ".join(f"percentile_disc({float(f)!r}) WITHIN GROUP (ORDER BY {ident}) AS q{i}"
                              for i, f in enumerate(fractions))
        return f"SELECT {quantiles} FROM ({inner}\n) AS _oz_q WHERE {' AND '.join(where)}"

    def can_partition(self, kind: str) -> bool:
        return kind in _PARTITION_TYPES

    def finite_bounds(self, inner: str, column: str, kind: str) -> str | None:
        if kind not in _NOT_ALWAYS_FINITE:
            return None
        ident = _sql.quote_identifier(column)
        return f"SELECT min({ident}) AS low, max({ident}) AS high FROM ({inner}\n) AS _oz_q WHERE {_finite(ident)}"

    async def literal_sql(self, conn: AsyncConnection, sql: str, params: Params | None) -> str:
        """The values as the server's own typed literals (as a COPY of the query gets them)."""
        statement, args, names = _positional(sql, params, conn.dialect)
        driver = await _driver(conn)
        rendered = (await _render(driver, statement, args, names))[0]
        await _end_implicit_transaction(driver)
        return rendered

    async def position(self, conn: AsyncConnection) -> str:
        return str((await conn.execute(text(f"SELECT {_POSITION}::text"))).scalar_one())

    async def behind(self, conn: AsyncConnection, position: str) -> float:
        """Bytes of WAL still to replay (a server that is no standby has what it wrote)."""
        lag = (await conn.execute(text(f"SELECT pg_wal_lsn_diff(CAST(CAST(:p AS text) AS pg_lsn), {_POSITION})"
                                       "::float8"), {"p": position})).scalar_one()
        return max(float(lag or 0), 0.0)

    async def lock_migrations(self, conn: AsyncConnection, engine: AsyncEngine) -> None:
        """A transaction-scoped advisory lock, waited for at most :data:`LOCK_WAIT_SECONDS`;
        then a one-line error naming the session that holds it."""
        previous = (await conn.execute(text("SELECT current_setting('lock_timeout')"))).scalar_one()
        await conn.execute(text("SELECT set_config('lock_timeout', :t, true)"),
                           {"t": f"{int(LOCK_WAIT_SECONDS * 1000)}ms"})
        try:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        except sa_exc.DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != "55P03":
                raise
            holder = await _lock_holder(engine)
            raise MigrationError("lock", f"another session has been migrating this database for over "
                                         f"{LOCK_WAIT_SECONDS:g} s ({holder}); try again when it has finished"
                                 ) from None
        await conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})

    async def replace_rows(self, conn: AsyncConnection, frames: Mapping[str, pd.DataFrame],
                           encoded: Mapping[str, Any], loaded: TableLoaded) -> None:
        """Drop the tables' secondary indexes and keys, empty them, COPY every table in,
        then build each index and check each key once (far faster than maintaining them
        row by row); all inside the caller's transaction."""
        driver = await _driver(conn)
        names = list(frames)
        indexes = await driver.fetch(_SECONDARY_INDEXES, names)
        constraints = await driver.fetch(_KEYS, names)  # foreign keys first
        for constraint in constraints:
            await driver.execute(f"ALTER TABLE {constraint['tab']} DROP CONSTRAINT {constraint['name']}")
        for index in indexes:
            await driver.execute(f"DROP INDEX {index['name']}")
        await driver.execute(f"TRUNCATE {', '.join(_sql.quote_identifier(n) for n in names)}")
        await write_each(self, conn, frames, encoded, loaded)
        for index in indexes:
            await driver.execute(index["definition"])
        for constraint in reversed(constraints):  # keys before the foreign keys that need them
            await driver.execute(f"ALTER TABLE {constraint['tab']} ADD CONSTRAINT {constraint['name']} "
                                 f"{constraint['definition']}")

    async def write(
        self, conn: AsyncConnection, frame: pd.DataFrame, table: str, schema: str | None, encoded: Any
    ) -> None:
        driver = await _driver(conn)
        columns = [str(c) for c in frame.columns]
        types = dict(await driver.fetch(*pgwrite.column_types_sql(table, schema)))
        try:
            if isinstance(encoded, BinaryRows):
                rows = pgwrite.for_table(encoded, types) if types.keys() >= set(columns) else None
                if rows is not None:
                    await _until_closed(driver, driver.copy_to_table(
                        table, source=pgwrite.payload(rows), columns=columns, schema_name=schema, format="binary"))
                    return
                encoded = await asyncio.to_thread(_arrow_csv, frame)  # a column type arrow cannot cast to exactly
            if encoded is not None:
                # pyarrow quotes every string and leaves NULL unquoted and empty: COPY's CSV default.
                await _until_closed(driver, driver.copy_to_table(table, source=io.BytesIO(encoded), columns=columns,
                                                                 schema_name=schema, format="csv"))
            else:
                await _until_closed(driver, driver.copy_records_to_table(
                    table, records=_records(frame), columns=columns, schema_name=schema))
        except Exception as error:
            refused = _refused_value(error, frame, types)
            if refused is None:
                raise
            raise ValueError(refused) from None


_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")
_COPY_COLUMN = re.compile(r"^COPY [^,]*, line \d+, column (.+?)(?:: \"|$)", re.MULTILINE)


def _refused_value(error: BaseException, frame: pd.DataFrame, types: Mapping[str, str]) -> str | None:
    """For a value a column of the table refused during COPY (SQLSTATE class 22: numeric
    field overflow, value too long, ...): which column, the table's type and the frame's."""
    if not str(getattr(error, "sqlstate", "") or "").startswith("22"):
        return None
    found = _COPY_COLUMN.search(str(getattr(error, "context", "") or ""))
    if found is None or found.group(1) not in types:
        return None
    name = found.group(1)
    column = frame[name]
    given = str(column.dtype)
    if pd.api.types.is_object_dtype(column.dtype):
        given = f"{object_kind(column.dropna()) or 'mixed'} objects"
    return (f"column {name!r} holds a value the table's {types[name]} cannot hold (the frame's column is "
            f"{given}): {_message(error)}")


def _finite(ident: str) -> str:
    """A condition true for the column's finite values only. As float8, NaN sorts above
    Infinity: both comparisons leave it out (numeric too, whose NaN and, since PostgreSQL
    14, infinities become float8's)."""
    return f"({ident})::float8 > '-Infinity'::float8 AND ({ident})::float8 < 'Infinity'::float8"


async def _begin_repeatable_read(conn: AsyncConnection) -> None:
    # SQLAlchemy puts both back when the connection returns to the pool.
    await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    await conn.begin()


async def _driver(conn: AsyncConnection) -> Any:
    sync = conn.sync_connection
    # Connection.connection needs no greenlet (as get_raw_connection does) once checked out
    raw = sync.connection if sync is not None and not sync.invalidated else await conn.get_raw_connection()
    assert raw.driver_connection is not None
    return raw.driver_connection


async def _until_closed(driver: Any, work: Coroutine[Any, Any, Any]) -> Any:
    """Await ``work`` (a COPY into a table), but not past the connection's end: asyncpg can
    wait forever for room to write on a connection the server has closed (a terminated
    backend, a restart), so the connection is watched and the COPY given up when it closes."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_WATCH_SECONDS)
            if done:
                return task.result()
            if driver.is_closed():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise ConnectionResetError("the server closed the connection during the COPY")
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise


async def _lock_holder(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT a.pid, a.usename, a.application_name, a.client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.objid = :key"), {"key": LOCK_KEY})).first()
    if row is None:
        return "it has just finished"
    return f"pid {row.pid}, user {row.usename}, application {row.application_name or '?'}, " \
           f"from {row.client_addr or 'a local socket'}"


_SECONDARY_INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index AS i LEFT JOIN pg_constraint AS c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')
WHERE i.indrelid = any($1::regclass[]) AND c.oid IS NULL
"""
_KEYS = """
SELECT conrelid::regclass::text AS tab, quote_ident(conname) AS name, pg_get_constraintdef(oid) AS definition,
       contype = 'f' AS foreign
FROM pg_constraint WHERE contype IN ('p', 'u', 'f') AND conrelid = any($1::regclass[])
ORDER BY contype = 'f' DESC
"""


@dataclass
class _Statement:
    parsed: _sql.ParsedSQL
    sql: str  # with $1, $2, ...
    keys: list[str]  # the parameter each $n stands for


def _positional(sql: Any, params: Any, dialect: Dialect) -> tuple[_Statement, list[Any], dict[str, str]]:
    """The statement with ``$n`` placeholders, its values in order, and each ``$n``'s name."""
    if isinstance(sql, str):
        parsed = _sql.parse(sql)
        if parsed.long_identifier:
            raise QueryError("query", sql, f"the name {parsed.long_identifier[:30] + '...'!r} is longer than "
                             f"PostgreSQL's {_sql.MAX_IDENTIFIER_BYTES}-byte limit and would be cut; "
                             "use a shorter one")
        parsed.require(params)
        text, keys, _ = parsed.positional()
        values = dict(params or {})
        return _Statement(parsed, text, keys), [values[k] for k in keys], \
            {f"${i}": f":{k}" for i, k in enumerate(keys, 1)}
    assert isinstance(sql, ClauseElement)
    compiled = cast(SQLCompiler, sql.compile(
        dialect=dialect, column_keys=list(params or ()), compile_kwargs={"render_postcompile": True}
    ))
    bound = compiled.construct_params(dict(params or {}))
    args = []
    for key in compiled.positiontup or ():
        processor = compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect) \
            if key in compiled.binds else None
        args.append(processor(bound[key]) if processor else bound[key])
    parsed = _sql.parse(str(compiled), style="numeric")
    keys = sorted(set(parsed.params), key=int)
    return _Statement(parsed, parsed.sql, keys), args, {}


@dataclass
class _Copy:
    """A read that streams with COPY: the whole message to send, and what maps its errors
    back to the SQL as written."""

    parsed: _sql.ParsedSQL
    text: str
    prefix: int  # characters before the user's SQL in text
    original: Callable[[int], int]
    columns: list[PgColumn]

    @contextlib.contextmanager
    def errors(self, server: bool = True) -> Iterator[None]:
        """Server (unless not ``server``) and parsing errors as one-line :class:`QueryError`
        pointing into the SQL."""
        try:
            yield
        except pa.ArrowInvalid as error:
            raise QueryError("query", self.parsed.sql, arrow_message(str(error), self.columns)) from None
        except Exception as error:
            if not server:
                raise
            position = getattr(error, "position", None)
            if position and hasattr(error, "sqlstate"):
                raise QueryError("query", self.parsed.sql, _message(error),
                                 position=self.original(max(int(position) - self.prefix, 1)),
                                 sqlstate=error.sqlstate) from None
            raise


async def _plan(driver: Any, positional: tuple[_Statement, list[Any], dict[str, str]], shapes: Shapes | None = None
                ) -> _Copy | pd.DataFrame:
    """What reading the statement takes: a :class:`_Copy`, or (for statements COPY cannot
    run, or that return no rows) the result itself. ``shapes`` learns the statement's."""
    statement, args, names = positional
    parsed = statement.parsed
    if parsed.keyword in _TRANSACTION_CONTROL:  # typed into a session: run as written
        return _affected(await driver.execute(parsed.sql))
    sql, original, attributes, prepared = await _render(driver, statement, args, names)
    plan = _Copy(parsed, "", 0, original, [])
    with plan.errors():
        if not attributes:
            status = await driver.execute(sql)
            if status.startswith("SELECT ") and parsed.keyword != "create" and "into" not in _sql.words(parsed.sql):
                return pd.DataFrame(index=pd.RangeIndex(int(status.split()[-1])))  # rows without columns
            return _affected(status)
        if parsed.keyword not in _COPYABLE:  # EXPLAIN, SHOW, ...: row by row
            records = await driver.fetch(sql)
            return frame_from_rows([tuple(r) for r in records], [a.name for a in attributes])
        plan.columns = await _describe(driver, attributes)
    plan.text, plan.prefix = copy_query(sql, plan.columns, dml=parsed.keyword in _DML)
    if shapes is not None:
        shapes.learn(parsed, args, *prepared, attributes, plan.columns)
    return plan


async def _read_in_one_flight(driver: Any, flight: Flight, args: Sequence[Any], shapes: Shapes, form: Form
                              ) -> tuple[bool, Any]:
    """``(True, result)`` of reading ``flight``, or ``(False, None)`` where nothing ran
    (the statement changed since it was described, or is wrong: the usual way says how)."""
    described = Described()
    copy = _Copy(flight.parsed, flight.text, flight.prefix, flight.original, [])

    async def send(sink: Any) -> None:
        await describe_and_copy_out(driver, flight.shape.statement, described, SETTINGS, flight.text, sink)

    try:
        with copy.errors(server=False):
            return True, await copy_whole(driver, flight.text, lambda: shapes.columns(flight, described, args),
                                          functools.partial(from_chunks, form=form), send,
                                          small_frame if form == "frame" else None, form)
    except QueryError:
        raise
    except Exception as error:
        position = getattr(error, "position", None)
        if described.done and (described.error is not None or (position and int(position) > flight.check)):
            shapes.forget(flight.key)
            return False, None
        with copy.errors():
            raise


async def _render(driver: Any, statement: _Statement, args: list[Any], names: dict[str, str]
                  ) -> tuple[str, Callable[[int], int], Sequence[Any], tuple[str, dict[int, str], list[Any]]]:
    """The statement with its values as typed literals, a map from positions in it back to
    the SQL as written, the result's columns as the server describes them, and the
    statement as prepared (with ``$n``), the casts added to it and its parameters' types."""
    parsed = statement.parsed
    sql = statement.sql
    try:
        prepared = await driver.prepare(sql)
        types = list(prepared.get_parameters())
        casts = _casts_from_values(types, args)
        if casts:  # the server could only guess "text" for these values: say what they are
            sql, _ = parsed.render(lambda key: f"${statement.keys.index(key) + 1}"
                                   + casts.get(statement.keys.index(key), ""))
            prepared = await driver.prepare(sql)
            types = list(prepared.get_parameters())
    except Exception as error:
        raise _located(error, statement, names) from None
    attributes = prepared.get_attributes()
    if not parsed.params:
        return parsed.sql, lambda position: position, attributes, (sql, casts, types)
    try:
        literals = await _literals(driver, types, args, names)
    except (QueryError, ValueError):
        await _end_implicit_transaction(driver)
        raise
    by_key = dict(zip(statement.keys, literals, strict=True))
    rendered, original = parsed.render(by_key.__getitem__)
    return rendered, original, attributes, (sql, casts, types)


async def _end_implicit_transaction(driver: Any) -> None:
    """End the transaction asyncpg's ``prepare`` leaves open on the server (its Parse and
    Describe end without a Sync): unended, the connection goes back to the pool inside
    it, and the next ``BEGIN ISOLATION LEVEL ...`` there fails ("SET TRANSACTION
    ISOLATION LEVEL must be called before any query"). Any statement ends it."""
    await driver.execute("SELECT")


def _without_rows(frame: pd.DataFrame, form: Form) -> Any:
    """A result fetched row by row (or none), in the form asked for."""
    if form == "frame":
        return frame
    if form == "chunks":
        raise QueryError("query", "", "a statement without a result set cannot be read in parts")
    status = frame.status if isinstance(frame, RowsAffected) else None
    if not len(frame.columns) and len(frame):  # rows without columns: arrow keeps their count only in a batch
        batch = pa.RecordBatch.from_struct_array(pa.nulls(len(frame), pa.struct([])))
        return pa.Table.from_batches([batch.replace_schema_metadata({b"oriza.status": str(status or "").encode()})])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"oriza.status":
                                          str(status or "").encode()})


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
    return [PgColumn(a.name, a.type.name, a.type.kind, labels.get(a.type.oid)) for a in attributes]


def _affected(status: str) -> RowsAffected:
    """:class:`RowsAffected` from a command tag such as ``"INSERT 0 3"`` (DDL tags count nothing)."""
    words = status.split()
    counted = words[:1] and words[0] in ("INSERT", "UPDATE", "DELETE", "MERGE", "SELECT", "COPY", "MOVE", "FETCH")
    return RowsAffected(int(words[-1]) if counted and words[-1].isdigit() else None, status)


def _casts_from_values(types: Sequence[Any], args: Sequence[Any]) -> dict[int, str]:
    """``{index: "::type"}`` for parameters the server typed as text but whose value is not a string."""
    casts = {}
    for index, (kind, value) in enumerate(zip(types, args, strict=True)):
        if kind.name in ("text", "unknown") and value is not None and not isinstance(value, str):
            name = _type_of_value(value)
            if name:
                casts[index] = f"::{name}"
    return casts


def _type_of_value(value: Any) -> str | None:
    """The PostgreSQL type a Python value naturally has."""
    simple: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "boolean"), (int, "bigint"), (float, "double precision"), (Decimal, "numeric"),
        (dt.datetime, "timestamptz" if isinstance(value, dt.datetime) and value.tzinfo else "timestamp"),
        (dt.date, "date"), (dt.time, "time"), (dt.timedelta, "interval"), ((bytes, bytearray), "bytea"),
        (uuid.UUID, "uuid"), (dict, "jsonb"),
    ]
    for kind, name in simple:
        if isinstance(value, kind):
            return name
    if isinstance(value, (list, tuple)):
        first = next((v for v in value if v is not None), "")
        element = "text" if isinstance(first, str) else _type_of_value(first)
        return f"{element}[]" if element else None
    return None


async def _literals(driver: Any, types: Sequence[Any], args: Sequence[Any], names: dict[str, str]) -> list[str]:
    """Each value as a typed SQL literal; values not written directly are bound in one
    query that casts each to text, so the server's own output function writes them."""
    if driver.get_settings().standard_conforming_strings != "on":
        raise QueryError("query", "", "standard_conforming_strings is off on this server; "
                         "oriza_toolkit needs it on to send parameter values safely")
    literals: list[str | None] = []
    pending: list[int] = []
    for index, (kind, value) in enumerate(zip(types, args, strict=True)):
        type_sql = _sql.quote_type(kind.schema, kind.name)
        if value is None:
            literals.append(f"NULL::{type_sql}")
        elif (written := value_text(kind.name, value)) is not None:
            literals.append(_sql.quote_literal(written, type_sql))
        else:
            literals.append(None)
            pending.append(index)
    if pending:
        select = ", ".join(f"${n}::{_sql.quote_type(types[i].schema, types[i].name)}::text"
                           for n, i in enumerate(pending, 1))
        try:
            row = await driver.fetchrow(f"SELECT {select}", *(args[i] for i in pending))
        except Exception as error:
            message = _message(error)
            for n, i in reversed(list(enumerate(pending, 1))):
                message = message.replace(f"${n}", names.get(f"${i + 1}", f"${i + 1}"))
            raise QueryError("query", "", f"invalid parameter value: {message}") from None
        for n, i in enumerate(pending):
            type_sql = _sql.quote_type(types[i].schema, types[i].name)
            literals[i] = _sql.quote_literal(row[n], type_sql)
    return [literal or "" for literal in literals]


def _located(error: BaseException, statement: _Statement, names: dict[str, str]) -> BaseException:
    """A server error at prepare time, with its position mapped back into the SQL as written."""
    position = getattr(error, "position", None)
    if not position or not hasattr(error, "sqlstate"):
        return error
    _, _, original = statement.parsed.positional()
    message = _message(error)
    for placeholder, name in sorted(names.items(), key=lambda item: -len(item[0])):
        message = message.replace(placeholder, name)
    return QueryError("query", statement.parsed.sql, message, position=original(int(position)),
                      sqlstate=error.sqlstate)


def _message(error: BaseException) -> str:
    detail = getattr(error, "message", None) or " ".join(str(error).split())
    hint = getattr(error, "hint", None)
    return f"{detail} (hint: {hint})" if hint else detail


def _arrow_csv(frame: pd.DataFrame) -> bytes | None:
    """``frame`` as headerless CSV, or None if a column's type would not survive CSV."""
    for _, column in frame.items():  # arrow takes a Decimal NaN for a missing value: it would become NULL
        if pd.api.types.is_object_dtype(column.dtype) and any(isinstance(v, Decimal) and v.is_nan() for v in column):
            return None
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if not all(_csv_safe(field.type) for field in table.schema):
        return None
    sink = io.BytesIO()
    pcsv.write_csv(table, sink, pcsv.WriteOptions(include_header=False))
    return sink.getvalue()


def _csv_safe(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
                or pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_timestamp(kind)
                or pa.types.is_date(kind) or pa.types.is_decimal(kind))


def _records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows of Python values, with every kind of missing value as None (but a Decimal NaN,
    which PostgreSQL's numeric holds, as itself)."""
    values = frame.astype(object)
    values = values.where(frame.notna() | values.map(lambda v: isinstance(v, Decimal)), None)
    return list(values.itertuples(index=False, name=None))
