"""Writing a DataFrame to a table: all rows or none.

pandas creates (or replaces) the table from the frame's dtypes; on asyncpg the rows
then go in with COPY, elsewhere with pandas' own inserts. Both happen in one
transaction, so a failure leaves the table as it was.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
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
                await _copy_rows(raw.driver_connection, frame, table, schema)
    except (OrizaError, asyncio.CancelledError):
        raise
    except ValueError as error:  # pandas: "Table 'x' already exists."
        raise WriteError(table, str(error)) from None
    except Exception as error:
        raise WriteError(table, query_error(error, table, "").detail) from None
    return len(frame)


def _to_sql(conn: Connection, frame: pd.DataFrame, table: str, schema: str | None, if_exists: IfExists) -> None:
    frame.to_sql(table, conn, schema=schema, if_exists=if_exists, index=False)


async def _copy_rows(driver: Any, frame: pd.DataFrame, table: str, schema: str | None) -> None:
    """COPY the rows in: as CSV written by pyarrow where every column has a plain type
    (numbers, booleans, text, dates, timestamps, decimals), else as binary records built
    value by value."""
    columns = [str(c) for c in frame.columns]
    data = await asyncio.to_thread(_arrow_csv, frame)  # a second core; keeps the loop free
    if data is not None:
        # pyarrow quotes every string and leaves NULL unquoted and empty: COPY's CSV default.
        await driver.copy_to_table(table, source=io.BytesIO(data), columns=columns, schema_name=schema,
                                   format="csv")
    else:
        await driver.copy_records_to_table(table, records=_records(frame), columns=columns, schema_name=schema)


def _arrow_csv(frame: pd.DataFrame) -> bytes | None:
    """``frame`` as headerless CSV, or None if a column's type would not survive CSV."""
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
    """Rows of Python values, with every kind of missing value as None."""
    values = frame.astype(object).where(frame.notna(), None)
    return list(values.itertuples(index=False, name=None))
