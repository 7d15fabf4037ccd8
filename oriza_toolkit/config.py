"""Where the database URL comes from, and how a URL is shown.

In order: an explicit argument, the ``DATABASE_URL`` environment variable, a ``.env``
file found by walking up from the working directory, else the embedded default: a
SQLite file (``oriza.db``) in the project root, the nearest directory above the working
directory that holds ``alembic.ini`` (the working directory itself if none does).
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values, find_dotenv
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError

__all__ = ["DEFAULT_DATABASE_FILE", "database_url", "mask_url", "project_root"]

DEFAULT_DATABASE_FILE = "oriza.db"

# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg; the toolkit's fast path is asyncpg.
_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``alembic.ini``."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "alembic.ini").is_file():
            return directory
    return here


def database_url(url: str | URL | None = None) -> URL:
    """Resolve the database URL and normalise its driver to an async one.

    Example::

        >>> database_url("postgres://me:secret@db/analysis").render_as_string()
        'postgresql+asyncpg://me:***@db/analysis'
    """
    if url is None:
        url = os.environ.get("DATABASE_URL") or _dotenv_url()
    if url is None or url == "":
        path = project_root() / DEFAULT_DATABASE_FILE
        return URL.create("sqlite+aiosqlite", database=str(path))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("cannot parse the database URL; expected e.g. "
                          "postgresql://user:password@host:5432/dbname") from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def mask_url(url: str | URL) -> str:
    """``url`` as text with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _dotenv_url() -> str | None:
    path = find_dotenv(usecwd=True)
    if not path:
        return None
    return dotenv_values(path).get("DATABASE_URL")
