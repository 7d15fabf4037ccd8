"""The PostgreSQL backend's own decisions, and the asyncpg private API it relies on."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any

import asyncpg
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import JSON, Interval
from sqlalchemy.dialects.postgresql import JSONB

import oriza_toolkit as oz
from oriza_toolkit.backends import asyncpg_private, pgread, pgwrite
from oriza_toolkit.backends.postgresql import PostgresBackend
from oriza_toolkit.frames import frame_from_arrow

from ..test_results import TYPED


def test_asyncpg_still_has_the_private_copy_it_uses() -> None:
    assert asyncpg_private.HAS_COPY_OUT, (
        f"asyncpg {asyncpg.__version__} no longer has Connection._copy_out(copy_stmt, output, timeout): "
        "reads fall back to copy_from_query; update backends/asyncpg_private.py and the bound in pyproject.toml")
    assert asyncpg_private.HAS_TRANSPORT and asyncpg_private.flies(), (
        f"asyncpg {asyncpg.__version__} no longer keeps Connection._transport and _protocol: a read described before "
        "cannot be one flight; update backends/asyncpg_private.py and the bound in pyproject.toml")
    assert asyncpg_private.HAS_CANCEL, (
        f"asyncpg {asyncpg.__version__} no longer has connect_utils._cancel(loop, addr, params, backend_pid, "
        "backend_secret) or Connection._addr/_params: a read interrupted while rows flow is closed without a cancel "
        "(the server runs on until its next write); update backends/asyncpg_private.py and the bound in pyproject.toml")


def test_reads_without_the_one_flight_are_the_same(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    flown = [pg.query(TYPED, {"n": 50}) for _ in range(2)][1]
    monkeypatch.setattr(asyncpg_private, "HAS_TRANSPORT", False)
    pd.testing.assert_frame_equal(pg.query(TYPED, {"n": 50}), flown)


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


def test_rows_reach_the_parser_whole_however_they_arrive() -> None:
    # A value split over many small network reads (a slow link) used to fail in pyarrow
    # ("straddling object straddles two block boundaries") once it spanned three reads.
    value = 'say "hi",\t\\\n' * 30_000
    escaped = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")  # as COPY writes it
    csv = ("1\t" + escaped + "\n2\t\\N\n3\t\n").encode()

    async def feed_slowly() -> list[Any]:
        pipe = pgread.Pipe(asyncio.get_running_loop())
        columns = [pgread.PgColumn("id", "int4"), pgread.PgColumn("t", "text")]
        parsed = asyncio.get_running_loop().run_in_executor(None, lambda: list(pgread._batches(pipe, columns)))
        for start in range(0, len(csv), 1000):
            await pipe.feed(csv[start:start + 1000])
            while pipe.buffered and not parsed.done():  # the parser takes each piece alone, as from a slow link
                await asyncio.sleep(0.0005)
        pipe.end()
        return await parsed

    batches = asyncio.run(feed_slowly())
    table = pa.Table.from_batches(batches)
    assert table.column(0).to_pylist() == [1, 2, 3]
    assert pgread.unescaped(table.column(1).combine_chunks()).to_pylist() == [value, None, ""]


@pytest.mark.parametrize(("expression", "expected"), [
    ("repeat('a\"b,' || chr(10), 20 << 20)", 'a"b,\n' * (20 << 20)),
    ("repeat('é', 50 << 20)", "é" * (50 << 20)),
])
def test_values_of_100_mb_read_exactly(pg: oz.Database, expression: str, expected: str) -> None:
    frame = pg.query(f"select {expression} as t, 1 as x")
    assert frame.t[0] == expected and frame.x[0] == 1
    streamed = [chunk.t[0] for chunk in pg.stream(f"select {expression} as t from generate_series(1, 2)", rows=1)]
    assert streamed == [expected, expected]


# Every character COPY's text format escapes, and text that looks like an escape.
ESCAPED = ["C:\\new\\table", "tab\there", "line\nbreak", "cr\rlf", "\b\f\v", "\x01\x1f\x7f", "\\N", "\\", "",
           "\\\\t", "ends in \\", 'say "hi", ok', "é\tü", "plain"]


def test_text_with_escapes_reads_exactly(pg: oz.Database) -> None:
    name = f"oz_escaped_{uuid.uuid4().hex[:8]}"
    kind = f"oz_labels_{uuid.uuid4().hex[:8]}"
    pg.write(pd.DataFrame({"i": range(len(ESCAPED)), "t": ESCAPED}), name)  # binary COPY: not the path read
    try:
        pg.execute(f"create type {kind} as enum ('C:\\x', E'a\\tb')")
        sql = f"select t from {name} order by i"
        assert pg.query(sql).t.tolist() == ESCAPED  # a small result
        assert pg.query_arrow(sql).column("t").to_pylist() == ESCAPED
        big = f"select t from {name}, generate_series(1, 3000) as g order by g, i"  # parsed in the read's thread
        assert pg.query(big).t.tolist() == ESCAPED * 3000
        assert [v for chunk in pg.stream(big, rows=7_000) for v in chunk.t] == ESCAPED * 3000
        nested = pg.query(f"select to_jsonb(t) as j, jsonb_build_object(t, t) as o, array[t, null] as a, "
                          f"row(t, i) as r from {name} order by i")
        assert nested.j.tolist() == ESCAPED and nested.o.tolist() == [{t: t} for t in ESCAPED]
        assert nested.a.tolist() == [[t, None] for t in ESCAPED]
        assert nested.r.tolist() == [{"f1": t, "f2": i} for i, t in enumerate(ESCAPED)]
        labels = pg.query(f"select v from (values ('C:\\x'::{kind}), (E'a\\tb'), ('C:\\x')) as t(v)").v
        assert labels.tolist() == ["C:\\x", "a\tb", "C:\\x"] and list(labels.cat.categories) == ["C:\\x", "a\tb"]
        assert pg.query("select decode('5c00095c4e0a', 'hex') as b").b[0] == b"\\\x00\t\\N\n"
    finally:
        pg.execute(f"drop table {name}")
        pg.execute(f"drop type if exists {kind}")


def test_json_integers_past_64_bits_stay_exact(pg: oz.Database) -> None:
    # orjson reads them as floats (12345678901234567890123 became 1.2345678901234568e+22).
    doc = {"id": 123456789012345678901234567890, "low": -9223372036854775809, "top": 18446744073709551615,
           "digits": "1234567890123456789012", "f": 0.1234567890123456789}
    sql = ("select ('{\"id\": 123456789012345678901234567890, \"low\": -9223372036854775809, "
           "\"top\": 18446744073709551615, \"digits\": \"1234567890123456789012\", "
           "\"f\": 0.1234567890123456789}')::jsonb as doc, array[18446744073709551616::numeric] as a")
    small = pg.query(sql)
    assert small.doc[0] == doc and type(small.doc[0]["id"]) is int and small.a[0] == [18446744073709551616]
    big = pg.query(f"select doc, a, g from ({sql}) as q, generate_series(1, 20000) as g")  # one JSON array per chunk
    assert big.doc.tolist() == [doc] * 20000 and big.a[19999] == [18446744073709551616]
    assert frame_from_arrow(pg.query_arrow(sql)).doc[0] == doc


def test_jsonb_and_bytea_of_100_mb_read_exactly(pg: oz.Database) -> None:
    frame = pg.query("select ('{\"k\": \"' || repeat('x', 100 << 20) || '\"}')::jsonb as j, "
                     "decode(repeat('00ff', 50 << 20), 'hex') as b")
    assert frame.j[0] == {"k": "x" * (100 << 20)}
    assert frame.b[0] == b"\x00\xff" * (50 << 20)
    table = pg.query_arrow("select decode(repeat('00ff', 50 << 20), 'hex') as b")
    assert table.column("b")[0].as_py() == b"\x00\xff" * (50 << 20)


def test_text_goes_into_char_and_varchar_columns_in_binary() -> None:
    rows = pgwrite.encode(pd.DataFrame({"c": ["a", None], "v": ["b", "c"]}))
    assert rows is not None
    for table_type in ("character(3)", "character varying(5)", "text"):
        assert pgwrite.for_table(rows, {"c": table_type, "v": table_type}) is not None, table_type


def test_char_columns_are_padded_and_too_long_values_refused(pg: oz.Database) -> None:
    pg.execute("create table oz_chars (c char(3))")
    try:
        pg.write(pd.DataFrame({"c": ["a", "abc", None]}), "oz_chars", if_exists="append")
        assert pg.query("select octet_length(c) as n from oz_chars order by c").n.tolist()[:2] == [3, 3]
        with pytest.raises(oz.WriteError, match=re.escape("column 'c' holds a value the table's character(3) cannot "
                                                          "hold (the frame's column is str): value too long for type "
                                                          "character(3)")):
            pg.write(pd.DataFrame({"c": ["abcd"]}), "oz_chars", if_exists="append")
    finally:
        pg.execute("drop table oz_chars")


def test_rows_without_columns_keep_their_count(pg: oz.Database) -> None:
    sql = "select from generate_series(1, 3)"
    frame = pg.query(sql)
    assert frame.shape == (3, 0) and not isinstance(frame, oz.RowsAffected)
    assert pg.query_arrow(sql).num_rows == 3
    assert [chunk.shape for chunk in pg.stream(sql)] == [(3, 0)]
    assert pg.query("select from generate_series(1, 0)").shape == (0, 0)
    table = f"oz_into_{uuid.uuid4().hex[:8]}"
    try:  # SELECT INTO and CREATE TABLE AS say "SELECT n" too, but their rows went into a table
        assert str(pg.query(f"select 1 as a into {table}")) == "1 row affected"
    finally:
        pg.execute(f"drop table if exists {table}")


SMALL_RESULTS = [
    "select 1 as x",
    "select v from (values (1::smallint), (null), (-32768)) as t(v)",
    "select v from (values (9223372036854775807::bigint), (null), (-1)) as t(v)",
    "select v from (values ('NaN'::float8), ('Infinity'), ('-Infinity'), (1e-300), (null), (-0.0)) as t(v)",
    "select v from (values (1.5::real), ('NaN'), (null)) as t(v)",
    "select v from (values ('plain'), (' spaced out '), ('ünï'), ('a,b'), ('say \"hi\"'), (''), ('\\N'), (null)) "
    "as t(v)",
    "select 12345678901234567890.5::numeric as n, 'NaN'::numeric as nan, 2::numeric as two",
    "select '{\"a\": [1, 2]}'::jsonb as j, array[1, 2] as a, '\\x00ff'::bytea as b, "
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u, '1 day'::interval as i",
    "select true as b, date '2024-02-29' as d, time '13:14:15' as t, timestamptz '2024-01-02 03:04:05+02' as ts",
    "select g, g * 1.5 as f, 'row ' || g as s from generate_series(1, 500) as g",
    "select from generate_series(1, 2)",
]


@pytest.mark.parametrize("sql", SMALL_RESULTS)
def test_small_results_skip_the_csv_reader_with_the_same_frame(pg: oz.Database, sql: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    quick = pg.query(sql)
    arrow_quick = pg.query_arrow(sql)
    monkeypatch.setattr(pgread, "QUICK_BYTES", 0)  # every result through pyarrow's CSV reader
    through_reader = pg.query(sql)
    pd.testing.assert_frame_equal(quick, through_reader)
    arrow_reader = pg.query_arrow(sql)
    assert arrow_quick.schema.remove_metadata() == arrow_reader.schema.remove_metadata()
    assert arrow_quick.num_rows == arrow_reader.num_rows
    pd.testing.assert_frame_equal(arrow_quick.to_pandas(), arrow_reader.to_pandas())  # NaN equal to NaN here


def test_quick_batch_takes_only_what_it_can_parse_exactly() -> None:
    ints = [pgread.PgColumn("n", "int4")]
    text = [pgread.PgColumn("s", "text")]
    assert pgread.quick_batch(b"1\n\\N\n-3\n", ints).column(0).to_pylist() == [1, None, -3]
    assert pgread.quick_batch(b'a,"b"\n\n', text).column(0).to_pylist() == ['a,"b"', ""]
    for escaped in (b"a\\tb\n", b"\\\\N\n", b"C:\\\\x\n"):  # a tab, the text \N, a backslash: the reader
        assert pgread.quick_batch(escaped, text) is None, escaped
    assert pgread.quick_batch(b"t\n", [pgread.PgColumn("b", "bool")]) is None  # t/f: the reader's own words
    assert pgread.quick_batch(b"x\n", ints) is None  # unparseable: the reader says why
    assert pgread.quick_batch(b"1\t2\n", ints) is None


def test_json_is_parsed_only_for_dataframes(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sql = "select g as id, jsonb_build_object('g', g) as doc from generate_series(1, 20000) as g"
    frame = pg.query(sql)
    parsed: list[int] = []
    real = pgread.json_values
    monkeypatch.setattr(pgread, "json_values", lambda texts: parsed.append(len(texts)) or real(texts))
    table = pg.query_arrow(sql)
    batches = list(pg.stream(sql, rows=5_000, arrow=True))
    assert not parsed  # arrow keeps JSON as text: parsing it would be wasted
    assert table.column("doc")[1].as_py() == '{"g": 2}' and pa.Table.from_batches(batches).equals(table)
    streamed = pd.concat(list(pg.stream(sql, rows=5_000)), ignore_index=True)
    pd.testing.assert_frame_equal(streamed, frame)
    assert frame.doc[1] == {"g": 2} and sum(parsed) == 20_000
    both = pg.query(sql, partition_on="id", partitions=3)  # chunks joined later: parsed, and text kept
    pd.testing.assert_frame_equal(both, frame)
