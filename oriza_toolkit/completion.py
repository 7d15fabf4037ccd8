"""Tab completion of schema, table and column names (and ``:variables``) in SQL.

The catalog (every table and view, with its columns) is read once per Database, on the
toolkit's loop, in the background: a keystroke waits for it at most
:data:`WAIT_SECONDS`, then completes with what is known (the next Tab has the rest).
:func:`forget` drops it after DDL and migrations. :func:`suggest` decides what fits where
the cursor is: tables after ``from``/``join``/``into``/``update``/``table``, columns of
the statement's tables elsewhere (``alias.`` for one table's), notebook variables after
``:``. The magics register it with IPython's completer (``magics/__init__.py``), so it
works wherever IPython completes: JupyterLab, Notebook, VS Code, the terminal.

Example::

    suggest("select * from fl", "fl", {"flights": ["dep_delay"]}, [])   # ['flights']
"""

from __future__ import annotations

import concurrent.futures
import re
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.engine.reflection import ObjectKind

from . import _loop, queries

if TYPE_CHECKING:
    from .database import Database

__all__ = ["WAIT_SECONDS", "catalog", "forget", "suggest"]

# How long a keystroke waits for a catalog still being read.
WAIT_SECONDS = 0.05
# Words after which a table name comes.
_TABLE_BEFORE = {"from", "join", "into", "update", "table", "describe"}
_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast"}
_TABLE_REFERENCE = re.compile(r"\b(?:from|join|update|into)\s+((?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+))?)"
                              r"(?:\s+(?:as\s+)?(?!(?:where|join|on|group|order|limit|left|right|inner|outer|full|"
                              r"cross|natural|using|set|values|select|union|having|window)\b)([A-Za-z_]\w*))?",
                              re.IGNORECASE)
_catalogs: weakref.WeakKeyDictionary[Database, concurrent.futures.Future[dict[str, list[str]]]] = (
    weakref.WeakKeyDictionary())


def catalog(db: Database) -> dict[str, list[str]]:
    """``{"table" or "schema.table": [columns]}`` of ``db`` (schemas other than the
    default one qualified), or what is known within :data:`WAIT_SECONDS` ({} at first)."""
    future = _catalogs.get(db)
    if future is None or (future.done() and future.exception() is not None):
        future = _catalogs[db] = _loop.submit(_read(db))
    try:
        return future.result(timeout=WAIT_SECONDS)
    except (concurrent.futures.TimeoutError, Exception):
        return {}


def forget(db: Database) -> None:
    """Read ``db``'s catalog again at the next completion (after DDL, a migration)."""
    _catalogs.pop(db, None)


async def _read(db: Database) -> dict[str, list[str]]:
    async with queries.connection(db.engine, db.backend) as conn:
        return await conn.run_sync(_tables_and_columns)


def _tables_and_columns(sync: Connection) -> dict[str, list[str]]:
    inspector = inspect(sync)
    default = inspector.default_schema_name
    found: dict[str, list[str]] = {}
    for schema in inspector.get_schema_names():
        if schema in _SYSTEM_SCHEMAS or schema.startswith("pg_temp") or schema.startswith("pg_toast"):
            continue
        columns = inspector.get_multi_columns(schema=schema, kind=ObjectKind.ANY)
        for (_, table), described in columns.items():
            name = table if schema == default else f"{schema}.{table}"
            found[name] = [column["name"] for column in described]
    return found


def suggest(before: str, token: str, tables: Mapping[str, list[str]], variables: Iterable[str],
            statement: str | None = None) -> list[str]:
    """Completions of ``token`` (the word being typed, just before the cursor) given the
    SQL ``before`` the cursor and the whole ``statement`` (its tables name the columns).

    Example::

        >>> suggest("select f.", "f.", {"flights": ["origin", "dest"]}, [], "select f. from flights f")
        ['f.dest', 'f.origin']
    """
    head = before[: len(before) - len(token)]
    if head.endswith(":") and not head.endswith("::"):
        return sorted(name for name in variables if name.startswith(token) and name.isidentifier())
    words = re.findall(r"[\w$]+|[^\s\w]", head.lower())
    previous = words[-1] if words else ""
    if previous in _TABLE_BEFORE:
        return sorted(name for name in tables if name.lower().startswith(token.lower()))
    referenced = _references(statement if statement is not None else before)
    if "." in token:
        qualifier, _, part = token.rpartition(".")
        table = referenced.get(qualifier.lower(), qualifier)
        columns = _columns_of(tables, table)
        if columns is not None:
            return sorted(f"{qualifier}.{c}" for c in columns if c.lower().startswith(part.lower()))
        return sorted(name for name in tables if name.lower().startswith(token.lower()))  # schema.table
    names = {c for table in set(referenced.values()) for c in (_columns_of(tables, table) or [])}
    if not names:
        names = set(tables)
    return sorted(name for name in names if name.lower().startswith(token.lower()))


def _references(sql: str) -> dict[str, str]:
    """The statement's tables by the name or alias that refers to them (lower-cased)."""
    found: dict[str, str] = {}
    for table, alias in _TABLE_REFERENCE.findall(sql):
        name = table.replace('"', "")
        found[name.lower()] = name
        found[name.rpartition(".")[2].lower()] = name
        if alias:
            found[alias.lower()] = name
    return found


def _columns_of(tables: Mapping[str, list[str]], table: str) -> list[str] | None:
    for name, columns in tables.items():
        if name.lower() == table.lower():
            return columns
    return None

