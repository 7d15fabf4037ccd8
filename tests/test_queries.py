import asyncio
import os
import signal
import threading
import time
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, literal, select

import oriza_toolkit as oz

ACTIVE_SLEEPS = (
    "select count(*) as n from pg_stat_activity "
    "where query like '%pg_sleep(%' and query not like '%pg_stat_activity%' and state = 'active'"
)


def test_query_keeps_names_order_and_binds_values(db: oz.Database) -> None:
    df = db.query("select :a as zeta, :b as alpha, :a as zeta2", {"a": 7, "b": "it's; drop table x"})
    assert list(df.columns) == ["zeta", "alpha", "zeta2"]
    assert df.iloc[0].tolist() == [7, "it's; drop table x", 7]


def test_colons_in_literals_without_params_are_not_parameters(db: oz.Database) -> None:
    df = db.query("""select '{"a":1}' as doc, '12:30' as t""")
    assert df.iloc[0].tolist() == ['{"a":1}', "12:30"]


def test_postgres_cast_after_parameter(pg: oz.Database) -> None:
    assert pg.query("select :x::int + 1 as y", {"x": "41"}).y[0] == 42


def test_duplicate_column_names_survive(db: oz.Database) -> None:
    df = db.query("select 1 as x, 2 as x")
    assert list(df.columns) == ["x", "x"] and df.iloc[0].tolist() == [1, 2]


def test_empty_result_keeps_columns_and_types(pg: oz.Database) -> None:
    df = pg.query("select 1::int as a, 'x'::text as b, now() as c where false")
    assert list(df.columns) == ["a", "b", "c"] and len(df) == 0
    assert str(df.a.dtype) == "Int32" and str(df.c.dtype) == "datetime64[us, UTC]"


def test_empty_result_keeps_columns_sqlite(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        df = db.query("select 1 as a, 'x' as b where 0")
    assert list(df.columns) == ["a", "b"] and len(df) == 0


def test_core_statement(db: oz.Database) -> None:
    stmt = select(literal(5).label("five"), literal("v").label("v"))
    assert db.query(stmt).iloc[0].tolist() == [5, "v"]


def test_core_statement_with_bound_values_on_postgres(pg: oz.Database) -> None:
    series = func.generate_series(1, 10).table_valued("n").render_derived()
    df = pg.query(select(series.c.n).where(series.c.n > 7).order_by(series.c.n))
    assert df.n.tolist() == [8, 9, 10]


def test_list_parameter_is_an_array_on_postgres(pg: oz.Database) -> None:
    df = pg.query("select n from generate_series(1, 5) n where n = any(:ids) order by n", {"ids": [2, 4]})
    assert df.n.tolist() == [2, 4]


def test_large_parameterised_result_is_complete(pg: oz.Database) -> None:
    df = pg.query("select g, g::text as s from generate_series(1, :n) g", {"n": 100_000})
    assert len(df) == 100_000 and df.g.sum() == 100_000 * 100_001 // 2


def test_query_many_runs_concurrently_on_postgres(pg: oz.Database) -> None:
    start = time.perf_counter()
    frames = pg.query_many({f"q{i}": f"select pg_sleep(0.5)::text as s, {i} as i" for i in range(8)},
                           max_concurrency=8)
    elapsed = time.perf_counter() - start
    assert [frames[f"q{i}"].i[0] for i in range(8)] == list(range(8))
    assert elapsed < 2.0, f"8 x 0.5 s took {elapsed:.2f} s: queries did not overlap"


def test_query_many_default_concurrency_is_what_the_pool_can_give(pg_url: str) -> None:
    with oz.connect(pg_url, pool_size=2, max_overflow=2) as db:
        assert db.max_concurrency == 4
        start = time.perf_counter()
        db.query_many({f"q{i}": "select pg_sleep(0.4)::text as s" for i in range(8)})
        elapsed = time.perf_counter() - start
    assert 0.75 < elapsed < 2.0  # two waves of four: the pool's two and its overflow's two


def test_query_many_failure_names_the_query_and_keeps_the_rest(db: oz.Database) -> None:
    with pytest.raises(oz.BatchError) as caught:
        db.query_many({"good": "select 1 as a", "typo": "selec 1", "also_good": ("select :v as v", {"v": 3})})
    error = caught.value
    assert set(error.errors) == {"typo"} and "'typo'" in str(error)
    assert error.results["good"].a[0] == 1 and error.results["also_good"].v[0] == 3
    assert "\n" not in str(error)
    assert db.query("select 1 as ok").ok[0] == 1  # the pool is healthy


def test_query_many_errors_return(db: oz.Database) -> None:
    out = db.query_many({"ok": "select 1 as a", "bad": "select * from no_such_table"}, errors="return")
    assert isinstance(out["bad"], oz.QueryError) and out["bad"].name == "bad"
    assert out["ok"].a[0] == 1


def test_error_names_position_and_server_message(pg: oz.Database) -> None:
    with pytest.raises(oz.QueryError) as caught:
        pg.query("select id, nope from generate_series(1, 2) id")
    error = caught.value
    assert error.position == 12 and error.sqlstate == "42703"
    assert str(error) == ("query 'select id, nope from generate_series(...' failed: "  # the SQL's start names it
                          "column \"nope\" does not exist "
                          "(at character 12: 'nope from generate_serie')")
    assert error.__traceback__ is not None and "asyncpg" not in repr(error.__cause__)


def test_timeout_cancels_on_server(pg: oz.Database, pg_url: str) -> None:
    start = time.perf_counter()
    with pytest.raises(oz.QueryTimeoutError, match=r"timed out after 0\.3 s"):
        pg.query("select pg_sleep(20)::text", timeout=0.3)
    assert time.perf_counter() - start < 3
    with oz.connect(pg_url) as monitor:
        assert monitor.query(ACTIVE_SLEEPS).n[0] == 0
    assert pg.query("select 2 as x").x[0] == 2


def test_a_read_cancelled_after_its_rows_flowed_stops_on_the_server(pg: oz.Database, pg_url: str) -> None:
    # Its connection is closed (the server may be blocked sending); a server that had sent
    # its rows and computes on used to notice only at its next write: 30 s here.
    sql = "select repeat('x', 1000) as t from generate_series(1, 2000) union all select pg_sleep(30)::text"
    with pytest.raises(oz.QueryTimeoutError, match=r"timed out after 1 s and was cancelled on the server"):
        pg.query(sql, timeout=1)
    with oz.connect(pg_url) as monitor:
        deadline = time.monotonic() + 3
        while monitor.query(ACTIVE_SLEEPS).n[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.query(ACTIVE_SLEEPS).n[0] == 0
    assert pg.query("select 2 as x").x[0] == 2


def test_keyboard_interrupt_cancels_every_query_on_server(pg: oz.Database, pg_url: str) -> None:
    timer = threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        pg.query_many({f"s{i}": "select pg_sleep(30)::text" for i in range(4)})
    assert time.perf_counter() - start < 5
    with oz.connect(pg_url) as monitor:
        assert monitor.query(ACTIVE_SLEEPS).n[0] == 0
    assert pg.query_many({"a": "select 1 as a"})["a"].a[0] == 1


def test_connection_failure_names_host_and_database_not_password() -> None:
    with oz.connect("postgresql://analyst:hunter2@127.0.0.1:1/warehouse") as db, \
            pytest.raises(oz.DatabaseConnectionError) as caught:
        db.query("select 1")
    message = str(caught.value)
    assert "127.0.0.1:1/warehouse" in message and "hunter2" not in message
    assert "check that the server is running" in message
    assert "hunter2" not in caught.value.url


def test_wrong_password_is_clear(pg_url: str) -> None:
    bad = pg_url.replace(pg_url.split(":")[2].split("@")[0], "wrong-pw-123")
    with oz.connect(bad) as db, pytest.raises(oz.DatabaseConnectionError, match="password authentication failed"):
        db.query("select 1")


def test_execute_returns_rowcount_in_a_transaction(db: oz.Database, table: str) -> None:
    assert db.execute(f"create table {table} (x integer)") == 0
    assert db.execute(f"insert into {table} values (1), (2), (3)") == 3
    assert db.execute(f"delete from {table} where x > :m", {"m": 1}) == 2
    with pytest.raises(oz.QueryError, match=r"^query [\"']insert into (t_\w+|no_such_table) values \(.*[\"'] failed"):
        db.execute(f"insert into {table} values ('not a number')") if db.dialect == "postgresql" \
            else db.execute("insert into no_such_table values (1)")
    assert db.query(f"select count(*) as n from {table}").n[0] == 1


def test_awaitable_twins_share_the_pool(db_url: str) -> None:
    async def main() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        async with oz.connect(db_url) as db:
            one = await db.aquery("select 1 as x")
            many = await db.aquery_many({"a": "select 2 as x", "b": "select 3 as x"})
            blocking = db.query("select 4 as x")  # blocking call from inside a running loop works too
            assert blocking.x[0] == 4
            return one, many

    one, many = asyncio.run(main())
    assert one.x[0] == 1 and many["b"].x[0] == 3


def test_closed_database_says_so(db_url: str) -> None:
    db = oz.connect(db_url)
    db.close()
    with pytest.raises(oz.OrizaError, match="is closed"):
        db.query("select 1")
    assert "closed" in repr(db)


def test_query_with_a_statement_that_returns_no_rows_keeps_its_effect(db: oz.Database, table: str) -> None:
    db.execute(f"create table {table} (x integer)")
    assert db.query(f"insert into {table} values (1)").empty
    assert db.query(f"select count(*) as n from {table}").n[0] == 1


def test_a_script_checks_every_statements_parameters_before_running(db: oz.Database, table: str) -> None:
    db.execute(f"create table {table} (x integer)")
    with pytest.raises(ValueError, match=r"^query 'statement 2' uses :missing but params has no key 'missing'$"):
        db.run_script(f"insert into {table} values (1); select :missing as m", {"other": 1})
    assert db.query(f"select count(*) as n from {table}").n[0] == 0  # the insert did not run
    for empty in ("", "  -- only a note\n", ";"):
        with pytest.raises(ValueError, match=r"^the SQL is empty$"):
            db.run_script(empty)


def test_a_batch_outlives_connections_lost_midway(pg: oz.Database) -> None:
    # Each runner of a batch reads its queries in turn on one connection; one that dies
    # fails only its query, and the runner goes on with another connection.
    killer = "select pg_terminate_backend(pg_backend_pid()) as gone"
    batch: dict[str, Any] = {f"q{i}": ("select :i as i", {"i": i}) for i in range(30)}
    for i in (3, 4, 17):
        batch[f"q{i}"] = killer
    results = pg.query_many(batch, max_concurrency=2, errors="return", progress=False)
    lost = [name for name, result in results.items() if isinstance(result, oz.QueryError)]
    assert lost == ["q3", "q4", "q17"]
    assert all("connection to the server was lost" in str(results[name]) for name in lost)
    assert [int(r.i[0]) for name, r in results.items() if name not in lost] == [
        i for i in range(30) if i not in (3, 4, 17)]
    assert pg.query_many({"a": "select 1 as x", "b": "select 2 as x"}, progress=False)["b"].x[0] == 2


def test_a_transaction_begun_by_a_read_ends_with_it(pg_url: str, pg: oz.Database) -> None:
    """``begin`` run as written on a pooled connection is rolled back when the connection goes
    back: later reads on it neither see its old snapshot nor fail as aborted."""
    table = f"begun_{os.getpid()}_{threading.get_ident() % 10_000}"
    pg.execute(f"create table {table} (x int)")
    db = oz.connect(pg_url, pool_size=1, max_overflow=0)  # every read lands on the one connection
    try:
        db.query("begin isolation level repeatable read")
        assert db.query(f"select count(*) as n from {table}").n[0] == 0
        pg.execute(f"insert into {table} values (1)")
        assert db.query(f"select count(*) as n from {table}").n[0] == 1  # a fresh snapshot
        db.query("begin")
        with pytest.raises(oz.QueryError, match="division by zero"):
            db.query("select 1/0 as x")
        assert db.query("select 2 as x").x[0] == 2  # not "current transaction is aborted"
        assert db.pool_status() == "0 in use of 1"
    finally:
        db.close()
        pg.execute(f"drop table {table}")
