"""Partitioned reads (partitioned.py): ranges, edges, combining, one timeout, failures."""

from __future__ import annotations

import time

import pandas as pd
import pytest

import oriza_toolkit as oz
from oriza_toolkit import partitioned

from .conftest import wait_until_idle
from .test_results import TYPED

# A query each of whose rows sleeps 0.1 s in the reads of its ranges (whose SQL filters the
# query "AS _oz_q WHERE ...", which this text does not hold in one piece) and, with :bounds,
# in the bounds query too.
SLEEPY = ("select g, (pg_sleep(case when strpos(current_query(), 'AS _oz_q ' || 'WHERE') > 0 or :bounds "
          "then 0.1 else 0 end) is null) as slept from generate_series(1, :rows) as g")


def test_partitioned_read_equals_the_plain_one(pg: oz.Database) -> None:
    whole = pg.query(TYPED + " order by g", {"n": 30_000})
    for column in ("id", "n", "day", "at", "score", "amount"):
        parts = pg.query(TYPED, {"n": 30_000}, partition_on=column, partitions=3)
        assert parts.dtypes.equals(whole.dtypes), column
        ordered = parts.sort_values("id", ignore_index=True)
        pd.testing.assert_frame_equal(ordered, whole, obj=column)


def test_partitioned_read_spreads_over_replicas(pg: oz.Database, pg_url: str) -> None:
    with oz.connect(pg_url) as other:
        table = pg.query_arrow("select g from generate_series(1, 1000) as g", partition_on="g", partitions=4,
                               replicas=[other])
        assert sorted(table.column("g").to_pylist()) == list(range(1, 1001))
        assert other.engine.pool.checkedin() >= 1  # type: ignore[attr-defined]


def test_partitioned_read_of_nothing_and_of_only_nulls(pg: oz.Database) -> None:
    empty = pg.query("select g from generate_series(1, 10) g where g > 100", partition_on="g", partitions=3)
    assert len(empty) == 0 and list(empty.columns) == ["g"]
    nulls = pg.query("select null::int as g from generate_series(1, 3)", partition_on="g", partitions=2)
    assert len(nulls) == 3


def test_partitioned_read_rejects_text_columns(pg: oz.Database) -> None:
    with pytest.raises(oz.QueryError, match="partition_on column 's' is text; partition on a number"):
        pg.query("select 'a' as s", partition_on="s", partitions=2)
    with pytest.raises(ValueError, match="partitions must be a whole number of at least 1, not 0"):
        pg.query("select 1 as g", partition_on="g", partitions=0)


def test_partitioned_read_of_sql_as_an_analyst_types_it(pg: oz.Database) -> None:
    sql = "select g from generate_series(1, 100) as g -- all of them\n; -- done"
    frame = pg.query(sql, partition_on="g", partitions=3)
    assert sorted(frame.g.tolist()) == list(range(1, 101))


def test_edges_cover_the_range() -> None:
    assert partitioned.even_edges(1, 10, 3) == [1, 4, 7, 10]
    assert partitioned.even_edges(5, 5, 4) == [5, 5]  # one value: one range
    assert partitioned.even_edges(0.0, 1.0, 2) == [0.0, 0.5, 1.0]


def test_sqlite_reads_a_partitioned_query_whole(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        db.execute("create table t (g integer)")
        db.execute("insert into t values (1), (2), (3), (null)")
        frame = db.query("select g from t", partition_on="g", partitions=2)
        assert frame.g.isna().sum() == 1 and sorted(frame.g.dropna().tolist()) == [1, 2, 3]


def test_one_timeout_covers_the_whole_read(pg: oz.Database) -> None:
    # bounds 2 s, then two ranges of 1 s at once: 3 s in all, past the 2.5 s given
    start = time.perf_counter()
    with pytest.raises(oz.QueryTimeoutError, match=r"timed out after 2\.5 s and was cancelled on the server"):
        pg.query(SLEEPY, {"rows": 20, "bounds": True}, partition_on="g", partitions=2, timeout=2.5)
    assert time.perf_counter() - start < 2.95
    assert wait_until_idle(pg, "pg_sleep(case when strpos") == 0


def test_a_failing_range_cancels_the_others_on_the_server(pg: oz.Database, pg_url: str) -> None:
    # The replica's ranges fail at once (its statement_timeout); the primary's would sleep 5 s.
    with oz.connect(pg_url, connect_args={"server_settings": {"statement_timeout": "300"}}) as failing:
        start = time.perf_counter()
        with pytest.raises(oz.QueryError, match="statement timeout"):
            pg.query(SLEEPY, {"rows": 100, "bounds": False}, partition_on="g", partitions=2, replicas=[failing],
                     edges="even")  # no sampling pass: only the ranges sleep
        assert time.perf_counter() - start < 3.0
    assert wait_until_idle(pg, "pg_sleep(case when strpos", seconds=2.0) == 0
    assert pg.query("select 1 as x").x[0] == 1


def test_replicas_by_name_resolve_through_the_registry(pg: oz.Database, pg_url: str) -> None:
    replica = oz.connections.register("partition_replica", pg_url)
    frame = pg.query("select g from generate_series(1, 100) as g", partition_on="g", partitions=4,
                     replicas=["partition_replica"])
    assert sorted(frame.g.tolist()) == list(range(1, 101))
    assert oz.connect("partition_replica") is replica
    assert replica.engine.pool.checkedin() >= 1  # type: ignore[attr-defined]


def test_all_equal_values_and_a_single_row(pg: oz.Database) -> None:
    same = pg.query("select 7 as g, h from generate_series(1, 5) as h", partition_on="g", partitions=3)
    assert sorted(same.h.tolist()) == [1, 2, 3, 4, 5]
    one = pg.query("select 1 as g", partition_on="g", partitions=4)
    assert one.g.tolist() == [1]


ODD_FLOATS = """
select g, case g % 10 when 0 then 'NaN'::float8 when 1 then 'Infinity' when 2 then '-Infinity' when 3 then null
              else g / 3.0 end as f,
          case g % 10 when 0 then 'NaN'::numeric when 3 then null else (g * 1.5)::numeric end as n
from generate_series(1, 104) as g
"""


@pytest.mark.parametrize("column", ["f", "n"])
def test_nan_infinity_and_null_are_in_exactly_one_range(pg: oz.Database, column: str) -> None:
    whole = pg.query(ODD_FLOATS + " order by g")
    for partitions in (2, 3, 7):
        parts = pg.query(ODD_FLOATS, partition_on=column, partitions=partitions).sort_values("g", ignore_index=True)
        assert parts.g.tolist() == whole.g.tolist(), partitions
        pd.testing.assert_frame_equal(parts, whole)


def test_only_odd_values_read_whole(pg: oz.Database) -> None:
    odd = "select x from (values ('NaN'::float8), ('Infinity'), (null)) as v(x)"
    assert len(pg.query(odd, partition_on="x", partitions=3)) == 3


@pytest.mark.parametrize("column", ["v", "at"])
def test_edges_follow_the_data(pg: oz.Database, column: str) -> None:
    # 90% of the values in the lowest 10% of the range: even cuts put 90% of the rows in one range
    skewed = ("select g, case when g % 10 = 0 then 100000 + g * 9 else g % 100000 end as v, "
              "timestamptz '2024-01-01 00:00+00' + (case when g % 10 = 0 then 100000 + g * 9 else g % 100000 end) "
              "* interval '1 second' as at from generate_series(1, 200000) as g")
    partitions = 4
    ranges = pg.partitions(skewed, partition_on=column, partitions=partitions)
    sizes = [len(pg.query(part.sql, part.params)) for part in ranges]
    assert sizes == [part.rows for part in ranges] and sum(sizes) == 200_000
    assert max(sizes) <= 2 * 200_000 / partitions, sizes
    even = pg.query(skewed, partition_on=column, partitions=partitions, edges="even")
    assert len(even) == 200_000  # even edges stay available, and still read every row
    parts = pg.query(skewed, partition_on=column, partitions=partitions)
    assert sorted(parts.g.tolist()) == list(range(1, 200_001))
