"""Past one machine (cluster.py): to_dask on a real distributed cluster of two worker
processes, snapshots held across calls, and the per-range statements of db.partitions."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import time
import uuid
from collections.abc import Iterator

import asyncpg
import cloudpickle
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster, wait

import oriza_toolkit as oz
from oriza_toolkit import cluster

from .conftest import ACCOUNTS, TOTAL, in_use

# The environment variable the workers find the URL in (they inherit it when they start).
URL_ENV = "DATABASE_URL_OZ_DASK_TEST"


@pytest.fixture(scope="module")
def client(pg_url: str) -> Iterator[Client]:
    """Two worker processes, as a user's ``LocalCluster`` or a real cluster would run tasks."""
    os.environ[URL_ENV] = pg_url
    try:
        with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                          silence_logs=40) as cluster, Client(cluster) as client:
            yield client
    finally:
        del os.environ[URL_ENV]


@pytest.fixture(scope="module")
def events(pg_url: str) -> Iterator[str]:
    """Every kind of value, NULL ids among them, and a skewed value column."""
    name = f"events_{uuid.uuid4().hex[:8]}"
    with oz.connect(pg_url) as db:
        db.execute(f"""create table {name} as select
            case when g % 997 = 0 then null else g end as id,
            case when g % 10 = 0 then g * 1000 else g % 1000 end as skewed,
            case g % 5 when 0 then 'NaN'::float8 when 1 then 'Infinity'::float8 else g / 3.0 end as x,
            (g / 7.0)::numeric(12, 4) as amount,
            case when g % 3 = 0 then null else 'name ' || g || ', "quoted"' end as name,
            timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' as at,
            case when g % 4 = 0 then null else jsonb_build_object('g', g) end as doc,
            g % 2 = 0 as even
            from generate_series(1, 30000) g""")
        try:
            yield name
        finally:
            db.execute(f"drop table {name}")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["at"]).reset_index(drop=True)


def test_to_dask_equals_the_query_on_worker_processes(client: Client, pg_url: str, events: str) -> None:
    with oz.connect(pg_url) as db:
        expected = db.query(f"select * from {events}")
        ddf = db.to_dask(f"select * from {events}", partition_on="id", partitions=4)
        assert ddf.npartitions == 4 and not ddf.known_divisions  # NULL ids: the first partition holds them
        got = ddf.compute().reset_index()[expected.columns]
        pd.testing.assert_frame_equal(_sorted(got), _sorted(expected))  # values and dtypes, JSON dicts too
        assert (ddf.dtypes == expected.drop(columns="id").dtypes).all()  # the meta is the toolkit's dtypes

        plain = db.to_dask(f"select * from {events} where id is not null", partition_on="at", partitions=3,
                           index=False)
        assert not plain.known_divisions
        got = plain.compute()
        pd.testing.assert_frame_equal(_sorted(got), _sorted(db.query(f"select * from {events} where id is not null")))


def test_divisions_are_the_edges_and_follow_skewed_data(client: Client, pg_url: str, events: str) -> None:
    with oz.connect(pg_url) as db:
        sql = f"select skewed, x from {events} where skewed is not null"
        ddf = db.to_dask(sql, partition_on="skewed", partitions=5)
        assert ddf.known_divisions and list(ddf.divisions) == sorted(ddf.divisions)
        assert ddf.divisions[0] == 1 and ddf.divisions[-1] == 30_000_000
        sizes = ddf.map_partitions(len).compute().tolist()
        assert sum(sizes) == 30_000 and max(sizes) <= 2 * 30_000 / len(sizes)  # 90% of rows in 0.003% of the range
        for number, part in enumerate(ddf.partitions):  # each partition within its divisions, sorted
            index = part.compute().index
            assert index.is_monotonic_increasing
            assert ddf.divisions[number] <= index.min() and index.max() <= ddf.divisions[number + 1]
        window = ddf.loc[501:599].compute()
        assert window.index.min() == 501 and window.index.max() == 599
        assert len(window) == len(db.query(f"{sql} and skewed between 501 and 599"))
        even = db.to_dask(sql, partition_on="skewed", partitions=5, edges="even")
        assert max(even.map_partitions(len).compute()) > 20_000  # what the quantile edges avoid


def test_the_task_graph_holds_no_password(client: Client, pg_url: str, events: str) -> None:
    password = oz.database_url(pg_url).password
    assert password
    with oz.connect(pg_url) as db:
        ddf = db.to_dask(f"select id, x from {events} where id < :n", {"n": 5000}, partition_on="id", partitions=3)
        graph = cloudpickle.dumps(dict(ddf.__dask_graph__()))
        assert password.encode() not in graph and URL_ENV.encode() in graph
        assert len(ddf.compute()) == len(db.query(f"select id from {events} where id < 5000"))


def test_a_worker_without_the_url_says_so(client: Client, sqlite_url: str, pg_url: str) -> None:
    elsewhere = pg_url.replace("postgresql+asyncpg://", "postgres://")  # the same server, not in the environment
    with oz.connect(elsewhere + ("&" if "?" in elsewhere else "?") + "application_name=elsewhere") as db:
        ddf = db.to_dask("select g from generate_series(1, 100) g", partition_on="g", partitions=2)
        with pytest.raises(oz.ConfigError, match=r"^this Dask worker cannot reach postgresql\+asyncpg://.*:\*\*\*@.*: "
                                                 r"its password is never put in the task graph; set the URL in "
                                                 r"DATABASE_URL \(or DATABASE_URL_<NAME>\)"):
            ddf.compute()
        with pytest.raises(oz.ConfigError, match=r"^url_env='OZ_NOT_SET' is not set; it must hold this Database's URL"):
            db.to_dask("select 1 as g", partition_on="g", partitions=2, url_env="OZ_NOT_SET")


def test_to_dask_is_one_moment_under_a_concurrent_writer(client: Client, pg_url: str, accounts: str) -> None:
    with oz.connect(pg_url) as db:
        for _ in range(8):  # each a new graph, each its own snapshot
            ddf = db.to_dask(f"select * from {accounts}", partition_on="id", partitions=4)
            assert int(ddf.balance.sum().compute()) == TOTAL
        with db.snapshot() as snap:  # one snapshot for several graphs and the notebook's own reads
            total = int(snap.query(f"select sum(balance) as s from {accounts}").s[0])
            ddf = db.to_dask(f"select * from {accounts}", partition_on="id", partitions=4, snapshot=snap)
            first_half = ddf.loc[: ACCOUNTS // 2].balance.sum()
            second_half = ddf.loc[ACCOUNTS // 2 + 1 :].balance.sum()
            time.sleep(0.2)  # the writer moves on meanwhile
            assert total == TOTAL == int(first_half.compute()) + int(second_half.compute())


def test_a_task_after_its_snapshot_closed_is_one_line(client: Client, pg_url: str, events: str) -> None:
    with oz.connect(pg_url) as db:
        with db.snapshot() as snap:
            ddf = db.to_dask(f"select id from {events}", partition_on="id", partitions=2, snapshot=snap)
        with pytest.raises(oz.QueryError, match=r"^query 'partition \d of 2' failed: the snapshot is gone: its holder "
                                                r"ended \(its `with db.snapshot\(\)` block closed"):
            ddf.compute()
        with pytest.raises(oz.QueryError, match="the snapshot is closed; plan the read inside its `with` block"):
            db.to_dask(f"select id from {events}", partition_on="id", partitions=2, snapshot=snap)
        with pytest.raises(oz.QueryError, match="the snapshot is closed; read in its `with` block"):
            snap.query("select 1")
        assert in_use(db) == 0


def _holders(db: oz.Database) -> int:
    return int(db.query("select count(*) as n from pg_stat_activity where state = 'idle in transaction' "
                        "and query = 'SELECT pg_export_snapshot()'").n[0])


def test_a_persisted_graph_reads_its_snapshot_after_the_graph_is_gone(client: Client, pg_url: str,
                                                                      accounts: str) -> None:
    with oz.connect(pg_url) as db:
        kept = db.to_dask(f"select * from {accounts}", partition_on="id", partitions=4).persist()
        gc.collect()  # the graph that owned the snapshot is gone; its tasks may not have run yet
        wait(kept)
        assert int(kept.balance.sum().compute()) == TOTAL


def test_a_graph_holds_its_snapshot_until_it_is_dropped(pg_url: str, events: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "OWNED_SNAPSHOT_GRACE_SECONDS", 0.2)
    with oz.connect(pg_url) as db:
        before = _holders(db)
        ddf = db.to_dask(f"select id from {events}", partition_on="id", partitions=2)
        assert _holders(db) == before + 1
        assert len(ddf.compute(scheduler="threads")) == 30_000  # a local scheduler: the Database itself reads
        plain = db.to_dask(f"select id from {events}", partition_on="id", partitions=2, consistent=False)
        assert _holders(db) == before + 1 and len(plain.compute(scheduler="sync")) == 30_000
        del ddf
        gc.collect()
        deadline = time.monotonic() + 10
        while _holders(db) > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _holders(db) == before


def test_rows_that_change_between_runs_fail_their_partition(pg_url: str) -> None:
    with oz.connect(pg_url) as db:
        ddf = db.to_dask("select g from generate_series(1, 100000) as g where random() < 0.5", partition_on="g",
                         partitions=3)
        with pytest.raises(oz.QueryError, match=r"^query 'partition \d of 3' failed: read [\d,]+ rows but its range "
                                                r"held [\d,]+ rows when the read was planned: its rows differ from "
                                                r"one run to the next"):
            ddf.compute(scheduler="sync")


def test_to_dask_refuses_what_it_cannot_do(pg_url: str, sqlite_url: str) -> None:
    with oz.connect(pg_url) as db:
        with pytest.raises(oz.QueryError, match=r"partition_on='nope' is not a column of the query's result"):
            db.to_dask("select 1 as g", partition_on="nope", partitions=2)
        with pytest.raises(ValueError, match=r"^query uses the parameter name :_oz_c0; names starting with _oz_ are "
                                             "reserved for partitioned reads$"):
            db.to_dask("select :_oz_c0 as g", {"_oz_c0": 1}, partition_on="g", partitions=2)
        with pytest.raises(TypeError, match=r"index must be True or False, not 'yes'"):
            db.to_dask("select 1 as g", partition_on="g", partitions=2, index="yes")  # type: ignore[arg-type]
        with oz.connect(sqlite_url) as other, other.snapshot() as snap, \
                pytest.raises(ValueError, match="snapshot= was taken on another Database"):
            db.to_dask("select 1 as g", partition_on="g", partitions=2, snapshot=snap)
        oz.settings.numeric = "decimal"
        try:
            with pytest.raises(ValueError, match=r"settings.numeric='decimal' does not reach Dask workers"):
                db.to_dask("select 1 as g", partition_on="g", partitions=2)
        finally:
            oz.settings.numeric = "float"
        assert in_use(db) == 0


def test_sqlite_gives_one_partition(client: Client, sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        db.write(pd.DataFrame({"id": np.arange(100), "v": np.arange(100) * 0.5}), "t")
        ddf = db.to_dask("select * from t", partition_on="id", partitions=4)
        assert ddf.npartitions == 1
        pd.testing.assert_frame_equal(ddf.compute().reset_index(), db.query("select * from t"))
        db.execute("insert into t values (100, 50.0)")  # no snapshot left holding the file
        with db.snapshot() as snap, pytest.raises(ValueError, match=r"^this database's snapshots cannot be shared"):
            db.to_dask("select * from t", partition_on="id", partitions=4, snapshot=snap)


def test_partitions_for_other_engines(pg_url: str, events: str) -> None:
    with oz.connect(pg_url) as db:
        sql = f"select id, name from {events} where name <> :name or name is null"
        parts = db.partitions(sql, {"name": "it's; 'not' :here"}, partition_on="id", partitions=4)
        assert len(parts) == 4 and parts[0].low is None and parts[-1].high is None
        assert [p.high for p in parts[:-1]] == [p.low for p in parts[1:]]
        expected = db.query(sql, {"name": "it's; 'not' :here"})
        assert sum(p.rows for p in parts) == len(expected)
        read = []
        for part in parts:  # the literal SQL, as Spark would send it, reads the same rows
            assert part.literal_sql is not None and "it''s; ''not'' :here" in part.literal_sql
            frame = db.query(part.literal_sql)
            assert len(frame) == part.rows == len(db.query(part.sql, part.params))
            read.append(frame)
        pd.testing.assert_frame_equal(pd.concat(read).sort_values(["id", "name"]).reset_index(drop=True),
                                      expected.sort_values(["id", "name"]).reset_index(drop=True))
        assert pickle.loads(pickle.dumps(parts)) == parts


def test_graphs_dropped_in_a_row_never_starve_the_pool(pg_url: str, events: str) -> None:
    """Each graph's snapshot outlives it for a while (for persisted tasks): held outside the
    pool, re-running a to_dask cell again and again leaves the pool free."""
    with oz.connect(pg_url, pool_size=2, max_overflow=0, pool_timeout=3) as db:
        before = _holders(db)
        for _ in range(6):
            ddf = db.to_dask(f"select id from {events} where id < 1000", partition_on="id", partitions=2)
            assert len(ddf.compute(scheduler="sync")) == 998
            del ddf
        gc.collect()
        assert in_use(db) == 0
        assert _holders(db) == before + 6  # still held, for their grace
        assert db.query("select 1 as x").x[0] == 1
    with oz.connect(pg_url) as other:
        deadline = time.monotonic() + 10
        while _holders(other) > before and time.monotonic() < deadline:  # closing the Database let them go
            time.sleep(0.05)
        assert _holders(other) == before


def _running(db: oz.Database, table: str) -> int:
    return int(db.query("select count(*) as n from pg_stat_activity where state = 'active' and query like :m "
                        "and pid <> pg_backend_pid()", {"m": f"%{table}%"}).n[0])


def test_a_cancelled_compute_stops_its_queries_on_the_server(client: Client, pg_url: str) -> None:
    """Dask cannot stop a running task; the toolkit's read on the worker sees the task
    cancelled (distributed's worker state, behind _private.dask_task_stopped) and cancels
    its query on the server, as a Ctrl-C on a cell does."""
    table = f"oz_cancel_{uuid.uuid4().hex[:8]}"
    with oz.connect(pg_url) as db:
        db.execute(f"create table {table} as select g from generate_series(1, 1000) as g")
        try:
            ddf = db.to_dask(f"select * from {table}", partition_on="g", partitions=2)

            async def lock() -> asyncpg.Connection:  # the reads wait behind it, as behind a long query
                conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
                await conn.execute(f"begin; lock table {table} in access exclusive mode")
                return conn

            loop = asyncio.new_event_loop()
            locker = loop.run_until_complete(lock())
            try:
                future = client.compute(ddf)
                deadline = time.monotonic() + 30
                while _running(db, table) < 2 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert _running(db, table) == 2  # both partitions' reads wait on the server
                future.cancel()
                deadline = time.monotonic() + 10
                while _running(db, table) and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert _running(db, table) == 0
            finally:
                loop.run_until_complete(locker.close())
                loop.close()
        finally:
            db.execute(f"drop table {table}")


def test_distributed_internals_the_cancel_relies_on(client: Client) -> None:
    """Fails loudly when distributed moves what _private.dask_task_stopped reads."""
    from oriza_toolkit._private import dask_task_stopped

    def probe() -> tuple[bool, bool]:
        stopped = dask_task_stopped()
        return stopped is not None, bool(stopped and stopped())

    assert client.submit(probe, pure=False).result() == (True, False)
    assert dask_task_stopped() is None  # not in a worker's task
