"""Named connections, shared by Python and the magics.

``connect("replica")`` and ``%sql -c replica`` open (once) the database whose URL is
``DATABASE_URL_REPLICA`` (environment or ``.env``); ``"default"`` is the usual resolution
(``DATABASE_URL``, ``.env``, the embedded SQLite file). ``register`` names any URL.

Example::

    import oriza_toolkit as oz
    replica = oz.connect("replica")            # the same Database every time, until closed
    oz.connections.register("scratch", "sqlite+aiosqlite:///scratch.db")
    oz.connections.names()                     # {'replica': 'postgresql+asyncpg://me:***@...', ...}
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy.engine import URL

from .config import mask_url, named_url
from .database import Database

__all__ = ["close", "get", "is_name", "names", "register"]

DEFAULT = "default"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_lock = threading.Lock()
_open: dict[str, Database] = {}


def is_name(text: object) -> bool:
    """Whether ``text`` names a connection rather than being a URL."""
    return isinstance(text, str) and bool(_NAME.match(text))


def get(name: str = DEFAULT, **engine_options: Any) -> Database:
    """The open :class:`Database` called ``name``, opened now if need be. Example: ``get("replica")``."""
    with _lock:
        db = _open.get(name)
        if db is None or db.closed:
            db = Database(None if name == DEFAULT else named_url(name), **engine_options)
            _open[name] = db
        return db


def register(name: str, url: str | URL, **engine_options: Any) -> Database:
    """Open ``url`` under ``name`` (closing what had that name). Example: ``register("scratch", url)``."""
    if not is_name(name):
        raise ValueError(f"a connection name is a word of letters, digits and _, not {name!r}")
    db = Database(url, **engine_options)
    with _lock:
        previous = _open.pop(name, None)
        _open[name] = db
    if previous is not None and previous is not db:
        previous.close()
    return db


def close(name: str) -> None:
    """Close the connection called ``name``. Example: ``close("replica")``."""
    with _lock:
        db = _open.pop(name, None)
    if db is None:
        raise KeyError(f"no open connection named {name!r}; open ones: {', '.join(_open) or 'none'}")
    db.close()


def names() -> dict[str, str]:
    """The open connections' names and URLs, passwords masked. Example: ``names()``."""
    with _lock:
        return {name: mask_url(db.url) for name, db in _open.items() if not db.closed}
