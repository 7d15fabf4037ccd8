"""Database: its life (open, close, dropped, process exit), its pool and its properties."""

import subprocess
import sys
import textwrap

import pytest

import oriza_toolkit as oz


def _run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "error", "-X", "dev", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60)


def test_exit_without_close_is_clean(db_url: str) -> None:
    done = _run_script(f"""
        import oriza_toolkit as oz
        db = oz.connect({db_url!r})
        oz.settings.progress = False
        print(db.query_many({{"a": "select 1 as x", "b": "select 2 as x"}})["b"].x[0])
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    assert done.stderr == ""  # no "Event loop is closed", no unclosed-connection warnings


def test_async_script_with_its_own_loop_is_clean(db_url: str) -> None:
    done = _run_script(f"""
        import asyncio, oriza_toolkit as oz
        database = oz.connect({db_url!r})  # engine creation imports the dialect: keep it off the loop
        async def main():
            async with database as db:
                frames = await asyncio.gather(db.aquery("select 1 as x"), db.aquery("select 2 as x"))
                return [int(f.x[0]) for f in frames]
        print(asyncio.run(main()))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 2]" and done.stderr == ""


def test_close_is_idempotent(db_url: str) -> None:
    db = oz.connect(db_url)
    db.query("select 1")
    db.close()
    db.close()


def test_one_loop_thread_for_the_process(db_url: str) -> None:
    import gc
    import threading

    for _ in range(5):
        oz.connect(db_url).query("select 1 as x")  # dropped without close()
    for bad in ("mysql://u:p@h/d", "postgresql://u:p@h:abc/d"):
        with pytest.raises(oz.ConfigError):
            oz.connect(bad)
    gc.collect()
    loops = [t for t in threading.enumerate() if t.name == "oriza-loop"]
    assert len(loops) == 1


def test_a_script_batch_prints_nothing_unasked(db_url: str) -> None:
    done = _run_script(f"""
        import oriza_toolkit as oz
        frames = oz.connect({db_url!r}).query_many({{"a": "select 1 as x", "b": "select 2 as x"}})
        print(int(frames["b"].x[0]))
    """)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("2\n", "")  # progress "auto": off outside a kernel


def test_concurrency_is_what_the_pool_can_give(sqlite_url: str) -> None:
    with oz.connect(sqlite_url, pool_size=3, max_overflow=4) as db:
        assert (db.pool_size, db.max_concurrency) == (3, 7)
        assert db.dialect == db.backend.name == "sqlite"
        assert db.pool_status() == "0 in use of 3"


def test_repr_masks_the_password() -> None:
    db = oz.connect("postgresql://analyst:hunter2@localhost:1/x")
    try:
        assert repr(db) == "<Database postgresql+asyncpg://analyst:***@localhost:1/x>"
    finally:
        db.close()
    assert repr(db).endswith(" closed>")


def test_a_closed_database_refuses_transactions(sqlite_url: str) -> None:
    db = oz.connect(sqlite_url)
    db.close()
    with pytest.raises(oz.OrizaError, match=r"is closed; call oz\.connect"):
        db.transaction()
