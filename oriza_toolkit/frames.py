"""Turning query results into DataFrames, with the documented dtype of every column.

A backend hands over an arrow table typed from the server's description of the result
(see ``backends/postgresql.py``); this module only maps arrow to the documented pandas
dtypes. Only types with no columnar equivalent (json, bytea, arrays, ...) become Python
objects.

=================  ==================================  ==================================
PostgreSQL type    DataFrame dtype                     notes
=================  ==================================  ==================================
smallint           ``Int16``                           nullable: NULL is ``<NA>``
integer            ``Int32``
bigint, oid        ``Int64``
numeric            ``decimal128(p, s)[pyarrow]``       p and s wide enough for every value,
                                                       so nothing is rounded; ``object``
                                                       (``Decimal``) past 76 digits or for
                                                       NaN/Infinity
real               ``float32``                         NULL is NaN
double precision   ``float64``
text, varchar,     ``str``                             pandas' string dtype; NULL is NaN
char, name, uuid,
inet, citext, ...
boolean            ``boolean``                         nullable
date               ``datetime64[s]``
time               ``object`` (``datetime.time``)
timestamp          ``datetime64[us]``
timestamptz        ``datetime64[us, UTC]``             the instant, in UTC
interval           ``timedelta64[us]``                 a month counts 30 days, a year 365.25
json, jsonb        ``object`` (dict, list, ...)        parsed with orjson
bytea              ``object`` (``bytes``)
arrays, composite  ``object`` (list / dict)            via ``to_json``: elements are JSON
types, records                                         values (numbers, strings, ...)
enum               ``category`` (ordered)              categories in the enum's order
=================  ==================================  ==================================

On SQLite (the embedded default) a column's dtype follows its values: integers
``Int64``, reals ``float64``, text ``str``, blobs ``object`` (``bytes``); a typed Core
statement's booleans, dates, datetimes and decimals come back as ``boolean``,
``datetime64[s]``, ``datetime64[us]`` and ``decimal128(p, s)[pyarrow]`` (as on
PostgreSQL); a column mixing kinds of value (SQLite allows it) stays ``object``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from .settings import settings

try:  # what DataFrame.from_records uses; the public API has no C-speed rows-to-columns
    from pandas._libs.lib import to_object_array_tuples as _to_object_array_tuples  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _to_object_array_tuples = None

__all__ = [
    "DECIMAL_TEXT", "JSON", "KIND", "frame_from_arrow", "frame_from_rows", "holds_dates", "object_kind", "parse_json",
    "rows_affected",
]

# Field metadata a backend sets on columns arrow cannot type: their values are text to parse.
KIND = b"oriza.kind"
JSON = b"json"
DECIMAL_TEXT = b"decimal"

_NULLABLE = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def frame_from_arrow(table: pa.Table, objects: Mapping[int, list[Any]] | None = None) -> pd.DataFrame:
    """A DataFrame with the documented dtypes from a backend's arrow table.

    ``objects`` holds columns (by index) whose Python values are already known, such as
    JSON a backend parsed while the result streamed in.

    Example::

        >>> frame_from_arrow(pa.table({"n": pa.array([1, None], pa.int32())})).n.dtype
        Int32Dtype()
    """
    known = objects or {}
    frame = pd.DataFrame(
        {i: pd.Series(known[i], dtype=object) if i in known else _to_series(table.column(i), table.schema.field(i))
         for i in range(table.num_columns)},
        copy=False,
    )
    frame.columns = pd.Index(table.column_names, dtype=object)
    return frame


def _to_series(array: pa.ChunkedArray, field: pa.Field) -> pd.Series:
    return cast(pd.Series, _convert(array, field))  # pyarrow is untyped


def _convert(array: pa.ChunkedArray, field: pa.Field) -> Any:
    kind = (field.metadata or {}).get(KIND)
    if kind == JSON:
        return _map_values(array, parse_json)
    if kind == DECIMAL_TEXT:
        return _map_values(array, float if settings.numeric == "float" else Decimal)
    if array.type in _NULLABLE:
        return array.to_pandas(types_mapper=_NULLABLE.get)
    if pa.types.is_decimal(array.type):
        if settings.numeric == "float":
            return array.cast(pa.float64()).to_pandas()
        return array.to_pandas(types_mapper=pd.ArrowDtype)
    if pa.types.is_date(array.type):
        return array.to_pandas(date_as_object=False).astype("datetime64[s]")
    if pa.types.is_duration(array.type):
        return array.to_pandas().astype("timedelta64[us]")
    if pa.types.is_binary(array.type):
        return pd.Series(array.to_pylist(), dtype=object)
    return array.to_pandas()


def parse_json(text: str) -> Any:
    """A JSON value from its text: orjson, or the standard library for what orjson refuses
    (integers past 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # integers past 64 bits
        return json.loads(text)


def _map_values(array: pa.ChunkedArray, convert: Callable[[str], Any]) -> pd.Series:
    values = [None if text is None else convert(text) for text in array.to_pylist()]
    return pd.Series(values, dtype=object)


def holds_dates(column: pd.Series) -> bool:
    """Whether ``column`` is dates as this module reads them: ``datetime64[s]``, no zone,
    every value at midnight (so it is written back as ``date``).

    Example::

        >>> holds_dates(pd.Series(pd.to_datetime(["2024-01-02"])).astype("datetime64[s]"))
        True
    """
    if str(column.dtype) != "datetime64[s]":
        return False
    values = column.dropna()
    return bool(len(values)) and bool((values == values.dt.normalize()).all())


def object_kind(values: pd.Series) -> str | None:
    """What the (non-null) Python objects of a column all are, where the toolkit writes
    that kind typed: ``"json"`` (dicts and lists), ``"decimal"`` (finite Decimals),
    ``"bytes"``, ``"date"``, ``"time"`` or ``"str"``; None for anything else or nothing.

    Example::

        >>> object_kind(pd.Series([{"a": 1}, [2]]))
        'json'
    """
    kinds = {type(v) for v in values}
    if not kinds:
        return None
    if all(issubclass(k, (dict, list)) for k in kinds):
        return "json"
    if all(issubclass(k, Decimal) for k in kinds):
        return "decimal" if all(v.is_finite() for v in values) else None
    if all(issubclass(k, (bytes, bytearray)) for k in kinds):
        return "bytes"
    single = {dt.date: "date", dt.time: "time", str: "str"}
    return single.get(next(iter(kinds))) if len(kinds) == 1 else None


def rows_affected(rowcount: int | None, status: str | None = None) -> pd.DataFrame:
    """The result of a statement that returns no rows: an empty frame whose ``attrs`` hold
    ``rowcount`` (None where the driver counts nothing, as for DDL) and the server's
    ``status`` (its command tag, e.g. ``"INSERT 0 3"``, where there is one).

    Example::

        >>> rows_affected(3, "INSERT 0 3").attrs
        {'rowcount': 3, 'status': 'INSERT 0 3'}
    """
    frame = pd.DataFrame()
    frame.attrs.update(rowcount=rowcount, status=status)
    return frame


def frame_from_rows(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> pd.DataFrame:
    """A DataFrame from driver rows (SQLite and other non-asyncpg drivers).

    Each column's dtype follows its values (arrow infers it, in C), with nullable integers
    and booleans; a column mixing kinds of value stays Python objects.

    Example::

        >>> frame_from_rows([(1, "a"), (None, "b")], ["n", "s"]).dtypes.astype(str).tolist()
        ['Int64', 'str']
    """
    if not rows:
        frame = pd.DataFrame({i: pd.Series([], dtype=object) for i in range(len(names))})
        frame.columns = pd.Index(list(names), dtype=object)
        return frame
    matrix = _object_matrix(rows, len(names))
    arrays = []
    objects = {}
    for i in range(len(names)):
        try:
            arrays.append(pa.array(matrix[:, i], from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            objects[i] = list(matrix[:, i])
            arrays.append(pa.nulls(len(rows)))
    frame = frame_from_arrow(pa.Table.from_arrays(arrays, names=[str(i) for i in range(len(names))]), objects)
    frame.columns = pd.Index(list(names), dtype=object)
    return frame


def _object_matrix(rows: Sequence[Sequence[Any]], width: int) -> Any:
    """The rows as a 2-D object array (pandas' own C routine where it has it)."""
    if _to_object_array_tuples is not None and isinstance(rows, list) and isinstance(rows[0], tuple):
        return _to_object_array_tuples(rows)
    matrix = np.empty((len(rows), width), dtype=object)
    matrix[:] = [tuple(row) for row in rows]
    return matrix
