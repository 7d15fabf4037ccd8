"""Writing a DataFrame to a table: all rows or none.

The rows are prepared first, in a worker thread, before any transaction opens (on
PostgreSQL: as arrow, JSON already serialised, for binary COPY; CSV where a type has no
binary form), so a frame that cannot be written fails before anything starts. Then, in
one transaction, pandas creates (or replaces) the table from the frame's dtypes and the
backend streams the rows in (binary COPY batches are encoded while the server reads the
one before: the transaction is never idle). A failure leaves the table as it was.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from sqlalchemy import JSON, Boolean, Date, DateTime, LargeBinary, Numeric, Time
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .backends import Backend
from .errors import OrizaError, WriteError
from .frames import holds_dates, mixed_kinds, object_kind
from .queries import ConnectionLost, connection, query_error

__all__ = ["IfExists", "check_write", "encode", "write_frame", "write_on"]

IfExists = Literal["fail", "append", "replace"]


def check_write(frame: object, table: object, schema: object, if_exists: object, backend: Backend) -> None:
    """Raise ``TypeError``/``ValueError`` for arguments no write could use: names are
    refused, never cut or made up."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"write takes a pandas DataFrame, not {type(frame).__name__}")
    if isinstance(frame.columns, pd.MultiIndex):
        raise ValueError("the frame's columns are a MultiIndex (e.g. " + repr(frame.columns[0]) + "); flatten them "
                         "first, e.g. frame.columns = ['_'.join(map(str, c)) for c in frame.columns]")
    if not isinstance(table, str) or not table.strip():
        raise TypeError(f"the table name must be a non-empty string, not {table!r}")
    if schema is not None and not isinstance(schema, str):
        raise TypeError(f"schema must be a string, not {type(schema).__name__}")
    if if_exists not in ("fail", "append", "replace"):
        raise ValueError(f"if_exists must be 'fail', 'append' or 'replace', not {if_exists!r}")
    if not len(frame.columns):
        raise ValueError("the frame has no columns; a table needs at least one")
    if frame.columns.has_duplicates:
        twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise ValueError(f"the frame has duplicate column names: {', '.join(twice)}")
    for name, column in frame.items():
        if pd.api.types.is_object_dtype(column.dtype) and (pair := mixed_kinds(column)):
            raise ValueError(f"column {str(name)!r} mixes {type(pair[0]).__name__} and {type(pair[1]).__name__} "
                             f"values (e.g. {pair[0]!r} and {pair[1]!r}), which no column type holds as they are; "
                             f"make them one kind first, e.g. frame[{str(name)!r}].astype(str)")
    limit = backend.max_identifier_bytes
    for name in [table, schema, *(str(c) for c in frame.columns)]:
        if limit is not None and isinstance(name, str) and len(name.encode()) > limit:
            raise ValueError(f"the name {name[:30] + '...'!r} is longer than {backend.name}'s {limit}-byte limit "
                             "and would be cut; use a shorter one")


async def write_frame(
    engine: AsyncEngine,
    backend: Backend,
    frame: pd.DataFrame,
    table: str,
    *,
    schema: str | None = None,
    if_exists: IfExists = "fail",
) -> int:
    """Write ``frame`` (without its index) to ``table`` in a transaction of its own; return
    the number of rows written."""
    encoded = await encode(backend, frame, table)
    try:
        async with connection(engine, backend, begin=True) as conn:
            return await write_on(conn, backend, frame, table, encoded, schema=schema, if_exists=if_exists)
    except ConnectionLost as error:  # at the commit: nothing was written
        raise WriteError(table, query_error(error, table, "", backend).detail) from None


async def encode(backend: Backend, frame: pd.DataFrame, table: str) -> Any:
    """The frame's rows as ``backend`` writes them, prepared in a worker thread (before any
    transaction opens, so a frame that cannot be written fails before anything starts)."""
    try:
        return await asyncio.to_thread(backend.encode, frame) if len(frame) else None
    except (OrizaError, asyncio.CancelledError):
        raise
    except ValueError as error:
        raise WriteError(table, str(error)) from None
    except Exception as error:
        raise WriteError(table, query_error(error, table, "", backend).detail) from None


async def write_on(conn: AsyncConnection, backend: Backend, frame: pd.DataFrame, table: str, encoded: Any, *,
                   schema: str | None = None, if_exists: IfExists = "fail") -> int:
    """Create (or check, or replace) ``table`` and write the rows :func:`encode` prepared,
    in ``conn``'s transaction; return the number of rows written."""
    try:
        await conn.run_sync(_create, frame, table, schema, if_exists, backend)
        if len(frame):
            await backend.write(conn, frame, table, schema, encoded)
    except (OrizaError, asyncio.CancelledError):
        raise
    except ValueError as error:  # pandas: "Table 'x' already exists."; SQLite type checks
        detail = str(error)
        if if_exists == "fail" and "already exists" in detail:
            detail = f"{detail.rstrip('.')}; pass if_exists='append' to add to it, or 'replace' to replace it"
        raise WriteError(table, detail) from None
    except Exception as error:
        raise WriteError(table, query_error(error, table, "", backend).detail) from None
    return len(frame)


def _create(conn: Connection, frame: pd.DataFrame, table: str, schema: str | None, if_exists: IfExists,
            backend: Backend) -> None:
    """Create (or check, or replace) the table from the frame's dtypes, with no rows."""
    types = backend.column_types(frame, _column_types(frame))
    frame.head(0).to_sql(table, conn, schema=schema, if_exists=if_exists, index=False, dtype=types)


_OBJECT_TYPES: dict[str | None, Any] = {"bool": Boolean, "bytes": LargeBinary, "date": Date, "time": Time}


def _column_types(frame: pd.DataFrame) -> dict[str, Any]:
    """Column types where pandas' own choice would not read back as written: ``numeric``
    for decimals (pandas: TEXT; without precision, so the next frame's values fit too),
    ``date`` for dates as the toolkit reads them (pandas:
    TIMESTAMP), JSON for dicts and lists, binary, ``date`` and ``time`` for those objects
    (pandas: TEXT). The backend maps these to its own where it has better (``jsonb``, ``interval``)."""
    types: dict[str, Any] = {}
    for name, column in frame.items():
        dtype = column.dtype
        if isinstance(dtype, pd.ArrowDtype) and pa.types.is_decimal(dtype.pyarrow_dtype):
            types[str(name)] = Numeric()
        elif holds_dates(column):
            types[str(name)] = Date()
        elif pd.api.types.is_object_dtype(dtype):
            values = column.dropna()
            kind = object_kind(values)
            if kind == "decimal":
                types[str(name)] = Numeric()
            elif kind == "json":
                types[str(name)] = JSON()
            elif kind == "datetime":
                zoned = {v.tzinfo is not None for v in values}
                if len(zoned) > 1:
                    raise ValueError(f"column {str(name)!r} mixes datetimes with and without a time zone; make them "
                                     f"one kind first, e.g. pd.to_datetime(frame[{str(name)!r}], utc=True)")
                types[str(name)] = DateTime(timezone=zoned.pop())  # with zones: the instants, in any zone
            elif kind in _OBJECT_TYPES:  # pandas sees no rows: the table is made from the first zero
                types[str(name)] = _OBJECT_TYPES[kind]()
    return types
