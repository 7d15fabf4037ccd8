"""A transaction handle: statements, reads and writes that commit together or not at all.

``Database.transaction()`` (a ``with`` block) and ``Database.atransaction()`` (``async
with``) hold one pooled connection in one write transaction: leaving the block commits,
an error (or an interrupt) rolls everything back, so the tables are as they were.

Example::

    with db.transaction() as tx:
        tx.execute("delete from results where day = :d", {"d": day})
        tx.write(frame, "results", if_exists="append")
        n = tx.query("select count(*) as n from results").n[0]     # sees the uncommitted rows
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import _loop, queries, writes
from ._sql import Params, Statement
from .backends import Backend
from .errors import OrizaError, WriteError, raised_at_call
from .progress import BatchProgress
from .queries import check_statement
from .writes import IfExists, check_write

__all__ = ["Transaction"]


@raised_at_call
class Transaction:
    """One connection in one write transaction (see the module docstring). Its methods are
    :class:`~oriza_toolkit.Database`'s, with the same blocking and ``a`` twins; they may be
    called only inside the block, one at a time."""

    def __init__(self, engine: AsyncEngine, backend: Backend) -> None:
        self._engine = engine
        self._backend = backend
        self._stack: contextlib.AsyncExitStack | None = None
        self._conn: AsyncConnection | None = None

    # -- the block ----------------------------------------------------------------------

    async def _begin(self) -> Transaction:
        stack = contextlib.AsyncExitStack()
        self._conn = await stack.enter_async_context(queries.connection(self._engine, self._backend, begin=True))
        self._stack = stack
        return self

    async def _end(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                   tb: TracebackType | None) -> None:
        stack, self._stack, self._conn = self._stack, None, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    def __enter__(self) -> Transaction:
        return _loop.run(self._begin())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _loop.run(self._end(exc_type, exc, tb))

    async def __aenter__(self) -> Transaction:
        return await _loop.arun(self._begin())

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await _loop.arun(self._end(exc_type, exc, tb))

    def _connection(self) -> AsyncConnection:
        if self._conn is None:
            raise OrizaError("this transaction has ended; open a new one with db.transaction()")
        return self._conn

    # -- coroutines ---------------------------------------------------------------------

    async def _query(self, sql: Statement, params: Params | None) -> pd.DataFrame:
        async with queries.running("query", sql, None, self._engine, self._backend):
            frame: pd.DataFrame = await self._backend.read(self._connection(), sql, params)
            return frame

    async def _execute(self, sql: Statement, params: Params | None) -> int:
        async with queries.running("execute", sql, None, self._engine, self._backend):
            return await queries.execute_on(self._connection(), sql, params)

    async def _write(self, frame: pd.DataFrame, table: str, schema: str | None, if_exists: IfExists) -> int:
        encoded = await writes.encode(self._backend, frame, table)
        return await writes.write_on(self._connection(), self._backend, frame, table, encoded, schema=schema,
                                     if_exists=if_exists)

    async def _replace_rows(self, frames: Mapping[str, pd.DataFrame], progress: BatchProgress) -> dict[str, int]:
        conn = self._connection()
        names = ", ".join(frames)
        encoded = dict(zip(frames, await asyncio.gather(*(writes.encode(self._backend, frame, name)
                                                          for name, frame in frames.items())), strict=True))

        def loaded(name: str, rows: int, seconds: float) -> None:
            progress.record(name, rows=rows, seconds=seconds)

        try:
            await self._backend.replace_rows(conn, frames, encoded, loaded)
        except OrizaError:
            raise
        except Exception as error:
            raise WriteError(names, queries.query_error(error, "replace_rows", "", self._backend).detail) from None
        return {name: len(frame) for name, frame in frames.items()}

    # -- the API ------------------------------------------------------------------------

    async def aquery(self, sql: Statement, params: Params | None = None) -> pd.DataFrame:
        """Run one query inside the transaction (it sees the transaction's own changes)."""
        check_statement(sql, params)
        return await _loop.arun(self._query(sql, params))

    async def aexecute(self, sql: Statement, params: Params | None = None) -> int:
        """Run one DDL/DML statement inside the transaction; return the rows it affected."""
        check_statement(sql, params, name="execute")
        return await _loop.arun(self._execute(sql, params))

    async def awrite(self, frame: pd.DataFrame, table: str, *, schema: str | None = None,
                     if_exists: IfExists = "fail") -> int:
        """Write ``frame`` to ``table`` inside the transaction (as :meth:`Database.awrite`)."""
        check_write(frame, table, schema, if_exists, self._backend)
        return await _loop.arun(self._write(frame, table, schema, if_exists))

    async def areplace_rows(self, frames: Mapping[str, pd.DataFrame], *, progress: bool | None = None
                            ) -> dict[str, int]:
        """Replace every row of several tables with the frames' rows (tables with foreign
        keys between them given parents first); return the rows written per table.

        On PostgreSQL the tables' secondary indexes and keys are dropped first and rebuilt
        once at the end, which is far faster than maintaining them row by row.

        Example::

            async with db.atransaction() as tx:
                await tx.areplace_rows({"customers": customers, "orders": orders})
        """
        bar = _check_frames(frames, progress, self._backend)
        return await _loop.arun(self._replace_rows(frames, bar), bar)

    def query(self, sql: Statement, params: Params | None = None) -> pd.DataFrame:
        """Blocking :meth:`aquery`. Example: ``tx.query("select count(*) as n from t")``."""
        check_statement(sql, params)
        return _loop.run(self._query(sql, params))

    def execute(self, sql: Statement, params: Params | None = None) -> int:
        """Blocking :meth:`aexecute`. Example: ``tx.execute("delete from t where id = :i", {"i": 3})``."""
        check_statement(sql, params, name="execute")
        return _loop.run(self._execute(sql, params))

    def write(self, frame: pd.DataFrame, table: str, *, schema: str | None = None, if_exists: IfExists = "fail"
              ) -> int:
        """Blocking :meth:`awrite`. Example: ``tx.write(df, "results", if_exists="append")``."""
        check_write(frame, table, schema, if_exists, self._backend)
        return _loop.run(self._write(frame, table, schema, if_exists))

    def replace_rows(self, frames: Mapping[str, pd.DataFrame], *, progress: bool | None = None) -> dict[str, int]:
        """Blocking :meth:`areplace_rows`. Example: ``tx.replace_rows({"airlines": airlines})``."""
        bar = _check_frames(frames, progress, self._backend)
        return _loop.run(self._replace_rows(frames, bar), bar)


def _check_frames(frames: object, progress: bool | None, backend: Backend) -> BatchProgress:
    if not isinstance(frames, Mapping) or not frames:
        raise TypeError("replace_rows takes a mapping of table names to DataFrames, parents first")
    for table, frame in frames.items():
        check_write(frame, table, None, "append", backend)
    return BatchProgress(list(frames), unit="table", units="tables", enabled=progress)
