"""Partitioned reads: one big query read as ranges of a column, over several connections at once.

The backend's bounds query finds ``min``/``max`` of the column over the whole query (of
its finite values: NaN and infinities are no bound) and its row count; the edges between
are the quantiles of a sample of about :data:`SAMPLE_ROWS` values (so skewed data still
gives ranges of about equal rows; ``edges="even"`` cuts ``[min, max]`` evenly, as
connectorx does), cutting it into ``partitions`` ranges, and one query per range runs at once, spread round-robin
over this server and its replicas. The first range is open below (and takes the NULLs),
the last open above (NaN sorts above every number), so every row is in exactly one range
whatever the bounds were. The ranges' parsed chunks are then joined, off the loop, into the same columns,
dtypes and rows as one read. One timeout covers the whole read, bounds included; a range
that fails cancels the others on their servers. A dialect that reads a result whole
(SQLite: one file, one reader) runs the query once.

On one server every range (and the bounds query) reads one snapshot (``snapshot.py``),
so the parts add up to one moment of the database however it is written to meanwhile,
and the rows read are checked against the bounds query's count in that snapshot. A
snapshot cannot span servers: with replicas, each must first have replayed what this
server held when the read began (waited for a while, else refused in one line), the
primary's ranges share its snapshot, each replica's ranges see that replica's own
moment, and a row count that differs from the bounds query's is an error, never a
shorter result.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _sql, queries, snapshot
from ._sql import Params
from .backends import Backend, Form
from .config import mask_url
from .errors import QueryError
from .frames import from_chunks, rows

__all__ = ["SAMPLE_ROWS", "Plan", "Source", "check_partitioning", "even_edges", "miscounted", "plan", "range_counts",
           "read"]

# How long a partitioned read waits for a lagging replica to catch up before refusing it.
REPLICA_WAIT_SECONDS = 10.0
# Parameter names the range queries add to the user's: the cuts (_oz_c0, _oz_c1, ...) and the
# sampling fraction (every name starting _oz_ is reserved).
_CUT, _SAMPLE = "_oz_c", "_oz_sample"
# About how many rows the quantiles that set the edges are taken from.
SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class Source:
    """A server to read ranges from: a Database's engine and backend."""

    engine: AsyncEngine
    backend: Backend


def check_partitioning(sql: object, partition_on: object, partitions: object, edges: object = "quantile") -> None:
    """Raise ``TypeError``/``ValueError`` for options no partitioned read could use."""
    if edges not in ("quantile", "even"):
        raise ValueError(f"edges must be 'quantile' or 'even', not {edges!r}")
    if not isinstance(partition_on, str) or not partition_on:
        raise TypeError(f"partition_on must name a column of the query's result, not {partition_on!r}")
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a whole number of at least 1, not {partitions!r}")
    if not isinstance(sql, str):
        raise TypeError("partitioned reads take SQL text, not a SQLAlchemy statement")
    reserved = sorted(name for name in _sql.parameter_names(sql) if name.startswith("_oz_"))
    if reserved:
        raise ValueError(f"query uses the parameter name :{reserved[0]}; names starting with _oz_ are reserved "
                         "for partitioned reads")


@dataclass(frozen=True)
class Plan:
    """How a partitioned read splits its query: the range queries (SQL and parameters),
    the edges between them (``edges[0]`` the column's lowest value, ``edges[-1]`` its
    highest; a range is ``[edges[i], edges[i+1])``, the first open below, the last open
    above), the query's row count, and whether every row's value lies within the edges
    (no NULL, NaN or infinity: only then do the ranges sort the rows)."""

    ranges: list[tuple[str, dict[str, Any]]]
    edges: list[Any]
    count: int
    bounded: bool


async def plan(moment: snapshot.Moment, sql: str, params: Params | None, *, column: str, partitions: int,
               edges: str = "quantile") -> Plan | None:
    """The ranges of ``sql`` over ``column`` as the snapshot ``moment`` sees it, or None
    where it cannot be split (a dialect that reads whole, no rows, only NULLs)."""
    backend = moment.backend
    inner = _sql.parse(sql).sql  # without a trailing ";" (and the comments after it)
    bounds = backend.partition_bounds(inner, column)
    if bounds is None:
        return None
    found = await moment.read(bounds, params, "frame")
    low, high, kind = found["low"].iloc[0], found["high"].iloc[0], str(found["kind"].iloc[0])
    count, present = int(found["n"].iloc[0]), int(found["present"].iloc[0])
    if not backend.can_partition(kind):
        raise QueryError("query", sql, f"partition_on column {column!r} is {kind}; partition on a number, "
                         "date or timestamp column")
    ends_finite = _is_finite(low) and _is_finite(high)
    bounded = present == count and ends_finite
    finite = backend.finite_bounds(inner, column, kind)
    if finite is not None and not ends_finite:
        found = await moment.read(finite, params, "frame")
        low, high = found["low"].iloc[0], found["high"].iloc[0]
    if pd.isna(low):  # no rows, or only NULLs (or NaN, or infinities)
        return None
    cut = even_edges(low, high, partitions)
    if edges == "quantile" and len(cut) > 2:
        cut = await _sampled_edges(moment, backend, inner, column, kind, params, partitions, count, low, high) or cut
    cut = [_plain(value) for value in cut]
    return Plan(_range_queries(inner, column, params, cut), cut, count, bounded)


async def read(sources: Sequence[Source], sql: str, params: Params | None, *, column: str, partitions: int,
               form: Form, timeout: float | None = None, edges: str = "quantile") -> Any:
    """One query read as ``partitions`` ranges of ``column``, all at once, spread over
    ``sources`` (the first also finds the bounds), in ``form``; the same columns and
    dtypes as one read."""
    first = sources[0]
    async with queries.running("query", sql, timeout, first.engine, first.backend):
        async with snapshot.hold(first.engine, first.backend) as moment:
            split = await plan(moment, sql, params, column=column, partitions=partitions, edges=edges)
            if split is None:
                return await moment.read(sql, params, form)
            servers = sources[: len(split.ranges)]
            if len(servers) > 1:
                await _caught_up(first, servers[1:])
            parts = await _gather(servers, split.ranges, moment.read)
        read = sum(chunk.batch.num_rows for part in parts for chunk in part)
        if read != split.count:
            raise QueryError("query", sql, miscounted(read, split.count, len(servers) > 1))
        return await asyncio.to_thread(_combine, parts, form)  # CPU work: off the loop


def miscounted(read: int, count: int, several: bool) -> str:
    why = ("its servers saw different rows (the tables changed during the read, and replicas share no snapshot); "
           "read without replicas for one consistent moment") if several else (
           "its rows differ from one run to the next (random(), now(), LIMIT without ORDER BY, ...); "
           "partition a query whose rows are fixed")
    return f"the partitioned read returned {rows(read)} but the query has {rows(count)}: {why}"


async def _caught_up(first: Source, replicas: Sequence[Source]) -> None:
    """Wait (at most :data:`REPLICA_WAIT_SECONDS`) until every replica has the data the first
    server had when the read began; else a one-line error naming the replica and its lag.
    (A replica that has not replayed what the primary holds would silently miss rows.)"""
    if not replicas:
        return
    async with queries.connection(first.engine, first.backend) as conn:
        position = await first.backend.position(conn)
    if position is None:
        return
    for replica in replicas:
        deadline = time.monotonic() + REPLICA_WAIT_SECONDS
        async with queries.connection(replica.engine, replica.backend) as conn:
            while (lag := await replica.backend.behind(conn, position)) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if lag:
            raise QueryError("query", "", f"replica {mask_url(replica.engine.url)} has not replayed what this server "
                             f"held when the read began ({lag:,.0f} bytes of WAL behind after "
                             f"{REPLICA_WAIT_SECONDS:g} s); its ranges would miss rows: read without it, or later")


async def _sampled_edges(moment: snapshot.Moment, backend: Backend, inner: str, column: str, kind: str,
                         params: Params | None, partitions: int, count: int, low: Any, high: Any) -> list[Any] | None:
    """``low``, the quantiles that cut a sample of the column's values into ``partitions``
    equal parts, ``high``: ranges of about equal rows however the values are spread (a
    cut's exact value does not matter for correctness: the ranges cover every value
    whatever the cuts). None where the backend cannot sample, or the sample is empty."""
    fractions = [i / partitions for i in range(1, partitions)]
    sql = backend.sample_quantiles(inner, column, kind, fractions, sampled=count > SAMPLE_ROWS)
    if sql is None:
        return None
    sample = {_SAMPLE: SAMPLE_ROWS / count} if count > SAMPLE_ROWS else {}
    found = await moment.read(sql, {**(params or {}), **sample}, "frame")
    low, high = _plain(low), _plain(high)
    # Only cuts strictly inside: a cut at the lowest (or highest) value would make a range
    # of NULLs only (or of one value), and the edges must rise for Dask's divisions.
    cuts = sorted({cut for v in found.iloc[0].tolist() if not pd.isna(v) and low < (cut := _plain(v)) < high})
    return [low, *cuts, high] if cuts else None


def _plain(value: Any) -> Any:
    """A bound as a plain Python value to bind (datetime, int, float, ...)."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if isinstance(value, np.generic) else value


def even_edges(low: Any, high: Any, partitions: int) -> list[Any]:
    """``partitions + 1`` ascending bounds from ``low`` to ``high`` (fewer if the range is narrow).

    Example::

        >>> even_edges(1, 10, 3)
        [1, 4, 7, 10]
        >>> even_edges(5, 5, 3)
        [5, 5]
    """
    if isinstance(low, pd.Timestamp):
        low, high = low.to_pydatetime(), high.to_pydatetime()
    if isinstance(low, (int, np.integer)):
        low, high = int(low), int(high)
        step = max((high - low) // partitions, 1)
        cuts = list(range(low, high, step))[:partitions] or [low]  # all equal: one range
    else:
        width = (high - low) / partitions
        cuts = [low + width * i for i in range(partitions)] if width else [low]
    return [*cuts, high]


def _range_queries(inner: str, column: str, params: Params | None, bounds: list[Any]
                   ) -> list[tuple[str, dict[str, Any]]]:
    """One query per range ``[start, end)`` between the inner edges (see
    :func:`_range_conditions`), each with the parameters of the cuts it uses."""
    cuts = _cut_params(bounds)
    if not cuts:
        return [(inner, dict(params or {}))]
    names = list(cuts)
    conditions = _range_conditions(_sql.quote_identifier(column), names)
    # Range i lies between the cuts i - 1 and i (the first and the last have one of them).
    return [(f"SELECT * FROM ({inner}\n) AS _oz_q WHERE {where}",
             {**(params or {}), **{name: cuts[name] for name in names[max(i - 1, 0): i + 1]}})
            for i, where in enumerate(conditions)]


def _cut_params(bounds: list[Any]) -> dict[str, Any]:
    """The inner edges (the cuts) as parameters, by name, in order."""
    return {f"{_CUT}{i}": cut for i, cut in enumerate(bounds[1:-1])}


def _range_conditions(ident: str, names: list[str]) -> list[str]:
    """The condition of each range between the cut parameters ``names`` (ascending): the
    first open below (with the NULLs), the last open above, so no value falls between."""
    return [f"{ident} < :{names[0]} OR {ident} IS NULL",
            *(f"{ident} >= :{start} AND {ident} < :{end}" for start, end in itertools.pairwise(names)),
            f"{ident} >= :{names[-1]}"]


async def range_counts(moment: snapshot.Moment, sql: str, params: Params | None, column: str, edges: list[Any]
                       ) -> list[int]:
    """How many rows each range of :func:`plan`'s ``edges`` holds, in one pass over the query."""
    inner = _sql.parse(sql).sql
    cuts = _cut_params(edges)
    if not cuts:
        return [int((await moment.read(f"SELECT count(*) AS n FROM ({inner}\n) AS _oz_q", params, "frame")
                     )["n"].iloc[0])]
    conditions = _range_conditions(_sql.quote_identifier(column), list(cuts))
    counts = ", ".join(f"count(*) FILTER (WHERE {where}) AS n{i}" for i, where in enumerate(conditions))
    found = await moment.read(f"SELECT {counts} FROM ({inner}\n) AS _oz_q", {**(params or {}), **cuts}, "frame")
    return [int(n) for n in found.iloc[0].tolist()]


def _is_finite(value: Any) -> bool:
    """Whether a bound is an ordinary value (not NULL, NaN or an infinity)."""
    try:
        return not pd.isna(value) and math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return not pd.isna(value)  # dates and times: NULL is their only odd value here


async def _gather(sources: Sequence[Source], ranges: list[tuple[str, dict[str, Any]]], reader: queries.Reader
                  ) -> list[Any]:
    """Each range's chunks, read at once round-robin over ``sources`` (on the first
    through ``reader``, its snapshot); the first failure cancels the other ranges (on
    their servers too) and is raised."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as group:
            for index, (sql, params) in enumerate(ranges):
                where = sources[index % len(sources)]
                tasks.append(group.create_task(queries.fetch_frame(
                    where.engine, where.backend, sql, params, form="chunks",
                    reader=reader if index % len(sources) == 0 else None)))
    except BaseExceptionGroup as failed:
        raise queries.first_error(failed) from None
    return [task.result() for task in tasks]


def _combine(parts: Sequence[Any], form: Form) -> Any:
    """One result from the ranges' chunks (every range has at least its empty chunk)."""
    return from_chunks([chunk for part in parts for chunk in part], form)
