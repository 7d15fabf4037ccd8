"""What an ``env.py`` takes from the toolkit: its engine and autogenerate's table filter.

Example (in env.py)::

    from oriza_toolkit.migrations import async_engine, include_object
    engine = async_engine()
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from ..backends import backend_for
from ..config import database_url

__all__ = ["async_engine", "include_object"]


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate's filter: tables the models do not know (an analyst's scratch and result
    tables) are left alone, never proposed for dropping."""
    return not (type_ == "table" and reflected and compare_to is None)


def async_engine(url: str | URL | None = None) -> AsyncEngine:
    """An engine for ``env.py`` run from a shell: the toolkit's URL rules (``DATABASE_URL``,
    ``.env``, the embedded default; libpq parameters such as ``sslmode``) and no pool.

    Example (in env.py)::

        engine = async_engine()
    """
    resolved = database_url(url)
    return backend_for(resolved).make_engine(resolved, {"poolclass": NullPool})
