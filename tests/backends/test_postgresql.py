"""The PostgreSQL backend's own decisions, and the asyncpg private API it relies on."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pandas as pd
import pytest
from sqlalchemy import JSON, Interval
from sqlalchemy.dialects.postgresql import JSONB

import oriza_toolkit as oz
from oriza_toolkit.backends import asyncpg_private
from oriza_toolkit.backends.postgresql import PostgresBackend

from ..test_results import TYPED


def test_asyncpg_still_has_the_private_copy_it_uses() -> None:
    assert asyncpg_private.HAS_COPY_OUT, (
        f"asyncpg {asyncpg.__version__} no longer has Connection._copy_out(copy_stmt, output, timeout): "
        "reads fall back to copy_from_query; update backends/asyncpg_private.py and the bound in pyproject.toml")


def test_reads_without_the_private_api_are_the_same(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = pg.query(TYPED, {"n": 3_000})
    chunks = list(pg.stream(TYPED, {"n": 3_000}, rows=1_000))
    with pytest.raises(oz.QueryError) as before:
        pg.query("select 1 as a, nosuch as b")
    monkeypatch.setattr(asyncpg_private, "HAS_COPY_OUT", False)
    monkeypatch.setattr(asyncpg_private, "_warned", False)
    with pytest.warns(oz.OrizaWarning, match="has no Connection._copy_out; oriza_toolkit reads through copy_from_q"):
        fallback = pg.query(TYPED, {"n": 3_000})
    pd.testing.assert_frame_equal(fallback, whole)
    for got, expected in zip(pg.stream(TYPED, {"n": 3_000}, rows=1_000), chunks, strict=True):
        pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(oz.QueryError) as after:
        pg.query("select 1 as a, nosuch as b")
    assert str(after.value) == str(before.value)  # the error still points at 'nosuch'
    with pg.transaction() as tx:  # inside a transaction of the caller's
        assert tx.query("select 2 as x").x[0] == 2


def test_column_types_of_a_frame() -> None:
    frame = pd.DataFrame({"doc": [{"a": 1}, None], "took": pd.to_timedelta([1, 2], unit="s"), "n": [1, 2]})
    types = PostgresBackend().column_types(frame, {"doc": JSON()})
    assert isinstance(types["doc"], JSONB) and isinstance(types["took"], Interval) and "n" not in types


class _ServerError(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


def test_lost_connections_are_told_from_other_errors() -> None:
    backend = PostgresBackend()
    assert backend.is_lost_connection(_ServerError("57P01"))  # admin shutdown
    assert backend.is_lost_connection(_ServerError("08006"))  # connection failure
    assert not backend.is_lost_connection(_ServerError("42P01"))  # undefined table
    assert not backend.is_lost_connection(ValueError("x"))


def test_partitions_split_numbers_and_times_not_text() -> None:
    backend = PostgresBackend()
    assert all(backend.can_partition(kind) for kind in ("bigint", "numeric", "date", "timestamp with time zone"))
    assert not backend.can_partition("text")
    assert '"g"' in backend.partition_bounds("select 1 as g", "g")


def test_interval_parameters_and_dates_round_trip(pg: oz.Database) -> None:
    frame = pg.query("select :d::date as d, :t::interval as t", {"d": dt.date(2024, 2, 29), "t": dt.timedelta(hours=1)})
    assert frame.d[0] == pd.Timestamp("2024-02-29") and frame.t[0] == pd.Timedelta(hours=1)
