"""Where the database URL comes from, how a pasted URL is read, and how a URL is shown.

In order: an explicit argument, the ``DATABASE_URL`` environment variable, a ``.env``
file found by walking up from the working directory, else the embedded default: a
SQLite file (``oriza.db``) in the project root, the nearest directory above the working
directory that holds ``alembic.ini`` (the working directory itself if none does).

URLs are taken as users paste them: ``postgres://`` and ``postgresql://`` (and the
``+psycopg2``/``+psycopg`` drivers) mean PostgreSQL through asyncpg; libpq's query
parameters (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``target_session_attrs``,
``connect_timeout``, ``application_name``, ``options``, ...) keep their libpq meaning;
a socket directory may be given as ``?host=/run/postgresql`` or percent-encoded as the
host; an ``@`` or ``/`` left unencoded in the password is read as part of it.
"""

from __future__ import annotations

import os
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

from dotenv import dotenv_values, find_dotenv
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError

__all__ = ["DEFAULT_DATABASE_FILE", "OrizaWarning", "asyncpg_connect_args", "database_url", "env_value",
           "mask_url", "named_url", "project_root"]

DEFAULT_DATABASE_FILE = "oriza.db"
# How long connecting may take before "the server did not answer" (libpq's connect_timeout).
DEFAULT_CONNECT_TIMEOUT = 10.0

_POSTGRES_DRIVERS = {"", "asyncpg", "psycopg2", "psycopg", "psycopg2cffi", "pg8000", "psycopg_async"}
_SQLITE_DRIVERS = {"", "aiosqlite", "pysqlite"}
# libpq URL parameters that asyncpg reads from a DSN of its own (the rest of the query,
# unknown to both, would reach asyncpg.connect as keyword arguments).
_LIBPQ_DSN_PARAMS = {
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword", "sslnegotiation",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs", "krbsrvname",
    "gsslib", "passfile", "service",
}
# Query parameters SQLAlchemy's asyncpg dialect understands itself.
_DIALECT_PARAMS = {"host", "port", "prepared_statement_cache_size"}
_warned: set[str] = set()


class OrizaWarning(UserWarning):
    """Something the toolkit did differently from what the URL or option literally said."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``alembic.ini``."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "alembic.ini").is_file():
            return directory
    return here


def database_url(url: str | URL | None = None) -> URL:
    """Resolve the database URL and normalise its driver to the toolkit's async one.

    Raises :class:`ConfigError` (never showing the password) for a URL that cannot be
    used.

    Example::

        >>> database_url("postgres://me:secret@db/analysis").render_as_string()
        'postgresql+asyncpg://me:***@db/analysis'
    """
    if url is None:
        url = env_value("DATABASE_URL")
        if not url:
            path = project_root() / DEFAULT_DATABASE_FILE
            return URL.create("sqlite+aiosqlite", database=str(path))
    elif isinstance(url, str) and not url.strip():
        raise ConfigError("the database URL is empty; give a URL, a connection name, or nothing for DATABASE_URL")
    if not isinstance(url, (str, URL)):
        raise TypeError(f"the database URL must be a string or a sqlalchemy URL, not {type(url).__name__}")
    parsed = _parse(url) if isinstance(url, str) else url
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError("the port in the database URL must be a number from 1 to 65535")
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in _POSTGRES_DRIVERS:
        if driver not in ("", "asyncpg") and driver not in _warned:
            _warned.add(driver)
            warnings.warn(f"the URL names the {driver} driver; oriza_toolkit connects to PostgreSQL with asyncpg",
                          OrizaWarning, stacklevel=3)
        return _socket_host(parsed.set(drivername="postgresql+asyncpg"))
    if backend == "sqlite" and driver in _SQLITE_DRIVERS:
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ConfigError(f"unsupported database {parsed.drivername!r} in the URL; "
                      "oriza_toolkit works with postgresql:// and sqlite:// URLs")


def named_url(name: str) -> str:
    """The URL of the connection called ``name``: ``DATABASE_URL_<NAME>`` from the
    environment, else from ``.env`` (``"default"`` is ``DATABASE_URL``'s resolution).

    Example::

        >>> os.environ["DATABASE_URL_REPLICA"] = "postgresql://me@replica/analysis"
        >>> named_url("replica")
        'postgresql://me@replica/analysis'
    """
    key = f"DATABASE_URL_{name.upper()}"
    found = env_value(key)
    if not found:
        raise ConfigError(f"no connection named {name!r}: set {key} in the environment or in .env")
    return found


def asyncpg_connect_args(url: URL) -> tuple[URL, dict[str, Any]]:
    """``url`` without the libpq parameters asyncpg takes otherwise, and those as
    ``connect_args`` for SQLAlchemy's asyncpg dialect: a DSN asyncpg reads itself, the
    connect timeout, and the rest as server settings (``application_name``, ``options``).

    Example::

        >>> asyncpg_connect_args(make_url("postgresql+asyncpg://h/d?sslmode=require"))[1]["dsn"]
        'postgresql://?sslmode=require'
    """
    query = dict(url.query)
    args: dict[str, Any] = {"timeout": DEFAULT_CONNECT_TIMEOUT}
    dsn = {key: query.pop(key) for key in list(query) if key in _LIBPQ_DSN_PARAMS}
    if "connect_timeout" in query:
        value = query.pop("connect_timeout")
        try:
            seconds = float(value if isinstance(value, str) else value[-1])
        except ValueError:
            raise ConfigError(f"connect_timeout must be a number of seconds, not {value!r}") from None
        if seconds > 0:  # libpq: 0 waits forever
            args["timeout"] = seconds
        else:
            args["timeout"] = None
    settings = {key: query.pop(key) for key in list(query) if key not in _DIALECT_PARAMS}
    if dsn:
        args["dsn"] = "postgresql://?" + urllib.parse.urlencode(dsn, doseq=True)
    if settings:
        args["server_settings"] = {key: value if isinstance(value, str) else value[-1]
                                   for key, value in settings.items()}
    return url.set(query=query), args


def mask_url(url: str | URL) -> str:
    """``url`` as text with its password replaced by ``***``.

    Example::

        >>> mask_url("postgresql://me:secret@db/analysis")
        'postgresql://me:***@db/analysis'
    """
    try:
        parsed = _parse(url) if isinstance(url, str) else url
    except ConfigError:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def describe_location(url: URL) -> str:
    """Where ``url`` points, for messages: ``host:port/db``, ``socket /dir/.s.PGSQL.5432/db`` or a file."""
    if url.get_backend_name() == "sqlite":
        return str(url.database or ":memory:")
    port = url.port or 5432
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return f"socket {socket_dir.rstrip('/')}/.s.PGSQL.{port}/{url.database}"
    return f"{url.host or 'localhost'}:{port}/{url.database}"


def _parse(text: str) -> URL:
    """``make_url`` on a URL as users paste it; errors never show the password."""
    try:
        return make_url(_encode_userinfo(text))
    except ValueError as error:
        if "port" in str(error) or "int()" in str(error):
            raise ConfigError("the port in the database URL must be a number from 1 to 65535") from None
    except (ArgumentError, TypeError):
        pass
    scheme = text.partition(":")[0] if "://" in text else ""
    hint = f" (it starts with {scheme + '://'!r})" if scheme.isidentifier() or "+" in scheme else ""
    raise ConfigError(f"cannot parse the database URL{hint}; expected e.g. "
                      "postgresql://user:password@host:5432/dbname")


def _encode_userinfo(text: str) -> str:
    """Percent-encode the user and password part, so an ``@``, ``/`` or ``:`` in a password
    stays in the password (the last ``@`` before the host ends it, as in libpq)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    head, qmark, query = rest.partition("?")
    userinfo, at, hostpart = head.rpartition("@")
    if not at:
        return text
    user, colon, password = userinfo.partition(":")
    userinfo = _encode(user) + (colon + _encode(password) if colon else "")
    return f"{scheme}://{userinfo}@{hostpart}{qmark}{query}"


def _encode(part: str) -> str:
    return urllib.parse.quote(urllib.parse.unquote(part), safe="")


def _socket_host(url: URL) -> URL:
    """libpq's percent-encoded socket directory as host (``%2Frun%2Fpostgresql``) moved to
    ``?host=``, which is where SQLAlchemy's asyncpg dialect takes it."""
    host = url.host or ""
    decoded = urllib.parse.unquote(host)
    if decoded.startswith("/"):
        return URL.create(url.drivername, url.username, url.password, None, url.port, url.database,
                          {**url.query, "host": decoded})
    return url


def env_value(key: str) -> str | None:
    """The environment variable ``key``, else its value in the ``.env`` file found by
    walking up from the working directory, else None.

    Example::

        >>> os.environ["DATABASE_URL_REPLICA"] = "postgresql://me@replica/analysis"
        >>> env_value("DATABASE_URL_REPLICA")
        'postgresql://me@replica/analysis'
    """
    return os.environ.get(key) or _dotenv_value(key)


def _dotenv_value(key: str) -> str | None:
    path = find_dotenv(usecwd=True)
    if not path:
        return None
    return dotenv_values(path).get(key)
