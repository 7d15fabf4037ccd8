"""Opening databases: :func:`connect`, and the registry of named connections shared by
Python and the magics.

Which call gives which ``Database``:

- ``connect()`` / ``connect(url)`` opens a **new** pool each time (``url``, else
  ``DATABASE_URL``, else ``.env``, else the embedded SQLite file); close it when done.
- ``connect("name")`` / ``get("name")`` gives the **shared** Database of that name, the
  same object every time until it is closed: ``DATABASE_URL_NAME`` from the environment or
  ``.env``, or whatever :func:`register` (``%sql --connect NAME URL``) opened under it.
  ``connect("default")`` is the shared default connection that ``%sql`` uses.
- ``replicas=["name"]`` in a partitioned read resolves names here too.

Example::

    import oriza_toolkit as oz
    db = oz.connect()                          # a new pool on the default database
    replica = oz.connect("replica")            # the shared DATABASE_URL_REPLICA connection
    oz.connections.register("scratch", "sqlite+aiosqlite:///scratch.db")
    oz.connections.names()                     # {'replica': 'postgresql+asyncpg://me:***@...', ...}
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy.engine import URL

from . import database
from .config import mask_url, named_url
from .database import Database
from .errors import ConfigError, OrizaError, raised_at_call

__all__ = ["DEFAULT", "close", "connect", "get", "is_name", "names", "register"]

DEFAULT = "default"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_lock = threading.Lock()
_open: dict[str, Database] = {}
_options: dict[str, dict[str, Any]] = {}  # the engine options each was opened with


@raised_at_call
def connect(url: str | URL | None = None, **engine_options: Any) -> Database:
    """Open a new :class:`Database`: ``url``, else ``DATABASE_URL``, else ``.env``, else embedded SQLite.

    A name instead of a URL (``connect("replica")``) is the shared connection of that name
    (see the module docstring). ``engine_options`` go to SQLAlchemy's
    ``create_async_engine`` (``pool_size``, ``echo``...).

    Example::

        >>> import oriza_toolkit as oz
        >>> oz.connect().query("select 1 as x").x.tolist()
        [1]
    """
    try:
        if isinstance(url, str) and not url.strip():
            raise ConfigError("the database URL is empty; give a URL, a connection name, or nothing for "
                              "DATABASE_URL")
        if isinstance(url, str) and "://" not in url and is_name(url):
            return get(url, **engine_options)
        return Database(url, **engine_options)
    except (OrizaError, TypeError) as error:
        del url  # a traceback's locals must not show the password
        raise error.with_traceback(None) from None


def is_name(text: object) -> bool:
    """Whether ``text`` names a connection rather than being a URL."""
    return isinstance(text, str) and bool(_NAME.match(text))


@raised_at_call
def get(name: str = DEFAULT, **engine_options: Any) -> Database:
    """The open :class:`Database` called ``name``, opened now if need be. Example: ``get("replica")``.

    ``engine_options`` apply when it is opened; asking for other options while it is open
    is an error (close it first), never silently ignored.
    """
    _check_name(name)
    with _lock:
        db = _open.get(name)
        if db is not None and not db.closed:
            if engine_options and engine_options != _options.get(name, {}):
                raise ValueError(f"connection {name!r} is open with other engine options; close it first "
                                 f"(oz.connections.close({name!r})) to open it with these")
            return db
        db = Database(None if name == DEFAULT else named_url(name), **engine_options)
        db.origin = "DATABASE_URL" if name == DEFAULT else f"DATABASE_URL_{name.upper()}"
        _open[name] = db
        _options[name] = dict(engine_options)
        return db


@raised_at_call
def register(name: str, url: str | URL, **engine_options: Any) -> Database:
    """Open ``url`` under ``name`` (closing what had that name). Example: ``register("scratch", url)``."""
    _check_name(name)
    db = Database(url, **engine_options)
    db.origin = f"the URL given for {name!r}"
    with _lock:
        previous = _open.pop(name, None)
        _open[name] = db
        _options[name] = dict(engine_options)
    if previous is not None and previous is not db:
        previous.close()
    return db


@raised_at_call
def close(name: str) -> None:
    """Close the connection called ``name``. Example: ``close("replica")``."""
    with _lock:
        db = _open.pop(name, None)
    if db is None:
        raise KeyError(f"no open connection named {name!r}; open ones: {', '.join(_open) or 'none'}")
    db.close()


def _check_name(name: object) -> None:
    if not is_name(name):
        raise ValueError(f"not a valid connection name: {name!r} (a word of letters, digits and _)")


def names() -> dict[str, str]:
    """The open connections' names and URLs, passwords masked. Example: ``names()``."""
    with _lock:
        return {name: mask_url(db.url) for name, db in _open.items() if not db.closed}


# Database resolves the names in ``replicas=`` through this registry (it cannot import
# this module, which imports it).
database.resolve_name = get
