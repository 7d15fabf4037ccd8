"""The SQLite backend's own decisions."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

import oriza_toolkit as oz
from oriza_toolkit.backends.sqlite import SQLiteBackend


def test_a_write_transaction_takes_the_write_lock_at_once(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db, oz.connect(sqlite_url, connect_args={"timeout": 0.2}) as other:
        db.execute("create table t (x integer)")
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:
            with db.transaction() as tx:
                tx.query("select count(*) as n from t")  # only a read, yet the lock is held
                entered.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert entered.wait(10)
            with pytest.raises(oz.QueryError, match="database is locked"):
                other.execute("insert into t values (1)")
        finally:
            release.set()
            holder.join()
        assert other.execute("insert into t values (1)") == 1


def test_reads_whole_and_writes_json_as_json(sqlite_url: str) -> None:
    backend = SQLiteBackend()
    assert backend.partition_bounds("select 1 as g", "g") is None
    generic = {"doc": object()}
    assert backend.column_types(pd.DataFrame({"doc": [{"a": 1}]}), generic) is generic
    with oz.connect(sqlite_url) as db:
        db.write(pd.DataFrame({"doc": [{"a": 1}, [2]]}), "docs")
        assert db.describe("docs").type.tolist() == ["JSON"]


def test_a_timeout_says_the_statement_was_interrupted(sqlite_url: str) -> None:
    slow = "with recursive r(i) as (select 1 union all select i + 1 from r where i < 100000000) select count(*) from r"
    with oz.connect(sqlite_url) as db, pytest.raises(oz.QueryTimeoutError, match=r"timed out after 0\.3 s and was "
                                                                                  r"interrupted"):
        db.query(slow, timeout=0.3)
