"""Reads past one machine: a query as a Dask DataFrame read by the workers, or as
per-range statements for engines that read SQL themselves (Spark, Ray).

Both plan the ranges as a partitioned read does (``partitioned.plan``: bounds, edges
that follow the data, in one snapshot), and count each range's rows in that snapshot.
``to_dask`` then builds the frame with ``dask.dataframe.from_map``: ``meta`` is the
toolkit's own read of the query with no rows (exactly its dtypes), the divisions are
the edges (with the partition column as the index), and each task reads its range on
the worker by the toolkit's fast path, on one Database per URL per worker process,
importing the snapshot, and fails in one line if it read another number of rows than
its range held when planned. A read watches its task: when Dask stops wanting it (a
cancelled or interrupted computation), its query is cancelled on the server.

The task graph holds no password: a worker finds the URL in an environment variable
the graph names (``DATABASE_URL`` or ``DATABASE_URL_<NAME>``, found by the URL's value,
or ``url_env=``), or the URL has no password to hide (peer or ``.pgpass``
authentication). A task that runs in the process that built the graph (Dask's local
schedulers) uses the Database itself.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import pandas as pd
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _loop, _sql, partitioned, queries, snapshot
from ._private import dask_task_stopped
from ._sql import Params
from .backends import Backend
from .config import database_url, env_value, mask_url
from .errors import ConfigError, QueryError
from .frames import rows
from .settings import settings

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["Partition", "Where", "apartitions", "request", "where"]

T = TypeVar("T")


class Database(Protocol):
    """What this module uses of ``database.Database`` (which imports this module)."""

    url: URL
    engine: AsyncEngine
    backend: Backend

    @property
    def closed(self) -> bool: ...

    def _run(self, coro: Coroutine[Any, Any, T], progress: _loop.Progress | None = None) -> T: ...

    def snapshot(self) -> snapshot.Snapshot: ...


# Databases that built a graph, by the token the graph names them with (tasks run by a
# local scheduler use them), and the Databases a worker process opened, by their URL's source.
_local: weakref.WeakValueDictionary[str, Database] = weakref.WeakValueDictionary()
_tokens: weakref.WeakKeyDictionary[Database, str] = weakref.WeakKeyDictionary()
_opened: dict[str, Database] = {}
_opening = threading.Lock()
# How long a snapshot the graph owns is held after the graph is dropped (its persisted
# tasks may still be queued); later tasks fail in one line ("the snapshot is gone").
OWNED_SNAPSHOT_GRACE_SECONDS = 60.0
# How a worker opens a Database from a URL: ``database.py`` (which imports this module) installs it.
open_database: Callable[[str], Database] | None = None


@dataclass(frozen=True)
class Partition:
    """One range of a partitioned query: ``sql`` with ``:name`` parameters and their
    ``params`` (the query's own and the range's edges), the edges ``low`` (None: open
    below, with the NULLs) and ``high`` (None: open above; a range is ``low <= value <
    high``), the ``rows`` it held when planned, and ``literal_sql``: the statement with
    its values as literals the server itself rendered, for tools that take SQL text only
    (Spark's JDBC reader, Ray's ``read_sql``); None where the dialect cannot render them.
    """

    sql: str
    params: dict[str, Any]
    low: Any
    high: Any
    rows: int
    literal_sql: str | None


@dataclass(frozen=True)
class Where:
    """How a Dask worker reaches the database, with no password: the environment
    variable holding the URL (``env``), or a URL that has none (``url``); ``shown`` is
    the URL masked, which the worker's must equal; ``token`` names the Database in the
    process that built the graph."""

    token: str
    env: str | None
    url: str | None
    shown: str

    def database(self) -> Database:
        """The Database to read with, in this process."""
        local = _local.get(self.token)
        if local is not None and not local.closed:
            return local
        key = self.env or self.url
        if key is None:
            raise ConfigError(f"this Dask worker cannot reach {self.shown}: its password is never put in the "
                              "task graph; set the URL in DATABASE_URL (or DATABASE_URL_<NAME>) on the client and "
                              "the workers, or pass url_env=")
        with _opening:
            found = _opened.get(key)
            if found is None or found.closed:
                assert open_database is not None
                url = self.url or env_value(key)
                if not url:
                    raise ConfigError(f"this Dask worker cannot reach {self.shown}: {key} is not set in its "
                                      "environment (or .env)")
                found = _opened[key] = open_database(url)
            if mask_url(found.url) != self.shown:
                raise ConfigError(f"{key} on this Dask worker is {mask_url(found.url)}, not {self.shown} the graph "
                                  "was planned on")
            return found


def where(db: Database, url_env: str | None) -> Where:
    """How workers will reach ``db`` (see :class:`Where`)."""
    token = _tokens.setdefault(db, uuid.uuid4().hex)  # one per Database, however many graphs it builds
    _local[token] = db
    shown = mask_url(db.url)
    if url_env is not None:
        if not isinstance(url_env, str) or not url_env:
            raise TypeError(f"url_env must name an environment variable, not {url_env!r}")
        value = env_value(url_env)
        if not value or _resolved(value) != db.url:
            state = "is not set" if not value else f"holds {mask_url(_resolved(value) or value)}"
            raise ConfigError(f"url_env={url_env!r} {state}; it must hold this Database's URL ({shown})")
        return Where(token, url_env, None, shown)
    if db.url.password is None:
        return Where(token, None, db.url.render_as_string(hide_password=False), shown)
    names = ["DATABASE_URL", *sorted(name for name in os.environ if name.startswith("DATABASE_URL_"))]
    env = next((name for name in names if _resolved(env_value(name)) == db.url), None)
    return Where(token, env, None, shown)


def _resolved(value: str | None) -> Any:
    try:
        return database_url(value) if value else None
    except (ConfigError, TypeError):
        return None


@dataclass(frozen=True)
class _Range:
    number: int
    of: int
    sql: str
    params: dict[str, Any]
    rows: int


class _ReadRange:
    """A Dask task's function: read one range on the worker (picklable). A snapshot the
    graph owns stays in the client's process, held while this function is referenced
    there and :data:`OWNED_SNAPSHOT_GRACE_SECONDS` after: ``.persist()`` drops the graph
    at once, while its tasks have yet to run."""

    def __init__(self, where: Where, snapshot_id: str | None, index: str | None, owner: snapshot.Snapshot | None
                 ) -> None:
        self.where = where
        self.snapshot_id = snapshot_id
        self.index = index
        if owner is not None:
            weakref.finalize(self, _loop.submit_quietly, functools.partial(_close_later, owner))

    def __call__(self, part: _Range) -> pd.DataFrame:
        db = self.where.database()
        name = f"partition {part.number} of {part.of}"
        reader = None if self.snapshot_id is None else functools.partial(snapshot.read_in, db.engine, db.backend,
                                                                         self.snapshot_id)
        stopped = dask_task_stopped()
        try:
            frame: pd.DataFrame = db._run(queries.fetch_frame(db.engine, db.backend, part.sql, part.params, name=name,
                                                              reader=reader), _Watch(stopped) if stopped else None)
        except KeyboardInterrupt:
            raise QueryError(name, part.sql, "cancelled: Dask stopped its task, and its query on the server") from None
        if len(frame) != part.rows:
            why = ("its rows differ from one run to the next (random(), now(), LIMIT without ORDER BY, ...)"
                   if self.snapshot_id else "the tables changed since (consistent=False: no snapshot)")
            raise QueryError(name, part.sql, f"read {rows(len(frame))} but its range held {rows(part.rows)} when "
                             f"the read was planned: {why}")
        frame.attrs = {}
        return _indexed(frame, self.index)


class _Watch:
    """Progress for the toolkit's wait on a worker's read: each poll asks whether Dask has
    stopped the task, and stops the read (on the server too) if so."""

    def __init__(self, stopped: Callable[[], bool]) -> None:
        self.stopped = stopped

    def poll(self) -> None:
        if self.stopped():
            raise KeyboardInterrupt  # how _loop.run is told to cancel, on the server too

    def finish(self) -> None:
        pass


async def _close_later(owner: snapshot.Snapshot) -> None:
    await asyncio.sleep(OWNED_SNAPSHOT_GRACE_SECONDS)
    await owner._close()


def _indexed(frame: pd.DataFrame, index: str | None) -> pd.DataFrame:
    return frame if index is None else frame.set_index(index).sort_index(kind="stable")


async def _plan(db: Database, moment: snapshot.Moment, sql: str, params: Params | None, column: str, count: int,
                edges: str) -> tuple[partitioned.Plan | None, list[int], pd.DataFrame]:
    empty = await moment.read(f"SELECT * FROM ({_sql.parse(sql).sql}\n) AS _oz_q WHERE false", params, "frame")
    if column not in empty.columns:
        raise QueryError("query", sql, f"partition_on={column!r} is not a column of the query's result")
    split = await partitioned.plan(moment, sql, params, column=column, partitions=count, edges=edges)
    counts = await partitioned.range_counts(moment, sql, params, column, split.edges if split else [])
    return split, counts, empty


@dataclass
class _Request:
    """A to_dask call, checked: what its graph is built from once the plan is read."""

    db: Database
    sql: str
    params: Params | None
    column: str
    partitions: int
    edges: str
    index: bool
    held: snapshot.Snapshot | None
    owner: snapshot.Snapshot | None
    reach: Where

    def plan(self) -> Any:
        return _planned(self.db, self.held, self.sql, self.params, self.column, self.partitions, self.edges)

    def build(self, planned: tuple[partitioned.Plan | None, list[int], pd.DataFrame]) -> dd.DataFrame:
        import dask  # an optional extra, checked by request()
        import dask.dataframe as dd

        split, counts, empty = planned
        ranges = _ranges(split, self.sql, self.params)
        parts = [_Range(i, len(ranges), text, values, n)
                 for i, ((text, values), n) in enumerate(zip(ranges, counts, strict=True), start=1)]
        column = self.column if self.index else None
        divisions = tuple(split.edges) if split and split.bounded and self.index else None
        read = _ReadRange(self.reach, self.held.id if self.held else None, column, self.owner)
        # Dask would turn every object column into strings (JSON values too): the toolkit's dtypes stay.
        with dask.config.set({"dataframe.convert-string": False}):
            frame = dd.from_map(read, parts, meta=_indexed(empty, column), divisions=divisions,  # type: ignore[no-untyped-call]
                                label="oriza-read", enforce_metadata=True)
        return cast("dd.DataFrame", frame)

    def abandon(self) -> None:
        if self.owner is not None:
            self.owner.close()


def request(db: Database, sql: str, params: Params | None, *, partition_on: str, partitions: int, edges: str,
            index: bool, snapshot_: snapshot.Snapshot | None, consistent: bool, url_env: str | None) -> _Request:
    """Check a to_dask call (and take its snapshot when the graph is to own one)."""
    try:
        import dask.dataframe  # noqa: F401 (an optional extra)
    except ImportError:
        raise ImportError("to_dask needs Dask: pip install 'oriza_toolkit[dask]'") from None
    partitioned.check_partitioning(sql, partition_on, partitions, edges)
    queries.check_params(params)
    for flag, value in (("index", index), ("consistent", consistent)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, not {value!r}")
    if settings.numeric != "float":
        raise ValueError("to_dask reads numeric columns as float64: settings.numeric='decimal' does not reach "
                         "Dask workers; set it back to 'float', or cast the column to text in the SQL")
    if snapshot_ is not None:
        if not isinstance(snapshot_, snapshot.Snapshot) or not consistent:
            raise TypeError("snapshot= takes a Snapshot of db.snapshot() (and means consistent=True)")
        if snapshot_.engine is not db.engine:
            raise ValueError("snapshot= was taken on another Database")
        if snapshot_.closed:
            raise QueryError("query", sql, "the snapshot is closed; plan the read inside its `with` block")
        if snapshot_.id is None:
            raise ValueError("this database's snapshots cannot be shared with other connections (SQLite); "
                             "leave snapshot= out")
    reach = where(db, url_env)
    owner = db.snapshot().open() if consistent and snapshot_ is None else None
    if owner is not None and owner.id is None:  # SQLite: one partition, read whole; nothing to hold
        owner.close()
        owner = None
    return _Request(db, sql, params, partition_on, partitions, edges, index, snapshot_ or owner, owner, reach)


async def _planned(db: Database, held: snapshot.Snapshot | None, sql: str, params: Params | None, column: str,
                   count: int, edges: str) -> tuple[partitioned.Plan | None, list[int], pd.DataFrame]:
    async with queries.running("query", sql, None, db.engine, db.backend):
        if held is not None:
            return await _plan(db, held.moment(), sql, params, column, count, edges)
        async with snapshot.hold(db.engine, db.backend) as moment:  # only the plan in one moment
            return await _plan(db, moment, sql, params, column, count, edges)


async def apartitions(db: Database, sql: str, params: Params | None, *, partition_on: str, partitions: int,
                      edges: str) -> list[Partition]:
    """See ``Database.partitions``."""
    split, counts, _ = await _planned(db, None, sql, params, partition_on, partitions, edges)
    ranges = _ranges(split, sql, params)
    async with queries.running("query", sql, None, db.engine, db.backend), \
            queries.connection(db.engine, db.backend) as conn:
        literals = [await db.backend.literal_sql(conn, text, values) for text, values in ranges]
    cuts = split.edges[1:-1] if split else []
    lows, highs = [None, *cuts], [*cuts, None]
    return [Partition(text, values, low, high, n, literal)
            for (text, values), low, high, n, literal in zip(ranges, lows, highs, counts, literals, strict=True)]


def _ranges(split: partitioned.Plan | None, sql: str, params: Params | None) -> list[tuple[str, dict[str, Any]]]:
    """The plan's range queries, or the query whole where it could not be split."""
    return split.ranges if split else [(sql, dict(params or {}))]
