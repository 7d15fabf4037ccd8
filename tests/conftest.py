"""Fixtures: a real PostgreSQL (TEST_DATABASE_URL, else a throwaway cluster) and SQLite."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from IPython.core.interactiveshell import InteractiveShell
from sqlalchemy.engine import make_url

import oriza_toolkit as oz
from oriza_toolkit import connections, warm

from .pgcluster import Bouncer, Cluster, Standby, have_pgbouncer

# A typed table every server scenario reads: on the primary, replicated to the standby,
# granted to the read-only role.
TYPED_ROWS = 200_000
TYPED_TABLE = "oz_typed"
READER_PASSWORD = "reader-pw-Q9"
# The accounts fixture's table: ACCOUNTS rows whose balances always sum to TOTAL.
ACCOUNTS = 20_000
TOTAL = ACCOUNTS * 1_000


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster | None]:
    """The throwaway primary (None when TEST_DATABASE_URL names a server)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    primary = Cluster().start()
    try:
        yield primary
    finally:
        primary.stop()


@pytest.fixture(scope="session")
def pg_url(cluster: Cluster | None) -> str:
    """URL of a PostgreSQL server for the whole run."""
    return cluster.url if cluster else os.environ["TEST_DATABASE_URL"]


@pytest.fixture(scope="session")
def servers(cluster: Cluster | None, pg_url: str) -> Iterator[dict[str, str]]:
    """The URL a newcomer would paste for each set-up analysts have: the primary, its hot
    standby, pgbouncer in transaction mode, TLS with sslmode=verify-full, and a role with
    TEMP revoked and default_transaction_read_only on. Only the primary with TEST_DATABASE_URL."""
    with oz.connect(pg_url) as db:
        db.execute(f"drop table if exists {TYPED_TABLE}")
        db.execute(f"create table {TYPED_TABLE} as select g as id, 'name ' || g as name, (g / 7.0)::numeric(12, 4) "
                   "as amount, g % 3 = 0 as flag, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' "
                   f"as at, date '2024-01-01' + g % 365 as day from generate_series(1, {TYPED_ROWS}) g")
    urls = {"primary": pg_url}
    if cluster is None:
        yield urls
        return
    cluster.sql("drop role if exists reader", f"create role reader login password '{READER_PASSWORD}'",
                "alter role reader set default_transaction_read_only = on",
                f"revoke temporary on database {cluster.database} from public",
                f"grant select on {TYPED_TABLE} to reader")
    urls["readonly"] = f"postgresql://reader:{READER_PASSWORD}@127.0.0.1:{cluster.port}/{cluster.database}"
    if cluster.ca_file:
        urls["tls"] = (f"postgresql://{cluster.user}:{cluster.password}@localhost:{cluster.port}/{cluster.database}"
                       f"?sslmode=verify-full&sslrootcert={cluster.ca_file}")
    standby = Standby(cluster).start()
    urls["standby"] = standby.url
    bouncer = Bouncer(cluster).start() if have_pgbouncer() else None
    if bouncer:
        urls["pgbouncer"] = bouncer.url
    try:
        yield urls
    finally:
        if bouncer:
            bouncer.stop()
        standby.stop()


@pytest.fixture(scope="session")
def scratch_database(pg_url: str) -> Iterator[Callable[[], str]]:
    """Make an empty PostgreSQL database of the test's own (dropped after the run); returns its URL."""
    made: list[str] = []

    def make() -> str:
        name = f"oz_scratch_{uuid.uuid4().hex[:12]}"
        with oz.connect(pg_url, isolation_level="AUTOCOMMIT") as db:
            db.execute(f"create database {name}")
        made.append(name)
        return make_url(pg_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with oz.connect(pg_url, isolation_level="AUTOCOMMIT") as db:
        for name in made:
            db.execute(f"drop database if exists {name} with (force)")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on PostgreSQL and once on the embedded SQLite."""
    name = "pg_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def db(db_url: str) -> Iterator[oz.Database]:
    with oz.connect(db_url) as database:
        yield database


@pytest.fixture
def pg(pg_url: str) -> Iterator[oz.Database]:
    with oz.connect(pg_url) as database:
        yield database


@pytest.fixture
def table(db: oz.Database) -> Iterator[str]:
    """A unique table name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    db.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture(autouse=True)
def _no_named_connections_left() -> Iterator[None]:
    """Each test starts with no named connection open (they are process-wide)."""
    yield
    oz.settings.connection = connections.DEFAULT
    for name in list(connections.names()):
        connections.close(name)


@contextmanager
def toolkit_shell(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A fresh in-process IPython shell with ``%load_ext oriza_toolkit`` on ``url`` (as DATABASE_URL)."""
    monkeypatch.setenv("DATABASE_URL", url)
    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "oriza_toolkit")
    try:
        yield ipython
    finally:
        ipython.run_line_magic("unload_ext", "oriza_toolkit")
        InteractiveShell.clear_instance()


def in_use(db: oz.Database) -> int:
    """Connections of ``db``'s pool in use (checked out, less the one kept warm for the next
    read: ``warm.py``)."""
    return int(db.engine.pool.checkedout()) - warm.held(db.engine)  # type: ignore[attr-defined]


def active_queries(db: oz.Database, marker: str) -> int:
    """Queries containing ``marker`` running on the server right now (other than this one)."""
    sql = ("select count(*) as n from pg_stat_activity "
           "where state = 'active' and query like :m and pid <> pg_backend_pid()")
    return int(db.query(sql, {"m": f"%{marker}%"}).n[0])


def wait_until_idle(db: oz.Database, marker: str, seconds: float = 5.0) -> int:
    """Wait (at most ``seconds``) until no query containing ``marker`` runs; return how many still do."""
    deadline = time.monotonic() + seconds
    while (running := active_queries(db, marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return running


# Fixtures that start (or reach) PostgreSQL; modules whose tests start kernels, a browser or processes.
_SERVER_FIXTURES = {"cluster", "pg_url", "pg", "servers", "scratch_database"}
_KERNEL_MODULES = {"test_browser", "test_database", "test_interrupts", "test_alembic_magic", "test_migrations",
                   "test_notebooks", "test_public_api", "test_sql_magic", "test_user_projects"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test ``server`` (it needs PostgreSQL), ``kernel`` (it starts processes) or
    else ``fast``: ``pytest -m fast`` runs the in-process, SQLite-only subset."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_server = bool(fixtures & _SERVER_FIXTURES) or params.get("db_url") == "postgresql"
        if on_server:
            item.add_marker(pytest.mark.server)
        if item.module is not None and item.module.__name__.rpartition(".")[2] in _KERNEL_MODULES:
            item.add_marker(pytest.mark.kernel)
        elif not on_server:
            item.add_marker(pytest.mark.fast)


@pytest.fixture
def accounts(pg: oz.Database, pg_url: str) -> Iterator[str]:
    """A table whose balances always sum to TOTAL, while a writer moves money between its
    first and its last accounts in many small transactions."""
    table = f"accounts_{uuid.uuid4().hex[:8]}"
    pg.execute(f"create table {table} as select g as id, 1000::bigint as balance from generate_series(1, {ACCOUNTS}) g")
    pg.execute(f"alter table {table} add primary key (id)")
    stop = threading.Event()
    moved = threading.Event()

    async def move() -> None:
        conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            while not stop.is_set():
                low, high = random.randint(1, 500), random.randint(ACCOUNTS - 500, ACCOUNTS)
                amount = random.randint(1, 99)
                async with conn.transaction():
                    await conn.execute(f"update {table} set balance = balance - $1 where id = $2", amount, low)
                    await conn.execute(f"update {table} set balance = balance + $1 where id = $2", amount, high)
                moved.set()
        finally:
            await conn.close()

    writer = threading.Thread(target=lambda: asyncio.run(move()))
    writer.start()
    try:
        assert moved.wait(10)
        yield table
    finally:
        stop.set()
        writer.join()
        pg.execute(f"drop table {table}")
