"""Turning query results into DataFrames, with the documented dtype of every column.

PostgreSQL results arrive as ``COPY ... TO STDOUT (FORMAT csv)``: the server writes
text, pyarrow's multithreaded CSV reader parses it straight into typed columns, and
the column types come from the prepared statement's description, never from guessing.
Only types with no columnar equivalent (json, bytea, arrays, ...) become Python objects.

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

import io
import json
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

__all__ = ["CsvStream", "PgColumn", "copy_source", "frame_from_rows", "frame_from_table", "read_csv"]

NULL_MARKER = "\\N"
_BLOCK_SIZE = 8 << 20

_INTEGERS: dict[str, tuple[pa.DataType, pd.api.extensions.ExtensionDtype]] = {
    "int2": (pa.int16(), pd.Int16Dtype()),
    "int4": (pa.int32(), pd.Int32Dtype()),
    "int8": (pa.int64(), pd.Int64Dtype()),
    "oid": (pa.int64(), pd.Int64Dtype()),
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "interval": pa.int64(),
}
# Types the server converts before COPY; "{}" is the column.
_SERVER_EXPRESSIONS = {
    "interval": "(extract(epoch from {}) * 1000000)::int8",
    "array": "to_json({})",
    "composite": "to_json({})",
    "record": "to_json({})",
}
_JSON_VALUES = {"json", "jsonb", "record", "array", "composite"}


@dataclass(frozen=True)
class PgColumn:
    """One result column as the server described it."""

    name: str
    type_name: str
    kind: str = "scalar"
    enum_labels: tuple[str, ...] | None = None

    @property
    def server_expression(self) -> str | None:
        return _SERVER_EXPRESSIONS.get(self.kind if self.kind != "scalar" else self.type_name)

    @property
    def arrow_type(self) -> pa.DataType:
        if self.kind != "scalar":
            return pa.string()
        if self.type_name in _INTEGERS:
            return _INTEGERS[self.type_name][0]
        return _ARROW_TYPES.get(self.type_name, pa.string())


def copy_source(sql: str, columns: Sequence[PgColumn], *, relation: bool = False) -> str:
    """The query to COPY: ``sql`` itself, or wrapped to convert the columns that need it.

    ``relation`` says ``sql`` names a table (whose columns are c0, c1, ...) rather
    than a query. Columns are renamed positionally, so duplicate names are fine.
    """
    if not relation and not any(col.server_expression for col in columns):
        return sql
    names = [f"c{i}" for i in range(len(columns))]
    select = ", ".join((col.server_expression or "{}").format(name) for name, col in zip(names, columns, strict=True))
    source = sql if relation else f"({sql}) AS _oz_q({', '.join(names)})"
    return f"SELECT {select} FROM {source}"


class CsvStream(io.RawIOBase):
    """Bytes fed by COPY on the event loop, read by pyarrow's CSV reader in a worker thread.

    Parsing then overlaps with the transfer instead of waiting for all of it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._pending = memoryview(b"")
        self._ended = False
        self.received = 0

    def readable(self) -> bool:
        return True

    async def feed(self, data: bytes) -> None:
        """COPY's sink: queue one chunk."""
        self.received += len(data)
        self._chunks.put(data)

    def end(self) -> None:
        """No more data (also on failure or cancellation, so the reader thread stops)."""
        self._chunks.put(None)

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._ended:
            chunk = self._chunks.get()
            if chunk is None:
                self._ended = True
            else:
                self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def read_csv(stream: CsvStream, columns: Sequence[PgColumn]) -> pa.Table:
    """Parse the CSV output of a PostgreSQL COPY into an arrow table typed by ``columns``."""
    keys = [str(i) for i in range(len(columns))]
    types = {key: col.arrow_type for key, col in zip(keys, columns, strict=True)}
    try:
        reader = pcsv.open_csv(
            io.BufferedReader(stream, _BLOCK_SIZE),
            read_options=pcsv.ReadOptions(column_names=keys, block_size=_BLOCK_SIZE),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=[NULL_MARKER],
                true_values=["t"],
                false_values=["f"],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                timestamp_parsers=[pcsv.ISO8601],
            ),
        )
        return reader.read_all()
    except pa.ArrowInvalid:
        if stream.received:
            raise
        return pa.table({key: pa.array([], type=t) for key, t in types.items()})


def frame_from_table(table: pa.Table, columns: Sequence[PgColumn]) -> pd.DataFrame:
    """A DataFrame with the documented dtypes from the table :func:`read_csv` parsed."""
    frame = pd.DataFrame(
        {i: _to_series(table.column(i), col) for i, col in enumerate(columns)},
        copy=False,
    )
    frame.columns = pd.Index([col.name for col in columns], dtype=object)
    return frame


def _to_series(array: pa.ChunkedArray, col: PgColumn) -> pd.Series:
    return cast(pd.Series, _convert(array, col))  # pyarrow is untyped


def _convert(array: pa.ChunkedArray, col: PgColumn) -> Any:
    if col.kind in _JSON_VALUES or col.type_name in _JSON_VALUES:
        return _map_values(array, json.loads)
    if col.type_name in _INTEGERS:
        return array.to_pandas(types_mapper={array.type: _INTEGERS[col.type_name][1]}.get)
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
