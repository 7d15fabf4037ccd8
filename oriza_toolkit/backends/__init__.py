"""One backend per dialect, chosen once from the URL (as encode/databases does).

A backend makes the engine for its URL and answers every question whose answer depends on
the dialect (the :class:`Backend` protocol, in ``base.py``); everything dialect-free lives
above it (``queries.py``, ``writes.py``, ``partitioned.py``, ``migrations``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend, Form, TableLoaded

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["Backend", "Form", "TableLoaded", "backend_for"]


def backend_for(url: URL) -> Backend:
    """The backend for ``url``'s dialect (``config.database_url`` has already vetted it)."""
    if url.get_backend_name() == "postgresql":
        from .postgresql import PostgresBackend

        return PostgresBackend()
    from .sqlite import SQLiteBackend

    return SQLiteBackend()
