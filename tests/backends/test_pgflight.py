"""A read of a statement described before is one flight (``backends/pgflight.py``), and a
small result's DataFrame is built from its text (``pgread.small_frame``): both give
exactly what the usual way gives, run the statement once, and fail loudly where they
cannot."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import oriza_toolkit as oz
from oriza_toolkit.backends import postgresql

from ..conftest import wait_until_idle
from ..test_results import TYPED

# One row per kind of value the small path reads, NULLs and the floats' edges included.
SMALL = """
select i2::int2, i4::int4, i8::int8, f8::float8, num::numeric, txt::text, flag::bool, vc::varchar, o::oid from (values
  (1::int2, 1::int4, 1::int8, 1.5::float8, 1.25::numeric, 'plain'::text, true, 'a b '::varchar, 1::oid),
  (null, -2147483648, 9223372036854775807, 'NaN', 'NaN', 'ünï', false, 'x', 2),
  (-32768, null, -9223372036854775808, 'Infinity', '-1e-20', null, null, null, null),
  (32767, 0, null, '-Infinity', '123456789012345678901234.5', 'NULL', true, 'y', 3),
  (0, 7, 0, null, null, 'z', false, 'q', 4)
) as v(i2, i4, i8, f8, num, txt, flag, vc, o)
"""


@pytest.fixture
def spied(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many of ``pg``'s reads went each way: ``flight`` (one flight), ``flew`` (of
    which the result came from it), ``described`` (the usual describe first), ``small``."""
    pg.query("select 1 as warm_up")  # the first read also looks up the schema's revision
    counts = {"flight": 0, "flew": 0, "described": 0, "small": 0}
    flight, plan, small = postgresql._read_in_one_flight, postgresql._plan, postgresql.small_frame

    async def counted_flight(*args: Any) -> tuple[bool, Any]:
        counts["flight"] += 1
        done, result = await flight(*args)
        counts["flew"] += done
        return done, result

    async def counted_plan(*args: Any) -> Any:
        counts["described"] += 1
        return await plan(*args)

    def counted_small(*args: Any) -> Any:
        frame = small(*args)
        counts["small"] += frame is not None
        return frame

    monkeypatch.setattr(postgresql, "_read_in_one_flight", counted_flight)
    monkeypatch.setattr(postgresql, "_plan", counted_plan)
    monkeypatch.setattr(postgresql, "small_frame", counted_small)
    return counts


@pytest.fixture
def scratch(pg: oz.Database) -> Iterator[str]:
    name = f"flight_{uuid.uuid4().hex[:8]}"
    yield name
    pg.execute(f"DROP TABLE IF EXISTS {name}")
    pg.execute(f"DROP SEQUENCE IF EXISTS {name}_runs")


def test_small_results_have_the_big_paths_dtypes_and_values(pg: oz.Database, spied: dict[str, int]) -> None:
    small = pg.query(SMALL)
    assert spied["small"] == 1
    big = pd.concat(list(pg.stream(SMALL, rows=1_000)), ignore_index=True)  # through arrow
    pd.testing.assert_frame_equal(small, big)
    assert [str(t) for t in small.dtypes] == ["Int16", "Int32", "Int64", "float64", "float64", "str", "boolean",
                                              "str", "Int64"]
    assert small.i8.tolist() == [1, 9223372036854775807, -9223372036854775808, pd.NA, 0]
    assert small.txt[3] == "NULL" and pd.isna(small.txt[2])
    assert small.num[3] == 1.2345678901234568e23 and small.f8[2] == float("inf")
    again = pg.query(SMALL)  # one flight now
    assert spied["flew"] == 1 and spied["small"] == 2
    pd.testing.assert_frame_equal(again, small)


def test_small_text_columns_follow_pandas_string_storage(pg: oz.Database, spied: dict[str, int]) -> None:
    """The small path's "str" follows ``mode.string_storage`` as the arrow path's does."""
    for storage in ("python", "pyarrow"):
        with pd.option_context("mode.string_storage", storage):
            small = pg.query("select 'a' as t, null::text as n")
            big = pd.concat(list(pg.stream("select 'a' as t, null::text as n", rows=10)), ignore_index=True)
            assert small.t.dtype == big.t.dtype == small.n.dtype and small.t.dtype.storage == storage
            pd.testing.assert_frame_equal(small, big)
    assert spied["small"] == 2


def test_what_the_small_path_takes_and_leaves_to_the_parser(pg: oz.Database, spied: dict[str, int],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    plain = pg.query("select 'a,b' as t, '' as e, 'say \"hi\"' as q")
    assert spied["small"] == 1 and plain.t[0] == "a,b" and plain.e[0] == "" and plain.q[0] == 'say "hi"'
    escaped = pg.query("select '\\N' as n, E'a\\tb' as tab, 'C:\\x' as path, E'1\\n2' as lines")  # escapes
    assert spied["small"] == 1 and escaped.iloc[0].tolist() == ["\\N", "a\tb", "C:\\x", "1\n2"]
    assert str(pg.query("select 1.5::float4 as r").r.dtype) == "float32" and spied["small"] == 1
    monkeypatch.setattr(oz.settings, "numeric", "decimal")
    exact = pg.query("select 1.10::numeric as d")
    assert spied["small"] == 1 and str(exact.d[0]) == "1.10"


def test_a_repeated_read_is_one_flight_and_reads_the_same(pg: oz.Database, spied: dict[str, int]) -> None:
    first = pg.query(TYPED, {"n": 40})
    assert spied == {"flight": 0, "flew": 0, "described": 1, "small": 0}
    for n in (40, 3, 0):
        got = pg.query(TYPED, {"n": n})
        pd.testing.assert_frame_equal(got, first.iloc[:n] if n else first.iloc[:0])
    assert spied["flew"] == 3 and spied["described"] == 1
    values = {"i": 7, "f": 0.1, "s": "it's ; :x $1", "none": None, "doc": {"a": [1, "b"]}}
    sql = "select :i + 1 as i, :f::float8 * 2 as f, :s || '!' as s, coalesce(:none, 5) as n, :doc::jsonb -> 'a' as doc"
    usual = pg.query(sql, values)
    flown = pg.query(sql, values)
    pd.testing.assert_frame_equal(flown, usual)
    assert flown.s[0] == "it's ; :x $1!" and flown.doc[0] == [1, "b"] and flown.f[0] == 0.2
    assert spied["flew"] == 4
    pg.query(sql, {**values, "none": 3})  # another kind of value is another statement to describe
    assert spied["described"] == 3


def test_reads_the_flight_does_not_take(pg: oz.Database, spied: dict[str, int]) -> None:
    for _ in range(2):
        pg.query("select :d::date as d", {"d": pd.Timestamp("2024-01-02").date()})  # the server writes a date
        with pg.transaction() as tx:
            tx.query("select 1 as x")
        pg.query("show server_version")
    assert spied["flight"] == 0


def test_a_changed_table_is_read_as_it_is_now_and_runs_once(pg: oz.Database, scratch: str,
                                                              spied: dict[str, int]) -> None:
    pg.execute(f"create table {scratch} (id int, v int, note text)")
    pg.execute(f"insert into {scratch} values (1, 10, 'a'), (2, 20, 'b')")
    pg.execute(f"create sequence {scratch}_runs")
    sql = f"select *, nextval('{scratch}_runs') as run from {scratch} where id >= :low order by id"

    def runs() -> int:
        return int(pg.query(f"select last_value from {scratch}_runs").last_value[0])

    pg.query(sql, {"low": 1})
    pg.query(sql, {"low": 1})
    assert spied["flew"] == 1 and runs() == 4
    changes = [
        ("alter column v type bigint", "Int64", True),  # converts implicitly: the flight reads it as it is now
        ("rename column note to memo", "Int64", True),
        ("add column extra int", "Int64", False),  # one more column: nothing ran, read again the usual way
        ("alter column v type int[] using array[v]", "object", False),  # now converted by the server
        ("alter column v type text using v::text", "str", False),
    ]
    for change, dtype, flew in changes:
        pg.execute(f"alter table {scratch} {change}")
        before = runs()
        flights = spied["flew"]
        frame = pg.query(sql, {"low": 1})
        assert (spied["flew"] > flights) == flew, change
        assert runs() == before + 2, change  # each row's nextval once: the statement ran once
        assert str(frame.v.dtype) == dtype and list(frame.id) == [1, 2], change
        assert frame.columns[2] == ("note" if change.endswith("bigint") else "memo")
        pd.testing.assert_frame_equal(pg.query(sql, {"low": 1}).drop(columns="run"), frame.drop(columns="run"))
    assert pg.query(sql, {"low": 1}).v.tolist() == ["{10}", "{20}"]


def test_a_change_the_check_cannot_see_fails_once_in_one_line(pg: oz.Database, scratch: str,
                                                               spied: dict[str, int]) -> None:
    pg.execute(f"create table {scratch} (v int)")
    pg.execute(f"insert into {scratch} values (5)")
    sql = f"select count(*) as n from {scratch} where v = :v"
    assert pg.query(sql, {"v": 5}).n[0] == 1 and pg.query(sql, {"v": 5}).n[0] == 1
    # a parameter the number 5 was written for as a number is text now: the value would be
    # written otherwise (the usual way refuses it), and the flight cannot know that before
    pg.execute(f"alter table {scratch} alter column v type text")
    with pytest.raises(oz.QueryError, match=r"changed since it was last read .* run it again") as changed:
        pg.query(sql, {"v": 5})
    assert "\n" not in str(changed.value)
    with pytest.raises(oz.QueryError, match="operator does not exist: text = bigint"):
        pg.query(sql, {"v": 5})  # described afresh
    assert pg.query(sql, {"v": "5"}).n[0] == 1
    assert spied["flew"] == 1


def test_columns_of_another_category_are_never_flown_as_before(pg: oz.Database, scratch: str,
                                                               spied: dict[str, int]) -> None:
    pg.execute(f"create table {scratch} (t time)")
    pg.execute(f"insert into {scratch} values ('01:30')")
    sql = f"select t from {scratch}"
    assert str(pg.query(sql).t[0]) == "01:30:00" and str(pg.query(sql).t[0]) == "01:30:00"
    pg.execute(f"alter table {scratch} alter column t type interval")  # converts implicitly, but the check refuses
    assert pg.query(sql).t[0] == pd.Timedelta(minutes=90)
    assert spied["flew"] == 1


def test_errors_in_a_flight_are_the_usual_ones(pg: oz.Database, pg_url: str, scratch: str,
                                               spied: dict[str, int]) -> None:
    pg.execute(f"create table {scratch} (id int)")
    sql = f"select id, 1 / :d as q from {scratch} where id = :id"
    pg.query(sql, {"d": 1, "id": "5"})
    with pytest.raises(oz.QueryError) as flown:
        pg.query(sql, {"d": 1, "id": "abc"})
    assert spied["flight"] == 1
    with oz.connect(pg_url) as fresh, pytest.raises(oz.QueryError) as usual:
        fresh.query(sql, {"d": 1, "id": "abc"})
    assert str(flown.value) == str(usual.value) and "invalid input syntax for type integer" in str(flown.value)
    pg.execute(f"insert into {scratch} values (5)")
    with pytest.raises(oz.QueryError, match="division by zero"):
        pg.query(sql, {"d": 0, "id": "5"})
    pg.execute(f"drop table {scratch}")
    with pytest.raises(oz.QueryError) as gone:  # the describe fails: read again the usual way, which says where
        pg.query(sql, {"d": 1, "id": "5"})
    assert "does not exist" in str(gone.value) and spied["flew"] == 0
    assert pg.query("select 1 as x").x[0] == 1  # the pool is healthy


def test_a_flight_is_cancelled_on_the_server(pg: oz.Database, spied: dict[str, int]) -> None:
    sql = "select pg_sleep(:s) as slept, 'flight-cancel' as marker"
    pg.query(sql, {"s": 0})
    with pytest.raises(oz.QueryTimeoutError):
        pg.query(sql, {"s": 30}, timeout=1)
    assert spied["flight"] == 1
    assert wait_until_idle(pg, "flight-cancel") == 0
    assert pg.query(sql, {"s": 0}).marker[0] == "flight-cancel"
