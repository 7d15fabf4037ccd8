"""Side-by-side benchmarks: oriza_toolkit against the tools analysts would use instead.

One run loads ``pgbench -i -s 10`` (1,000,000 rows in pgbench_accounts) and a
1,000,000-row ``mixed`` table (ten common types, a jsonb column, ~5% NULLs) into a
throwaway PostgreSQL (or ``BENCH_DATABASE_URL``), then measures, interleaving the tools
round by round and reporting the median and range:

- whole-table reads into a DataFrame (toolkit, toolkit with 2 partitions, pandas.read_sql,
  connectorx with 1 and 2 partitions, ADBC, polars), checked to agree, with each tool's
  peak memory measured in a fresh process;
- small queries (``select 1``, one row with a parameter) against asyncpg ``fetch`` +
  DataFrame and read_sql, and ``select 1`` again through a proxy adding about 1 ms per
  round trip (``delay_proxy.py``; ``--only delay``); a parameterised 1M-row read against
  the literal one;
- 1,000 small parameterised queries in one ``query_many`` against asyncpg gather over a pool
  of the same size, and pandas.read_sql in a loop;
- 8 concurrent ``pg_sleep(0.5)`` through ``query_many`` against asyncpg gather;
- writes of both frames against ``to_sql`` and ``adbc_ingest``;
- 20,000,000 narrow rows to Parquet (peak memory, fresh process);
- SQLite (the embedded default): 1M rows read and written against pandas on sqlite3;
- 10,000,000 rows into a Dask DataFrame on two worker processes, persisted: to_dask against
  dask's read_sql_query and connectorx reading the same ranges as tasks, with peak memory
  per worker (``--only dask`` runs just this; ``--only reads`` the two whole-table reads,
  ``--only small`` and ``--only delay`` the small queries).

Usage::

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/run.py [--repeat 5]   # throwaway cluster, or BENCH_DATABASE_URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import oriza_toolkit as oz
from tests.pgcluster import Cluster, find_bindir

MIXED_TABLE = """
DROP TABLE IF EXISTS mixed;
CREATE TABLE mixed AS
SELECT g AS id,
       CASE WHEN g % 20 = 1 THEN NULL ELSE (g % 30000)::smallint END AS small,
       CASE WHEN g % 20 = 3 THEN NULL ELSE g::bigint * 1000003 END AS big,
       CASE WHEN g % 20 = 4 THEN NULL ELSE round((g * 1.37)::numeric, 2) END AS amount,
       CASE WHEN g % 20 = 6 THEN NULL ELSE g / 7.0::double precision END AS score,
       CASE WHEN g % 20 = 7 THEN NULL ELSE 'customer ' || g END AS name,
       CASE WHEN g % 20 = 9 THEN NULL ELSE g % 3 = 0 END AS flag,
       CASE WHEN g % 20 = 10 THEN NULL ELSE date '2020-01-01' + (g % 2000) END AS day,
       CASE WHEN g % 20 = 12 THEN NULL ELSE timestamptz '2020-01-01 00:00+00' + g * interval '1 minute' END AS at_tz,
       CASE WHEN g % 20 = 13 THEN NULL ELSE md5(g::text)::uuid END AS uid,
       CASE WHEN g % 20 = 14 THEN NULL
            ELSE jsonb_build_object('n', g, 'tag', 'k' || (g % 50), 'ok', g % 2 = 0) END AS doc
FROM generate_series(1, 1000000) AS g;
"""
TABLES = {"pgbench_accounts": "SELECT * FROM pgbench_accounts", "mixed": "SELECT * FROM mixed"}
KEYS = {"pgbench_accounts": "aid", "mixed": "id"}


def load(url: str, mixed: bool = True) -> None:
    parts = make_url(url)
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    args = ["-h", parts.host or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    subprocess.run([str(find_bindir() / "pgbench"), "-i", "-q", "-s", "10", *args, parts.database or ""], check=True,
                   env=env, capture_output=True)
    if not mixed:
        return
    with oz.connect(url) as db:
        for statement in MIXED_TABLE.split(";"):
            if statement.strip():
                db.execute(statement)
        db.run_script("VACUUM ANALYZE mixed")  # outside a transaction


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def readers(url: str, table: str) -> dict[str, Callable[[str], Any]]:
    """Each tool's way to read a whole query into a pandas DataFrame."""
    plain = dsn(url)
    found: dict[str, Callable[[str], Any]] = {}
    db = oz.connect(url)
    found["oriza_toolkit"] = db.query
    found["oriza_toolkit (2 partitions)"] = lambda sql: db.query(sql, partition_on=KEYS[table], partitions=2)
    engine = create_engine(make_url(plain).set(drivername="postgresql+psycopg2"))
    found["pandas.read_sql (psycopg2)"] = lambda sql: pd.read_sql(sql, engine)
    try:
        import connectorx as cx

        found["connectorx"] = lambda sql: cx.read_sql(plain, sql, return_type="pandas")
        found["connectorx (2 partitions)"] = lambda sql: cx.read_sql(plain, sql, return_type="pandas",
                                                                     partition_on=KEYS[table], partition_num=2)
    except ImportError:
        print("connectorx not installed: skipped", file=sys.stderr)
    try:
        import adbc_driver_postgresql.dbapi as adbc

        def read_adbc(sql: str) -> pd.DataFrame:
            with adbc.connect(plain) as conn, conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table().to_pandas()

        found["adbc (postgresql)"] = read_adbc
    except ImportError:
        print("adbc-driver-postgresql not installed: skipped", file=sys.stderr)
    try:
        import polars as pl

        found["polars (adbc) -> pandas"] = lambda sql: pl.read_database_uri(sql, plain, engine="adbc").to_pandas()
    except ImportError:
        print("polars not installed: skipped", file=sys.stderr)
    return found


def interleaved(tools: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Seconds per call of each tool, the tools taking turns round by round."""
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, call in tools.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def summary(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.3f} ({min(seconds):.3f}-{max(seconds):.3f})"


def table_rows(title: str, times: dict[str, list[float]], unit: float = 1.0, extra: dict[str, str] | None = None
               ) -> list[str]:
    peers = [statistics.median(v) for k, v in times.items() if not k.startswith("oriza")]
    fastest_peer = min(peers) if peers else statistics.median(next(iter(times.values())))
    against = "vs fastest peer" if peers else "vs the first"
    lines = [f"\n### {title}\n", f"| tool | median (range) | {against} |" + (" peak RSS |" if extra else ""),
             "|---|---:|---:|" + ("---:|" if extra else "")]
    for name, values in times.items():
        scaled = [v * unit for v in values]
        ratio = statistics.median(values) / fastest_peer
        bold = "**" if name.startswith("oriza") else ""
        lines.append(f"| {bold}{name}{bold} | {summary(scaled)} | {ratio:.2f}x |"
                     + (f" {extra.get(name, '')} |" if extra else ""))
    return lines


def fingerprint(frame: pd.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {"rows": len(frame), "columns": list(frame.columns),
                              "nulls": frame.isna().sum().astype(int).tolist()}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
            out[f"sum:{name}"] = int(column.astype("float64").sum())
    return out


def peak_memory(url: str, tool: str, table: str) -> str:
    """Peak RSS of a fresh process that reads ``table`` with ``tool`` (baseline subtracted)."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from benchmarks.run import readers, TABLES, high_water_mb
read = readers({url!r}, {table!r})[{tool!r}]
frame = read(TABLES[{table!r}])
print(high_water_mb())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if done.returncode:
        return "failed"
    return f"{float(done.stdout.split()[-1]):.0f} MB"


def high_water_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    process that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_high_water() -> None:
    """Forget this process's peak resident memory (VmHWM) after dropping what it held."""
    import gc

    gc.collect()
    Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")


def binary_floor(url: str, sql: str, repeat: int) -> list[float]:
    """Seconds for psql to COPY the query out in binary to /dev/null: the server's own cost."""
    parts = make_url(url)
    psql = str(find_bindir() / "psql")
    command = [psql, "-X", "-q", "-h", parts.host or "127.0.0.1", "-p", str(parts.port or 5432),
               "-U", parts.username or "postgres", "-d", parts.database or "",
               "-c", f"\\copy ({sql}) to '/dev/null' with (format binary)"]
    env = {**os.environ, "PGPASSWORD": parts.password or "", "PGSSLMODE": parts.query.get("sslmode", "prefer")}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def small_queries(url: str, repeat: int, kinds: tuple[str, ...] = ("select 1", "1 row, 1 parameter"), n: int = 200
                  ) -> dict[str, list[float]]:
    import asyncpg

    db = oz.connect(url)
    engine = create_engine(make_url(dsn(url)).set(drivername="postgresql+psycopg2"))
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(dsn(url)))

    def many(call: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n):
                call()
        return run

    def raw(sql: str, *args: Any) -> pd.DataFrame:
        records = loop.run_until_complete(conn.fetch(sql, *args))
        return pd.DataFrame([tuple(r) for r in records], columns=list(records[0].keys()))

    tools = {
        "oriza_toolkit: select 1": many(lambda: db.query("select 1 as x")),
        "asyncpg fetch + DataFrame: select 1": many(lambda: raw("select 1 as x")),
        "pandas.read_sql: select 1": many(lambda: pd.read_sql("select 1 as x", engine)),
        "oriza_toolkit: 1 row, 1 parameter": many(
            lambda: db.query("select * from pgbench_accounts where aid = :a", {"a": 42})),
        "asyncpg fetch + DataFrame: 1 row, 1 parameter": many(
            lambda: raw("select * from pgbench_accounts where aid = $1", 42)),
        "pandas.read_sql: 1 row, 1 parameter": many(
            lambda: pd.read_sql("select * from pgbench_accounts where aid = %(a)s", engine, params={"a": 42})),
    }
    times = interleaved({name: call for name, call in tools.items() if name.endswith(kinds)}, repeat)
    loop.run_until_complete(conn.close())
    return {k: [v / n for v in values] for k, values in times.items()}


def delayed_small_queries(url: str, repeat: int, delay_ms: float = 0.5) -> dict[str, list[float]]:
    """``select 1`` one by one through a proxy that holds every chunk ``delay_ms`` in each
    direction (``delay_proxy.py``), against asyncpg fetch +
    DataFrame, whose cached statement is one round trip: the row shows what a round trip
    costs there and how many the toolkit's small read takes. Seconds per query."""
    import socket

    parts = make_url(url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = subprocess.Popen([sys.executable, str(Path(__file__).with_name("delay_proxy.py")), str(port),
                              parts.host or "127.0.0.1", str(parts.port or 5432), str(delay_ms)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None and proxy.stdout.readline().strip() == "ready"
        return small_queries(parts.set(host="127.0.0.1", port=port).render_as_string(hide_password=False), repeat,
                             kinds=("select 1",), n=50)
    finally:
        proxy.terminate()
        proxy.wait()


def small_batch(url: str, repeat: int, n: int = 1_000) -> dict[str, list[float]]:
    """``n`` small parameterised queries at once: query_many against asyncpg gather over a
    pool of the same size (made once, as the toolkit's is), and pandas.read_sql in a loop."""
    import asyncpg

    db = oz.connect(url)
    engine = create_engine(make_url(dsn(url)).set(drivername="postgresql+psycopg2"))
    sql = "select aid, abalance from pgbench_accounts where aid = "
    batch = {f"q{i}": (sql + ":a", {"a": i * 997 % 1_000_000 + 1}) for i in range(n)}
    db.query_many(batch, progress=False)  # the toolkit's pool filled, as asyncpg's is below
    loop = asyncio.new_event_loop()

    async def make_pool() -> Any:
        return await asyncpg.create_pool(dsn(url), min_size=db.max_concurrency, max_size=db.max_concurrency)

    pool = loop.run_until_complete(make_pool())

    async def gather() -> None:
        async def one(aid: int) -> pd.DataFrame:
            records = await pool.fetch(sql + "$1", aid)
            return pd.DataFrame([tuple(r) for r in records], columns=["aid", "abalance"])
        await asyncio.gather(*(one(params["a"]) for _, params in batch.values()))

    def read_sql_loop() -> None:
        for _, params in batch.values():
            pd.read_sql(sql + "%(a)s", engine, params=params)

    try:
        return interleaved({
            f"oriza_toolkit query_many ({n} queries, pool of {db.max_concurrency})": lambda: db.query_many(
                batch, progress=False),
            "asyncpg gather (same pool size) + DataFrame": lambda: loop.run_until_complete(gather()),
            "pandas.read_sql in a loop": read_sql_loop,
        }, repeat)
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


def parameterised(url: str, repeat: int) -> dict[str, list[float]]:
    db = oz.connect(url)
    return interleaved({
        "oriza_toolkit, literal (aid > 1000)": lambda: db.query("select * from pgbench_accounts where aid > 1000"),
        "oriza_toolkit, parameter (aid > :a)": lambda: db.query("select * from pgbench_accounts where aid > :a",
                                                                {"a": 1000}),
    }, repeat)


def concurrency(url: str, repeat: int) -> dict[str, list[float]]:
    import asyncpg

    db = oz.connect(url)

    async def gather() -> None:
        conns = [await asyncpg.connect(dsn(url)) for _ in range(8)]
        await asyncio.gather(*(c.fetch("select pg_sleep(0.5)") for c in conns))
        await asyncio.gather(*(c.close() for c in conns))

    return interleaved({
        "oriza_toolkit query_many (default concurrency)": lambda: db.query_many(
            {f"q{i}": "select pg_sleep(0.5)" for i in range(8)}, progress=False),
        "asyncpg gather (8 connections)": lambda: asyncio.run(gather()),
    }, repeat)


def writes(url: str, repeat: int) -> list[str]:
    db = oz.connect(url)
    plain = dsn(url)
    engine = create_engine(make_url(plain).set(drivername="postgresql+psycopg2"))
    lines = []
    for table, sql in TABLES.items():
        frame = db.query(sql)
        if table == "mixed":  # what to_sql and ADBC can write: jsonb as text, decimals as float
            peers_frame = frame.assign(doc=frame.doc.map(json.dumps, na_action="ignore"),
                                       amount=frame.amount.astype("float64"))
        else:
            peers_frame = frame

        def adbc_ingest(target: str, peers_frame: pd.DataFrame = peers_frame) -> None:
            import adbc_driver_postgresql.dbapi as adbc

            with adbc.connect(plain) as conn, conn.cursor() as cur:
                cur.adbc_ingest(target, peers_frame, mode="replace")
                conn.commit()

        tools = {
            "oriza_toolkit write": lambda frame=frame: db.write(frame, "w_toolkit", if_exists="replace"),
            "oriza_toolkit write, the peers' frame": lambda peers_frame=peers_frame: db.write(
                peers_frame, "w_toolkit_peers", if_exists="replace"),
            "adbc_ingest": lambda: adbc_ingest("w_adbc"),
        }
        times = interleaved(tools, repeat)
        # a minute or more per call: measured once
        times["pandas.to_sql (psycopg2, method='multi'), one run"] = interleaved({"": lambda peers_frame=peers_frame: (
            peers_frame.to_sql("w_pandas", engine, if_exists="replace", index=False, method="multi",
                               chunksize=10_000))}, 1)[""]
        lines += table_rows(f"Write {table} (1,000,000 rows), seconds", times)
        back = db.query("select * from w_toolkit order by 1")
        exact = back.sort_values(back.columns[0], ignore_index=True).equals(
            frame.sort_values(frame.columns[0], ignore_index=True))
        lines.append(f"\nToolkit write read back equal to the frame written: {exact}")
    return lines


def parquet_memory(url: str, rows: int) -> str:
    code = f"""
import sys, tempfile, os
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import oriza_toolkit as oz
db = oz.connect({url!r})
target = os.path.join(tempfile.mkdtemp(), "narrow.parquet")
import time; start = time.perf_counter()
n = db.to_parquet("select g as id, g % 1000 as k, g * 0.5 as v from generate_series(1, {rows}) as g", target)
from benchmarks.run import high_water_mb
print(n, high_water_mb(), time.perf_counter() - start, os.path.getsize(target))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if done.returncode:
        return f"failed: {done.stderr[-300:]}"
    n, peak, seconds, size = done.stdout.split()
    return (f"{int(n):,} rows to Parquet in {float(seconds):.1f} s, peak RSS {float(peak):.0f} MB "
            f"(file {int(size) / 2**20:.0f} MB)")


def sqlite(repeat: int) -> list[str]:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "bench.db")
    n = 1_000_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.arange(n), "x": rng.random(n),
                          "name": pd.Series(np.arange(n)).astype(str) + " customer", "k": rng.integers(0, 1000, n)})
    plain = sqlite3.connect(path)
    frame.to_sql("t", plain, index=False)
    plain.commit()
    db = oz.connect(f"sqlite+aiosqlite:///{path}")
    reads = interleaved({"oriza_toolkit query": lambda: db.query("select * from t"),
                         "pandas.read_sql (sqlite3)": lambda: pd.read_sql("select * from t", plain)}, repeat)

    def pandas_write() -> None:
        frame.to_sql("w2", plain, index=False, if_exists="replace")
        plain.commit()

    written = interleaved({"oriza_toolkit write": lambda: db.write(frame, "w1", if_exists="replace"),
                           "pandas.to_sql (sqlite3)": pandas_write}, repeat)
    return (table_rows("SQLite: read 1,000,000 rows, seconds", reads)
            + table_rows("SQLite: write 1,000,000 rows, seconds", written))


DASK_TABLE = """
DROP TABLE IF EXISTS events;
CREATE TABLE events AS
SELECT g AS id, (g % 1000)::int AS kind, g / 3.0::double precision AS score, 'event ' || (g % 100000) AS name,
       timestamptz '2020-01-01 00:00+00' + g * interval '1 second' AS at
FROM generate_series(1, {rows}) AS g;
"""


def dask_reads(url: str, repeat: int, rows: int, workers: int, partitions: int = 8) -> list[str]:
    """``rows`` rows into a Dask DataFrame kept on ``workers`` worker processes (``.persist()``):
    to_dask against dask's read_sql_query and connectorx reading the same ranges as tasks;
    seconds, and each tool's peak memory per worker (the peak reset before each run)."""
    import dask.dataframe as dd
    import sqlalchemy as sa
    from distributed import Client, LocalCluster, wait

    with oz.connect(url) as db:
        missing = db.query("select to_regclass('events') is null as missing").missing[0]
        if missing or db.query("select count(*) as n from events").n[0] != rows:
            for statement in DASK_TABLE.format(rows=rows).split(";"):
                if statement.strip():
                    db.execute(statement)
            db.run_script("VACUUM ANALYZE events")
    plain = dsn(url)
    os.environ["DATABASE_URL"] = url  # the workers find the URL here; the task graph holds no password
    events = sa.table("events", *(sa.column(c) for c in ("id", "kind", "score", "name", "at")))
    db = oz.connect(url)

    def toolkit() -> Any:
        return db.to_dask("select * from events", partition_on="id", partitions=partitions)

    def read_sql_query() -> Any:
        return dd.read_sql_query(sa.select(events), plain.replace("postgresql://", "postgresql+psycopg2://"),
                                 index_col="id", npartitions=partitions)

    def connectorx_ranges() -> Any:
        import connectorx as cx

        parts = db.partitions("select * from events", partition_on="id", partitions=partitions, edges="even")
        return dd.from_map(lambda sql: cx.read_sql(plain, sql, return_type="pandas"),
                           [part.literal_sql for part in parts])

    tools: dict[str, Callable[[], Any]] = {"oriza_toolkit to_dask": toolkit,
                                           "dask read_sql_query (psycopg2)": read_sql_query}
    try:
        import connectorx  # noqa: F401

        tools["connectorx per range (from_map)"] = connectorx_ranges
    except ImportError:
        print("connectorx not installed: skipped", file=sys.stderr)
    times: dict[str, list[float]] = {name: [] for name in tools}
    memory: dict[str, list[float]] = {name: [] for name in tools}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        for _ in range(repeat):
            for name, build in tools.items():
                client.run(reset_high_water)
                start = time.perf_counter()
                frame = build().persist()
                wait(frame)
                times[name].append(time.perf_counter() - start)
                assert len(frame) == rows, (name, len(frame))
                memory[name].append(max(client.run(high_water_mb).values()))
                del frame
                while any(client.has_what().values()):  # the workers have let the partitions go
                    time.sleep(0.05)
    db.close()
    return table_rows(f"{rows:,} rows into Dask: {workers} worker process{'es' if workers > 1 else ''} and the "
                      f"server on {os.cpu_count()} cores ({partitions} partitions, persisted), seconds",
                      times, extra={name: f"{statistics.median(v):.0f} MB" for name, v in memory.items()})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--parquet-rows", type=int, default=20_000_000)
    parser.add_argument("--dask-rows", type=int, default=10_000_000)
    parser.add_argument("--only", choices=["dask", "delay", "reads", "small"], help="run only this section")
    args = parser.parse_args()
    cluster = None
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        cluster = Cluster().start()
        url = cluster.url
    lines = [f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, pandas {pd.__version__}; "
             f"medians of {args.repeat} interleaved runs"]
    try:
        if args.only == "delay":
            lines += table_rows("select 1 through a proxy adding ~1 ms per round trip, milliseconds per query",
                                delayed_small_queries(url, args.repeat), unit=1000)
            print("\n".join(lines))
            return
        if args.only == "small":
            load(url, mixed=False)
            lines += _small_rows(url, args.repeat)
            print("\n".join(lines))
            return
        if args.only == "dask":
            for workers in (1, 2):
                lines += dask_reads(url, args.repeat, args.dask_rows, workers)
            print("\n".join(lines))
            return
        print("loading pgbench -s 10 and the mixed table ...", file=sys.stderr)
        load(url)
        lines += _read_rows(url, args.repeat)
        if args.only == "reads":
            print("\n".join(lines))
            return
        lines += _small_rows(url, args.repeat)
        lines += table_rows("Parameterised 1M-row read vs the literal one, seconds", parameterised(url, args.repeat))
        lines += table_rows("8 x pg_sleep(0.5) at once, seconds", concurrency(url, args.repeat))
        lines += writes(url, args.repeat)
        lines.append("\n### Streaming to Parquet\n\n" + parquet_memory(url, args.parquet_rows))
        lines += sqlite(args.repeat)
        for workers in (1, 2):
            lines += dask_reads(url, min(args.repeat, 3), args.dask_rows, workers)
    finally:
        if args.only is None:  # what was measured, even if a later section failed
            print("\n".join(lines))
        if cluster:
            cluster.stop()


def _read_rows(url: str, repeat: int) -> list[str]:
    lines: list[str] = []
    for table, sql in TABLES.items():
        tools = readers(url, table)
        reference = fingerprint(tools["oriza_toolkit"](sql))
        agree = {name: _agree(reference, fingerprint(read(sql))) for name, read in tools.items()}
        times = interleaved({name: lambda read=read, sql=sql: read(sql) for name, read in tools.items()}, repeat)
        memory = {name: peak_memory(url, name, table) for name in tools}
        lines += table_rows(f"Read {table} whole (1,000,000 rows), seconds", times, extra=memory)
        lines.append("\nSame values as the toolkit: " + ", ".join(f"{k}: {'yes' if v else 'NO'}"
                                                                for k, v in agree.items()))
        floor = statistics.median(binary_floor(url, sql, repeat))
        best = min(statistics.median(times["oriza_toolkit"]), statistics.median(times["oriza_toolkit (2 partitions)"]))
        lines.append(f"\nFloor: `psql \\copy ({sql}) to /dev/null (format binary)` {floor:.3f} s; the "
                     f"toolkit's best is {best / floor:.2f}x the floor.")
        print("\n".join(lines[-12:]), file=sys.stderr)
    return lines


def _small_rows(url: str, repeat: int) -> list[str]:
    lines = []
    small = small_queries(url, repeat)
    for kind in ("select 1", "1 row, 1 parameter"):
        lines += table_rows(f"Small queries: {kind}, milliseconds per query",
                            {k: v for k, v in small.items() if k.endswith(kind)}, unit=1000)
    lines += table_rows("1,000 small parameterised queries at once, seconds", small_batch(url, repeat))
    lines += table_rows("select 1 through a proxy adding ~1 ms per round trip, milliseconds per query",
                        delayed_small_queries(url, repeat), unit=1000)
    return lines


def _agree(reference: dict[str, object], other: dict[str, object]) -> bool:
    keys = {"rows", "columns", "nulls"} | (set(reference) & set(other))
    return all(reference[k] == other[k] for k in keys)


if __name__ == "__main__":
    main()
