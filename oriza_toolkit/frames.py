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
json, jsonb        ``object`` (dict, list, ...)        parsed with ``json.loads``
bytea              ``object`` (``bytes``)
arrays, composite  ``object`` (list / dict)            via ``to_json``: elements are JSON
types, records                                         values (numbers, strings, ...)
enum               ``category`` (ordered)              categories in the enum's order
=================  ==================================  ==================================

On SQLite (the embedded default) a column's dtype follows its values: integers
``Int64``, reals ``float64``, text ``str``, blobs ``object`` (``bytes``); a typed Core
statement's booleans, dates, datetimes and decimals come back as ``boolean``,
``datetime64[s]``, ``datetime64[us]`` and ``object`` (``Decimal``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Protocol, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Column", "frame_from_rows", "frame_from_table"]

_INTEGERS: dict[str, pd.api.extensions.ExtensionDtype] = {
    "int2": pd.Int16Dtype(),
    "int4": pd.Int32Dtype(),
    "int8": pd.Int64Dtype(),
    "oid": pd.Int64Dtype(),
}
_JSON_VALUES = {"json", "jsonb", "record", "array", "composite"}


class Column(Protocol):
    """A result column as a backend describes it."""

    @property
    def name(self) -> str: ...

    @property
    def type_name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def enum_labels(self) -> tuple[str, ...] | None: ...


def frame_from_table(table: pa.Table, columns: Sequence[Column]) -> pd.DataFrame:
    """A DataFrame with the documented dtypes from a backend's arrow table (one column per ``columns``)."""
    frame = pd.DataFrame(
        {i: _to_series(table.column(i), col) for i, col in enumerate(columns)},
        copy=False,
    )
    frame.columns = pd.Index([col.name for col in columns], dtype=object)
    return frame


def _to_series(array: pa.ChunkedArray, col: Column) -> pd.Series:
    return cast(pd.Series, _convert(array, col))  # pyarrow is untyped


def _convert(array: pa.ChunkedArray, col: Column) -> Any:
    if col.kind in _JSON_VALUES or col.type_name in _JSON_VALUES:
        return _map_values(array, json.loads)
    if col.type_name in _INTEGERS:
        return array.to_pandas(types_mapper={array.type: _INTEGERS[col.type_name]}.get)
    if col.type_name == "bool":
        return array.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
    if col.type_name == "numeric":
        return _decimal_series(array)
    if col.type_name == "date":
        return array.to_pandas(date_as_object=False).astype("datetime64[s]")
    if col.type_name == "interval":
        micros = array.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        return pd.to_timedelta(micros, unit="us").astype("timedelta64[us]")
    if col.type_name == "bytea":
        return _map_values(array, lambda text: bytes.fromhex(text[2:]))
    if col.enum_labels is not None:
        categories = pd.CategoricalDtype(list(col.enum_labels), ordered=True)
        return array.to_pandas().astype(categories)
    return array.to_pandas()


def _map_values(array: pa.ChunkedArray, convert: Callable[[str], Any]) -> pd.Series:
    values = [None if text is None else convert(text) for text in array.to_pylist()]
    return pd.Series(values, dtype=object)


def _decimal_series(array: pa.ChunkedArray) -> pd.Series:
    """Exact decimals: a pyarrow decimal wide enough for every value, else Decimal objects."""
    text = pc.utf8_ltrim(array, "-")
    special = pc.any(pc.match_substring_regex(text, "^[A-Za-z]")).as_py()
    if not special:
        dot = pc.find_substring(text, ".")
        length = pc.utf8_length(text)
        has_dot = pc.greater_equal(dot, 0)
        scale = pc.max(pc.if_else(has_dot, pc.subtract(pc.subtract(length, dot), 1), 0)).as_py() or 0
        digits = pc.max(pc.if_else(has_dot, dot, length)).as_py() or 1
        precision = max(digits + scale, 1)
        if precision <= 76:
            decimal_type = (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
            return cast(pd.Series, pc.cast(array, decimal_type).to_pandas(types_mapper=pd.ArrowDtype))
    return _map_values(array, Decimal)


def frame_from_rows(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> pd.DataFrame:
    """A DataFrame from driver rows (SQLite and other non-asyncpg drivers).

    Each column's dtype follows its values, with nullable integers and booleans.
    """
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    frame = pd.DataFrame({i: _infer_series(values) for i, values in enumerate(columns)}, copy=False)
    frame.columns = pd.Index(list(names), dtype=object)
    return frame


def _infer_series(values: Sequence[Any]) -> pd.Series:
    if pd.api.types.infer_dtype(values, skipna=True) == "date":
        return pd.Series(pd.to_datetime(list(values))).astype("datetime64[s]")  # as on PostgreSQL
    array = pd.array(list(values))
    if isinstance(array.dtype, pd.Float64Dtype):
        return pd.Series(array.to_numpy(dtype="float64", na_value=float("nan")))
    if isinstance(array.dtype, pd.StringDtype):
        return pd.Series(array, dtype="str")
    if isinstance(array, pd.arrays.NumpyExtensionArray):
        return pd.Series(array.to_numpy(), dtype=array.to_numpy().dtype)
    return pd.Series(array)
