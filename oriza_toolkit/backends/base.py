"""What the dialect-free modules ask of a dialect: the :class:`Backend` protocol.

Every question whose answer depends on the database (how to read, stream and write,
which column types a table gets, whether an error means the connection died, how a write
transaction begins, where a partitioned read splits, how schema changes are serialised)
is a method here, answered in ``postgresql.py`` or ``sqlite.py``. This module imports
nothing above it, so the backends and the modules that use them form no import circle.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..frames import Form

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from .._sql import Params, Statement

__all__ = ["Backend", "Form", "TableLoaded", "write_each"]

# Called once per table of a bulk replace as it finishes: (table, rows, seconds).
TableLoaded = Callable[[str, int, float], None]


class Backend(Protocol):
    """A dialect, as ``queries.py``, ``writes.py``, ``partitioned.py`` and ``migrations`` use it."""

    name: str
    #: How a statement stopped by a timeout or an interrupt ended, for messages.
    stopped: str
    #: The longest name (of a table or a column) the database keeps whole, in bytes; None: no limit.
    max_identifier_bytes: int | None
    #: The SQL type a number is cast to for floating-point aggregates.
    float_type: str

    def make_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine:
        """The AsyncEngine for ``url``, with the dialect's connect arguments and hooks."""
        ...

    def holder_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine | None:
        """An engine whose connections hold snapshots outside the pool (each its own, closed
        when the snapshot is let go), or None where a pooled connection holds them."""
        ...

    def connect_timeout(self, url: URL) -> float:
        """How many seconds a connection attempt to ``url`` waits for the server."""
        ...

    async def read(self, conn: AsyncConnection, sql: Statement, params: Params | None, form: Form = "frame"
                   ) -> Any:
        """The whole result of ``sql`` in ``form``; a statement without rows gives
        :class:`~oriza_toolkit.frames.RowsAffected` (as a frame)."""
        ...

    def stream(self, conn: AsyncConnection, sql: Statement, params: Params | None, rows: int, arrow: bool
               ) -> AsyncGenerator[Any, None]:
        """The result in chunks of ``rows`` rows (DataFrames, or record batches), one schema."""
        ...

    async def export_snapshot(self, conn: AsyncConnection) -> str | None:
        """Begin on ``conn`` a read-only transaction whose view of the database other
        connections can share, and return its id; None where they cannot (then every read
        of the snapshot runs on ``conn``, in turn)."""
        ...

    async def import_snapshot(self, conn: AsyncConnection, snapshot: str) -> None:
        """Begin on ``conn`` a read-only transaction that sees exactly ``snapshot``."""
        ...

    def encode(self, frame: pd.DataFrame) -> Any:
        """The frame's rows prepared for :meth:`write` (off the loop, before any transaction)."""
        ...

    def column_types(self, frame: pd.DataFrame, generic: dict[str, Any]) -> dict[str, Any]:
        """The SQLAlchemy column types a table made from ``frame`` gets: ``generic`` (the
        toolkit's, where pandas' own choice would not read back as written), with this
        dialect's own where it has a better one (``jsonb``, ``interval``)."""
        ...

    async def write(self, conn: AsyncConnection, frame: pd.DataFrame, table: str, schema: str | None,
                    encoded: Any) -> None:
        """Append the encoded rows to an existing table, inside the caller's transaction."""
        ...

    def begin_write(self, conn: AsyncConnection) -> AbstractAsyncContextManager[None]:
        """A transaction on ``conn`` that will write, begun on the server before the body runs
        (so the driver's own calls in it are inside it; SQLite takes its write lock at once)."""
        ...

    async def replace_rows(self, conn: AsyncConnection, frames: Mapping[str, pd.DataFrame],
                           encoded: Mapping[str, Any], loaded: TableLoaded) -> None:
        """Replace every row of the tables (given parents first) inside the caller's
        transaction, as fast as the dialect allows."""
        ...

    def is_lost_connection(self, error: BaseException) -> bool:
        """Whether the driver's ``error`` means the connection itself is gone."""
        ...

    def partition_bounds(self, inner: str, column: str) -> str | None:
        """SQL giving one row ``(low, high, kind, n, present)`` of ``column`` over the query ``inner`` (n: its
        rows; present: those where ``column`` is not NULL),
        or None where the dialect reads a result whole (nothing to split)."""
        ...

    def stddev(self, expression: str) -> str | None:
        """SQL for the sample standard deviation of ``expression``, or None (no such aggregate)."""
        ...

    def floor(self, expression: str) -> str:
        """SQL for the whole number at or below ``expression`` (a number that is not negative)."""
        ...

    def quantile(self, expression: str, fraction: float) -> str | None:
        """SQL for the ``fraction`` quantile of ``expression`` (linear interpolation), or None."""
        ...

    def sample_quantiles(self, inner: str, column: str, kind: str, fractions: Sequence[float], *, sampled: bool
                         ) -> str | None:
        """SQL giving one row: the ``fractions`` quantiles of ``column``'s values (of type
        ``kind``) over the query ``inner``, NULL and non-finite values left out; with
        ``sampled``, of the rows for which ``random() < :_oz_sample``. None: cannot."""
        ...

    def can_partition(self, kind: str) -> bool:
        """Whether a column of the type ``kind`` (as :meth:`partition_bounds` names it) splits into ranges."""
        ...

    def finite_bounds(self, inner: str, column: str, kind: str) -> str | None:
        """SQL giving one row ``(low, high)`` of ``column``'s finite values (no NaN, no
        infinities), for a ``kind`` that has others; None where it has none."""
        ...

    async def literal_sql(self, conn: AsyncConnection, sql: str, params: Params | None) -> str | None:
        """``sql`` with each parameter written as a literal the server itself rendered (for
        tools that take SQL text only), or None where the dialect cannot."""
        ...

    async def position(self, conn: AsyncConnection) -> str | None:
        """Where the server's data stands (PostgreSQL: its WAL position, a standby's what it has
        replayed), to compare replicas against; None where the dialect has no such thing."""
        ...

    async def behind(self, conn: AsyncConnection, position: str) -> float:
        """How far the server is from having ``position``'s data (0 once it has it)."""
        ...

    async def lock_migrations(self, conn: AsyncConnection, engine: AsyncEngine) -> None:
        """Serialise schema changes across processes for the rest of ``conn``'s transaction
        (a second migration waits, then finds nothing to do)."""
        ...


async def write_each(backend: Backend, conn: AsyncConnection, frames: Mapping[str, pd.DataFrame],
                     encoded: Mapping[str, Any], loaded: TableLoaded) -> None:
    """Append each table's encoded rows, in the order given, saying so as each finishes
    (the common part of the backends' :meth:`Backend.replace_rows`)."""
    for name, frame in frames.items():
        start = time.perf_counter()
        if len(frame):
            await backend.write(conn, frame, name, None, encoded[name])
        loaded(name, len(frame), time.perf_counter() - start)
