"""The kernel's interrupt stops a running cell's queries on the server, and the next cell runs."""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

import oriza_toolkit as oz

SLEEPING = ("select count(*) as n from pg_stat_activity where state = 'active' "
            "and query like '%pg_sleep(60)%' and query not like '%pg_stat_activity%'")


@pytest.fixture
def kernel(pg_url: str, tmp_path: Path) -> Iterator[Any]:
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path),
                                       env={**os.environ, "DATABASE_URL": pg_url})
    try:
        _run(client, "%load_ext oriza_toolkit\nimport oriza_toolkit as oz\ndb = oz.connect()")
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _run(client: Any, code: str, timeout: float = 60) -> dict[str, Any]:
    reply: dict[str, Any] = client.execute_interactive(code, timeout=timeout, output_hook=lambda msg: None)
    return reply


def _wait_for(monitor: oz.Database, expected: int, limit: float) -> float:
    """Seconds until ``expected`` pg_sleep(60) queries are active; fails past ``limit``."""
    start = time.perf_counter()
    while monitor.query(SLEEPING).n[0] != expected:
        assert time.perf_counter() - start < limit, f"still not {expected} sleeping queries after {limit} s"
        time.sleep(0.05)
    return time.perf_counter() - start


@pytest.mark.parametrize("cell", [
    "db.query('select pg_sleep(60)::text')",
    "%sql select pg_sleep(60)::text",
    "%%sql\n-- name: a\nselect pg_sleep(60)::text\n-- name: b\nselect pg_sleep(60)::text",
    "await db.aquery_many({'a': 'select pg_sleep(60)::text', 'b': 'select pg_sleep(60)::text'})",
    "for chunk in db.stream('select pg_sleep(60)::text'):\n    pass",
    "async for chunk in db.astream('select pg_sleep(60)::text'):\n    pass",
    "db.to_parquet('select pg_sleep(60)::text', 'out.parquet')",
    "oz.settings.progress = False\nawait db.aquery('select pg_sleep(60)::text')",
    "db.query(\"select repeat('x', 1000) from generate_series(1, 2000) union all select pg_sleep(60)::text\")",
], ids=["query", "line-magic", "multi-query-cell", "await", "stream", "astream", "to_parquet", "await-quiet",
        "after-rows-flowed"])
def test_interrupt_cancels_on_the_server(kernel: Any, pg: oz.Database, cell: str) -> None:
    manager, client = kernel
    running = 2 if "name: b" in cell or "'b'" in cell else 1
    message = client.execute(cell)
    _wait_for(pg, running, limit=20)
    manager.interrupt_kernel()
    stopped_after = _wait_for(pg, 0, limit=5)
    assert stopped_after < 1.5, f"queries ran on for {stopped_after:.2f} s after the interrupt"
    reply = client.get_shell_msg(timeout=20)
    while reply["parent_header"].get("msg_id") != message:
        reply = client.get_shell_msg(timeout=20)
    assert reply["content"]["status"] == "error"
    if "%sql" in cell:  # one line, no traceback of the toolkit's frames
        assert (reply["content"]["ename"], reply["content"]["evalue"]) == (
            "UsageError", "interrupted: the cell's queries were cancelled on the server")
    elif "await" in cell or "async" in cell:  # ipykernel cancels an async cell's task
        assert reply["content"]["ename"] == "CancelledError"
    else:  # a blocking call: the interrupt, without the toolkit's frames below the call
        assert (reply["content"]["ename"], reply["content"]["evalue"]) == (
            "KeyboardInterrupt", "interrupted: its queries were cancelled on the server")
        frames = [line for line in reply["content"]["traceback"] if "oriza_toolkit" in line]
        assert len(frames) <= 1, "\n".join(frames)
    after = _run(client, "assert db.query('select 41 + 1 as x').x[0] == 42")
    assert after["content"]["status"] == "ok"
