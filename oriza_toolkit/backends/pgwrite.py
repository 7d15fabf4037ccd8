"""A DataFrame as PostgreSQL's binary COPY format, encoded from arrow by pgpq.

Binary COPY carries each value in its column type's own wire format, so nothing is
formatted as text and parsed back: timestamps, decimals and JSON arrive exactly. The
frame becomes arrow first (Decimals as exact decimals, dicts and lists as JSON text,
categories as text); the types the rows are encoded for are the types the toolkit
creates the table with (see ``writes.py``). Appending to a table whose columns differ
(``integer`` for an int64 column, ``numeric(12, 2)``, ...) casts the arrow columns to the
table's types first, where arrow can do so exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import pgpq
import pyarrow as pa
from pgpq.encoders import StringEncoderBuilder
from pgpq.schema import Jsonb

from .. import _sql
from ..frames import holds_dates, json_texts, object_kind

__all__ = ["BinaryRows", "column_types_sql", "encode", "for_table", "payload"]

# Rows per batch handed to the encoder: the server reads one while the next is encoded.
BATCH_ROWS = 65_536

# What each supported column type reads in binary, as arrow (by the server's type name).
_ARROW_FOR: dict[str, pa.DataType] = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "character varying": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time without time zone": pa.time64("us"),
    "timestamp without time zone": pa.timestamp("us"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "interval": pa.duration("us"),
}


@dataclass
class BinaryRows:
    """A frame's rows as arrow, and which text columns go to ``jsonb``."""

    table: pa.Table
    jsonb: frozenset[str]

    def server_types(self) -> list[str | None]:
        """The column types the rows are encoded for (the server's names)."""
        return [_server_type(field, field.name in self.jsonb) for field in self.table.schema]


def encode(frame: pd.DataFrame) -> BinaryRows | None:
    """``frame`` as arrow rows ready for binary COPY, or None if a column has no exact
    binary encoding.

    Raises ``ValueError`` naming the column for dicts or lists JSON cannot represent.
    """
    arrays = {}
    jsonb = set()
    for name, column in frame.items():
        try:
            values, is_json = _arrow_column(column)
        except ValueError as error:
            raise ValueError(f"column {name!r} {error}") from None
        if values is None:
            return None
        arrays[str(name)] = values
        if is_json:
            jsonb.add(str(name))
    try:
        rows = BinaryRows(pa.table(arrays), frozenset(jsonb))
        if None in rows.server_types():
            return None
        _encoder(rows)  # fails now, before any transaction, for a type pgpq cannot encode
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return None
    return rows


def for_table(rows: BinaryRows, columns: Mapping[str, str]) -> BinaryRows | None:
    """``rows`` for a table whose columns have the server types ``columns`` (name to type):
    as they are if those match, else cast to the table's types; None where arrow has no
    exact cast."""
    wanted = [columns.get(field.name) for field in rows.table.schema]
    if wanted == rows.server_types():
        return rows
    arrays = []
    for field, kind in zip(rows.table.schema, wanted, strict=True):
        column = rows.table.column(field.name)
        target = column.type if kind == "numeric" and pa.types.is_decimal(column.type) else _target_type(kind)
        if target is None:
            return None
        try:
            arrays.append(column if column.type == target else column.cast(target))  # safe casts only
        except (pa.ArrowException, ValueError):
            return None
    cast = BinaryRows(pa.table(arrays, names=rows.table.column_names),
                      frozenset(name for name, kind in zip(rows.table.column_names, wanted, strict=True)
                                if kind == "jsonb"))
    try:
        _encoder(cast)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return None
    return cast


async def payload(rows: BinaryRows) -> AsyncIterator[bytes]:
    """The binary COPY stream of ``rows``, each batch encoded in a worker thread while the
    server reads the one before."""
    encoder = _encoder(rows)
    yield encoder.write_header()
    for batch in rows.table.to_batches(max_chunksize=BATCH_ROWS):
        yield await asyncio.to_thread(encoder.write_batch, batch)
    yield encoder.finish()


def _target_type(kind: str | None) -> pa.DataType | None:
    if kind is None:
        return None
    if kind.startswith("numeric"):
        precision, _, scale = kind.removeprefix("numeric(").removesuffix(")").partition(",")
        if kind == "numeric" or not scale:
            return None  # unconstrained: keep the frame's own scale (handled when types match)
        return pa.decimal128(int(precision), int(scale))
    if kind.startswith(("character", "text")):  # char(n) and varchar(n) take text's binary form
        return pa.string()
    return _ARROW_FOR.get(kind)


def _encoder(rows: BinaryRows) -> Any:
    encoders = {field.name: pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(field) for field in rows.table.schema}
    for name in rows.jsonb:
        encoders[name] = StringEncoderBuilder.new_with_output(rows.table.schema.field(name), Jsonb())
    return pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(rows.table.schema, encoders)


# Arrow types of the object kinds (frames.object_kind) written typed; decimals' are inferred.
_OBJECT_ARROW: dict[str | None, pa.DataType | None] = {
    "decimal": None, "bool": pa.bool_(), "bytes": pa.binary(), "date": pa.date32(), "time": pa.time64("us"),
    "str": pa.string(),
}


def _arrow_column(column: pd.Series) -> tuple[pa.ChunkedArray | pa.Array | None, bool]:
    """One column as arrow in the type the toolkit writes it as, and whether it is JSON."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return pa.array(column.astype(object).where(column.notna(), None), pa.string()), False
    if pd.api.types.is_timedelta64_dtype(dtype):
        return pa.array(column.astype("timedelta64[us]"), pa.duration("us")), False
    if holds_dates(column):
        return pa.array(column, pa.timestamp("s")).cast(pa.date32()), False
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = getattr(dtype, "tz", None)
        converted = column.dt.tz_convert("UTC") if tz is not None else column
        return pa.array(converted.astype("datetime64[us, UTC]" if tz is not None else "datetime64[us]"),
                        pa.timestamp("us", tz="UTC" if tz is not None else None)), False
    if not pd.api.types.is_object_dtype(dtype):
        return pa.Array.from_pandas(column), False
    values = column.dropna()
    if not len(values):
        return pa.array([None] * len(column), pa.string()), False
    kind = object_kind(values)
    if kind == "json":
        return pa.array(json_texts(column), pa.string()), True
    if kind not in _OBJECT_ARROW or (kind == "time" and any(v.tzinfo for v in values)):  # time has no zone
        return None, False
    if kind == "decimal" and not all(v.is_finite() for v in column if isinstance(v, Decimal)):
        return None, False  # arrow's decimals hold no NaN (pandas counts it missing) and no infinity
    cast = bytes if kind == "bytes" else lambda v: v  # bytearray too
    present = column.notna().tolist()
    return pa.array([cast(v) if ok else None for v, ok in zip(column, present, strict=True)],
                    _OBJECT_ARROW[kind]), False


def _server_type(field: pa.Field, is_json: bool) -> str | None:
    """The column type the toolkit creates for ``field`` (None: not written in binary)."""
    kind = field.type
    if is_json:
        return "jsonb"
    if pa.types.is_decimal(kind):
        return "numeric"
    if pa.types.is_int8(kind):
        return "smallint"
    if pa.types.is_timestamp(kind):
        return "timestamp with time zone" if kind.tz else "timestamp without time zone"
    if pa.types.is_time(kind):
        return "time without time zone"
    if pa.types.is_duration(kind):
        return "interval"
    if pa.types.is_large_string(kind) or pa.types.is_string(kind):
        return "text"
    found = [name for name, arrow in _ARROW_FOR.items() if arrow == kind and name not in ("character varying",
                                                                                      "json", "jsonb")]
    return found[0] if found else None


def column_types_sql(table: str, schema: str | None) -> tuple[str, str]:
    """A query for each column's type as the server names it (numeric with its precision),
    and its one argument."""
    name = _sql.quote_identifier(table)
    return ("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
            f"{_sql.quote_identifier(schema)}.{name}" if schema else name)
