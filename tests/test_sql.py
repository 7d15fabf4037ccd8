"""The SQL lexer, and values reaching the server exactly as passed (hostile ones included)."""

from __future__ import annotations

import datetime as dt
import socket
import time
import traceback
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oriza_toolkit as oz
from oriza_toolkit._sql import parse, quote_literal


@pytest.mark.parametrize(("sql", "params"), [
    ("select ':a' as s, :a as v", ("a",)),
    ("select E'it\\'s :a' as s, :b as v", ("b",)),
    ("select $$ :a $$ || $tag$ :b $tag$ as s, :c as v", ("c",)),
    ('select 1 as ":a", :b as v', ("b",)),
    ("select 1 -- :a\n, :b as v", ("b",)),
    ("select /* :a /* nested :b */ :c */ :d as v", ("d",)),
    ("select :a::int, x::text, arr[1:2], :b", ("a", "b")),
    ("select 'x''y :a' as s, :b", ("b",)),
])
def test_parameters_are_found_only_outside_literals_and_comments(sql: str, params: tuple[str, ...]) -> None:
    assert parse(sql).params == params


def test_trailing_semicolon_and_comment() -> None:
    assert parse("select 1 as x ;  -- done\n").sql == "select 1 as x"


def test_quote_literal_doubles_quotes_and_refuses_nul() -> None:
    assert quote_literal("a'b\\c", '"pg_catalog"."text"') == "'a''b\\c'::\"pg_catalog\".\"text\""
    with pytest.raises(ValueError, match="NUL"):
        quote_literal("a\x00b", "text")


HOSTILE = ["", "'", "''", "\\", "\\'", "'; drop table x; --", "$$", "$tag$", ":a", "::int", "E'x'",
           "ünïcødé ✓ 😀", "\n\r\t", "x" * 100_000, "/*", "*/", "--", '"']


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_reach_the_server_unchanged(db: oz.Database, value: str) -> None:
    df = db.query("select :v as v, length(:v) as n", {"v": value})
    assert df.v[0] == value and df.n[0] == len(value)


def test_nul_is_refused_with_a_clear_error(pg: oz.Database) -> None:
    with pytest.raises(oz.QueryError, match="NUL"):
        pg.query("select :v as v", {"v": "a\x00b"})
    assert pg.query("select 1 as ok").ok[0] == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=5),
))
def test_the_server_sees_exactly_the_value_passed(pg: oz.Database, value: object) -> None:
    # The server compares the value as it arrived with a protocol-bound copy of itself.
    df = pg.query("select :v = :v as same, :v is not distinct from :v as equal, :v::text as text", {"v": value})
    assert df.equal[0]
    if isinstance(value, str):
        assert df.text[0] == value
    elif isinstance(value, bool):
        assert df.text[0] == str(value).lower()
    elif isinstance(value, int):
        assert int(df.text[0]) == value
    elif isinstance(value, float):
        assert float(df.text[0]) == value
    elif isinstance(value, Decimal):
        assert Decimal(df.text[0]) == value


def test_password_never_in_traceback_locals() -> None:
    for url in ["postgresql://bob:hunter2@h:abc/d", "postgresql://bob:hunter2@h:99999/d",
                "notascheme://bob:hunter2@", "mysql://bob:hunter2@h/d"]:
        with pytest.raises(oz.ConfigError) as caught:
            oz.connect(url)
        text = "".join(traceback.format_exception(caught.value))
        assert "hunter2" not in text
        toolkit = [frame for frame, _ in traceback.walk_tb(caught.value.__traceback__)
                   if "oriza_toolkit" in frame.f_code.co_filename]
        assert toolkit  # the error is raised inside the toolkit's connect ...
        for frame in toolkit:  # ... whose frames hold no trace of the password
            assert not any("hunter2" in repr(v) for v in frame.f_locals.values()), frame


def test_unencoded_at_in_password_stays_in_the_password() -> None:
    db = oz.connect("postgresql://bob:p@ss:w/rd@127.0.0.1:1/warehouse")
    try:
        assert db.url.password == "p@ss:w/rd" and db.url.host == "127.0.0.1"
        assert "ss:w" not in repr(db)
        with pytest.raises(oz.DatabaseConnectionError) as caught:
            db.query("select 1")
        assert "ss:w" not in str(caught.value) and "127.0.0.1:1/warehouse" in str(caught.value)
    finally:
        db.close()


def test_a_silent_server_fails_fast_and_says_so() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with oz.connect(f"postgresql://u:p@127.0.0.1:{port}/d?connect_timeout=1") as db, \
                pytest.raises(oz.DatabaseConnectionError, match="the server did not answer within 1 s"):
            db.query("select 1")


def test_dead_connections_leave_the_pool(pg_url: str) -> None:
    with oz.connect(pg_url, pool_pre_ping=False, pool_size=2) as db, oz.connect(pg_url) as admin:
        db.query_many({"a": "select 1 as x", "b": "select 2 as x"}, progress=False)
        admin.query("select pg_terminate_backend(pid) as t from pg_stat_activity "
                    "where application_name = 'oriza_toolkit' and pid <> pg_backend_pid() "
                    "and datname = current_database() and backend_type = 'client backend' and state = 'idle'")
        time.sleep(0.3)  # pg_terminate_backend only signals: let the backends exit
        outcomes: list[object] = []
        for _ in range(5):
            try:
                outcomes.append(db.query("select 1 as ok").ok[0])
            except oz.OrizaError as error:
                outcomes.append(str(error))
        failures = [o for o in outcomes if o != 1]
        assert all("connection to the server was lost" in str(o) for o in failures), outcomes
        assert outcomes.count(1) >= 3 and outcomes[-1] == 1, outcomes


def test_sqlite_timeout_interrupts_the_statement(sqlite_url: str) -> None:
    slow = ("with recursive c(x) as (select 1 union all select x + 1 from c where x < 100000000) "
            "select count(*) as n from c")
    with oz.connect(sqlite_url) as db:
        with pytest.raises(oz.QueryTimeoutError, match=r"timed out after 0\.3 s and was interrupted"):
            db.query(slow, timeout=0.3)
        assert db.query("select 1 as ok").ok[0] == 1


def test_decimals_are_written_as_numeric_the_next_append_fits(pg: oz.Database,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oz.settings, "numeric", "decimal")
    frame = pd.DataFrame({"d": [Decimal("1.25"), Decimal("-1234567.125"), None]})
    try:
        pg.write(frame, "oz_decimals", if_exists="replace")
        kind = pg.query("select data_type, numeric_precision, numeric_scale from information_schema.columns "
                        "where table_name = 'oz_decimals'")
        assert kind.data_type[0] == "numeric" and kind.iloc[0, 1:].isna().all()  # unconstrained: any value fits
        read = pg.query("select d from oz_decimals")
        wider = read.assign(d=read.d * 10**20 / 3)  # what a computation makes of it: more digits both sides
        pg.write(wider, "oz_decimals", if_exists="append")
        values = pg.query("select d from oz_decimals").d.tolist()
        assert values[:2] == [Decimal("1.25"), Decimal("-1234567.125")] and values[2] is None
        assert values[3:5] == [v for v in wider.d[:2]] and values[5] is None
    finally:
        pg.execute("drop table if exists oz_decimals")


def test_an_append_that_does_not_fit_names_the_column_and_both_types(pg: oz.Database) -> None:
    pg.execute("create table oz_narrow (d numeric(5, 2), s varchar(3))")
    try:
        for frame, column, given, table_type, reason in [
            (pd.DataFrame({"d": [12345.678], "s": ["a"]}), "d", "float64", "numeric(5,2)", "numeric field overflow"),
            (pd.DataFrame({"d": [Decimal("12345.6")], "s": ["a"]}), "d", "decimal objects", "numeric(5,2)",
             "numeric field overflow"),
            (pd.DataFrame({"d": [1.5], "s": ["abcd"]}), "s", "str", "character varying(3)", "value too long"),
        ]:
            with pytest.raises(oz.WriteError) as caught:
                pg.write(frame, "oz_narrow", if_exists="append")
            message = str(caught.value)
            assert message.startswith(f"writing table 'oz_narrow' failed: column {column!r} holds a value the "
                                      f"table's {table_type} cannot hold (the frame's column is {given}): {reason}")
            assert "\n" not in message
        assert pg.query("select count(*) as n from oz_narrow").n[0] == 0
    finally:
        pg.execute("drop table if exists oz_narrow")


def test_sqlite_refuses_text_in_an_integer_column(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        db.execute("create table counts (n integer)")
        with pytest.raises(oz.WriteError, match="column 'n' is INTEGER but the frame holds 'x'"):
            db.write(pd.DataFrame({"n": pd.Series(["x", "y"], dtype=object)}), "counts", if_exists="append")
        assert db.query("select count(*) as c from counts").c[0] == 0


def test_schemas_in_tables_and_describe(pg: oz.Database) -> None:
    pg.execute("create schema if not exists analytics")
    pg.execute("create table if not exists analytics.results (id int primary key, v text)")
    try:
        assert "results" in pg.tables(schema="analytics")
        described = pg.describe("analytics.results")
        assert described.column.tolist() == ["id", "v"] and described.primary_key.tolist() == [True, False]
    finally:
        pg.execute("drop schema analytics cascade")


def test_socket_urls_name_the_socket() -> None:
    for url in ("postgresql://me@/warehouse?host=/no/such/dir", "postgresql://me@%2Fno%2Fsuch%2Fdir/warehouse"):
        with oz.connect(url) as db, pytest.raises(oz.DatabaseConnectionError,
                                                  match=r"socket /no/such/dir/\.s\.PGSQL\.5432/warehouse"):
            db.query("select 1")


def test_psycopg_urls_mean_asyncpg_said_once() -> None:
    with pytest.warns(oz.OrizaWarning, match="oriza_toolkit connects to PostgreSQL with asyncpg"):
        url = oz.database_url("postgresql+psycopg2://me@db/warehouse")
    assert url.drivername == "postgresql+asyncpg"


def test_python_values_of_every_kind_bind(pg: oz.Database) -> None:
    import datetime as dt
    import uuid

    key = uuid.uuid4()
    df = pg.query("select :d as d, :j::json as j, :u as u, :t as t, :b as b, :l as l, :i as i",
                  {"d": {"a": [1, "x's"]}, "j": [1, 2], "u": key, "t": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                   "b": b"\x00'", "l": ["a", "b'"], "i": dt.timedelta(hours=1)})
    assert df.iloc[0].tolist() == [{"a": [1, "x's"]}, [1, 2], str(key), pd.Timestamp("2024-01-01", tz="UTC"),
                                   b"\x00'", ["a", "b'"], pd.Timedelta(hours=1)]


def test_execute_binds_a_dict_as_json(db: oz.Database, table: str) -> None:
    db.execute(f"create table {table} (j {'jsonb' if db.dialect == 'postgresql' else 'text'}, note text)")
    assert db.execute(f"insert into {table} values (:j, ':j stays')", {"j": {"a": [1, "it's"]}}) == 1
    row = db.query(f"select j, note from {table}").iloc[0].tolist()
    assert row[1] == ":j stays" and (row[0] == {"a": [1, "it's"]} or row[0] == '{"a": [1, "it\'s"]}')
