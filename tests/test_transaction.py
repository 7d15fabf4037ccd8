"""db.transaction() / db.atransaction(): statements, reads and writes, all or nothing."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

import oriza_toolkit as oz


def test_a_block_commits_everything_together(db: oz.Database, table: str) -> None:
    with db.transaction() as tx:
        tx.write(pd.DataFrame({"id": [1, 2]}), table)
        assert tx.execute(f"insert into {table} (id) values (:i)", {"i": 3}) == 1
        assert tx.query(f"select count(*) as n from {table}").n[0] == 3  # sees its own rows
    assert sorted(db.query(f"select id from {table}").id.tolist()) == [1, 2, 3]


def test_an_error_rolls_everything_back(db: oz.Database, table: str) -> None:
    db.write(pd.DataFrame({"id": [1]}), table)
    with pytest.raises(RuntimeError, match="changed my mind"), db.transaction() as tx:
        tx.query(f"select count(*) as n from {table}")  # a read first: the transaction has begun all the same
        tx.execute(f"delete from {table}")
        tx.write(pd.DataFrame({"id": [7, 8]}), table, if_exists="append")
        tx.write(pd.DataFrame({"x": [1]}), f"{table}_new")
        raise RuntimeError("changed my mind")
    assert db.query(f"select id from {table}").id.tolist() == [1]
    assert f"{table}_new" not in db.tables()


def test_a_failed_statement_is_one_line_and_rolls_back(db: oz.Database, table: str) -> None:
    db.write(pd.DataFrame({"id": [1]}), table)
    failed = r"^query 'insert into no_such values \(1\)' failed: .*no_such"
    with pytest.raises(oz.QueryError, match=failed), db.transaction() as tx:
        tx.execute(f"delete from {table}")
        tx.execute("insert into no_such values (1)")
    assert db.query(f"select count(*) as n from {table}").n[0] == 1
    assert db.query("select 1 as x").x[0] == 1  # the pool is healthy


def test_the_handle_is_closed_after_the_block(db: oz.Database) -> None:
    with db.transaction() as tx:
        tx.query("select 1 as x")
    with pytest.raises(oz.OrizaError, match=r"this transaction has ended; open a new one with db\.transaction\(\)"):
        tx.query("select 1 as x")


def test_async_block(db: oz.Database, table: str) -> None:
    async def work() -> None:
        async with db.atransaction() as tx:
            await tx.awrite(pd.DataFrame({"id": [1, 2]}), table)
            await tx.aexecute(f"delete from {table} where id = :i", {"i": 1})
        with pytest.raises(ZeroDivisionError):
            async with db.atransaction() as tx:
                await tx.aexecute(f"delete from {table}")
                1 / 0  # noqa: B018

    asyncio.run(work())
    assert db.query(f"select id from {table}").id.tolist() == [2]


def test_replace_rows_replaces_parents_and_children(db: oz.Database, table: str) -> None:
    child = f"{table}_child"
    db.execute(f"create table {table} (id integer primary key)")
    db.execute(f"create table {child} (id integer primary key, parent integer references {table} (id))")
    try:
        db.write(pd.DataFrame({"id": [1, 2]}), table, if_exists="append")
        db.write(pd.DataFrame({"id": [10], "parent": [1]}), child, if_exists="append")
        with db.transaction() as tx:
            written = tx.replace_rows({table: pd.DataFrame({"id": [3]}),
                                       child: pd.DataFrame({"id": [11, 12], "parent": [3, 3]})}, progress=False)
        assert written == {table: 1, child: 2}
        assert db.query(f"select id from {table}").id.tolist() == [3]
        assert sorted(db.query(f"select id from {child}").id.tolist()) == [11, 12]
        with pytest.raises(oz.WriteError), db.transaction() as tx:  # a child whose parent is not there
            tx.replace_rows({table: pd.DataFrame({"id": [4]}), child: pd.DataFrame({"id": [13], "parent": [9]})},
                            progress=False)
        assert db.query(f"select id from {table}").id.tolist() == [3]
    finally:
        db.execute(f"drop table if exists {child}")


def test_arguments_are_checked_where_called(db: oz.Database) -> None:
    with db.transaction() as tx:
        with pytest.raises(TypeError, match="write takes a pandas DataFrame, not list"):
            tx.write([1], "t")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="replace_rows takes a mapping of table names to DataFrames"):
            tx.replace_rows({})
