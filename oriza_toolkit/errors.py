"""Every error the toolkit raises on purpose.

The tree::

    OrizaError
    ├── ConfigError          the database URL or a setting is unusable
    ├── DatabaseConnectionError  the server could not be reached or refused us
    ├── QueryError           one statement failed on the server (or in the driver)
    │   └── QueryTimeoutError    ... because it ran past its timeout and was cancelled
    ├── BatchError           one or more queries of a query_many batch failed
    ├── WriteError           a DataFrame (or a Parquet file) could not be written; nothing changed
    └── MigrationError       an Alembic command failed
        └── SchemaDiffError      ... because the models differ from the database (.diffs)

Messages are one line, name the query, table or command at fault, and never hold a
password.
"""

from __future__ import annotations

import functools
import inspect
import os
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BatchError",
    "ConfigError",
    "DatabaseConnectionError",
    "MigrationError",
    "OrizaError",
    "QueryError",
    "QueryTimeoutError",
    "SchemaDiffError",
    "WriteError",
    "raised_at_call",
]


# Names the toolkit gives a query the user did not name; its SQL names it better.
_UNNAMED = {"query", "execute", "stream"}
_LABEL_CHARACTERS = 40


class OrizaError(Exception):
    """Base class of the toolkit's errors."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable whatever a subclass's __init__ takes: a Dask worker's error reaches the client.
        return _restored, (type(self), self.args, self.__dict__)


def _restored(kind: type[OrizaError], args: tuple[Any, ...], state: dict[str, Any]) -> OrizaError:
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(OrizaError):
    """The database URL or a setting cannot be used."""


class DatabaseConnectionError(OrizaError):
    """The database server could not be reached, or refused the connection.

    ``url`` is the URL tried, with its password masked; ``source`` where it came from
    (``"DATABASE_URL"``, ``"DATABASE_URL_REPLICA"``, ...), named in the message where the
    URL's parts are what to check.
    """

    def __init__(self, message: str, *, url: str, check: str | None = None, source: str = "DATABASE_URL") -> None:
        self.url = url
        self.reason = message
        self.check = check
        self.source = source
        super().__init__(message if check is None else f"{message}; {check.format(source=source)}")

    def from_source(self, source: str) -> DatabaseConnectionError:
        """This error, naming ``source`` as where the URL came from."""
        return DatabaseConnectionError(self.reason, url=self.url, check=self.check, source=source)


class QueryError(OrizaError):
    """A statement failed.

    The message names the query by its batch key, or by the first line of its SQL.
    Attributes: ``name`` (the query's name in a batch, else ``"query"``), ``sql``,
    ``detail`` (the server's message), ``position`` (1-based character offset into
    ``sql`` where the server located the error, or ``None``) and ``sqlstate``.
    """

    def __init__(
        self,
        name: str,
        sql: str,
        detail: str,
        *,
        position: int | None = None,
        sqlstate: str | None = None,
    ) -> None:
        self.name = name
        self.sql = sql
        self.detail = detail
        self.position = position
        self.sqlstate = sqlstate
        super().__init__(self._message())

    def renamed(self, name: str, sql: str) -> QueryError:
        """This error as raised by the query ``name`` (``sql`` if it had none)."""
        if self.name == name and self.sql:
            return self
        copy = QueryError(name, self.sql or sql, self.detail, position=self.position, sqlstate=self.sqlstate)
        if isinstance(self, QueryTimeoutError):
            copy = QueryTimeoutError(name, self.sql or sql, self.timeout, stopped=self.stopped)
        return copy

    def _message(self) -> str:
        text = f"query {self._label()!r} failed: {self.detail}"
        if self.position is not None:
            text += f" (at character {self.position}: {_excerpt(self.sql, self.position)!r})"
        return text


    def _label(self) -> str:
        """The query as the user knows it: its batch key, else the first line of its SQL."""
        lines = self.sql.strip().splitlines()
        if self.name not in _UNNAMED or not lines:
            return self.name
        first = " ".join(lines[0].split())
        return first if len(first) <= _LABEL_CHARACTERS else first[: _LABEL_CHARACTERS - 3] + "..."


class QueryTimeoutError(QueryError):
    """A statement ran past its timeout and was stopped: ``stopped`` says how (the
    backend's wording, e.g. "was cancelled on the server")."""

    def __init__(self, name: str, sql: str, timeout: float, *, stopped: str = "was cancelled on the server") -> None:
        self.timeout = timeout
        self.stopped = stopped
        super().__init__(name, sql, f"timed out after {timeout:g} s and {stopped}", sqlstate="57014")


class BatchError(OrizaError):
    """Some queries of a batch failed; the others ran to the end.

    ``errors`` maps each failed query's name to its :class:`QueryError`; ``results``
    holds the DataFrames of the queries that succeeded.
    """

    def __init__(self, errors: Mapping[str, BaseException], results: Mapping[str, pd.DataFrame]) -> None:
        self.errors = dict(errors)
        self.results = dict(results)
        total = len(self.errors) + len(self.results)
        names = ", ".join(repr(name) for name in self.errors)
        first = next(iter(self.errors.values()))
        super().__init__(f"{len(self.errors)} of {total} queries failed ({names}); first: {first}")


class WriteError(OrizaError):
    """A DataFrame could not be written to a table (or a result to a file); the table (or
    the file that was there) is as it was. ``table`` names the table or the path."""

    def __init__(self, table: str, detail: str, *, kind: str = "table") -> None:
        self.table = table
        self.detail = detail
        super().__init__(f"writing {kind} {table!r} failed: {detail}")


class MigrationError(OrizaError):
    """An Alembic command failed; ``command`` is the command line, ``output`` what it printed."""

    def __init__(self, command: str, detail: str, *, output: str = "") -> None:
        self.command = command
        self.detail = detail
        self.output = output
        super().__init__(f"alembic {command} failed: {detail}")


class SchemaDiffError(MigrationError):
    """``check`` found the models differ from the database; ``diffs`` are autogenerate's
    differences (as ``alembic.autogenerate.compare_metadata`` returns them)."""

    def __init__(self, command: str, detail: str, *, output: str = "", diffs: list[Any]) -> None:
        self.diffs = diffs
        super().__init__(command, detail, output=output)


def _excerpt(sql: str, position: int, width: int = 24) -> str:
    """A one-line piece of ``sql`` starting near the 1-based ``position``."""
    start = max(position - 1, 0)
    return " ".join(sql[start : start + width].split())


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
T = TypeVar("T")


def raised_at_call(public: T) -> T:
    """Make a public function, or the public methods of a class, raise the toolkit's own
    errors from their own frame: an argument check's ``TypeError``/``ValueError`` (raised
    in the toolkit's code, not a library's) and any :class:`OrizaError` come without the
    helper frames under the call, so a traceback ends at the user's line. Other
    exceptions are left whole (a bug's frames are worth reading).

    Example::

        @raised_at_call
        class Database: ...
    """
    if not isinstance(public, type):
        return cast(T, _at_call(cast(Callable[..., Any], public)))
    for name, member in list(vars(public).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(public, name, _at_call(member))
    return public


def _at_call(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except BaseException as error:
                del args, kwargs  # out of the traceback's locals: a URL argument holds a password
                if _deliberate(error):
                    raise error.with_traceback(None) from None
                raise

        return acall

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except BaseException as error:
            del args, kwargs  # out of the traceback's locals: a URL argument holds a password
            if _deliberate(error):
                raise error.with_traceback(None) from None
            raise

    return call


def _deliberate(error: BaseException) -> bool:
    """An OrizaError, or an argument error or interrupt every frame of which (under the
    public method's) is the toolkit's: raised on purpose, not by a library or a bug in a
    call to one."""
    if isinstance(error, OrizaError):
        return True
    if not isinstance(error, (TypeError, ValueError, KeyboardInterrupt)):  # an interrupt: "queries cancelled"
        return False
    frames = list(traceback.walk_tb(error.__traceback__))[1:]
    return bool(frames) and all(frame.f_code.co_filename.startswith(_PACKAGE) for frame, _ in frames)
