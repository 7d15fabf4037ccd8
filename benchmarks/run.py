"""Side-by-side read benchmark: oriza_toolkit against the tools analysts would use instead.

Loads ``pgbench -i -s 10`` (1,000,000 rows in pgbench_accounts) and a 1,000,000-row table
mixing the common PostgreSQL types with ~5% NULLs, then reads each table whole into a
DataFrame with every tool, checks they agree, and prints the best of N runs and the ratio
to ``pandas.read_sql`` (SQLAlchemy + psycopg2).

Usage::

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/run.py [--repeat 3]     # throwaway cluster, or BENCH_DATABASE_URL
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
       CASE WHEN g % 20 = 2 THEN NULL ELSE g * 7 END AS num_int,
       CASE WHEN g % 20 = 3 THEN NULL ELSE g::bigint * 1000003 END AS big,
       CASE WHEN g % 20 = 4 THEN NULL ELSE round((g * 1.37)::numeric, 2) END AS amount,
       CASE WHEN g % 20 = 5 THEN NULL ELSE (g / 3.0)::real END AS ratio,
       CASE WHEN g % 20 = 6 THEN NULL ELSE g / 7.0::double precision END AS score,
       CASE WHEN g % 20 = 7 THEN NULL ELSE 'customer ' || g END AS name,
       CASE WHEN g % 20 = 8 THEN NULL ELSE ('code' || (g % 1000))::varchar(12) END AS code,
       CASE WHEN g % 20 = 9 THEN NULL ELSE g % 3 = 0 END AS flag,
       CASE WHEN g % 20 = 10 THEN NULL ELSE date '2020-01-01' + (g % 2000) END AS day,
       CASE WHEN g % 20 = 11 THEN NULL ELSE timestamp '2020-01-01' + g * interval '17 second' END AS at,
       CASE WHEN g % 20 = 12 THEN NULL ELSE timestamptz '2020-01-01 00:00+00' + g * interval '1 minute' END AS at_tz,
       CASE WHEN g % 20 = 13 THEN NULL ELSE md5(g::text)::uuid END AS uid
FROM generate_series(1, 1000000) AS g;
"""

TABLES = {"pgbench_accounts": "SELECT * FROM pgbench_accounts", "mixed": "SELECT * FROM mixed"}


def load(url: str) -> None:
    parts = make_url(url)
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    args = ["-h", parts.host or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    pgbench = str(find_bindir() / "pgbench")
    subprocess.run([pgbench, "-i", "-q", "-s", "10", *args, parts.database or ""], check=True, env=env,
                   capture_output=True)
    with oz.connect(url) as db:
        for statement in MIXED_TABLE.split(";"):
            if statement.strip():
                db.execute(statement)


def tools(url: str) -> dict[str, Callable[[str], pd.DataFrame]]:
    plain = make_url(url).set(drivername="postgresql")
    dsn = plain.render_as_string(hide_password=False)
    found: dict[str, Callable[[str], pd.DataFrame]] = {}
    db = oz.connect(url)
    found["oriza_toolkit"] = db.query
    sa_engine = create_engine(plain.set(drivername="postgresql+psycopg2"))
    found["pandas.read_sql (psycopg2)"] = lambda sql: pd.read_sql(sql, sa_engine)
    try:
        import connectorx as cx

        found["connectorx"] = lambda sql: cx.read_sql(dsn, sql, return_type="pandas")
    except ImportError:
        print("connectorx not installed: skipped", file=sys.stderr)
    try:
        import adbc_driver_postgresql.dbapi as adbc

        def read_adbc(sql: str) -> pd.DataFrame:
            with adbc.connect(dsn) as conn, conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table().to_pandas()

        found["adbc (postgresql)"] = read_adbc
    except ImportError:
        print("adbc-driver-postgresql not installed: skipped", file=sys.stderr)
    return found


def fingerprint(frame: pd.DataFrame) -> dict[str, object]:
    """What every tool must agree on: shape, NULLs per column, and sums of numeric columns."""
    out: dict[str, object] = {"rows": len(frame), "columns": list(frame.columns),
                              "nulls": frame.isna().sum().astype(int).tolist()}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
            out[f"sum:{name}"] = int(column.astype("float64").sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cluster = None
    url = os.environ.get("BENCH_DATABASE_URL")
    if not url:
        cluster = Cluster().start()
        url = cluster.url
    try:
        print("loading pgbench -s 10 and the mixed table ...", file=sys.stderr)
        load(url)
        readers = tools(url)
        rows: list[tuple[str, str, float, bool, float]] = []
        for table, sql in TABLES.items():
            measured: list[tuple[str, float, bool]] = []
            reference: dict[str, object] | None = None
            for tool, read in readers.items():
                best = float("inf")
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    frame = read(sql)
                    best = min(best, time.perf_counter() - start)
                prints = fingerprint(frame)
                if tool == "oriza_toolkit":
                    reference = prints
                    dtypes = ", ".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items())
                    print(f"{table} dtypes: {dtypes}", file=sys.stderr)
                agrees = _agree(reference, prints)
                measured.append((tool, best, agrees))
                print(f"{table:17} {tool:28} {best:7.2f} s  agrees={agrees}", file=sys.stderr)
            base = dict((tool, best) for tool, best, _ in measured)["pandas.read_sql (psycopg2)"]
            rows += [(table, tool, best, agrees, base / best) for tool, best, agrees in measured]
        print(f"\n| table | tool | best of {args.repeat} (s) | speed-up vs read_sql | same values |")
        print("|---|---|---:|---:|---|")
        for table, tool, seconds, agrees, ratio in rows:
            print(f"| {table} | {tool} | {seconds:.2f} | {ratio:.1f}x | {'yes' if agrees else 'NO'} |")
    finally:
        if cluster:
            cluster.stop()


def _agree(reference: dict[str, object] | None, other: dict[str, object]) -> bool:
    """Row count, column names and NULL counts match, and every integer sum present in both."""
    if reference is None:
        return True
    keys = {"rows", "columns", "nulls"} | (set(reference) & set(other))
    return all(reference[k] == other[k] for k in keys)


if __name__ == "__main__":
    main()
