"""A table's profile, computed by the server: per column its count, NULLs, distinct values,
range, mean, spread and quartiles (numbers) or most common value (text), one query per
column, all at once.

Only the aggregates travel, so a table of any size profiles in the time of its slowest
column's scan. SQLite has no ``percentile_cont`` and no ``stddev``: its quartiles and
``std`` are left empty (NaN).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Boolean, Date, DateTime, Float, Integer, Interval, Numeric, String, Time, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _sql, queries
from .backends import Backend
from .errors import QueryError

__all__ = ["COLUMNS", "profile_table"]

# The profile's columns, in order.
COLUMNS = ["type", "count", "nulls", "distinct", "min", "max", "mean", "std", "25%", "50%", "75%", "top", "freq"]
_QUARTILES = {"25%": 0.25, "50%": 0.5, "75%": 0.75}


async def profile_table(engine: AsyncEngine, backend: Backend, table: str, schema: str | None, *,
                        max_concurrency: int) -> pd.DataFrame:
    """One row per column of ``table`` (see :data:`COLUMNS`), computed on the server."""
    try:
        async with queries.connection(engine, backend) as conn:
            columns = await conn.run_sync(_columns, table, schema)
    except NoSuchTableError:
        full = f"{schema}.{table}" if schema else table
        raise QueryError("profile", full, f"no table named {full!r}") from None
    target = (f"{_sql.quote_identifier(schema)}." if schema else "") + _sql.quote_identifier(table)
    batch: dict[str, str] = {}
    for name, kind in columns:
        batch[f"stats {name}"] = _stats_sql(backend, target, name, kind)
        if kind in ("text", "bool"):
            ident = _sql.quote_identifier(name)
            batch[f"top {name}"] = (f"SELECT {ident} AS top, count(*) AS freq FROM {target} WHERE {ident} IS NOT NULL "
                                    f"GROUP BY {ident} ORDER BY freq DESC, {ident} LIMIT 1")
    found = await queries.fetch_frames(engine, backend, batch, max_concurrency=max_concurrency)
    failed = [out for out in found.values() if isinstance(out, QueryError)]
    if failed:
        raise failed[0].renamed("profile", failed[0].sql)
    rows = []
    for name, kind in columns:
        summary = found[f"stats {name}"]
        assert isinstance(summary, pd.DataFrame)
        stats: dict[str, Any] = {str(key): value for key, value in summary.iloc[0].items()}
        top = found.get(f"top {name}")
        if isinstance(top, pd.DataFrame) and len(top):
            stats.update(top=top["top"].iloc[0], freq=int(top["freq"].iloc[0]))
        rows.append({"type": kind, **stats})
    frame = pd.DataFrame(rows, index=pd.Index([name for name, _ in columns], name="column"), columns=COLUMNS)
    for count in ("count", "nulls", "distinct", "freq"):
        frame[count] = frame[count].astype("Int64")
    for number in ("mean", "std", *_QUARTILES):
        frame[number] = pd.to_numeric(frame[number]).astype("float64")
    return frame


def _columns(sync: Connection, table: str, schema: str | None) -> list[tuple[str, str]]:
    return [(column["name"], _kind(column["type"])) for column in inspect(sync).get_columns(table, schema=schema)]


def _kind(kind: Any) -> str:
    """How a column is profiled: ``number``, ``text``, ``time`` (ordered), ``bool`` or ``other``."""
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, (Integer, Numeric, Float)):
        return "number"
    if isinstance(kind, String):
        return "text"
    if isinstance(kind, (Date, DateTime, Time, Interval)):
        return "time"
    return "other"


def _stats_sql(backend: Backend, target: str, name: str, kind: str) -> str:
    ident = _sql.quote_identifier(name)
    parts = {"count": f"count({ident})", "nulls": f"count(*) - count({ident})",
             "distinct": f"count(DISTINCT {ident})" if kind != "other" else "NULL"}
    if kind in ("number", "text", "time"):
        parts.update(min=f"min({ident})", max=f"max({ident})")
    if kind == "number":
        number = f"CAST({ident} AS {backend.float_type})"
        parts.update(mean=f"avg({number})", std=backend.stddev(number) or "NULL")
        for label, fraction in _QUARTILES.items():
            parts[label] = backend.quantile(number, fraction) or "NULL"
    select = ", ".join(f"{expression} AS {_sql.quote_identifier(label)}" for label, expression in parts.items())
    return f"SELECT {select} FROM {target}"
