"""The SQLite backend's own decisions."""

from __future__ import annotations

import re
import threading
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

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


def test_decimals_are_stored_as_numbers_sqlite_keeps_exactly(sqlite_url: str, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    given = [Decimal("1.25"), None, Decimal("-42"), Decimal("-Infinity"), Decimal("0.123456789012345")]
    with oz.connect(sqlite_url) as db:
        db.write(pd.DataFrame({"d": given}), "amounts")
        assert db.describe("amounts").type.tolist() == ["NUMERIC"]
        plain = db.query("select d, typeof(d) as t from amounts")
        assert plain.t.tolist() == ["real", "null", "integer", "real", "real"]
        assert str(plain.d.dtype) == "float64" and plain.d[0] == 1.25 and plain.d[3] == float("-inf")
        # what the toolkit read (a decimal arrow column) writes back too
        db.write(pd.DataFrame({"d": pd.array([Decimal("2.5")], dtype=pd.ArrowDtype(pa.decimal128(3, 1)))}), "amounts",
                 if_exists="append")
        statement = sa.select(sa.column("d", sa.Numeric(30, 15))).select_from(sa.table("amounts"))
        as_floats = db.query(statement).d
        assert str(as_floats.dtype) == "float64" and as_floats.tolist()[2:4] == [-42.0, float("-inf")]
        monkeypatch.setattr(oz.settings, "numeric", "decimal")
        typed = db.query(statement)
        assert typed.d.tolist() == [Decimal("1.25"), None, Decimal("-42"), Decimal("-Infinity"),
                                    Decimal("0.123456789012345"), Decimal("2.5")]
        for value, reason in [(Decimal("NaN"), "Decimal('NaN'), which SQLite cannot store (it would become NULL)"),
                              (Decimal("0.1234567890123456"), "0.1234567890123456, more significant digits than "
                                                               "SQLite's numbers keep (15)")]:
            with pytest.raises(oz.WriteError, match=re.escape(f"writing table 'amounts' failed: column 'd' holds "
                                                              f"{reason}")):
                db.write(pd.DataFrame({"d": [Decimal(1), value]}), "amounts", if_exists="append")
        assert db.query("select count(*) as n from amounts").n[0] == 6


@pytest.mark.parametrize("name", ['say "hi"; drop', "a:b", "with space", "ünï", "select"])
def test_odd_table_names_are_quoted_exactly(sqlite_url: str, name: str) -> None:
    with oz.connect(sqlite_url) as db:
        db.write(pd.DataFrame({"n": [1, 2]}), name)
        db.write(pd.DataFrame({"n": [3]}), name, if_exists="append")
        assert name in db.tables()
        quoted = name.replace('"', '""')
        assert db.query(f'select sum(n) as s from "{quoted}"').s[0] == 6
