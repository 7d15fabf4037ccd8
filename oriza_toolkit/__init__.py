"""oriza_toolkit: concurrent async SQL into pandas, and Alembic migrations, from Jupyter.

Example::

    import oriza_toolkit as oz
    db = oz.connect()                       # DATABASE_URL, .env, or the embedded SQLite file
    frames = db.query_many({"one": "select 1 as x", "two": "select 2 as x"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import connections
from .cluster import Partition
from .config import OrizaWarning, database_url, mask_url
from .connections import connect
from .database import Database
from .errors import (
    BatchError,
    ConfigError,
    DatabaseConnectionError,
    MigrationError,
    OrizaError,
    QueryError,
    QueryTimeoutError,
    SchemaDiffError,
    WriteError,
)
from .frames import RowsAffected
from .settings import settings
from .snapshot import Snapshot
from .transaction import Transaction

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__version__ = "0.1.0"


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext oriza_toolkit``: register the magics (IPython is imported only here)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext oriza_toolkit``: remove the magics (another extension's ``%sql`` stays)."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "BatchError",
    "ConfigError",
    "Database",
    "DatabaseConnectionError",
    "MigrationError",
    "OrizaError",
    "OrizaWarning",
    "Partition",
    "QueryError",
    "QueryTimeoutError",
    "RowsAffected",
    "SchemaDiffError",
    "Snapshot",
    "Transaction",
    "WriteError",
    "__version__",
    "connect",
    "connections",
    "database_url",
    "load_ipython_extension",
    "mask_url",
    "settings",
    "unload_ipython_extension",
]
