"""``Database``: one AsyncEngine on a background loop, with awaitable and blocking calls.

Each public method is a one-line twin (``query``/``aquery``, ...) over a private method that
checks its arguments on the caller's thread and returns the coroutine to run; ``_run`` and
``_arun`` run it on the toolkit's loop (``_loop.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import os
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import pandas as pd
import pyarrow as pa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _loop, cluster, partitioned, provenance, snapshot, warm
from . import queries as _queries
from ._private import pool_max_overflow
from ._sql import Params, QuerySpec, Statement, parameter_names, split_statements
from .backends import Form, backend_for
from .cluster import Partition
from .config import database_url, mask_url
from .errors import BatchError, ConfigError, DatabaseConnectionError, OrizaError, QueryError, raised_at_call
from .parquet import ParquetSink, check_parquet
from .plots import Plotter
from .profile import profile_table
from .progress import BatchProgress, ElapsedTimer
from .queries import check_batch, check_params, check_statement, check_timeout
from .snapshot import Snapshot
from .transaction import Transaction
from .writes import IfExists, check_write, write_frame

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["Database"]

T = TypeVar("T")
# Rows per chunk of a stream (and of a Parquet write) unless the call says.
STREAM_ROWS = 100_000
_open: weakref.WeakSet[Database] = weakref.WeakSet()
# How a connection name in ``replicas=`` becomes a Database: the registry of named
# connections (``connections.py``, which imports this module) installs its lookup here.
resolve_name: Callable[[str], Database] | None = None


@raised_at_call
class Database:
    """A connection pool to one database, usable from notebooks, scripts and async code.

    Every blocking method has an awaitable twin prefixed ``a``; both share the pool.

    Example::

        db = Database()                       # DATABASE_URL, .env, or the embedded SQLite file
        df = db.query("select 1 as x")
        frames = await db.aquery_many({"a": "select 1 as a", "b": "select 2 as b"})
        db.close()
    """

    def __init__(self, url: str | URL | None = None, **engine_options: Any) -> None:
        self._closed = True
        try:
            self.url = database_url(url)
        except (ConfigError, TypeError) as error:
            del url  # a traceback's locals must not show the password
            raise error.with_traceback(None) from None
        self.backend = backend_for(self.url)
        try:
            self.engine = self.backend.make_engine(self.url, dict(engine_options))
        except (TypeError, ValueError, sa_exc.ArgumentError) as error:
            raise ConfigError(f"invalid engine option: {' '.join(str(error).split(', using configuration')[0].split())}"
                              ).with_traceback(None) from None
        self._closed = False
        #: Where the URL came from, named by connection errors (the registry sets its own).
        self.origin = "DATABASE_URL" if url is None else "the URL given to oz.connect()"
        self._session = _queries.Session(self.engine, self.backend)
        self._revision: tuple[str | None] | None = None  # the schema revision, once read (see refresh_revision)
        self._streams: weakref.WeakSet[AsyncGenerator[Any, None]] = weakref.WeakSet()
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()
        self._engine_options = dict(engine_options)
        self._shown = mask_url(self.url)  # provenance names it on every result
        self._holder_engine: AsyncEngine | None = None  # made on the first snapshot (see snapshot())
        # A Database dropped without close() still gives its connections back.
        self._finalizer = weakref.finalize(self, _dispose, self.engine)
        _open.add(self)

    def __repr__(self) -> str:
        if not hasattr(self, "url"):
            return "<Database (not connected)>"
        state = " closed" if self._closed else ""
        return f"<Database {mask_url(self.url)}{state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    @property
    def dialect(self) -> str:
        """The database's dialect name: ``"postgresql"`` or ``"sqlite"``."""
        return self.backend.name

    @property
    def pool_size(self) -> int:
        """How many connections the pool keeps open between queries."""
        size = getattr(self.engine.pool, "size", None)
        return int(size()) if callable(size) else 5

    @property
    def max_concurrency(self) -> int:
        """How many queries a batch runs at once by default: every connection the pool can
        give, its overflow included (SQLAlchemy's defaults: 5 kept + 10 more = 15)."""
        return self.pool_size + pool_max_overflow(self.engine.pool)

    # -- the async core ---------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], progress: _loop.Progress | None = None) -> T:
        self._check_open(coro)
        try:
            return _loop.run(coro, progress)
        except DatabaseConnectionError as error:
            raise error.from_source(self.origin) from None

    async def _arun(self, coro: Coroutine[Any, Any, T], progress: _loop.Progress | None = None) -> T:
        self._check_open(coro)
        try:
            return await _loop.arun(coro, progress)
        except DatabaseConnectionError as error:
            raise error.from_source(self.origin) from None

    def _check_open(self, coro: Coroutine[Any, Any, Any] | None = None) -> None:
        """Refuse to start anything (closing ``coro`` unrun) once :meth:`close` was called."""
        if self._closed:
            if coro is not None:
                coro.close()
            raise OrizaError(f"{self!r} is closed; call oz.connect() for a new one")

    # -- coroutines, after the checks that need no server ---------------------------------

    def _query(self, sql: Statement, params: Params | None, timeout: float | None, form: Form = "frame",
               partition_on: str | None = None, partitions: int | None = None,
               replicas: Sequence[Database | str] = (), edges: str = "quantile"
               ) -> tuple[Coroutine[Any, Any, Any], ElapsedTimer]:
        check_statement(sql, params)
        check_timeout(timeout)
        if partition_on is None and partitions is None and not replicas:
            return self._traced(lambda: _queries.fetch_frame(self.engine, self.backend, sql, params, timeout=timeout,
                                                             form=form), sql, params), ElapsedTimer()
        partitioned.check_partitioning(sql, partition_on, partitions, edges)
        assert isinstance(sql, str) and isinstance(partition_on, str) and isinstance(partitions, int)
        sources = [partitioned.Source(db.engine, db.backend) for db in [self, *self._replicas(replicas)]]
        return self._traced(lambda: partitioned.read(sources, sql, params, column=partition_on, partitions=partitions,
                                                     form=form, timeout=timeout, edges=edges), sql, params), \
            ElapsedTimer()

    async def _traced(self, work: Callable[[], Coroutine[Any, Any, T]], sql: Statement, params: Params | None) -> T:
        """``work()``'s result carrying its provenance (``provenance.py``). (``work`` makes the
        coroutine only when this one runs: a call refused before it starts leaves none unawaited.)"""
        started = dt.datetime.now(dt.UTC)
        clock = time.perf_counter()
        result = await work()
        seconds = time.perf_counter() - clock
        return cast(T, provenance.attach(result, await self._record(sql, params, started, seconds, result)))

    async def _record(self, sql: Statement, params: Params | None, started: dt.datetime, seconds: float,
                      result: Any) -> dict[str, Any]:
        if self._revision is None:
            self._revision = (await _queries.schema_revision(self.engine, self.backend),)
        return provenance.record(_queries.sql_text(sql, self.engine.dialect), params, self._shown,
                                 self._revision[0], started, seconds, len(result) if hasattr(result, "__len__") else 0)

    def _replicas(self, replicas: object) -> list[Database]:
        """``replicas=`` as Databases: each a Database, or a connection name (the registry's)."""
        if isinstance(replicas, (str, Database)) or not isinstance(replicas, Sequence):
            raise TypeError(f"replicas must be a list of Database objects or connection names, not {replicas!r}")
        found = []
        for replica in replicas:
            if isinstance(replica, str) and resolve_name is not None:
                replica = resolve_name(replica)
            if not isinstance(replica, Database):
                raise TypeError(f"replicas must be Database objects or connection names, not {replica!r}")
            if replica.backend.name != self.backend.name:
                raise ValueError(f"replica {replica!r} is {replica.dialect}, not {self.dialect}")
            found.append(replica)
        return found

    def _stream(self, sql: Statement, params: Params | None, rows: object, arrow: bool) -> AsyncGenerator[Any, None]:
        check_statement(sql, params, name="stream")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows must be a whole number of at least 1, not {rows!r}")
        self._check_open()
        chunks = _queries.stream_chunks(self.engine, self.backend, sql, params, rows=rows, arrow=arrow)
        self._streams.add(chunks)  # close() stops it on the server if it is still open then
        return chunks

    def _query_many(
        self,
        queries: Mapping[str, QuerySpec],
        max_concurrency: int | None,
        timeout: float | None,
        errors: Literal["raise", "return"],
        progress: bool | None,
        consistent: bool = False,
    ) -> tuple[Coroutine[Any, Any, dict[str, Any]], BatchProgress]:
        check_batch(queries, errors, max_concurrency)
        check_timeout(timeout)
        if not isinstance(consistent, bool):
            raise TypeError(f"consistent must be True or False, not {consistent!r}")
        available = self.max_concurrency - 1 if consistent else self.max_concurrency  # one holds the snapshot
        if consistent and available < 1:
            raise ValueError("consistent=True needs a pool of at least 2 connections (one holds the snapshot); "
                             "open the Database with a bigger pool_size=")
        if max_concurrency is not None and max_concurrency > available:
            less = ", less the one holding the snapshot" if consistent else ""
            raise ValueError(f"max_concurrency={max_concurrency} is more than this pool can give "
                             f"({available}: pool_size + max_overflow{less}); open the Database with a bigger "
                             "pool_size= or max_overflow=, or leave max_concurrency out")
        bar = BatchProgress(list(queries), enabled=progress)
        return self._batch(queries, max_concurrency or available, timeout, errors, bar, consistent), bar

    async def _batch(
        self,
        queries: Mapping[str, QuerySpec],
        max_concurrency: int,
        timeout: float | None,
        errors: Literal["raise", "return"],
        progress: BatchProgress,
        consistent: bool,
    ) -> dict[str, Any]:
        timings: dict[str, tuple[dt.datetime, float]] = {}
        async with contextlib.AsyncExitStack() as stack:
            moment = await stack.enter_async_context(snapshot.hold(self.engine, self.backend)) if consistent else None
            outcomes = await _queries.fetch_frames(self.engine, self.backend, queries, max_concurrency=max_concurrency,
                                                   timeout=timeout, progress=progress,
                                                   reader=moment.read if moment else None, timings=timings)
        for name, outcome in outcomes.items():
            if isinstance(outcome, pd.DataFrame):
                sql, params = _queries.split_spec(queries[name])
                provenance.attach(outcome, await self._record(sql, params, *timings[name], outcome))
        failed = {name: out for name, out in outcomes.items() if isinstance(out, QueryError)}
        if failed and errors == "raise":
            done = {name: out for name, out in outcomes.items() if not isinstance(out, QueryError)}
            raise BatchError(failed, done)
        return outcomes

    def _script(self, sql: str, params: Params | None, timeout: float | None
                ) -> tuple[Coroutine[Any, Any, list[pd.DataFrame]], ElapsedTimer]:
        if not isinstance(sql, str):
            raise TypeError(f"run_script takes SQL text, not {type(sql).__name__}")
        check_params(params)
        check_timeout(timeout)
        statements = split_statements(sql)
        if not statements:
            raise ValueError("the SQL is empty")
        for number, statement in enumerate(statements, start=1):  # every one before the first runs
            check_statement(statement, params, name="query" if len(statements) == 1 else f"statement {number}")
        return self._traced_script(lambda: self._session.run(sql, params, timeout=timeout), statements, params), \
            ElapsedTimer()

    async def _traced_script(self, work: Callable[[], Coroutine[Any, Any, list[pd.DataFrame]]], statements: list[str],
                             params: Params | None) -> list[pd.DataFrame]:
        started = dt.datetime.now(dt.UTC)
        clock = time.perf_counter()
        results = await work()
        seconds = time.perf_counter() - clock  # the script's: its statements ran one after another
        for statement, frame in zip(statements, results, strict=True):
            used = set(parameter_names(statement))
            wanted = {key: value for key, value in (params or {}).items() if key in used}
            provenance.attach(frame, await self._record(statement.strip(), wanted, started, seconds, frame))
        return results

    def _execute(self, sql: Statement, params: Params | None) -> Coroutine[Any, Any, int]:
        check_statement(sql, params, name="execute")
        return _queries.execute(self.engine, self.backend, sql, params)

    def _write(self, frame: pd.DataFrame, table: str, schema: str | None, if_exists: IfExists
               ) -> Coroutine[Any, Any, int]:
        check_write(frame, table, schema, if_exists, self.backend)
        return write_frame(self.engine, self.backend, frame, table, schema=schema, if_exists=if_exists)

    def _transaction(self) -> Transaction:
        self._check_open()
        return Transaction(self.engine, self.backend)

    def _tables(self, schema: str | None) -> Coroutine[Any, Any, list[str]]:
        if schema is not None and not isinstance(schema, str):
            raise TypeError(f"schema must be a string, not {type(schema).__name__}")
        return _queries.table_names(self.engine, self.backend, schema)

    def _describe(self, table: str, schema: str | None) -> Coroutine[Any, Any, pd.DataFrame]:
        name, schema = _queries.split_table_name(table, schema)
        return _queries.describe_table(self.engine, self.backend, name, schema)

    def _profile(self, table: str, schema: str | None) -> Coroutine[Any, Any, pd.DataFrame]:
        name, schema = _queries.split_table_name(table, schema)
        return profile_table(self.engine, self.backend, name, schema, max_concurrency=self.max_concurrency)

    # -- awaitable API ------------------------------------------------------------------

    async def aquery(
        self,
        sql: Statement,
        params: Params | None = None,
        *,
        timeout: float | None = None,
        partition_on: str | None = None,
        partitions: int | None = None,
        replicas: Sequence[Database | str] = (),
        edges: Literal["quantile", "even"] = "quantile",
    ) -> pd.DataFrame:
        """Run one query; return its rows as a DataFrame.

        ``sql`` is text with ``:name`` parameters or a SQLAlchemy Core statement;
        ``params`` maps each name to its value; ``timeout`` (seconds) cancels it on the
        server when it runs too long.

        ``partition_on="col", partitions=N`` reads a big result as N ranges of ``col`` (a
        number, date or timestamp column of the result) over N connections at once, as
        connectorx does: the same columns, dtypes and rows as one read, ordered by range.
        ``replicas`` (Database objects or connection names of servers holding the same
        data) share the ranges with this one. The edges follow the data (quantiles of a
        sample, so each range holds about as many rows); ``edges="even"`` cuts
        ``[min, max]`` evenly instead. On one server every range reads one snapshot and the
        rows are checked against the query's count. On SQLite the query is read whole.

        Example::

            df = await db.aquery("select * from flights where origin = :o", {"o": "JFK"})
            big = await db.aquery("select * from events", partition_on="id", partitions=4)
        """
        return await self._arun(*self._query(sql, params, timeout, "frame", partition_on, partitions, replicas,
                                                  edges))

    async def aquery_arrow(
        self,
        sql: Statement,
        params: Params | None = None,
        *,
        timeout: float | None = None,
        partition_on: str | None = None,
        partitions: int | None = None,
        replicas: Sequence[Database | str] = (),
        edges: Literal["quantile", "even"] = "quantile",
    ) -> pa.Table:
        """Run one query; return its rows as a ``pyarrow.Table`` (polars, DuckDB and
        pandas take it without copying). Options as for :meth:`aquery`.

        Column types: integers, floats, booleans, dates, timestamps (UTC for timestamptz),
        durations for intervals, exact decimals for numeric, dictionaries for enums,
        binary for bytea, and text for everything else; JSON, arrays and records are
        their JSON text, marked ``{"oriza.kind": "json"}`` in the field's metadata.

        Example::

            import polars as pl
            df = pl.from_arrow(await db.aquery_arrow("select * from flights"))
        """
        return await self._arun(*self._query(sql, params, timeout, "arrow", partition_on, partitions, replicas,
                                                  edges))

    def astream(
        self, sql: Statement, params: Params | None = None, *, rows: int = STREAM_ROWS, arrow: bool = False
    ) -> AsyncGenerator[Any, None]:
        """Run one query and yield its rows in chunks of ``rows`` (the last may be shorter):
        DataFrames, or with ``arrow=True`` ``pyarrow.RecordBatch`` es, every chunk with the
        same columns and dtypes (a result with no rows yields one empty chunk). Only a few
        chunks are held at a time: the server waits while you work on one. Breaking out
        of the loop (or an interrupt) cancels the query on the server.

        Numeric columns get their decimal scale from the first chunk; a later value with
        more decimals raises a one-line error naming the column (cast it in the SQL).

        Example::

            async for chunk in db.astream("select * from events", rows=100_000):
                totals.append(chunk.groupby("kind").size())
        """
        chunks = self._stream(sql, params, rows, arrow)

        async def relay() -> AsyncGenerator[Any, None]:
            try:
                while (chunk := await self._arun(_next(chunks))) is not _END:
                    yield chunk
            except OrizaError as error:  # raised from the loop where the user iterates, without its frames
                raise error.with_traceback(None) from None
            finally:
                await _loop.arun(chunks.aclose())

        return relay()

    async def ato_parquet(
        self,
        sql: Statement,
        path: str | os.PathLike[str],
        params: Params | None = None,
        *,
        rows_per_file: int | None = None,
        rows: int = STREAM_ROWS,
    ) -> int:
        """Stream a query's result into a Parquet file at ``path``, or with
        ``rows_per_file`` into a directory of parts (``part-00000.parquet``, ...) that
        DuckDB, polars, Spark and Dask read as one table; return the number of rows.

        Memory holds a few chunks of ``rows`` rows, never the result. A failed or
        interrupted write removes what it wrote.

        Example::

            await db.ato_parquet("select * from flights", "flights.parquet")
        """
        check_parquet(path, rows_per_file)
        origin = await self._arun(self._record(sql, params, dt.datetime.now(dt.UTC), 0.0, ()))
        sink = ParquetSink(path, rows_per_file, origin)
        try:
            async for batch in self.astream(sql, params, rows=rows, arrow=True):
                await asyncio.to_thread(sink.write, batch)
        except BaseException:
            sink.abort()
            raise
        sink.close()
        return sink.rows

    async def aquery_many(
        self,
        queries: Mapping[str, QuerySpec],
        *,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        errors: Literal["raise", "return"] = "raise",
        progress: bool | None = None,
        consistent: bool = False,
    ) -> dict[str, Any]:
        """Run many named queries at once; return ``{name: DataFrame}``.

        Each value of ``queries`` is SQL or ``(SQL, params)``. At most
        ``max_concurrency`` (default: :attr:`max_concurrency`, what the pool can give)
        run at a time. Every query runs to
        its end; then, with ``errors="raise"``, a :class:`BatchError` names the failed
        ones and carries the others' results, and with ``errors="return"`` the failed
        entries hold their :class:`QueryError`. ``progress`` (default:
        ``oriza_toolkit.settings.progress``) shows a live bar and, at the end, each
        query's state, rows and time.

        With ``consistent=True`` every query sees the database at one moment (on
        PostgreSQL: one exported snapshot, imported by each query's own transaction; the
        queries still run at once, and their numbers add up however the tables are written
        to meanwhile). It holds one more connection while the batch runs.

        Example::

            frames = await db.aquery_many({"n": "select count(*) from flights",
                                           "jfk": ("select * from flights where origin = :o", {"o": "JFK"})})
        """
        return await self._arun(*self._query_many(queries, max_concurrency, timeout, errors, progress, consistent))

    async def arun_script(self, sql: str, params: Params | None = None, *, timeout: float | None = None
                          ) -> list[pd.DataFrame]:
        """Run statements (``;``-separated) in order on this Database's own session
        connection, where temp tables, ``SET`` and transactions persist from call to call;
        return each statement's result (statements without rows: a
        :class:`~oriza_toolkit.RowsAffected`, an empty frame with ``rowcount`` and ``status``).
        The ``%sql`` magic runs here.

        Example::

            await db.arun_script("create temp table t as select 1 as x; select * from t")
        """
        return await self._arun(*self._script(sql, params, timeout))

    @property
    def session_reconnected(self) -> bool:
        """Whether the last :meth:`run_script` had to open a new session connection because
        the previous one was lost (its temp tables and settings went with it)."""
        return self._session.reconnected

    @property
    def session_active(self) -> bool:
        """Whether :meth:`run_script` holds a connection now."""
        return self._session.active

    async def aexecute(self, sql: Statement, params: Params | None = None) -> int:
        """Run one DDL/DML statement in its own transaction; return the rows it affected.

        Example::

            await db.aexecute("delete from flights where year < :y", {"y": 2013})
        """
        return await self._arun(self._execute(sql, params))

    def atransaction(self) -> Transaction:
        """A transaction for ``async with``: its statements, reads and writes commit together
        at the end of the block, or (on an error or an interrupt) none of them do.

        Example::

            async with db.atransaction() as tx:
                await tx.aexecute("delete from results where day = :d", {"d": day})
                await tx.awrite(frame, "results", if_exists="append")
        """
        return self._transaction()

    async def awrite(
        self, frame: pd.DataFrame, table: str, *, schema: str | None = None, if_exists: IfExists = "fail"
    ) -> int:
        """Write ``frame`` to ``table`` in one transaction: all rows or none.

        ``if_exists``: ``"fail"`` (default), ``"append"`` or ``"replace"``. Returns the
        number of rows written.

        Example::

            await db.awrite(df, "results", if_exists="replace")
        """
        return await self._arun(self._write(frame, table, schema, if_exists))

    async def atables(self, schema: str | None = None) -> list[str]:
        """Names of the tables in ``schema`` (default: the default one). Example: ``await db.atables()``."""
        return await self._arun(self._tables(schema))

    async def adescribe(self, table: str, schema: str | None = None) -> pd.DataFrame:
        """One row per column of ``table`` (``"t"`` or ``"schema.t"``): name, type, nullable,
        default, primary key.

        Example: ``await db.adescribe("analytics.flights")``.
        """
        return await self._arun(self._describe(table, schema))

    async def aprofile(self, table: str, schema: str | None = None) -> pd.DataFrame:
        """One row per column of ``table``: its type as profiled (number, text, time, bool,
        other), count, NULLs, distinct values, min, max, and for numbers mean, std and
        quartiles, for text and booleans the most common value (``top``) and how often it
        occurs (``freq``). Computed on the server, one query per column, all at once: only
        the aggregates travel. (SQLite has no quartiles or std: NaN.)

        Example: ``await db.aprofile("flights")``.
        """
        return await self._arun(self._profile(table, schema))

    async def ato_dask(
        self,
        sql: str,
        params: Params | None = None,
        *,
        partition_on: str,
        partitions: int,
        edges: Literal["quantile", "even"] = "quantile",
        index: bool = True,
        snapshot: Snapshot | None = None,
        consistent: bool = True,
        url_env: str | None = None,
    ) -> dd.DataFrame:
        """A query as a Dask DataFrame of ``partitions`` ranges of ``partition_on``, each read
        by a Dask worker through the toolkit's own path (``pip install 'oriza_toolkit[dask]'``).

        The edges follow the data (as :meth:`aquery`'s partitioned read); with ``index``
        the partition column becomes the index, sorted in each partition, and the edges the
        divisions (unknown when the column has NULLs, NaN or infinities). Every partition
        reads one snapshot (``consistent``): ``snapshot=`` one of :meth:`snapshot` (the
        tasks must run while it is held), else one the graph holds until it is dropped and
        a minute after (for tasks ``.persist()`` left queued).
        A task fails in one line if it reads another number of rows than its range held
        when planned. Workers connect with the URL from the environment variable
        ``url_env`` (default: the ``DATABASE_URL``/``DATABASE_URL_<NAME>`` holding this
        Database's URL); the password is never in the task graph.

        Example::

            async with db.snapshot() as snap:
                ddf = await db.ato_dask("select * from flights", partition_on="id", partitions=8, snapshot=snap)
                by_origin = ddf.groupby("origin").dep_delay.mean().compute()
        """
        request = cluster.request(self, sql, params, partition_on=partition_on, partitions=partitions, edges=edges,
                                  index=index, snapshot_=snapshot, consistent=consistent, url_env=url_env)
        try:
            return request.build(await self._arun(request.plan()))
        except BaseException:
            request.abandon()
            raise

    async def apartitions(
        self,
        sql: str,
        params: Params | None = None,
        *,
        partition_on: str,
        partitions: int,
        edges: Literal["quantile", "even"] = "quantile",
    ) -> list[Partition]:
        """The ranges a partitioned read of ``sql`` would use, for engines that read SQL
        themselves (Spark, Ray): each :class:`~oriza_toolkit.cluster.Partition`'s SQL and
        parameters, its SQL with the values as literals, its edges and its rows, planned in
        one snapshot (the engine's own reads are not: see the README).

        Example::

            parts = await db.apartitions("select * from flights", partition_on="id", partitions=8)
            spark.read.jdbc(url, "flights", predicates=...)  # or one read per part.literal_sql
        """
        partitioned.check_partitioning(sql, partition_on, partitions, edges)
        check_params(params)
        return await self._arun(cluster.apartitions(self, sql, params, partition_on=partition_on,
                                                    partitions=partitions, edges=edges))

    def snapshot(self) -> Snapshot:
        """One moment of this database, held from ``with`` (or ``async with``, or
        ``.open()``) to its end, for reads that start later (:meth:`Snapshot.query`,
        ``to_dask(..., snapshot=snap)``).

        Example::

            with db.snapshot() as snap:
                a = snap.query("select sum(x) as s from t where region = 'north'")
                b = snap.query("select sum(x) as s from t")      # the same moment as a
        """
        self._check_open()
        if self._holder_engine is None:
            self._holder_engine = self.backend.holder_engine(self.url, dict(self._engine_options))
        held = Snapshot(self.engine, self.backend, mask_url(self.url), self._holder_engine)
        self._snapshots.add(held)  # close() lets it go if it is still held then
        return held

    async def aclose(self) -> None:
        """Give every pooled connection back to the server."""
        if not self._closed:
            self._closed = True
            _open.discard(self)
            self._finalizer.detach()
            await _loop.arun(self._dispose())

    # -- blocking twins -----------------------------------------------------------------

    def query(
        self,
        sql: Statement,
        params: Params | None = None,
        *,
        timeout: float | None = None,
        partition_on: str | None = None,
        partitions: int | None = None,
        replicas: Sequence[Database | str] = (),
        edges: Literal["quantile", "even"] = "quantile",
    ) -> pd.DataFrame:
        """Blocking :meth:`aquery`. Example: ``db.query("select 1 as x")``."""
        frame: pd.DataFrame = self._run(*self._query(sql, params, timeout, "frame", partition_on, partitions,
                                                     replicas, edges))
        return frame

    def query_arrow(
        self,
        sql: Statement,
        params: Params | None = None,
        *,
        timeout: float | None = None,
        partition_on: str | None = None,
        partitions: int | None = None,
        replicas: Sequence[Database | str] = (),
        edges: Literal["quantile", "even"] = "quantile",
    ) -> pa.Table:
        """Blocking :meth:`aquery_arrow`. Example: ``db.query_arrow("select * from flights")``."""
        return self._run(*self._query(sql, params, timeout, "arrow", partition_on, partitions, replicas,
                                                  edges))

    def stream(
        self, sql: Statement, params: Params | None = None, *, rows: int = STREAM_ROWS, arrow: bool = False
    ) -> Iterator[Any]:
        """Blocking :meth:`astream`.

        Example::

            for chunk in db.stream("select * from events", rows=100_000):
                print(len(chunk))
        """
        chunks = self._stream(sql, params, rows, arrow)

        def relay() -> Iterator[Any]:
            try:
                while (chunk := self._run(_next(chunks))) is not _END:
                    yield chunk
            except (OrizaError, KeyboardInterrupt) as error:  # at the user's loop, without the toolkit's frames
                raise error.with_traceback(None) from None
            finally:
                _loop.run(chunks.aclose())

        return relay()

    def to_parquet(
        self,
        sql: Statement,
        path: str | os.PathLike[str],
        params: Params | None = None,
        *,
        rows_per_file: int | None = None,
        rows: int = STREAM_ROWS,
    ) -> int:
        """Blocking :meth:`ato_parquet`. Example: ``db.to_parquet("select * from flights", "flights/",
        rows_per_file=1_000_000)``."""
        check_parquet(path, rows_per_file)
        origin = self._run(self._record(sql, params, dt.datetime.now(dt.UTC), 0.0, ()))
        sink = ParquetSink(path, rows_per_file, origin)
        try:
            for batch in self.stream(sql, params, rows=rows, arrow=True):
                sink.write(batch)
        except BaseException:
            sink.abort()
            raise
        sink.close()
        return sink.rows

    def query_many(
        self,
        queries: Mapping[str, QuerySpec],
        *,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        errors: Literal["raise", "return"] = "raise",
        progress: bool | None = None,
        consistent: bool = False,
    ) -> dict[str, Any]:
        """Blocking :meth:`aquery_many`. Example: ``db.query_many({"a": "select 1 as a"}, consistent=True)``."""
        return self._run(*self._query_many(queries, max_concurrency, timeout, errors, progress, consistent))

    def to_dask(
        self,
        sql: str,
        params: Params | None = None,
        *,
        partition_on: str,
        partitions: int,
        edges: Literal["quantile", "even"] = "quantile",
        index: bool = True,
        snapshot: Snapshot | None = None,
        consistent: bool = True,
        url_env: str | None = None,
    ) -> dd.DataFrame:
        """Blocking :meth:`ato_dask`. Example: ``db.to_dask("select * from flights", partition_on="id",
        partitions=8).persist()``."""

        request = cluster.request(self, sql, params, partition_on=partition_on, partitions=partitions, edges=edges,
                                  index=index, snapshot_=snapshot, consistent=consistent, url_env=url_env)
        try:
            return request.build(self._run(request.plan()))
        except BaseException:
            request.abandon()
            raise

    def partitions(
        self,
        sql: str,
        params: Params | None = None,
        *,
        partition_on: str,
        partitions: int,
        edges: Literal["quantile", "even"] = "quantile",
    ) -> list[Partition]:
        """Blocking :meth:`apartitions`. Example: ``[p.literal_sql for p in db.partitions("select * from t",
        partition_on="id", partitions=4)]``."""

        partitioned.check_partitioning(sql, partition_on, partitions, edges)
        check_params(params)
        return self._run(cluster.apartitions(self, sql, params, partition_on=partition_on, partitions=partitions,
                                             edges=edges))

    def run_script(self, sql: str, params: Params | None = None, *, timeout: float | None = None
                   ) -> list[pd.DataFrame]:
        """Blocking :meth:`arun_script`. Example: ``db.run_script("set search_path = x; select 1")``."""
        return self._run(*self._script(sql, params, timeout))

    def execute(self, sql: Statement, params: Params | None = None) -> int:
        """Blocking :meth:`aexecute`. Example: ``db.execute("create table t (x int)")``."""
        return self._run(self._execute(sql, params))

    def transaction(self) -> Transaction:
        """Blocking :meth:`atransaction`, for a ``with`` block.

        Example::

            with db.transaction() as tx:
                tx.execute("delete from results where day = :d", {"d": day})
                tx.write(frame, "results", if_exists="append")
        """
        return self._transaction()

    def write(
        self, frame: pd.DataFrame, table: str, *, schema: str | None = None, if_exists: IfExists = "fail"
    ) -> int:
        """Blocking :meth:`awrite`. Example: ``db.write(df, "results", if_exists="append")``."""
        return self._run(self._write(frame, table, schema, if_exists))

    def tables(self, schema: str | None = None) -> list[str]:
        """Blocking :meth:`atables`. Example: ``db.tables("analytics")``."""
        return self._run(self._tables(schema))

    def describe(self, table: str, schema: str | None = None) -> pd.DataFrame:
        """Blocking :meth:`adescribe`. Example: ``db.describe("flights")``."""
        return self._run(self._describe(table, schema))

    def profile(self, table: str, schema: str | None = None) -> pd.DataFrame:
        """Blocking :meth:`aprofile`. Example: ``db.profile("flights")``."""
        return self._run(self._profile(table, schema))

    @property
    def plot(self) -> Plotter:
        """Plots whose numbers the server computes: ``db.plot.histogram("flights", "dep_delay",
        bins=50)``, ``.boxplot``, ``.bar``, ``.pie`` (see ``plots.py``)."""
        return Plotter(self)

    def refresh_revision(self) -> None:
        """Read the schema revision again for the next result's provenance (it is read once,
        at the first result; migrations run through the toolkit call this)."""
        self._revision = None

    def pool_status(self) -> str:
        """Connections in use and the pool's size, e.g. ``"0 in use of 5"`` (the one the last
        read left warm for the next is not in use: ``warm.py``)."""
        pool = self.engine.pool
        in_use = getattr(pool, "checkedout", lambda: 0)() - warm.held(self.engine)
        return f"{in_use} in use of {self.pool_size}"

    def close(self) -> None:
        """Blocking :meth:`aclose`."""
        if not self._closed:
            self._closed = True
            _open.discard(self)
            self._finalizer.detach()
            _loop.run(self._dispose())

    async def _dispose(self) -> None:
        for stream in list(self._streams):  # a checked-out connection outlives dispose(): stop its query
            with contextlib.suppress(Exception):
                await stream.aclose()
        for held in list(self._snapshots):
            with contextlib.suppress(Exception):
                await held._close()
        if self._holder_engine is not None:
            await self._holder_engine.dispose()
        await self._session.close()
        await _disposed(self.engine)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


_END = object()


async def _next(chunks: AsyncGenerator[Any, None]) -> Any:
    """The next chunk of a stream, or ``_END``."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return _END


def _dispose(engine: AsyncEngine) -> None:
    """Close a dropped Database's pooled connections, on the loop they belong to."""
    _loop.submit_quietly(lambda: _disposed(engine))


async def _disposed(engine: AsyncEngine) -> None:
    """Close ``engine``'s connections: the one kept warm (``warm.py``) and the pool's."""
    await warm.release(engine)
    await engine.dispose()


cluster.open_database = Database


@atexit.register
def _close_all() -> None:
    for db in list(_open):
        with contextlib.suppress(Exception):  # the interpreter is exiting; nothing to report to
            db.close()
