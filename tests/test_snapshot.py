"""One moment of the database for many reads at once (snapshot.py): batches and partitioned reads."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import oriza_toolkit as oz

from .conftest import ACCOUNTS, TOTAL, in_use


def _sums(db: oz.Database, table: str, consistent: bool) -> int:
    half = ACCOUNTS // 2
    frames = db.query_many({"low": f"select sum(balance) as s from {table} where id <= {half}",
                            "high": f"select sum(balance) as s from {table} where id > {half}"},
                           consistent=consistent, progress=False)
    return int(frames["low"].s[0] + frames["high"].s[0])


def test_a_consistent_batch_adds_up_under_a_concurrent_writer(pg: oz.Database, accounts: str) -> None:
    rounds = 15
    assert all(_sums(pg, accounts, consistent=True) == TOTAL for _ in range(rounds))
    # Without a snapshot the two sums see different moments (almost always, with this writer):
    # this is what the test would catch if the snapshot were not shared.
    broken = sum(_sums(pg, accounts, consistent=False) != TOTAL for _ in range(rounds))
    assert broken > 0
    assert in_use(pg) == 0  # the holder went back too


def test_a_partitioned_read_is_one_moment_under_a_concurrent_writer(pg: oz.Database, accounts: str) -> None:
    for _ in range(10):
        frame = pg.query(f"select * from {accounts}", partition_on="id", partitions=4)
        assert len(frame) == ACCOUNTS and int(frame.balance.sum()) == TOTAL


def test_a_partitioned_read_whose_rows_change_between_runs_is_refused(pg: oz.Database) -> None:
    sql = "select g from generate_series(1, 100000) as g where random() < 0.5"
    with pytest.raises(oz.QueryError, match=r"^query 'select g from generate_series\(1, 1000\.\.\.' failed: the "
                                            r"partitioned read returned [\d,]+ rows but the query has [\d,]+ rows: its "
                                            r"rows differ from one run to the next \(random\(\), now\(\)"):
        pg.query(sql, partition_on="g", partitions=3)
    assert pg.query("select 1 as x").x[0] == 1


def test_a_consistent_batch_keeps_failures_apart_and_releases_its_holder(pg: oz.Database) -> None:
    frames = pg.query_many({"ok": "select 1 as x", "bad": "select 1/0 as x"}, consistent=True, errors="return",
                           progress=False)
    assert frames["ok"].x[0] == 1 and "division by zero" in str(frames["bad"])
    assert in_use(pg) == 0


def test_consistent_needs_room_for_the_holder(pg_url: str) -> None:
    with (oz.connect(pg_url, pool_size=1, max_overflow=0) as small,
          pytest.raises(ValueError, match=r"^consistent=True needs a pool of at least 2 connections")):
        small.query_many({"a": "select 1"}, consistent=True)
    with oz.connect(pg_url, pool_size=2, max_overflow=0) as db:
        with pytest.raises(ValueError, match=r"max_concurrency=2 is more than this pool can give \(1: pool_size \+ "
                                             r"max_overflow, less the one holding the snapshot\)"):
            db.query_many({"a": "select 1"}, consistent=True, max_concurrency=2)
        assert db.query_many({"a": "select 1 as a", "b": "select 2 as b"}, consistent=True,
                             progress=False)["b"].b[0] == 2
        for _ in range(2):  # both pooled connections are back to read committed, writable
            state = db.query("select current_setting('transaction_isolation') as i, "
                             "current_setting('transaction_read_only') as r")
            assert state.iloc[0].tolist() == ["read committed", "off"]
        table = f"after_snapshot_{uuid.uuid4().hex[:8]}"
        db.execute(f"create table {table} (x integer)")
        db.execute(f"drop table {table}")


def test_a_snapshot_whose_holder_was_killed_is_one_line(pg: oz.Database, pg_url: str) -> None:
    settings = {"server_settings": {"idle_in_transaction_session_timeout": "300"}}
    with oz.connect(pg_url, connect_args=settings) as db:
        sleepy = "select pg_sleep(0.8) is null as slept"  # the holder sits idle in its transaction meanwhile
        frames = db.query_many({"first": sleepy, "late": ("select pg_sleep(:s) is null as x", {"s": 0.0})},
                               consistent=True, errors="return", progress=False, max_concurrency=1)
        late = frames["late"]
        assert isinstance(late, oz.QueryError), late
        assert "the snapshot is gone: its holder ended (its `with db.snapshot()` block closed, or " \
               "idle_in_transaction_session_timeout ended it)" in str(late)
        assert db.query("select 1 as x").x[0] == 1


def test_sqlite_batches_are_consistent_too(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        db.execute("create table t (x integer)")
        db.execute("insert into t values (1), (2)")
        frames = db.query_many({"n": "select count(*) as n from t", "s": "select sum(x) as s from t"},
                               consistent=True, progress=False)
        assert frames["n"].n[0] == 2 and frames["s"].s[0] == 3
        db.execute("insert into t values (3)")  # the snapshot's transaction ended: writes go on
        assert db.query("select count(*) as n from t").n[0] == 3


def test_a_refused_parameter_leaves_no_transaction_open_on_its_connection(pg_url: str) -> None:
    """asyncpg's prepare leaves the server in a transaction until the next statement: a value
    refused after it must not send the connection back to the pool inside it (the next
    consistent batch's BEGIN ISOLATION LEVEL would fail there)."""
    with oz.connect(pg_url, pool_size=2, max_overflow=0) as db:
        for _ in range(2):  # both pooled connections
            with pytest.raises(oz.QueryError, match="cannot contain NUL characters"):
                db.query("select :t::text as t", {"t": "a\x00b"})
        frames = db.query_many({"a": "select 1 as a", "b": "select 2 as b"}, consistent=True, progress=False,
                               max_concurrency=1)
        assert frames["b"].b[0] == 2
        parts = db.partitions("select g from generate_series(1, 10) as g", partition_on="g", partitions=2)
        assert sum(part.rows for part in parts) == 10
        assert db.query_many({"a": "select 1 as a"}, consistent=True, progress=False, max_concurrency=1)["a"].a[0] == 1


def test_a_held_snapshot_for_later_reads(pg: oz.Database, pg_url: str, accounts: str) -> None:
    async def later_reads() -> tuple[int, int]:
        async with pg.snapshot() as snap:
            first = await snap.aquery(f"select sum(balance) as s from {accounts} where id <= {ACCOUNTS // 2}")
            await asyncio.sleep(0.2)  # the writer moves money meanwhile
            second = await snap.aquery(f"select sum(balance) as s from {accounts} where id > {ACCOUNTS // 2}")
        return int(first.s[0]), int(second.s[0])

    for _ in range(3):
        low, high = asyncio.run(later_reads())
        assert low + high == TOTAL
    snap = pg.snapshot().open()
    password = oz.database_url(pg_url).password
    assert snap.id and password and password not in repr(snap) and "***" in repr(snap)
    snap.close()
    assert snap.closed and "(closed)" in repr(snap)
    with pytest.raises(oz.QueryError, match=r"^query 'select 1' failed: the snapshot is closed; read in its `with` "):
        snap.query("select 1")
    assert in_use(pg) == 0
