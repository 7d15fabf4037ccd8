"""Where a result came from, carried with it.

Every DataFrame a query, a batch or a script returns has ``df.attrs["oriza"]``: the SQL as
written, its parameters (values of those named like secrets masked), the database (its URL
with the password masked), the schema revision (Alembic's ``alembic_version``, when the
database has one), when it started (UTC), how long it took and how many rows it gave. A
``query_arrow`` table has the same as JSON in its schema metadata (key ``oriza``), and a
``to_parquet`` file in its key-value metadata (``rows`` and ``seconds`` there are the
file's own). A password never appears in it.

Example::

    df = db.query("select * from flights where origin = :o", {"o": "JFK"})
    df.attrs["oriza"]["sql"], df.attrs["oriza"]["rows"]
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["KEY", "arrow_metadata", "attach", "masked_params", "record"]

KEY = "oriza"
# Parameter names whose values are masked: they look like credentials.
_SECRET = re.compile(r"pass|pwd|secret|token|credential|api_?key|private", re.IGNORECASE)


def masked_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` with the values of secret-looking names as ``"***"``.

    Example::

        >>> masked_params({"origin": "JFK", "api_token": "abc"})
        {'origin': 'JFK', 'api_token': '***'}
    """
    return {str(key): "***" if _SECRET.search(str(key)) else value for key, value in (params or {}).items()}


def record(sql: str, params: Mapping[str, Any] | None, database: str, revision: str | None,
           started: dt.datetime, seconds: float, rows: int) -> dict[str, Any]:
    """The provenance of one result (``database`` already masked)."""
    return {"sql": sql, "params": masked_params(params), "database": database, "revision": revision,
            "started": started.isoformat(), "seconds": round(seconds, 6), "rows": int(rows)}


def attach(result: Any, provenance: dict[str, Any]) -> Any:
    """``result`` (a DataFrame or a pyarrow Table) carrying ``provenance``."""
    if isinstance(result, pd.DataFrame):
        result.attrs[KEY] = provenance
        return result
    if isinstance(result, pa.Table):
        metadata = {**(result.schema.metadata or {}), **arrow_metadata(provenance)}
        if not result.num_columns:  # arrow keeps a column-less table's row count only in its batches
            return pa.Table.from_batches([b.replace_schema_metadata(metadata) for b in result.to_batches()])
        return result.replace_schema_metadata(metadata)
    return result


def arrow_metadata(provenance: dict[str, Any]) -> dict[bytes, bytes]:
    """``provenance`` as arrow/Parquet key-value metadata (values that are not JSON as text)."""
    return {KEY.encode(): json.dumps(provenance, default=str).encode()}
