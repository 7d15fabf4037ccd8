"""A read in one network flight: the describe and the COPY sent back to back.

A read first needs the server's description of its statement (the columns' types say
how to parse the COPY and which columns the server converts first; the parameters'
types say how to write their values). A statement described once is remembered here,
per backend (so per server), by its text and its values' Python types: the next read of
it sends the describe (Parse/Describe/Sync, unnamed) and the COPY built from what was
remembered together, without waiting between them.

What makes that safe:

- The COPY carries a check (:func:`pgread.guarded_copy_query`) that fails as the server
  analyses the query, before anything runs, unless the statement still has as many
  columns, each of a type that converts implicitly to the one remembered. Such a
  failure, or a failed describe, means nothing ran: the read starts over the usual
  way, and the statement runs once.
- The describe arrives before the COPY's data, and the data is parsed by what it says
  (a column renamed or widened since is read as it is now). Only where the COPY sent
  no longer fits (a parameter given a number is text now, so the usual way would write
  the number otherwise), which the check cannot see, does the read fail in one line,
  once. (Columns the server converts first, intervals, arrays and composites, are each
  a type category of their own, and the check admits no change of category.)
- Values are written as untyped literals (``'42'``): the server types each where it
  stands, as it typed the parameter, so a parameter whose type changed since is read as
  the new type, exactly as the usual way would.
- Reads of rows only (SELECT, VALUES, TABLE, WITH without data-modifying parts) outside
  a transaction; columns of the server's own types (enums need their labels looked up).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import _sql
from ..errors import QueryError
from .asyncpg_private import Described
from .pgread import PgColumn, guarded_copy_query

__all__ = ["Flight", "Shapes", "value_text"]

# Statements described and remembered per backend.
REMEMBERED = 512
_READS = {"select", "with", "values", "table", "("}
_WRITES = {"insert", "update", "delete", "merge", "into"}
# Server types whose literal is written directly from a Python number.
NUMBER_TYPES = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8", "oid"})


def value_text(type_name: str, value: Any) -> str | None:
    """A parameter value's input text for a parameter of type ``type_name``, where it can
    be written without the server (numbers, strings, JSON values); None otherwise."""
    if type_name in NUMBER_TYPES and isinstance(value, (int, float)) and not isinstance(value, bool):
        return number_text(value)
    if isinstance(value, str):  # as psycopg does: a string is the value's input text
        return value
    if type_name in ("json", "jsonb"):  # dicts, lists, numbers: their JSON text
        return json.dumps(value)
    return None


def number_text(value: float) -> str:
    """A Python number as PostgreSQL input text: shortest exact digits (no dependence on
    the session's extra_float_digits)."""
    if isinstance(value, int):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


@dataclass
class Shape:
    """A statement as the server last described it."""

    statement: str  # with $1, $2, ... and the casts its values needed
    casts: dict[int, str]  # parameter index -> "::type" written after its value
    parameters: tuple[str, ...]  # each parameter's type name
    columns: tuple[PgColumn, ...]
    oids: tuple[int, ...]  # each column's type
    types: tuple[str, ...]  # ... as SQL
    parameter_oids: tuple[int, ...]
    flight: Flight | None = None  # a statement without parameters: its flight, made once


@dataclass(frozen=True)
class Flight:
    """What one flight sends, and how to read what comes back."""

    key: tuple[Any, ...]
    shape: Shape
    parsed: _sql.ParsedSQL
    text: str  # the COPY's query
    prefix: int  # characters before the statement in the text the server sees
    check: int  # ... and before the check after it
    original: Callable[[int], int]


# PostgreSQL's own types (their OIDs never change), as asyncpg names them; others are
# learnt from the describes a backend makes.
_BUILTIN_TYPES = {
    16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4", 25: "text", 26: "oid",
    114: "json", 142: "xml", 700: "float4", 701: "float8", 790: "money", 869: "inet", 1042: "bpchar",
    1043: "varchar", 1082: "date", 1083: "time", 1114: "timestamp", 1184: "timestamptz", 1186: "interval",
    1266: "timetz", 1700: "numeric", 2950: "uuid", 3802: "jsonb",
}
_BUILTIN_ARRAYS = {1000: "bool", 1005: "int2", 1007: "int4", 1009: "text", 1015: "varchar", 1016: "int8",
                   1021: "float4", 1022: "float8", 1182: "date", 1115: "timestamp", 1185: "timestamptz",
                   1231: "numeric", 2951: "uuid", 199: "json", 3807: "jsonb"}


class Shapes:
    """The statements a backend has described, the most recently read kept."""

    def __init__(self) -> None:
        self._shapes: OrderedDict[tuple[Any, ...], Shape] = OrderedDict()
        # oid -> (name, kind) of pg_catalog types
        self._types = {oid: (name, "scalar") for oid, name in _BUILTIN_TYPES.items()}
        self._types.update({oid: (f"{name}[]", "array") for oid, name in _BUILTIN_ARRAYS.items()})

    def learn(self, parsed: _sql.ParsedSQL, args: Sequence[Any], statement: str, casts: dict[int, str],
              parameters: Sequence[Any], attributes: Sequence[Any], columns: Sequence[PgColumn]) -> None:
        """Remember a statement just described (asyncpg's types for ``parameters`` and
        ``attributes``), if a later read of it can be one flight."""
        for kind in [*parameters, *(a.type for a in attributes)]:
            if kind.schema == "pg_catalog":
                self._types[kind.oid] = (kind.name, kind.kind)
        if parsed.keyword not in _READS or _sql.words(parsed.sql) & _WRITES or "\x00" in statement:
            return
        if any(a.type.schema != "pg_catalog" or a.type.name == "record" for a in attributes):
            return
        key = (parsed.sql, *map(type, args))
        shape = Shape(statement, casts, tuple(p.name for p in parameters), tuple(columns),
                      tuple(a.type.oid for a in attributes),
                      tuple(_sql.quote_type(a.type.schema, a.type.name) for a in attributes),
                      tuple(p.oid for p in parameters))
        if not args:  # the same text each time
            shape.flight = Flight(key, shape, parsed, *guarded_copy_query(parsed.sql, columns, shape.types),
                                  lambda position: position)
        self._shapes[key] = shape
        self._shapes.move_to_end(key)
        while len(self._shapes) > REMEMBERED:
            self._shapes.popitem(last=False)

    def flight(self, parsed: _sql.ParsedSQL, keys: Sequence[str], args: Sequence[Any]) -> Flight | None:
        """The flight for this read, if its statement was described before and each value
        can be written here."""
        key = (parsed.sql, *map(type, args))
        shape = self._shapes.get(key)
        if shape is None:
            return None
        self._shapes.move_to_end(key)
        if not args:
            return shape.flight
        literals = []
        for index, (type_name, value) in enumerate(zip(shape.parameters, args, strict=True)):
            text = value_text(type_name, value) if value is not None else None
            if value is not None and text is None:
                return None
            try:
                literal = "NULL" if text is None else _sql.quote_literal(text, None)
            except ValueError:  # the usual way says what is wrong with it
                return None
            literals.append(literal + shape.casts.get(index, ""))
        by_key = dict(zip(keys, literals, strict=True))
        sql, original = parsed.render(by_key.__getitem__)
        return Flight(key, shape, parsed, *guarded_copy_query(sql, shape.columns, shape.types), original)

    def forget(self, key: tuple[Any, ...]) -> None:
        self._shapes.pop(key, None)

    def columns(self, flight: Flight, described: Described, args: Sequence[Any]) -> list[PgColumn]:
        """The columns to parse the flight's COPY by, from the describe that came with it;
        raises :class:`QueryError` where the COPY sent no longer fits the statement."""
        shape = flight.shape
        if described.error is not None:  # cannot happen: the COPY analyses the same statement
            self.forget(flight.key)
            raise QueryError("query", flight.parsed.sql, described.error.get("M", "the describe failed"))
        oids = tuple(oid for _, oid in described.columns)
        if oids == shape.oids and tuple(described.parameters) == shape.parameter_oids:
            if all(col.name == name for col, (name, _) in zip(shape.columns, described.columns, strict=True)):
                return list(shape.columns)
            return [replace(col, name=name) for col, (name, _) in zip(shape.columns, described.columns, strict=True)]
        self.forget(flight.key)
        if len(described.columns) != len(shape.columns) or len(described.parameters) != len(shape.parameters):
            raise _changed(flight)
        columns = []
        for (name, oid), before in zip(described.columns, shape.columns, strict=True):
            known = self._types.get(oid)
            column = PgColumn(name, *known) if known else None
            if column is None or column.server_expression != before.server_expression:
                raise _changed(flight)
            columns.append(column)
        for oid, was, value in zip(described.parameters, shape.parameters, args, strict=True):
            known = self._types.get(oid)
            if value is not None and (known is None or value_text(known[0], value) != value_text(was, value)):
                raise _changed(flight)
        return columns


def _changed(flight: Flight) -> QueryError:
    return QueryError("query", flight.parsed.sql, "a table it reads changed since it was last read (a column or "
                      "parameter is of another type now); nothing was returned: run it again")
