"""Writing a DataFrame to a table: all rows or none.

pandas creates (or replaces) the table from the frame's dtypes; on asyncpg the rows
then go in with a binary COPY, elsewhere with pandas' own inserts. Both happen in one
transaction, so a failure leaves the table as it was.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pandas as pd
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from .errors import OrizaError, WriteError
from .queries import connection, query_error

__all__ = ["IfExists", "write_frame"]

IfExists = Literal["fail", "append", "replace"]


async def write_frame(
    engine: AsyncEngine,
    frame: pd.DataFrame,
    table: str,
    *,
    schema: str | None = None,
    if_exists: IfExists = "fail",
) -> int:
    """Write ``frame`` (without its index) to ``table``; return the number of rows written."""
    if if_exists not in ("fail", "append", "replace"):
        raise WriteError(table, f"if_exists must be 'fail', 'append' or 'replace', not {if_exists!r}")
    copy = engine.dialect.driver == "asyncpg"
    try:
        async with connection(engine, begin=True) as conn:
            head = frame.head(0) if copy else frame
            await conn.run_sync(_to_sql, head, table, schema, if_exists)
            if copy and len(frame):
                raw = await conn.get_raw_connection()
                assert raw.driver_connection is not None
                await raw.driver_connection.copy_records_to_table(
                    table, records=_records(frame), columns=[str(c) for c in frame.columns], schema_name=schema
                )
    except (OrizaError, asyncio.CancelledError):
        raise
    except ValueError as error:  # pandas: "Table 'x' already exists."
        raise WriteError(table, str(error)) from None
    except Exception as error:
        raise WriteError(table, query_error(error, table, "").detail) from None
    return len(frame)


def _to_sql(conn: Connection, frame: pd.DataFrame, table: str, schema: str | None, if_exists: IfExists) -> None:
    frame.to_sql(table, conn, schema=schema, if_exists=if_exists, index=False)


def _records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows of Python values, with every kind of missing value as None."""
    values = frame.astype(object).where(frame.notna(), None)
    return list(values.itertuples(index=False, name=None))
