"""Results of any size: streams, arrow tables and Parquet files (partitioned reads: test_partitioned.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import oriza_toolkit as oz

from .conftest import wait_until_idle

TYPED = """
select g as id,
       case when g % 7 = 0 then null else g * 3 end as n,
       (g / 8.0)::numeric(12, 3) as amount,
       g / 3.0::float8 as score,
       'row ' || g as label,
       g % 2 = 0 as even,
       date '2024-01-01' + g % 400 as day,
       timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' as at,
       g * interval '1 second' as took,
       case when g % 5 = 0 then null else jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g)) end as doc,
       ('\\x' || lpad(to_hex(g % 256), 2, '0'))::bytea as raw
from generate_series(1, :n) as g
"""


def test_stream_chunks_join_to_the_whole_result(pg: oz.Database) -> None:
    whole = pg.query(TYPED, {"n": 25_000})
    chunks = list(pg.stream(TYPED, {"n": 25_000}, rows=4_000))
    assert [len(c) for c in chunks] == [4_000] * 6 + [1_000]
    assert all(c.dtypes.equals(chunks[0].dtypes) for c in chunks)
    assert str(whole.amount.dtype) == "float64" and str(chunks[0].amount.dtype) == "float64"
    joined = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole)
    assert joined.doc[1] == {"g": 2, "tags": ["a", 2]} and joined.raw[1] == b"\x02"


def test_stream_of_record_batches_has_one_schema(pg: oz.Database) -> None:
    batches = list(pg.stream(TYPED, {"n": 10_000}, rows=3_000, arrow=True))
    assert {b.schema for b in batches} == {batches[0].schema}
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 10_000 and table.schema.field("amount").type == pa.decimal128(38, 3)
    assert table.column("took").type == pa.duration("us")


def test_stream_with_no_rows_yields_one_empty_chunk_with_the_columns(db: oz.Database) -> None:
    chunks = list(db.stream("select 1 as a, 'x' as b where 1 = 0"))
    assert len(chunks) == 1 and list(chunks[0].columns) == ["a", "b"] and len(chunks[0]) == 0


def test_stream_on_sqlite_keeps_the_first_chunks_dtypes(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        db.execute("create table t (x integer, y text)")
        db.execute("insert into t select value, case when value > 5 then 'v' end "
                   "from json_each('[1,2,3,4,5,6,7,8,9,10]')")
        chunks = list(db.stream("select x, y from t order by x", rows=4))
        assert [len(c) for c in chunks] == [4, 4, 2]
        assert all(str(c.x.dtype) == "Int64" for c in chunks)
        assert pd.concat(chunks).x.tolist() == list(range(1, 11))


def test_breaking_out_of_a_sqlite_stream_lets_writers_in(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        db.execute("create table t (x integer)")
        db.execute("insert into t select value from json_each('[1,2,3,4,5,6,7,8,9,10]')")
        for chunk in db.stream("select x from t", rows=2):
            assert len(chunk) == 2
            break
        with oz.connect(sqlite_url, connect_args={"timeout": 1}) as other:
            assert other.execute("delete from t where x > 5") == 5
        assert db.query("select count(*) as n from t").n[0] == 5


def test_breaking_out_of_a_stream_cancels_the_query_on_the_server(pg: oz.Database) -> None:
    marker = "oz_break_marker"
    # 20M rows: far more than the pipe and socket buffers hold, so the server is still
    # sending (waiting on us) when the loop breaks
    sql = f"select g /* {marker} */ from generate_series(1, 20000000) as g"
    for chunk in pg.stream(sql, rows=1_000):
        assert len(chunk) == 1_000
        break
    assert wait_until_idle(pg, marker) == 0
    assert pg.pool_status().startswith("0 in use")
    assert pg.query("select 1 as x").x[0] == 1


def test_an_async_stream_closed_early_cancels_the_query(pg: oz.Database) -> None:
    marker = "oz_async_break_marker"
    sql = f"select g /* {marker} */ from generate_series(1, 20000000) as g"

    async def first() -> int:
        stream = pg.astream(sql, rows=500)
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                return len(chunk)
        return 0

    assert asyncio.run(first()) == 500
    assert wait_until_idle(pg, marker) == 0


def test_closing_the_database_stops_an_open_stream_on_the_server(pg_url: str, pg: oz.Database) -> None:
    marker = "oz_close_marker"
    db = oz.connect(pg_url)
    chunks = db.stream(f"select g /* {marker} */ from generate_series(1, 20000000) as g", rows=1_000)
    assert len(next(chunks)) == 1_000
    db.close()  # the stream's connection is checked out: dispose() alone would leave it running
    assert wait_until_idle(pg, marker) == 0


def test_cancelling_a_task_that_reads_a_stream_is_a_plain_cancel(pg: oz.Database) -> None:
    marker = "oz_task_cancel_marker"
    sql = f"select g, pg_sleep(0.2) is null as slept /* {marker} */ from generate_series(1, 1000) as g"

    async def run() -> None:
        async def consume() -> None:
            async for _ in pg.astream(sql, rows=1):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(1.0)  # rows are arriving, one chunk at a time
        task.cancel()
        with pytest.raises(asyncio.CancelledError):  # nothing else: no "aclose(): ... already running"
            await task

    asyncio.run(run())
    assert wait_until_idle(pg, marker) == 0
    assert pg.query("select 1 as x").x[0] == 1


def test_a_stream_holds_a_few_chunks_not_the_result(pg: oz.Database) -> None:
    """3,000,000 rows of ~60 bytes (~180 MB as arrow) through a consumer that dawdles:
    arrow memory stays near a few chunks, because the server is made to wait."""
    sql = "select g::int8 as id, repeat('x', 50) as pad from generate_series(1, 3000000) as g"
    base = pa.total_allocated_bytes()
    peak = 0
    rows = 0
    for i, batch in enumerate(pg.stream(sql, rows=50_000, arrow=True)):
        rows += batch.num_rows
        if i == 2:
            time.sleep(0.5)  # the reader must stop, not buffer the rest
        peak = max(peak, pa.total_allocated_bytes() - base)
        del batch
    assert rows == 3_000_000
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MB of arrow memory held"


def test_a_failing_value_mid_stream_is_one_line_and_leaves_the_pool_healthy(pg: oz.Database) -> None:
    sql = "select case when g = 90000 then 1 / (g - g) else g end as x from generate_series(1, 100000) as g"
    with pytest.raises(oz.QueryError, match="division by zero"):
        for _ in pg.stream(sql, rows=10_000):
            pass
    assert pg.pool_status().startswith("0 in use")
    assert pg.query("select 2 as x").x[0] == 2


def test_a_big_read_failing_near_its_end_returns_nothing_partial(pg: oz.Database) -> None:
    sql = "select g, case when g = 900000 then 1 / (g - g) else g end as x from generate_series(1, 1000000) as g"
    with pytest.raises(oz.QueryError, match="division by zero"):
        pg.query(sql)
    with pytest.raises(oz.QueryError, match="division by zero"):
        pg.query_arrow(sql)


def test_a_value_pandas_cannot_hold_early_in_a_big_read_is_one_line(pg: oz.Database) -> None:
    """The parser stops at row 10; the server still has 3M rows to send: they are dropped,
    not waited for (the pipe would fill and the read hang)."""
    sql = ("select g, case when g = 10 then 'infinity'::timestamptz else timestamptz '2024-01-01' end as at "
           "from generate_series(1, 3000000) as g")
    with pytest.raises(oz.QueryError, match="column 'at' holds 'infinity'"):
        pg.query(sql)
    assert pg.query("select 1 as x").x[0] == 1


def test_stream_options_are_checked_where_called(pg: oz.Database) -> None:
    with pytest.raises(ValueError, match="rows must be a whole number of at least 1, not 0"):
        pg.stream("select 1", rows=0)
    with pytest.raises(ValueError, match="uses :n but no params were given"):
        pg.stream("select :n")


def test_query_arrow_types(pg: oz.Database) -> None:
    table = pg.query_arrow(TYPED, {"n": 1_000})
    types = {field.name: field.type for field in table.schema}
    assert types["id"] == pa.int32() and types["amount"] == pa.decimal128(6, 3)  # 125.000 at most
    assert types["at"] == pa.timestamp("us", tz="UTC") and types["day"] == pa.date32()
    assert types["took"] == pa.duration("us") and types["raw"] == pa.binary()
    assert table.schema.field("doc").metadata == {b"oriza.kind": b"json"}
    assert table.column("amount")[3].as_py() == Decimal("0.500")
    assert table.num_rows == 1_000


def test_query_arrow_on_sqlite(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        table = db.query_arrow("select 1 as x, 'a' as y")
    assert table.to_pylist() == [{"x": 1, "y": "a"}]


@pytest.mark.parametrize("rows_per_file", [None, 7_000])
def test_to_parquet_round_trips(db: oz.Database, tmp_path: Path, rows_per_file: int | None) -> None:
    sql = "select 1 as one, 'a' as s" if db.dialect == "sqlite" else TYPED
    params = None if db.dialect == "sqlite" else {"n": 20_000}
    target = tmp_path / ("out.parquet" if rows_per_file is None else "parts")
    written = db.to_parquet(sql, target, params, rows_per_file=rows_per_file, rows=3_000)
    expected = db.query_arrow(sql, params)
    assert written == expected.num_rows
    if rows_per_file and db.dialect == "postgresql":
        assert sorted(p.name for p in target.iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
    back = pq.read_table(target)
    assert back.num_rows == expected.num_rows
    for name in expected.column_names:
        assert back.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_to_parquet_interrupted_by_an_error_leaves_no_file(pg: oz.Database, tmp_path: Path) -> None:
    target = tmp_path / "broken.parquet"
    sql = "select case when g = 90000 then 1 / (g - g) else g end as x from generate_series(1, 100000) as g"
    with pytest.raises(oz.QueryError, match="division by zero"):
        pg.to_parquet(sql, target, rows=10_000)
    assert not target.exists()


def test_to_parquet_refuses_an_existing_result_directory(pg: oz.Database, tmp_path: Path) -> None:
    pg.to_parquet("select 1 as x", tmp_path, rows_per_file=10)
    with pytest.raises(ValueError, match="already holds a result"):
        pg.to_parquet("select 1 as x", tmp_path, rows_per_file=10)


def test_a_batch_runs_as_many_queries_as_the_pool_can_give(pg: oz.Database) -> None:
    assert pg.max_concurrency == 15
    start = time.perf_counter()
    pg.query_many({f"q{i}": "select pg_sleep(1)" for i in range(8)}, progress=False)
    assert time.perf_counter() - start < 1.8  # 5 at a time would take two rounds: 2 s


def test_a_failed_to_parquet_leaves_the_old_file_as_it_was(pg: oz.Database, tmp_path: Path) -> None:
    target = tmp_path / "report.parquet"
    pg.to_parquet("select g as x from generate_series(1, 10) as g", target)
    before = target.read_bytes()
    failing = "select case when g = 150000 then 1 / (g - g) else g end as x from generate_series(1, 200000) as g"
    with pytest.raises(oz.QueryError, match="division by zero"):
        pg.to_parquet(failing, target, rows=20_000)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.parquet"]  # nothing half-written beside it
    parts = tmp_path / "parts"
    with pytest.raises(oz.QueryError, match="division by zero"):
        pg.to_parquet(failing, parts, rows=20_000, rows_per_file=50_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.parquet"]
    pg.to_parquet("select 1 as x", target)  # a good write replaces it
    assert pq.read_table(target).column("x").to_pylist() == [1]


def test_to_parquet_where_it_cannot_write_is_one_line(db: oz.Database, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=r"cannot write '.*afile/out\.parquet': '.*afile' is a file, not a directory"):
        db.to_parquet("select 1 as x", tmp_path / "afile" / "out.parquet")
    with pytest.raises(oz.WriteError, match=r"^writing file '/sys/out\.parquet' failed: Permission denied$"):
        db.to_parquet("select 1 as x", "/sys/out.parquet")
    assert db.query("select 1 as x").x[0] == 1
