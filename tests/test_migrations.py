import asyncio
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import oriza_toolkit as oz
from oriza_toolkit import migrations
from oriza_toolkit.backends import postgresql
from oriza_toolkit.backends.postgresql import LOCK_KEY

ROOT = Path(__file__).resolve().parents[1]
MODEL_TABLES = {"airlines", "airports", "planes", "weather", "flights"}


def tables(db: oz.Database) -> set[str]:
    sql = ("select tablename as name from pg_tables where schemaname = 'public'" if db.dialect == "postgresql"
           else "select name from sqlite_master where type = 'table'")
    return set(db.query(sql).name)


@pytest.fixture
def mdb(db: oz.Database) -> Iterator[oz.Database]:
    """A database that starts empty of the schema and is downgraded to base afterwards."""
    migrations.downgrade("base", db)
    yield db
    migrations.downgrade("base", db)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A scratch copy of the project's Alembic set-up."""
    shutil.copy(ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(ROOT / "alembic", tmp_path / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_upgrade_from_empty_to_head_then_models_match(mdb: oz.Database) -> None:
    result = migrations.upgrade("head", mdb)
    assert "Running upgrade  -> " in result.output
    assert result.current == result.heads
    assert tables(mdb) >= MODEL_TABLES
    assert "No new upgrade operations detected." in migrations.check(mdb).output
    status = migrations.schema_status(mdb)
    assert status.up_to_date and status.current == status.heads


def test_status_reports_pending(mdb: oz.Database) -> None:
    status = migrations.schema_status(mdb)
    assert status.current == [] and len(status.pending) >= 1
    assert 'pending: upgrade("head") applies them' in str(status)


def test_bad_commands_are_one_line_errors(mdb: oz.Database) -> None:
    with pytest.raises(oz.MigrationError, match="Can't locate revision identified by 'nope'"):
        migrations.run("upgrade nope", mdb)
    with pytest.raises(oz.MigrationError, match="invalid choice: 'frobnicate'") as caught:
        migrations.run("frobnicate", mdb)
    assert "\n" not in str(caught.value)
    assert "usage: alembic" in migrations.run("--help").output


def test_offline_sql_renders_for_the_database_dialect(mdb: oz.Database) -> None:
    sql = migrations.run("upgrade head --sql", mdb).output
    assert "CREATE TABLE flights" in sql
    assert ("TIMESTAMP WITH TIME ZONE" in sql) == (mdb.dialect == "postgresql")
    assert migrations.current(mdb).current == []  # nothing ran


def test_scratch_tables_are_never_proposed_for_dropping(mdb: oz.Database) -> None:
    migrations.upgrade("head", mdb)
    mdb.execute("create table analyst_scratch (x integer)")
    try:
        assert migrations.schema_status(mdb).diffs == []
    finally:
        mdb.execute("drop table analyst_scratch")


def _python(code: str, cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url}, timeout=120)


def test_autogenerate_after_a_model_change(mdb: oz.Database, db_url: str, scratch: Path) -> None:
    migrations.upgrade("head", mdb)
    done = _python("""
        import sqlalchemy as sa
        from oriza_toolkit import migrations
        from oriza_toolkit.examples.nycflights13.models import Flight
        Flight.__table__.append_column(sa.Column("seat", sa.String(4)))
        print(migrations.run('revision --autogenerate -m "add seat"').output)
    """, scratch, db_url)
    assert done.returncode == 0, done.stderr
    assert "Detected added column 'flights.seat'" in done.stdout
    (new,) = [p for p in (scratch / "alembic" / "versions").glob("*add_seat.py")]
    text = new.read_text()
    assert "batch_op.add_column(sa.Column('seat', sa.String(length=4), nullable=True))" in text
    assert "batch_op.drop_column('seat')" in text


def test_seed_commands_work_from_a_shell(mdb: oz.Database, db_url: str, scratch: Path) -> None:
    alembic = [str(Path(sys.executable).parent / "alembic")]
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url}
    up = subprocess.run([*alembic, "upgrade", "head"], cwd=scratch, capture_output=True, text=True, env=env)
    assert up.returncode == 0, up.stderr
    assert "Running upgrade  -> " in up.stderr
    assert tables(mdb) >= MODEL_TABLES
    rev = subprocess.run([*alembic, "revision", "--autogenerate", "-m", "init models"], cwd=scratch,
                         capture_output=True, text=True, env=env)
    assert rev.returncode == 0, rev.stderr
    assert list((scratch / "alembic" / "versions").glob("*init_models.py"))


def test_failed_migration_leaves_postgres_schema_as_it_was(pg: oz.Database, pg_url: str, scratch: Path) -> None:
    migrations.downgrade("base", pg)
    try:
        head = migrations.upgrade("head", pg).current
        (scratch / "alembic" / "versions" / "ffff_broken.py").write_text(textwrap.dedent(f"""
            from alembic import op
            import sqlalchemy as sa
            revision = "ffff"
            down_revision = {head[0]!r}
            def upgrade():
                op.create_table("half_done", sa.Column("x", sa.Integer))
                op.add_column("flights", sa.Column("half_col", sa.Integer))
                op.execute("select 1 / 0")
            def downgrade():
                pass
        """))
        done = _python("""
            from oriza_toolkit import migrations
            try:
                migrations.run("upgrade head")
            except Exception as error:
                print(type(error).__name__, error)
        """, scratch, pg_url)
        assert "MigrationError alembic upgrade head failed:" in done.stdout and "division by zero" in done.stdout
        assert "half_done" not in tables(pg)
        assert "half_col" not in pg.query("select * from flights limit 0").columns
        assert migrations.current(pg).current == head
    finally:
        migrations.downgrade("base", pg)


def test_check_names_the_differences(mdb: oz.Database) -> None:
    migrations.upgrade("head", mdb)
    mdb.execute("drop index ix_flights_dest")
    try:
        with pytest.raises(oz.MigrationError, match="models differ from the database: add_index") as caught:
            migrations.check(mdb)
        assert caught.value.diffs and "\n" not in str(caught.value)
        assert migrations.schema_status(mdb).diffs
    finally:
        mdb.execute("create index ix_flights_dest on flights (dest)")  # so downgrade can drop it


def test_every_command_line(mdb: oz.Database) -> None:
    ini = str(ROOT / "alembic.ini")
    head = migrations.heads(mdb).heads[0]
    assert f"{head} (head)" in migrations.run(f"-c {ini} heads", mdb).output
    assert f"{head} (head)" in migrations.run(f"--config {ini} heads", mdb).output
    with pytest.raises(oz.MigrationError, match=r"^alembic -n other heads failed: no \[other\] section in "):
        migrations.run("-n other heads", mdb)
    assert migrations.run(f"edit {head}", mdb).output.strip().endswith(f"{head}_nycflights13_tables.py")
    assert f"Rev: {head} (head)" in migrations.run(f"show {head}", mdb).output
    assert "-> " + head in migrations.run("history -r base:head", mdb).output
    assert migrations.run("branches", mdb).output == ""
    assert "usage: alembic merge" in migrations.run("merge --help", mdb).output
    up = migrations.run("-x note=1 upgrade head", mdb).output
    assert up.count("Context impl") == 1 and up.count("Running upgrade") == 1  # each INFO line once
    assert "No new upgrade operations detected." in migrations.run("--raiseerr check", mdb).output


def test_an_explicit_config_from_another_folder(mdb: oz.Database, scratch: Path, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # no alembic.ini here or above
    with pytest.raises(oz.MigrationError, match=r"no alembic\.ini in .* or any folder above it"):
        migrations.current(mdb)
    assert migrations.upgrade("head", mdb, config=scratch / "alembic.ini").current == \
        migrations.heads(mdb, config=str(scratch / "alembic.ini")).heads


def test_a_held_migration_lock_times_out_naming_the_holder(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgresql, "LOCK_WAIT_SECONDS", 0.5)
    migrations.downgrade("base", pg)
    with oz.connect(pg.url) as holder:
        async def hold() -> None:
            async with holder.engine.connect() as conn:
                await conn.exec_driver_sql(f"select pg_advisory_lock({LOCK_KEY})")
                try:
                    with pytest.raises(oz.MigrationError, match=r"^alembic upgrade head failed: another session "
                                       r"has been migrating this database for over 0\.5 s \(pid \d+, user "):
                        await asyncio.to_thread(migrations.upgrade, "head", pg)
                finally:
                    await conn.exec_driver_sql(f"select pg_advisory_unlock({LOCK_KEY})")

        holder._run(hold())
    assert migrations.current(pg).current == []  # nothing ran
    assert migrations.upgrade("head", pg).current  # and the next try goes through
    migrations.downgrade("base", pg)


def test_env_py_takes_a_sync_engine(sqlite_url: str, tmp_path: Path) -> None:
    """pytest-alembic's recipe with a plain Engine: env.py migrates through it."""
    from sqlalchemy import create_engine, inspect

    from alembic import command

    engine = create_engine(f"sqlite:///{tmp_path / 'sync.db'}")
    config = migrations.alembic_config(ROOT / "alembic.ini")
    config.attributes["connection"] = engine
    try:
        command.upgrade(config, "head")
        assert set(inspect(engine).get_table_names()) >= MODEL_TABLES
    finally:
        engine.dispose()


def test_the_worked_example_env_py_is_what_init_writes() -> None:
    template = Path(oz.__file__).parent / "templates" / "alembic" / "env.py"
    assert (ROOT / "alembic" / "env.py").read_text() == template.read_text()
