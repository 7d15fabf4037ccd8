"""``Database``: one AsyncEngine on a background loop, with awaitable and blocking calls."""

from __future__ import annotations

import atexit
import contextlib
import weakref
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

import pandas as pd
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _loop, queries
from .backends import backend_for
from .config import database_url, mask_url
from .errors import BatchError, ConfigError, OrizaError, QueryError
from .progress import BatchProgress, ElapsedTimer
from .queries import Params, QuerySpec, Statement, check_batch, check_params, check_statement, check_timeout
from .writes import IfExists, check_write, write_frame

__all__ = ["Database", "connect"]

T = TypeVar("T")
_open: weakref.WeakSet[Database] = weakref.WeakSet()


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
        self._session = queries.Session(self.engine, self.backend)
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
        return self.engine.dialect.name

    @property
    def pool_size(self) -> int:
        """How many connections the pool keeps (the default batch concurrency)."""
        size = getattr(self.engine.pool, "size", None)
        return int(size()) if callable(size) else 5

    # -- the async core ---------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], progress: BatchProgress | ElapsedTimer | None = None) -> T:
        self._check_open(coro)
        try:
            return _loop.run(coro, poll=progress.poll if progress else None)
        except OrizaError as error:
            raise error.with_traceback(None) from None  # the loop thread's frames are noise here
        finally:
            if progress:
                progress.finish()

    async def _arun(self, coro: Coroutine[Any, Any, T], progress: BatchProgress | ElapsedTimer | None = None
                    ) -> T:
        self._check_open(coro)
        try:
            return await _loop.arun(coro, poll=progress.poll if progress else None)
        except OrizaError as error:
            raise error.with_traceback(None) from None
        finally:
            if progress:
                progress.finish()

    def _check_open(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._closed:
            coro.close()
            raise OrizaError(f"{self!r} is closed; call oz.connect() for a new one")

    # -- coroutines, after the checks that need no server ---------------------------------

    def _query(self, sql: Statement, params: Params | None, timeout: float | None
               ) -> tuple[Coroutine[Any, Any, pd.DataFrame], ElapsedTimer]:
        check_statement(sql, params)
        check_timeout(timeout)
        return queries.fetch_frame(self.engine, self.backend, sql, params, timeout=timeout), ElapsedTimer()

    def _query_many(
        self,
        queries_: Mapping[str, QuerySpec],
        max_concurrency: int | None,
        timeout: float | None,
        errors: Literal["raise", "return"],
        progress: bool | None,
    ) -> tuple[Coroutine[Any, Any, dict[str, Any]], BatchProgress]:
        check_batch(queries_, errors, max_concurrency)
        check_timeout(timeout)
        bar = BatchProgress(list(queries_), enabled=progress)
        return self._batch(queries_, max_concurrency, timeout, errors, bar), bar

    async def _batch(
        self,
        queries_: Mapping[str, QuerySpec],
        max_concurrency: int | None,
        timeout: float | None,
        errors: Literal["raise", "return"],
        progress: BatchProgress,
    ) -> dict[str, Any]:
        outcomes = await queries.fetch_frames(
            self.engine, self.backend, queries_, max_concurrency=max_concurrency or self.pool_size,
            timeout=timeout, progress=progress,
        )
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
        return self._session.run(sql, params, timeout=timeout), ElapsedTimer()

    def _execute(self, sql: Statement, params: Params | None) -> Coroutine[Any, Any, int]:
        check_statement(sql, params, name="execute")
        return queries.execute(self.engine, sql, params)

    def _write(self, frame: pd.DataFrame, table: str, schema: str | None, if_exists: IfExists
               ) -> Coroutine[Any, Any, int]:
        check_write(frame, table, schema, if_exists)
        return write_frame(self.engine, self.backend, frame, table, schema=schema, if_exists=if_exists)

    def _tables(self, schema: str | None) -> Coroutine[Any, Any, list[str]]:
        if schema is not None and not isinstance(schema, str):
            raise TypeError(f"schema must be a string, not {type(schema).__name__}")
        return queries.table_names(self.engine, schema)

    def _describe(self, table: str, schema: str | None) -> Coroutine[Any, Any, pd.DataFrame]:
        name, schema = queries.split_table_name(table, schema)
        return queries.describe_table(self.engine, name, schema)

    # -- awaitable API ------------------------------------------------------------------

    async def aquery(
        self, sql: Statement, params: Params | None = None, *, timeout: float | None = None
    ) -> pd.DataFrame:
        """Run one query; return its rows as a DataFrame.

        ``sql`` is text with ``:name`` parameters or a SQLAlchemy Core statement;
        ``params`` maps each name to its value; ``timeout`` (seconds) cancels it on the
        server when it runs too long.

        Example::

            df = await db.aquery("select * from flights where origin = :o", {"o": "JFK"})
        """
        return await self._arun(*self._query(sql, params, timeout))

    async def aquery_many(
        self,
        queries_: Mapping[str, QuerySpec],
        *,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        errors: Literal["raise", "return"] = "raise",
        progress: bool | None = None,
    ) -> dict[str, Any]:
        """Run many named queries at once; return ``{name: DataFrame}``.

        Each value of ``queries_`` is SQL or ``(SQL, params)``. At most
        ``max_concurrency`` (default: the pool size) run at a time. Every query runs to
        its end; then, with ``errors="raise"``, a :class:`BatchError` names the failed
        ones and carries the others' results, and with ``errors="return"`` the failed
        entries hold their :class:`QueryError`. ``progress`` (default:
        ``oriza_toolkit.settings.progress``) shows a live bar and, at the end, each
        query's state, rows and time.

        Example::

            frames = await db.aquery_many({"n": "select count(*) from flights",
                                           "jfk": ("select * from flights where origin = :o", {"o": "JFK"})})
        """
        return await self._arun(*self._query_many(queries_, max_concurrency, timeout, errors, progress))

    async def arun_script(self, sql: str, params: Params | None = None, *, timeout: float | None = None
                          ) -> list[pd.DataFrame]:
        """Run statements (``;``-separated) in order on this Database's own session
        connection, where temp tables, ``SET`` and transactions persist from call to call;
        return each statement's result (statements without rows: an empty frame with
        ``attrs["rowcount"]``). The ``%sql`` magic runs here.

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

    async def aclose(self) -> None:
        """Give every pooled connection back to the server."""
        if not self._closed:
            self._closed = True
            _open.discard(self)
            self._finalizer.detach()
            await _loop.arun(self._dispose())

    # -- blocking twins -----------------------------------------------------------------

    def query(self, sql: Statement, params: Params | None = None, *, timeout: float | None = None) -> pd.DataFrame:
        """Blocking :meth:`aquery`. Example: ``db.query("select 1 as x")``."""
        return self._run(*self._query(sql, params, timeout))

    def query_many(
        self,
        queries_: Mapping[str, QuerySpec],
        *,
        max_concurrency: int | None = None,
        timeout: float | None = None,
        errors: Literal["raise", "return"] = "raise",
        progress: bool | None = None,
    ) -> dict[str, Any]:
        """Blocking :meth:`aquery_many`. Example: ``db.query_many({"a": "select 1 as a"})``."""
        return self._run(*self._query_many(queries_, max_concurrency, timeout, errors, progress))

    def run_script(self, sql: str, params: Params | None = None, *, timeout: float | None = None
                   ) -> list[pd.DataFrame]:
        """Blocking :meth:`arun_script`. Example: ``db.run_script("set search_path = x; select 1")``."""
        return self._run(*self._script(sql, params, timeout))

    def execute(self, sql: Statement, params: Params | None = None) -> int:
        """Blocking :meth:`aexecute`. Example: ``db.execute("create table t (x int)")``."""
        return self._run(self._execute(sql, params))

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

    def pool_status(self) -> str:
        """Connections in use and the pool's size, e.g. ``"0 in use of 5"``."""
        pool = self.engine.pool
        in_use = getattr(pool, "checkedout", lambda: 0)()
        return f"{in_use} in use of {self.pool_size}"

    def close(self) -> None:
        """Blocking :meth:`aclose`."""
        if not self._closed:
            self._closed = True
            _open.discard(self)
            self._finalizer.detach()
            _loop.run(self._dispose())

    async def _dispose(self) -> None:
        await self._session.close()
        await self.engine.dispose()

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


def connect(url: str | URL | None = None, **engine_options: Any) -> Database:
    """Open a :class:`Database`: ``url``, else ``DATABASE_URL``, else ``.env``, else embedded SQLite.

    A name instead of a URL (``connect("replica")``) is the shared connection of that name
    (``DATABASE_URL_REPLICA``; see :mod:`oriza_toolkit.connections`). ``engine_options`` go to
    SQLAlchemy's ``create_async_engine`` (``pool_size``, ``echo``...).

    Example::

        >>> import oriza_toolkit as oz
        >>> oz.connect().query("select 1 as x").x.tolist()
        [1]
    """
    try:
        if isinstance(url, str) and "://" not in url and url.strip():
            from . import connections  # it imports this module

            if connections.is_name(url):
                return connections.get(url, **engine_options)
        return Database(url, **engine_options)
    except (OrizaError, TypeError) as error:
        del url  # a traceback's locals must not show the password
        raise error.with_traceback(None) from None


def _dispose(engine: AsyncEngine) -> None:
    """Close a dropped Database's pooled connections, on the loop they belong to."""
    with contextlib.suppress(Exception):  # the interpreter may be exiting
        if not _loop.in_loop_thread():
            _loop.submit(engine.dispose())


@atexit.register
def _close_all() -> None:
    for db in list(_open):
        with contextlib.suppress(Exception):  # the interpreter is exiting; nothing to report to
            db.close()
