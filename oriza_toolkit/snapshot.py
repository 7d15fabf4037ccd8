"""One moment of a database, shared by several reads running at once.

On PostgreSQL a holding connection opens a ``REPEATABLE READ READ ONLY`` transaction and
exports its snapshot (``pg_export_snapshot()``); each read then runs on a pooled
connection of its own, in a transaction that imports it (``SET TRANSACTION SNAPSHOT``),
so reads run concurrently and all see the database as it was when the snapshot was
taken, whatever is written meanwhile. This works on a hot standby and through
pgbouncer's transaction mode. A snapshot cannot span servers. On SQLite the reads take
turns on the holding connection, in its one transaction.

:func:`hold` holds one for a block (a batch, a partitioned read); :class:`Snapshot`
(``db.snapshot()``) holds one across calls, on a connection outside the pool, for reads
that start later, in this process (:meth:`Snapshot.query`) or another (a Dask worker's
:func:`read_in`, given the snapshot's id).

Example::

    async with snapshot.hold(engine, backend) as moment:
        total, by_region = await asyncio.gather(moment.read(total_sql, None), moment.read(region_sql, None))
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import _loop, queries
from ._sql import Params, Statement
from .backends import Backend, Form
from .errors import QueryError

__all__ = ["Moment", "Snapshot", "hold", "read_in"]

# SQLSTATEs of an import whose exporting transaction has ended.
_GONE = {"22023", "0A000"}


class Moment:
    """A snapshot held open by :func:`hold`; :meth:`read` runs a query in it."""

    def __init__(self, engine: AsyncEngine, backend: Backend, holder: AsyncConnection, snapshot_id: str | None
                 ) -> None:
        self.engine = engine
        self.backend = backend
        self.id = snapshot_id
        self._holder: AsyncConnection | None = holder
        self._turn = asyncio.Lock()

    async def read(self, sql: Statement, params: Params | None, form: Form = "frame") -> Any:
        """The result of ``sql`` as the database was when the snapshot was taken."""
        if self._holder is None:
            raise QueryError("query", "", "the snapshot has been released; take a new one")
        if self.id is None:
            async with self._turn:
                return await self.backend.read(self._holder, sql, params, form)
        return await read_in(self.engine, self.backend, self.id, sql, params, form)

    def release(self) -> None:
        self._holder = None


async def read_in(engine: AsyncEngine, backend: Backend, snapshot_id: str, sql: Statement, params: Params | None,
                  form: Form = "frame") -> Any:
    """The result of ``sql`` read on a pooled connection of ``engine`` (any process, any
    pool of the same server) in the exported snapshot ``snapshot_id``."""
    async with queries.connection(engine, backend) as conn:
        try:
            await backend.import_snapshot(conn, snapshot_id)
        except Exception as error:
            if getattr(queries.server_error(error), "sqlstate", None) in _GONE:
                raise QueryError("query", "", "the snapshot is gone: its holder ended (its `with db.snapshot()` "
                                 "block closed, or idle_in_transaction_session_timeout ended it); read while it is "
                                 "held, or take a new one") from None
            raise
        try:
            return await backend.read(conn, sql, params, form)
        finally:
            with contextlib.suppress(Exception):
                await conn.rollback()  # a read-only transaction: nothing to keep


@contextlib.asynccontextmanager
async def hold(engine: AsyncEngine, backend: Backend, holder_engine: AsyncEngine | None = None
               ) -> AsyncIterator[Moment]:
    """A snapshot of the database behind ``engine``, held until the block ends by a
    connection of ``holder_engine`` (default: ``engine``), which goes back on every way
    out; reads run on ``engine``'s pool."""
    async with queries.connection(holder_engine or engine, backend) as holder:
        moment = Moment(engine, backend, holder, await backend.export_snapshot(holder))
        try:
            yield moment
        finally:
            moment.release()
            with contextlib.suppress(Exception):
                await holder.rollback()


class Snapshot:
    """One moment of a database, held open from ``with`` (or :meth:`open`) to its end (or
    :meth:`close`), for reads that start later: :meth:`query` here, and the tasks of
    ``db.to_dask(..., snapshot=snap)`` on other machines. Made by ``db.snapshot()``.

    While open it holds a connection of its own (on PostgreSQL outside the pool) in a
    read-only transaction, which keeps the server from vacuuming rows the snapshot may
    still see: close it when done. A read after it closed is a one-line error.

    Example::

        with db.snapshot() as snap:
            total = snap.query("select sum(balance) as s from accounts")
            ddf = db.to_dask("select * from accounts", partition_on="id", partitions=8, snapshot=snap)
            assert ddf.balance.sum().compute() == total.s[0]      # the same moment
    """

    def __init__(self, engine: AsyncEngine, backend: Backend, shown: str, holder_engine: AsyncEngine | None = None
                 ) -> None:
        self._engine = engine
        self._holder_engine = holder_engine
        self._backend = backend
        self._shown = shown
        self._stack: contextlib.AsyncExitStack | None = None
        self._moment: Moment | None = None
        self._finalizer: weakref.finalize[Any, Snapshot] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._moment is None else f"id {self._moment.id}" if self._moment.id else "open"
        return f"<Snapshot of {self._shown} ({state})>"

    @property
    def id(self) -> str | None:
        """The server's snapshot id (``pg_export_snapshot()``), or None (closed, or SQLite)."""
        return self._moment.id if self._moment else None

    @property
    def closed(self) -> bool:
        """Whether the snapshot is not (or no longer) held."""
        return self._moment is None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def _open(self) -> Snapshot:
        if self._moment is None:
            stack = contextlib.AsyncExitStack()
            self._moment = await stack.enter_async_context(hold(self._engine, self._backend, self._holder_engine))
            self._stack = stack
            # Dropped while open (a notebook's cell re-run): the holder still goes back.
            self._finalizer = weakref.finalize(self, _loop.submit_quietly, stack.aclose)
        return self

    async def _close(self) -> None:
        stack, self._stack, self._moment = self._stack, None, None
        if self._finalizer is not None:
            self._finalizer.detach()
        if stack is not None:
            await stack.aclose()

    def moment(self) -> Moment:
        """The held snapshot, to read in; a one-line error once closed."""
        if self._moment is None:
            raise QueryError("query", "", "the snapshot is closed; read in its `with` block, or take a new one")
        return self._moment

    async def _read(self, sql: Statement, params: Params | None) -> Any:
        async with queries.running("query", sql, None, self._engine, self._backend):
            return await self.moment().read(sql, params, "frame")

    def open(self) -> Snapshot:
        """Take the snapshot now (``with`` does this). Example: ``snap = db.snapshot().open()``."""
        return _loop.run(self._open())

    async def aopen(self) -> Snapshot:
        """Awaitable :meth:`open`."""
        return await _loop.arun(self._open())

    def close(self) -> None:
        """Let the snapshot go (its holding connection back to the pool)."""
        _loop.run(self._close())

    async def aclose(self) -> None:
        """Awaitable :meth:`close`."""
        await _loop.arun(self._close())

    def query(self, sql: Statement, params: Params | None = None) -> pd.DataFrame:
        """A query's rows as the database was when the snapshot was taken.
        Example: ``snap.query("select count(*) as n from flights")``."""
        return cast(pd.DataFrame, _loop.run(self._read(sql, params)))

    async def aquery(self, sql: Statement, params: Params | None = None) -> pd.DataFrame:
        """Awaitable :meth:`query`."""
        return cast(pd.DataFrame, await _loop.arun(self._read(sql, params)))

    def __enter__(self) -> Snapshot:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Snapshot:
        return await self.aopen()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
