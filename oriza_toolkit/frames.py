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
numeric            ``float64``                         as pandas.read_sql and connectorx
                                                       give it (NaN, ±inf kept); with
                                                       ``settings.numeric = "decimal"``:
                                                       ``object`` (exact ``Decimal``)
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
json, jsonb        ``object`` (dict, list, ...)        parsed with orjson; integers stay
                                                       exact past 64 bits
bytea              ``object`` (``bytes``)
arrays, composite  ``object`` (list / dict)            via ``to_json``: elements are JSON
types, records                                         values (numbers, strings, ...)
enum               ``category`` (ordered)              categories in the enum's order
=================  ==================================  ==================================

On SQLite (the embedded default) a column's dtype follows its values: integers
``Int64``, reals ``float64``, text ``str``, blobs ``object`` (``bytes``); a typed Core
statement's booleans, dates, datetimes and decimals come back as ``boolean``,
``datetime64[s]``, ``datetime64[us]`` and numbers as ``numeric`` above; a column mixing
kinds of value (SQLite allows it) stays ``object``.

Arrow results (``query_arrow``, ``stream(arrow=True)``, Parquet files) keep ``numeric``
exact whatever the setting: ``decimal128(p, s)`` with p and s wide enough for every value
(``decimal256`` past 38 digits), text past 76 digits or for NaN/Infinity. Arrow's decimals
are what Parquet, DuckDB and polars compute with; pandas cannot (its arrow decimal dtype
fails on ``column * 10``, ``describe()`` and ``np.log``), hence floats in DataFrames.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal, cast

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._private import frame_from_arrays, object_matrix
from .errors import QueryError
from .settings import settings

__all__ = [
    "DECIMAL_TEXT", "JSON", "KIND", "TEXT_DTYPES", "Chunk", "Form", "Objects", "RowsAffected", "decimal_type",
    "finish_table", "frame_from_arrow", "frame_from_rows", "frame_from_texts", "from_chunks", "holds_dates",
    "joined_objects", "json_texts", "json_values", "mixed_kinds", "object_array", "object_kind", "parse_json", "rows",
    "stream_decimals",
]

# A column of Python objects (JSON values, ...), one dimension whatever the values are.
Objects = npt.NDArray[np.object_]

# What a read returns: a DataFrame, a pyarrow Table, or its parsed chunks (to be joined
# with other reads' chunks of the same columns, as a partitioned read does).
Form = Literal["frame", "arrow", "chunks"]

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


def frame_from_arrow(table: pa.Table, objects: Mapping[int, Objects] | None = None) -> pd.DataFrame:
    """A DataFrame with the documented dtypes from a backend's arrow table.

    ``objects`` holds columns (by index) whose Python values are already known, such as
    JSON a backend parsed while the result streamed in.

    Example::

        >>> frame_from_arrow(pa.table({"n": pa.array([1, None], pa.int32())})).n.dtype
        Int32Dtype()
    """
    return _frame_taking([table], objects)


def _frame_taking(holder: list[pa.Table], objects: Mapping[int, Objects] | None) -> pd.DataFrame:
    """:func:`frame_from_arrow` of the table ``holder`` holds, taking it: each column's
    arrow memory can go as soon as the column is converted (where nothing else holds it),
    so a whole read does not hold all of the table and all of the frame at once."""
    table = holder.pop()
    names = table.column_names
    known = objects or {}
    series = {}
    for i in range(len(names)):
        if i in known:
            series[i] = pd.Series(known[i], dtype=object, copy=False)
        else:
            series[i] = _to_series(table.column(0), table.schema.field(0))
        table = table.remove_column(0)
    frame = pd.DataFrame(series, copy=False)
    frame.columns = pd.Index(names, dtype=object)
    return frame


# What :func:`frame_from_texts` turns a column's text into, by server type name.
TEXT_DTYPES = {"int2": "Int16", "int4": "Int32", "int8": "Int64", "oid": "Int64", "float8": "float64",
               "numeric": "float64", "bool": "boolean"}
_NUMPY_INTEGERS = {"Int16": np.int16, "Int32": np.int32, "Int64": np.int64}
# pandas' "str" by the string storage option, looked up once per storage (by name it costs
# a small result's column ~15 us each time).
_STR_DTYPES: dict[str, Any] = {}


def _str_dtype() -> Any:
    storage = pd.get_option("mode.string_storage")
    dtype = _STR_DTYPES.get(storage)
    if dtype is None:
        dtype = _STR_DTYPES[storage] = pd.array([], dtype="str").dtype
    return dtype



def frame_from_texts(names: Sequence[str], dtypes: Sequence[str], columns: Sequence[Sequence[str | None]]
                     ) -> pd.DataFrame:
    """A small result's DataFrame straight from its values' text (None for NULL), each
    column becoming ``dtypes``' entry (from :data:`TEXT_DTYPES`, or ``"str"``): the dtypes
    and values :func:`frame_from_arrow` gives the same result, without arrow.

    Example::

        >>> frame_from_texts(["n", "s"], ["Int32", "str"], [["1", None], ["a", "b"]]).dtypes.tolist()
        [Int32Dtype(), <StringDtype(na_value=nan)>]
    """
    arrays: list[Any] = []
    for dtype, texts in zip(dtypes, columns, strict=True):
        if dtype == "str":
            arrays.append(pd.array(texts, dtype=_str_dtype()))
        elif dtype == "float64":  # float() rounds correctly, as arrow's cast does; reads NaN and ±Infinity
            arrays.append(np.array([np.nan if text is None else float(text) for text in texts], dtype=np.float64))
        else:
            mask = np.array([text is None for text in texts], dtype=bool)
            if dtype == "boolean":
                arrays.append(pd.arrays.BooleanArray(np.array([text == "t" for text in texts], dtype=bool), mask))
            else:
                values = np.array([0 if text is None else int(text) for text in texts], dtype=_NUMPY_INTEGERS[dtype])
                arrays.append(pd.arrays.IntegerArray(values, mask))
    return frame_from_arrays(arrays, names, len(columns[0]) if columns else 0)


def _to_series(array: pa.ChunkedArray, field: pa.Field) -> pd.Series:
    return cast(pd.Series, _convert(array, field))  # pyarrow is untyped


def _convert(array: pa.ChunkedArray, field: pa.Field) -> Any:
    kind = (field.metadata or {}).get(KIND)
    if kind == JSON:
        return pd.Series([value for chunk in array.chunks for value in json_values(chunk)], dtype=object)
    if kind == DECIMAL_TEXT or pa.types.is_decimal(array.type):
        return _numbers(array, text=kind == DECIMAL_TEXT)
    if array.type in _NULLABLE:
        return array.to_pandas(types_mapper=_NULLABLE.get)
    if pa.types.is_date(array.type):
        return array.to_pandas(date_as_object=False).astype("datetime64[s]")
    if pa.types.is_duration(array.type):
        return array.to_pandas().astype("timedelta64[us]")
    if pa.types.is_binary(array.type):
        return pd.Series(array.to_pylist(), dtype=object)
    return array.to_pandas()


# orjson reads an integer past 64 bits as a float (older versions refused it): text
# holding 19 digits in a row (-2**63 - 1 has 19) is read by the standard library, exactly.
_LONG_DIGITS = "[0-9]{19}"
_LONG_DIGITS_RE = re.compile(_LONG_DIGITS)


def parse_json(text: str) -> Any:
    """A JSON value from its text: orjson, or the standard library where orjson would
    change a value or refuses one (integers past 64 bits, lone surrogates).

    Example::

        >>> parse_json('{"id": 123456789012345678901234567890}')
        {'id': 123456789012345678901234567890}
    """
    if _LONG_DIGITS_RE.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def json_values(array: pa.Array) -> list[Any]:
    """The values of an arrow array of JSON texts (None for NULL), as :func:`parse_json`
    reads each, read at once: the texts joined into one JSON array for orjson (a value at
    a time costs ~40% more), or one by one where the joined text holds 19 digits in a row
    or orjson refuses it.

    Example::

        >>> json_values(pa.array(['{"a": [1]}', None, "2"]))
        [{'a': [1]}, None, 2]
    """
    try:
        whole = pa.ListArray.from_arrays(pa.array([0, len(array)], pa.int32()), array.fill_null("null"))
        joined = pc.binary_join(whole, ",")
    except pa.ArrowException:  # past 2 GB joined
        joined = None
    if joined is not None and not pc.match_substring_regex(joined, _LONG_DIGITS)[0].as_py():
        try:
            return cast(list[Any], orjson.loads(b"".join((b"[", memoryview(joined[0].as_buffer()), b"]"))))
        except orjson.JSONDecodeError:
            pass
    return [None if text is None else parse_json(text) for text in array.to_pylist()]


def _numbers(array: pa.ChunkedArray, *, text: bool) -> Any:
    """A ``numeric`` column (its text, or arrow decimals) as :data:`settings.numeric` says:
    ``float64`` (the nearest double to each value; NaN and infinities kept), or exact
    ``Decimal`` objects, with which pandas' arithmetic keeps working (arrow's decimal dtype
    fails on ``column * 10`` and ``describe()``)."""
    if settings.numeric == "float":
        return pc.cast(array, pa.float64()).to_pandas()
    if text:
        return _map_values(array, Decimal)
    return pd.Series(array.to_pylist(), dtype=object)


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
    that kind typed: ``"json"`` (dicts and lists), ``"decimal"`` (Decimals, NaN and infinities too),
    ``"bool"``, ``"bytes"``, ``"datetime"``, ``"date"``, ``"time"`` or ``"str"``; None for anything else or nothing.

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
        return "decimal"
    if all(issubclass(k, (bool, np.bool_)) for k in kinds):
        return "bool"
    if all(issubclass(k, (bytes, bytearray)) for k in kinds):
        return "bytes"
    if all(issubclass(k, dt.datetime) for k in kinds):  # pandas keeps them as objects when zones differ
        return "datetime"
    single = {dt.date: "date", dt.time: "time", str: "str"}
    return single.get(next(iter(kinds))) if len(kinds) == 1 else None


def mixed_kinds(values: pd.Series) -> tuple[Any, Any] | None:
    """Two (non-null) values of ``values`` of different kinds (a number and a string, a
    date and a string, a Decimal and an int, ...), or None when they are all of one kind.
    Integers and floats are one kind (numbers); dicts and lists one (JSON); datetimes in
    any zone one.

    Example::

        >>> mixed_kinds(pd.Series([1, "a", 2]))
        (1, 'a')
    """
    first: dict[str, Any] = {}
    for value in values:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            continue
        kind = _coarse_kind(value)
        if kind not in first:
            if first:
                return next(iter(first.values())), value
            first[kind] = value
    return None


def _coarse_kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, (dict, list)):
        return "json"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, (bytes, bytearray)):
        return "bytes"
    return type(value).__name__  # str, Decimal, date, time, ...


def rows(count: int) -> str:
    """``"1 row"``, ``"12,345 rows"``. Example: ``rows(1)``."""
    return f"{count:,} row{'' if count == 1 else 's'}"


def json_texts(column: pd.Series) -> list[str | None]:
    """The JSON text of each dict or list of ``column`` (None for anything else).

    Raises ``ValueError`` (to be prefixed with the column's name) for a value JSON cannot
    represent.

    Example::

        >>> json_texts(pd.Series([{"a": 1}, None, [2]]))
        ['{"a":1}', None, '[2]']
    """
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    try:
        # decoded at once: orjson's bytes keep spare capacity, and a million of them alive is slow
        return [orjson.dumps(v, option=options).decode() if isinstance(v, (dict, list)) else None for v in column]
    except (TypeError, orjson.JSONEncodeError) as error:
        raise ValueError(f"holds a value JSON cannot represent ({error}); convert it first") from None


class RowsAffected(pd.DataFrame):
    """The result of a statement that returns no rows: an empty DataFrame that also says
    how many rows the statement touched.

    ``rowcount`` is None where the driver counts nothing (DDL); ``status`` is the server's
    command tag (``"INSERT 0 3"``) where there is one. Anything computed from it is a plain
    DataFrame.

    Example::

        >>> done = RowsAffected(3, "INSERT 0 3")
        >>> (done.rowcount, done.status, len(done))
        (3, 'INSERT 0 3', 0)
    """

    _metadata: ClassVar[list[str]] = ["rowcount", "status"]
    rowcount: int | None
    status: str | None

    def __init__(self, rowcount: int | None = None, status: str | None = None) -> None:
        super().__init__()
        self.rowcount = rowcount
        self.status = status

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        if self.rowcount is None:
            return self.status or "done"
        return f"{rows(self.rowcount)} affected"


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
    matrix = object_matrix(rows, len(names))
    arrays = []
    objects = {}
    for i in range(len(names)):
        try:
            arrays.append(pa.array(matrix[:, i], from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):  # TypeError: Decimal infinities
            values = list(matrix[:, i])
            if settings.numeric == "float" and object_kind(pd.Series(values).dropna()) == "decimal":
                arrays.append(pa.array([None if v is None else float(v) for v in values], pa.float64()))
                continue
            objects[i] = object_array(values)
            arrays.append(pa.nulls(len(rows)))
    frame = frame_from_arrow(pa.Table.from_arrays(arrays, names=[str(i) for i in range(len(names))]), objects)
    frame.columns = pd.Index(list(names), dtype=object)
    return frame


@dataclass
class Chunk:
    """One parsed batch: arrow columns in their final types (numeric still as text, sized
    once the whole result or the first chunk is known), and each JSON column's values
    already parsed, by column index."""

    batch: pa.RecordBatch
    objects: dict[int, Objects]



def finish_table(chunks: Sequence[Chunk], decimals: dict[int, pa.DataType] | None = None) -> pa.Table:
    """The chunks as one table, numeric columns as exact decimals.

    ``decimals`` fixes each numeric column's type (a stream sizes them from its first
    chunk); otherwise each gets the narrowest decimal that holds every value exactly
    (asyncpg does not report a column's declared precision), or stays text (NaN,
    Infinity, more than 76 digits).
    """
    table = pa.Table.from_batches([c.batch for c in chunks])
    for i, field in enumerate(table.schema):
        if (field.metadata or {}).get(KIND) != DECIMAL_TEXT:
            continue
        kind = decimals[i] if decimals is not None and i in decimals else decimal_type(table.column(i))
        if kind is not None:
            try:
                column = pc.cast(table.column(i), kind)
            except pa.ArrowInvalid:
                raise QueryError("query", "", f"column {field.name!r} has a value that does not fit {kind} "
                                 "(sized from the stream's first chunk); cast it in the SQL, "
                                 f"e.g. {field.name}::numeric(38, 10)") from None
            table = table.set_column(i, pa.field(field.name, kind), column)
    return table


def decimal_type(array: pa.ChunkedArray | pa.Array) -> pa.DataType | None:
    """The narrowest decimal type holding every value of a column of numeric text, or None."""
    text = pc.utf8_ltrim(array, "-")
    if pc.any(pc.match_substring_regex(text, "^[A-Za-z]")).as_py():
        return None
    dot = pc.find_substring(text, ".")
    length = pc.utf8_length(text)
    has_dot = pc.greater_equal(dot, 0)
    scale = pc.max(pc.if_else(has_dot, pc.subtract(pc.subtract(length, dot), 1), 0)).as_py() or 0
    digits = pc.max(pc.if_else(has_dot, dot, length)).as_py() or 1
    precision = max(digits + scale, 1)
    if precision > 76:
        return None
    return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)


def stream_decimals(chunk: Chunk) -> dict[int, pa.DataType]:
    """Fixed numeric types for a stream, from its first chunk: that chunk's scale, and the
    widest precision of the decimal type it needs (38 or 76 digits)."""
    fixed = {}
    for i, field in enumerate(chunk.batch.schema):
        if (field.metadata or {}).get(KIND) == DECIMAL_TEXT:
            kind = decimal_type(chunk.batch.column(i))
            if kind is not None:
                fixed[i] = pa.decimal128(38, kind.scale) if kind.precision <= 38 else pa.decimal256(76, kind.scale)
    return fixed


def object_array(values: Sequence[Any]) -> Objects:
    """``values`` as a one-dimensional object array (``np.array`` would make lists of
    equal length a second dimension).

    Example::

        >>> object_array([[1, 2], [3, 4]]).shape
        (2,)
    """
    return np.fromiter(values, dtype=object, count=len(values))


def joined_objects(chunks: Sequence[Chunk]) -> dict[int, Objects]:
    """Each object column of ``chunks``, the chunks' values joined in order."""
    return {i: np.concatenate([c.objects[i] for c in chunks]) for i in chunks[0].objects}


def from_chunks(chunks: Sequence[Chunk], form: Form, fixed: dict[int, pa.DataType] | None = None) -> Any:
    """Parsed chunks of one result as ``form``: a DataFrame, a pyarrow Table (or, with
    numeric types ``fixed``, one record batch of a stream), or the chunks themselves.

    For a DataFrame, a list of chunks is emptied: its callers hand the chunks over, and
    each column's arrow memory goes as soon as it is converted.
    """
    if form == "chunks":
        return list(chunks)
    if form == "frame":  # numeric text becomes floats or Decimals: no decimal type to size
        holder = [pa.Table.from_batches([c.batch for c in chunks])]
        objects = joined_objects(chunks)
        if isinstance(chunks, list):
            chunks.clear()
        return _frame_taking(holder, objects)
    table = finish_table(chunks, fixed)
    if fixed is None:
        return table
    batches = table.combine_chunks().to_batches()  # one chunk of a stream
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
