"""PostgreSQL through asyncpg: a result streamed with COPY into arrow, writes with COPY.

Reading a query, in one transaction (so transaction-mode pgbouncer keeps it on one
server connection, and no prepared statement outlives it):

1. ``BEGIN`` and ``SET LOCAL`` of the output settings the CSV parser relies on, in one
   round trip: nothing is sent at connect time that pgbouncer's default configuration
   refuses, and a user's own session settings cannot break parsing.
2. Prepare the statement (unnamed: the statement cache is off) for its column types and
   the types the server inferred for its parameters.
3. With parameters, render each value as a typed literal (``'text'::type``): the text is
   the server's own output for the value, produced by binding it at the protocol level
   (or, for ints, strings and NULL, written directly; a string is taken as the value's
   input text, as psycopg does), and
   :func:`oriza_toolkit._sql.quote_literal` is the one function that quotes it. So COPY,
   which cannot take parameters, needs no temp table, no TEMP privilege and no writable
   transaction: it runs on hot standbys and as read-only roles.
4. ``COPY (query) TO STDOUT (FORMAT csv)``, parsed by pyarrow in a worker thread while it
   streams in, typed from the description, never guessed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import queue
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from .. import _sql
from ..config import asyncpg_connect_args
from ..errors import QueryError
from ..frames import DECIMAL_TEXT, JSON, KIND, frame_from_arrow, frame_from_rows, rows_affected

__all__ = ["PgColumn", "PostgresBackend", "copy_source", "read_csv"]

NULL_MARKER = "\\N"
_BLOCK_SIZE = 8 << 20

# Startup parameters pgbouncer accepts by default (it tracks these per client).
STARTUP_SETTINGS = {"TimeZone": "UTC", "application_name": "oriza_toolkit"}
# What the CSV parser relies on, set for each read's own transaction only.
_SETTINGS = "SET LOCAL DateStyle = 'ISO'; SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'"
_BEGIN = f"BEGIN; {_SETTINGS}"
_TRANSACTION_CONTROL = {"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"}
# Statements COPY can run; anything else (EXPLAIN, SHOW, ...) is fetched row by row.
_COPYABLE = {"select", "with", "values", "table", "(", "insert", "update", "delete", "merge"}
_DML = {"insert", "update", "delete", "merge"}
# Server types written directly as text (the rest go through the server's output function).
_INTEGER_TYPES = {"int2", "int4", "int8", "numeric", "float4", "float8", "oid"}

_ARROW_INTEGERS = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "oid": pa.int64()}
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
        return _ARROW_INTEGERS.get(self.type_name) or _ARROW_TYPES.get(self.type_name, pa.string())


class PostgresBackend:
    """PostgreSQL through asyncpg (see the module docstring)."""

    name = "postgresql"

    def make_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine:
        bare, args = asyncpg_connect_args(url)
        given = dict(options.pop("connect_args", None) or {})
        settings = {**STARTUP_SETTINGS, **args.pop("server_settings", {}), **given.pop("server_settings", {})}
        # No statement state on the server beyond one transaction: transaction-mode
        # pgbouncer may give the next transaction another server connection.
        connect_args = {"statement_cache_size": 0, "prepared_statement_cache_size": 0, **args, **given,
                        "server_settings": settings}
        options.setdefault("pool_pre_ping", True)
        # The engine keeps the URL as given (shown masked); the libpq parameters that
        # SQLAlchemy would pass to asyncpg as keywords go through connect_args instead.
        engine = create_async_engine(url, connect_args=connect_args, **options)
        translated = set(url.query) - set(bare.query)

        @event.listens_for(engine.sync_engine, "do_connect")
        def _without_libpq_keywords(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            for key in translated:
                if key not in connect_args:
                    cparams.pop(key, None)

        return engine

    async def read(self, conn: AsyncConnection, sql: Any, params: Any) -> pd.DataFrame:
        statement, args, parsed_map = _positional(sql, params, conn.dialect)
        driver = await _driver(conn)
        if statement.parsed.keyword in _TRANSACTION_CONTROL:  # typed into a session: run as written
            return _affected(await driver.execute(statement.parsed.sql))
        if driver.is_in_transaction():  # the session's own transaction: it decides how it ends
            await driver.execute(_SETTINGS)
            return await _read(driver, statement, args, parsed_map)
        await driver.execute(_BEGIN)
        try:
            frame = await _read(driver, statement, args, parsed_map)
        except BaseException:
            try:
                await driver.execute("ROLLBACK")
            except Exception:
                driver.terminate()  # unusable: the pool replaces a closed connection
            raise
        await driver.execute("COMMIT")
        return frame

    def encode(self, frame: pd.DataFrame) -> bytes | None:
        return _arrow_csv(frame)

    async def write(
        self, conn: AsyncConnection, frame: pd.DataFrame, table: str, schema: str | None, encoded: Any
    ) -> None:
        driver = await _driver(conn)
        columns = [str(c) for c in frame.columns]
        if encoded is not None:
            # pyarrow quotes every string and leaves NULL unquoted and empty: COPY's CSV default.
            await driver.copy_to_table(table, source=io.BytesIO(encoded), columns=columns, schema_name=schema,
                                       format="csv")
        else:
            await driver.copy_records_to_table(table, records=_records(frame), columns=columns,
                                               schema_name=schema)


async def _driver(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    assert raw.driver_connection is not None
    return raw.driver_connection


@dataclass
class _Statement:
    parsed: _sql.ParsedSQL
    sql: str  # with $1, $2, ...
    keys: list[str]  # the parameter each $n stands for


def _positional(sql: Any, params: Any, dialect: Dialect) -> tuple[_Statement, list[Any], dict[str, str]]:
    """The statement with ``$n`` placeholders, its values in order, and each ``$n``'s name."""
    if isinstance(sql, str):
        parsed = _sql.parse(sql)
        if parsed.long_identifier:
            raise QueryError("query", sql, f"the name {parsed.long_identifier[:30] + '...'!r} is longer than "
                             f"PostgreSQL's {_sql.MAX_IDENTIFIER_BYTES}-byte limit and would be cut; "
                             "use a shorter one")
        parsed.require(params)
        text, keys, _ = parsed.positional()
        values = dict(params or {})
        return _Statement(parsed, text, keys), [values[k] for k in keys], \
            {f"${i}": f":{k}" for i, k in enumerate(keys, 1)}
    assert isinstance(sql, ClauseElement)
    compiled = cast(SQLCompiler, sql.compile(
        dialect=dialect, column_keys=list(params or ()), compile_kwargs={"render_postcompile": True}
    ))
    bound = compiled.construct_params(dict(params or {}))
    args = []
    for key in compiled.positiontup or ():
        processor = compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect) \
            if key in compiled.binds else None
        args.append(processor(bound[key]) if processor else bound[key])
    parsed = _sql.parse(str(compiled), style="numeric")
    keys = sorted(set(parsed.params), key=int)
    return _Statement(parsed, parsed.sql, keys), args, {}


async def _read(driver: Any, statement: _Statement, args: list[Any], names: dict[str, str]) -> pd.DataFrame:
    parsed = statement.parsed
    try:
        prepared = await driver.prepare(statement.sql)
        types = list(prepared.get_parameters())
        casts = _casts_from_values(types, args)
        if casts:  # the server could only guess "text" for these values: say what they are
            sql, _ = parsed.render(lambda key: f"${statement.keys.index(key) + 1}"
                                   + casts.get(statement.keys.index(key), ""))
            prepared = await driver.prepare(sql)
            types = list(prepared.get_parameters())
    except Exception as error:
        raise _located(error, statement, names) from None
    attributes = prepared.get_attributes()
    literals = await _literals(driver, types, args, names)
    if parsed.params:
        by_key = dict(zip(statement.keys, literals, strict=True))
        sql, original = parsed.render(by_key.__getitem__)
    else:
        sql, original = parsed.sql, lambda position: position
    columns: list[PgColumn] = []
    prefix = 0
    try:
        if not attributes:
            return _affected(await driver.execute(sql))
        if parsed.keyword not in _COPYABLE:  # EXPLAIN, SHOW, ...: row by row
            records = await driver.fetch(sql)
            return frame_from_rows([tuple(r) for r in records], [a.name for a in attributes])
        columns = await _describe(driver, attributes)
        source, prefix = copy_source(sql, columns, dml=parsed.keyword in _DML)
        return frame_from_arrow(typed_table(await _copy_to_arrow(driver, source, columns), columns))
    except pa.ArrowInvalid as error:
        raise QueryError("query", parsed.sql, _arrow_message(str(error), columns)) from None
    except Exception as error:
        position = getattr(error, "position", None)
        if position and hasattr(error, "sqlstate"):
            raise QueryError("query", parsed.sql, _message(error), position=original(max(int(position) - prefix, 1)),
                             sqlstate=error.sqlstate) from None
        raise


def _affected(status: str) -> pd.DataFrame:
    """:func:`rows_affected` from a command tag such as ``"INSERT 0 3"`` (DDL tags count nothing)."""
    words = status.split()
    counted = words[:1] and words[0] in ("INSERT", "UPDATE", "DELETE", "MERGE", "SELECT", "COPY", "MOVE", "FETCH")
    return rows_affected(int(words[-1]) if counted and words[-1].isdigit() else None, status)


def _casts_from_values(types: Sequence[Any], args: Sequence[Any]) -> dict[int, str]:
    """``{index: "::type"}`` for parameters the server typed as text but whose value is not a string."""
    casts = {}
    for index, (kind, value) in enumerate(zip(types, args, strict=True)):
        if kind.name in ("text", "unknown") and value is not None and not isinstance(value, str):
            name = _type_of_value(value)
            if name:
                casts[index] = f"::{name}"
    return casts


def _type_of_value(value: Any) -> str | None:
    """The PostgreSQL type a Python value naturally has."""
    simple: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "boolean"), (int, "bigint"), (float, "double precision"), (Decimal, "numeric"),
        (dt.datetime, "timestamptz" if isinstance(value, dt.datetime) and value.tzinfo else "timestamp"),
        (dt.date, "date"), (dt.time, "time"), (dt.timedelta, "interval"), ((bytes, bytearray), "bytea"),
        (uuid.UUID, "uuid"), (dict, "jsonb"),
    ]
    for kind, name in simple:
        if isinstance(value, kind):
            return name
    if isinstance(value, (list, tuple)):
        first = next((v for v in value if v is not None), "")
        element = "text" if isinstance(first, str) else _type_of_value(first)
        return f"{element}[]" if element else None
    return None


async def _literals(driver: Any, types: Sequence[Any], args: Sequence[Any], names: dict[str, str]) -> list[str]:
    """Each value as a typed SQL literal; values not written directly are bound in one
    query that casts each to text, so the server's own output function writes them."""
    if driver.get_settings().standard_conforming_strings != "on":
        raise QueryError("query", "", "standard_conforming_strings is off on this server; "
                         "oriza_toolkit needs it on to send parameter values safely")
    literals: list[str | None] = []
    pending: list[int] = []
    for index, (kind, value) in enumerate(zip(types, args, strict=True)):
        type_sql = _sql.quote_type(kind.schema, kind.name)
        if value is None:
            literals.append(f"NULL::{type_sql}")
        elif kind.name in _INTEGER_TYPES and isinstance(value, int) and not isinstance(value, bool):
            literals.append(_sql.quote_literal(str(int(value)), type_sql))
        elif isinstance(value, str):  # as psycopg does: a string is the value's input text
            literals.append(_sql.quote_literal(value, type_sql))
        elif kind.name in ("json", "jsonb"):  # dicts, lists, numbers: their JSON text
            literals.append(_sql.quote_literal(json.dumps(value), type_sql))
        else:
            literals.append(None)
            pending.append(index)
    if pending:
        select = ", ".join(f"${n}::{_sql.quote_type(types[i].schema, types[i].name)}::text"
                           for n, i in enumerate(pending, 1))
        try:
            row = await driver.fetchrow(f"SELECT {select}", *(args[i] for i in pending))
        except Exception as error:
            message = _message(error)
            for n, i in reversed(list(enumerate(pending, 1))):
                message = message.replace(f"${n}", names.get(f"${i + 1}", f"${i + 1}"))
            raise QueryError("query", "", f"invalid parameter value: {message}") from None
        for n, i in enumerate(pending):
            type_sql = _sql.quote_type(types[i].schema, types[i].name)
            literals[i] = _sql.quote_literal(row[n], type_sql)
    return [literal or "" for literal in literals]


def _located(error: BaseException, statement: _Statement, names: dict[str, str]) -> BaseException:
    """A server error at prepare time, with its position mapped back into the SQL as written."""
    position = getattr(error, "position", None)
    if not position or not hasattr(error, "sqlstate"):
        return error
    _, _, original = statement.parsed.positional()
    message = _message(error)
    for placeholder, name in sorted(names.items(), key=lambda item: -len(item[0])):
        message = message.replace(placeholder, name)
    return QueryError("query", statement.parsed.sql, message, position=original(int(position)),
                      sqlstate=error.sqlstate)


def _message(error: BaseException) -> str:
    detail = getattr(error, "message", None) or " ".join(str(error).split())
    hint = getattr(error, "hint", None)
    return f"{detail} (hint: {hint})" if hint else detail


def copy_source(sql: str, columns: Sequence[PgColumn], *, dml: bool = False) -> tuple[str, int]:
    """The query to COPY, and how many characters precede ``sql`` in it.

    ``sql`` itself, or wrapped to convert the columns that need it (positional names, so
    duplicate column names are fine). A newline ends ``sql`` so a trailing ``--`` comment
    cannot swallow what follows.
    """
    if not any(col.server_expression for col in columns):
        return sql + "\n", len("COPY (")
    names = [f"c{i}" for i in range(len(columns))]
    select = ", ".join((col.server_expression or "{}").format(name) for name, col in zip(names, columns, strict=True))
    if dml:  # INSERT ... RETURNING can only be a CTE
        head = f"WITH _oz_q({', '.join(names)}) AS ("
        return f"{head}{sql}\n) SELECT {select} FROM _oz_q", len("COPY (") + len(head)
    head = f"SELECT {select} FROM ("
    return f"{head}{sql}\n) AS _oz_q({', '.join(names)})", len("COPY (") + len(head)


async def _copy_to_arrow(driver: Any, query: str, columns: list[PgColumn]) -> pa.Table:
    """COPY ``query`` out as CSV, parsed in a worker thread while it streams in."""
    stream = CsvStream()
    parsed = asyncio.get_running_loop().run_in_executor(None, read_csv, stream, columns)
    try:
        await driver.copy_from_query(query, output=stream.feed, format="csv", null=NULL_MARKER)
    except BaseException:
        stream.end()
        parsed.cancel()
        raise
    stream.end()
    return await parsed


async def _describe(driver: Any, attributes: Sequence[Any]) -> list[PgColumn]:
    """Column descriptions, with the labels of any enum types looked up in pg_enum."""
    unknown = {a.type.oid for a in attributes if a.type.kind == "scalar" and a.type.schema != "pg_catalog"}
    labels: dict[int, tuple[str, ...]] = {}
    if unknown:
        rows = await driver.fetch(
            "SELECT enumtypid, array_agg(enumlabel::text ORDER BY enumsortorder) AS labels "
            "FROM pg_enum WHERE enumtypid = any($1::oid[]) GROUP BY enumtypid",
            list(unknown),
        )
        labels = {row["enumtypid"]: tuple(row["labels"]) for row in rows}
    return [PgColumn(a.name, a.type.name, a.type.kind, labels.get(a.type.oid)) for a in attributes]


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


# Sent as to_json(...) text (see _SERVER_EXPRESSIONS), or json already.
_JSON_VALUES = {"json", "jsonb", "record", "array", "composite"}


def typed_table(table: pa.Table, columns: Sequence[PgColumn]) -> pa.Table:
    """The parsed CSV columns turned into their final arrow types, named as the server named them.

    Intervals become durations, enums ordered dictionaries of their labels, bytea binary,
    numeric the narrowest decimal that holds every value exactly (asyncpg does not report a
    column's typmod); json, arrays and records stay text marked for parsing.
    """
    arrays = []
    fields = []
    for i, col in enumerate(columns):
        array = table.column(i)
        metadata = None
        if col.kind in _JSON_VALUES or col.type_name in _JSON_VALUES:
            metadata = {KIND: JSON}
        elif col.type_name == "interval":
            array = array.cast(pa.duration("us"))
        elif col.type_name == "numeric":
            array, exact = _decimal_array(array)
            metadata = None if exact else {KIND: DECIMAL_TEXT}
        elif col.type_name == "bytea":
            array = pa.chunked_array([pa.array([None if v is None else bytes.fromhex(v[2:]) for v in array.to_pylist()],
                                               pa.binary())])
        elif col.enum_labels is not None:
            labels = pa.array(col.enum_labels, pa.string())
            indices = pc.index_in(array, value_set=labels).cast(pa.int32())
            array = pa.chunked_array([pa.DictionaryArray.from_arrays(chunk, labels, ordered=True)
                                      for chunk in indices.chunks], pa.dictionary(pa.int32(), pa.string(), True))
        arrays.append(array)
        fields.append(pa.field(col.name, array.type, metadata=metadata))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _decimal_array(array: pa.ChunkedArray) -> tuple[pa.ChunkedArray, bool]:
    """Exact decimals: a decimal type wide enough for every value, else the text (NaN, > 76 digits)."""
    text = pc.utf8_ltrim(array, "-")
    if pc.any(pc.match_substring_regex(text, "^[A-Za-z]")).as_py():
        return array, False
    dot = pc.find_substring(text, ".")
    length = pc.utf8_length(text)
    has_dot = pc.greater_equal(dot, 0)
    scale = pc.max(pc.if_else(has_dot, pc.subtract(pc.subtract(length, dot), 1), 0)).as_py() or 0
    digits = pc.max(pc.if_else(has_dot, dot, length)).as_py() or 1
    precision = max(digits + scale, 1)
    if precision > 76:
        return array, False
    return pc.cast(array, (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)), True


def _arrow_message(message: str, columns: Sequence[PgColumn]) -> str:
    """pyarrow's "In CSV column #3: ... invalid value 'infinity'" in the user's terms."""
    found = re.search(r"column #(\d+).*?invalid value '([^']*)'", message)
    if not found:
        return message
    column = columns[int(found.group(1))]
    return (f"column {column.name!r} holds {found.group(2)!r}, which has no {column.type_name} equivalent "
            "in a DataFrame; cast or filter it in the SQL")


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
