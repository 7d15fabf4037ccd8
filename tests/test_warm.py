"""The connection a read leaves warm for the next (``warm.py``), on a real PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import event

import oriza_toolkit as oz
from oriza_toolkit import _loop, database, warm


@pytest.fixture
def small(pg_url: str) -> Iterator[oz.Database]:
    """A Database whose pool holds one connection, no overflow: a read that went to the pool
    while the warm one waits would wait for it (~0.5 s, or time out)."""
    db = oz.connect(pg_url, pool_size=1, max_overflow=0, pool_timeout=10)
    yield db
    db.close()


def _checkouts(db: oz.Database) -> list[int]:
    """A list that grows by one at each checkout from ``db``'s pool (after a first read)."""
    db.query("select 1 as x")
    counted: list[int] = []
    event.listen(db.engine.sync_engine.pool, "checkout", lambda *_: counted.append(1))
    return counted


def test_reads_in_a_row_check_out_once_and_give_it_back_when_idle(small: oz.Database) -> None:
    checkouts = _checkouts(small)
    pids = {int(small.query("select pg_backend_pid() as p").p[0]) for _ in range(20)}
    assert len(pids) == 1 and len(checkouts) == 0
    assert small.pool_status() == "0 in use of 1"  # waiting is not being used
    assert warm.held(small.engine) == 1
    deadline = time.monotonic() + warm.IDLE_SECONDS + 5
    while small.engine.pool.checkedout() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert small.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert small.query("select 1 as x").x[0] == 1 and len(checkouts) == 1


def test_a_batch_and_a_write_take_the_warm_connection(small: oz.Database) -> None:
    checkouts = _checkouts(small)
    frames = small.query_many({f"q{i}": f"select {i} as x" for i in range(5)}, progress=False)
    assert [frame.x[0] for frame in frames.values()] == list(range(5))
    small.execute("create temporary table warm_probe (x int)")  # a write's transaction, on the same one
    assert small.query("select count(*) as n from warm_probe").n[0] == 0
    assert len(checkouts) == 0


def test_a_failed_read_leaves_it_warm_a_transaction_left_open_does_not(small: oz.Database) -> None:
    checkouts = _checkouts(small)
    with pytest.raises(oz.QueryError, match="no_such_table"):
        small.query("select * from no_such_table")
    assert warm.held(small.engine) == 1
    small.query("begin")  # typed into a session: run as written, the transaction left open
    assert warm.held(small.engine) == 0 and small.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    small.query("rollback")  # from the pool again, and kept: it is idle now
    assert warm.held(small.engine) == 1 and len(checkouts) == 1


def test_a_warm_connection_the_server_closed_is_replaced(small: oz.Database, pg: oz.Database) -> None:
    pid = int(small.query("select pg_backend_pid() as p").p[0])
    assert pg.query("select pg_terminate_backend(:p) as gone", {"p": pid}).gone[0]
    time.sleep(0.3)  # the termination reaches the idle connection
    assert int(small.query("select pg_backend_pid() as p").p[0]) != pid
    assert small.pool_status() == "0 in use of 1"


def test_a_connection_is_kept_out_of_the_pool_for_a_few_seconds_at_most(
    small: oz.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warm, "HELD_SECONDS", 0.2)
    checkouts = _checkouts(small)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        small.query("select 1 as x")
    assert len(checkouts) >= 3  # back to the pool (its checks) every 0.2 s of continuous use


def test_closing_the_database_closes_the_warm_connection(pg_url: str, pg: oz.Database) -> None:
    db = oz.connect(pg_url)
    pid = int(db.query("select pg_backend_pid() as p").p[0])
    db.close()
    deadline = time.monotonic() + 5
    while pg.query("select count(*) as n from pg_stat_activity where pid = :p", {"p": pid}).n[0] and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert pg.query("select count(*) as n from pg_stat_activity where pid = :p", {"p": pid}).n[0] == 0


def test_sqlite_reads_are_unchanged(sqlite_url: str) -> None:
    db = oz.connect(sqlite_url)
    try:
        assert db.query("select 1 as x").x[0] == 1
        assert warm.held(db.engine) == 0  # aiosqlite says nothing of its transactions: never kept
    finally:
        db.close()


def test_a_snapshot_read_leaves_no_read_only_connection_warm(small: oz.Database, pg: oz.Database, pg_url: str) -> None:
    """A snapshot's reads run on pooled connections set to REPEATABLE READ, read-only (the
    pool's reset puts them back): such a connection goes back to the pool, not warm, and a
    write after it works."""
    table = f"oz_warm_{uuid.uuid4().hex[:8]}"
    pg.execute(f"create table {table} (x int)")
    try:
        db = oz.connect(pg_url, pool_size=2, max_overflow=0)
        try:
            with db.snapshot() as snap:
                assert len(snap.query(f"select * from {table}")) == 0
            db.execute(f"insert into {table} values (1)")
            frames = db.query_many({"a": f"select count(*) as n from {table}"}, consistent=True, progress=False)
            assert frames["a"].n[0] == 1
            db.execute(f"insert into {table} values (2)")
            assert db.query(f"select count(*) as n from {table}").n[0] == 2
        finally:
            db.close()
    finally:
        pg.execute(f"drop table {table}")


def test_a_connection_going_back_as_the_database_closes_is_closed(
    pg_url: str, pg: oz.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idle timer hands the warm connection back (an await or two) just as the Database
    is closed: the pool is disposed only once it is back, so it is closed, not returned to
    a pool nobody holds (open on the server until garbage collection, then a ResourceWarning)."""
    db = oz.connect(pg_url)
    pid = db.query("select pg_backend_pid() as p").p[0]  # now warm

    monkeypatch.setattr(warm, "IDLE_SECONDS", 0.0)

    async def expire_then_close() -> None:
        warm._expire(db.engine.sync_engine)  # idle long enough: on its way back to the pool
        await database._disposed(db.engine)

    _loop.run(expire_then_close())
    deadline = time.monotonic() + 5
    while pg.query("select count(*) as n from pg_stat_activity where pid = :p", {"p": pid}).n[0] and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert pg.query("select count(*) as n from pg_stat_activity where pid = :p", {"p": pid}).n[0] == 0
