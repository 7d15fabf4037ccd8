"""One moment of a database, shared by several reads running at once.

On PostgreSQL a holding connection opens a ``REPEATABLE READ READ ONLY`` transaction and
exports its snapshot (``pg_export_snapshot()``); each read then runs on a pooled
connection of its own, in a transaction that imports it (``SET TRANSACTION SNAPSHOT``),
so reads run concurrently and all see the database as it was when the snapshot was
taken, whatever is written meanwhile. This works on a hot standby and through
pgbouncer's transaction mode. A snapshot cannot span servers. On SQLite the reads take
turns on the holding connection, in its one transaction.

Example::

    async with snapshot.hold(engine, backend) as moment:
        total, by_region = await asyncio.gather(moment.read(total_sql, None), moment.read(region_sql, None))
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import queries
from ._sql import Params, Statement
from .backends import Backend, Form
from .errors import QueryError

__all__ = ["Snapshot", "hold"]

# SQLSTATEs of an import whose exporting transaction has ended.
_GONE = {"22023", "0A000"}


class Snapshot:
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
        async with queries.connection(self.engine, self.backend) as conn:
            try:
                await self.backend.import_snapshot(conn, self.id)
            except Exception as error:
                if getattr(queries.server_error(error), "sqlstate", None) in _GONE:
                    raise QueryError("query", "", "the snapshot is gone: its holding transaction ended (was it "
                                     "killed by idle_in_transaction_session_timeout?); take a new one") from None
                raise
            try:
                return await self.backend.read(conn, sql, params, form)
            finally:
                with contextlib.suppress(Exception):
                    await conn.rollback()  # a read-only transaction: nothing to keep

    def release(self) -> None:
        self._holder = None


@contextlib.asynccontextmanager
async def hold(engine: AsyncEngine, backend: Backend) -> AsyncIterator[Snapshot]:
    """A snapshot of the database behind ``engine``, held until the block ends (its
    holding connection goes back to the pool on every way out)."""
    async with queries.connection(engine, backend) as holder:
        snapshot = Snapshot(engine, backend, holder, await backend.export_snapshot(holder))
        try:
            yield snapshot
        finally:
            snapshot.release()
            with contextlib.suppress(Exception):
                await holder.rollback()
