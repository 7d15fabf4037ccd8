"""``Database``: one AsyncEngine on a background loop, with awaitable and blocking calls."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import weakref
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

import pandas as pd
from sqlalchemy.engine import URL

from . import queries
from .config import database_url, mask_url
from .engine import EventLoopThread, make_engine
from .errors import BatchError, OrizaError, QueryError
from .progress import BatchProgress
from .queries import Params, QuerySpec, Statement
from .writes import IfExists, write_frame

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
        self.url = database_url(url)
        self._loop = EventLoopThread()
        self.engine = make_engine(self.url, **engine_options)
        self._closed = False
        _open.add(self)

    def __repr__(self) -> str:
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

    def _submit(self, coro: Coroutine[Any, Any, T], progress: BatchProgress | None = None) -> T:
        self._check_open(coro)
        try:
            return self._loop.run(coro, poll=progress.poll if progress else None)
        except OrizaError as error:
            raise error.with_traceback(None) from None  # the loop thread's frames are noise here
        finally:
            if progress:
                progress.finish()

    async def _await(self, coro: Coroutine[Any, Any, T], progress: BatchProgress | None = None) -> T:
        self._check_open(coro)
        try:
            return await self._loop.run_async(coro, poll=progress.poll if progress else None)
        except OrizaError as error:
            raise error.with_traceback(None) from None
        finally:
            if progress:
                progress.finish()

    def _check_open(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._closed:
            coro.close()
            raise OrizaError(f"{self!r} is closed; call oz.connect() for a new one")

    async def _query_many(
        self,
        queries_: Mapping[str, QuerySpec],
        max_concurrency: int | None,
        timeout: float | None,
        errors: Literal["raise", "return"],
        progress: BatchProgress,
    ) -> dict[str, Any]:
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', not {errors!r}")
        outcomes = await queries.fetch_frames(
            self.engine, queries_, max_concurrency=max_concurrency or self.pool_size, timeout=timeout,
            progress=progress,
        )
        failed = {name: out for name, out in outcomes.items() if isinstance(out, QueryError)}
        if failed and errors == "raise":
            done = {name: out for name, out in outcomes.items() if not isinstance(out, QueryError)}
            raise BatchError(failed, done)
        return outcomes

    # -- awaitable API ------------------------------------------------------------------

    async def aquery(
        self, sql: Statement, params: Params | None = None, *, timeout: float | None = None
    ) -> pd.DataFrame:
        """Run one query; return its rows as a DataFrame.

        ``sql`` is text with ``:name`` parameters or a SQLAlchemy Core statement;
        ``timeout`` (seconds) cancels it on the server when it runs too long.

        Example::

            df = await db.aquery("select * from flights where origin = :o", {"o": "JFK"})
        """
        return await self._await(queries.fetch_frame(self.engine, sql, params, timeout=timeout))

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
        bar = BatchProgress(list(queries_), enabled=progress)
        return await self._await(self._query_many(queries_, max_concurrency, timeout, errors, bar), bar)

    async def aexecute(self, sql: Statement, params: Params | None = None) -> int:
        """Run one DDL/DML statement in its own transaction; return the rows it affected.

        Example::

            await db.aexecute("delete from flights where year < :y", {"y": 2013})
        """
        return await self._await(queries.execute(self.engine, sql, params))

    async def awrite(
        self, frame: pd.DataFrame, table: str, *, schema: str | None = None, if_exists: IfExists = "fail"
    ) -> int:
        """Write ``frame`` to ``table`` in one transaction: all rows or none.

        ``if_exists``: ``"fail"`` (default), ``"append"`` or ``"replace"``. Returns the
        number of rows written.

        Example::

            await db.awrite(df, "results", if_exists="replace")
        """
        return await self._await(write_frame(self.engine, frame, table, schema=schema, if_exists=if_exists))

    async def atables(self) -> list[str]:
        """Names of the tables in the default schema. Example: ``await db.atables()``."""
        return await self._await(queries.table_names(self.engine))

    async def adescribe(self, table: str) -> pd.DataFrame:
        """One row per column of ``table``: name, type, nullable, default, primary key.

        Example: ``await db.adescribe("flights")``.
        """
        return await self._await(queries.describe_table(self.engine, table))

    async def aclose(self) -> None:
        """Close every pooled connection and stop the background loop."""
        if not self._closed:
            await self._loop.run_async(self.engine.dispose())
            await asyncio.to_thread(self._finish_close)  # joining the loop's thread blocks

    # -- blocking twins -----------------------------------------------------------------

    def query(self, sql: Statement, params: Params | None = None, *, timeout: float | None = None) -> pd.DataFrame:
        """Blocking :meth:`aquery`. Example: ``db.query("select 1 as x")``."""
        return self._submit(queries.fetch_frame(self.engine, sql, params, timeout=timeout))

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
        bar = BatchProgress(list(queries_), enabled=progress)
        return self._submit(self._query_many(queries_, max_concurrency, timeout, errors, bar), bar)

    def execute(self, sql: Statement, params: Params | None = None) -> int:
        """Blocking :meth:`aexecute`. Example: ``db.execute("create table t (x int)")``."""
        return self._submit(queries.execute(self.engine, sql, params))

    def write(
        self, frame: pd.DataFrame, table: str, *, schema: str | None = None, if_exists: IfExists = "fail"
    ) -> int:
        """Blocking :meth:`awrite`. Example: ``db.write(df, "results", if_exists="append")``."""
        return self._submit(write_frame(self.engine, frame, table, schema=schema, if_exists=if_exists))

    def tables(self) -> list[str]:
        """Blocking :meth:`atables`. Example: ``db.tables()``."""
        return self._submit(queries.table_names(self.engine))

    def describe(self, table: str) -> pd.DataFrame:
        """Blocking :meth:`adescribe`. Example: ``db.describe("flights")``."""
        return self._submit(queries.describe_table(self.engine, table))

    def pool_status(self) -> str:
        """Connections in use and the pool's size, e.g. ``"0 in use of 5"``."""
        pool = self.engine.pool
        in_use = getattr(pool, "checkedout", lambda: 0)()
        return f"{in_use} in use of {self.pool_size}"

    def close(self) -> None:
        """Blocking :meth:`aclose`."""
        if not self._closed and self._loop.running:
            self._loop.run(self.engine.dispose())
        self._finish_close()

    def _finish_close(self) -> None:
        self._closed = True
        self._loop.stop()
        _open.discard(self)

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

    ``engine_options`` go to SQLAlchemy's ``create_async_engine`` (``pool_size``, ``echo``...).

    Example::

        >>> import oriza_toolkit as oz
        >>> oz.connect().query("select 1 as x").x.tolist()
        [1]
    """
    return Database(url, **engine_options)


@atexit.register
def _close_all() -> None:
    for db in list(_open):
        with contextlib.suppress(Exception):  # the interpreter is exiting; nothing to report to
            db.close()
