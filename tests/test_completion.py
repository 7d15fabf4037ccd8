"""Tab completion of tables, columns and :variables in %sql (completion.py, magics/complete.py):
the pure rules, an in-process shell on both dialects, and a real kernel's complete_request."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client.manager import start_new_kernel

import oriza_toolkit as oz
from oriza_toolkit.completion import suggest

from .conftest import toolkit_shell

TABLES = {"flights": ["origin", "dest", "dep_delay"], "airports": ["code", "name"], "analytics.daily": ["day", "n"]}


@pytest.mark.parametrize(("before", "token", "statement", "expected"), [
    ("select * from fl", "fl", None, ["flights"]),
    ("select * from flights join a", "a", None, ["airports", "analytics.daily"]),
    ("select * from analytics.d", "analytics.d", None, ["analytics.daily"]),
    ("select * from flights where d", "d", None, ["dep_delay", "dest"]),
    ("select o", "o", "select o from flights", ["origin"]),
    ("select f.d", "f.d", "select f.d from flights as f join airports a on a.code = f.origin",
     ["f.dep_delay", "f.dest"]),
    ("select a.", "a.", "select a. from flights f join airports a on true", ["a.code", "a.name"]),
    ("select * from flights where origin = :ci", "ci", None, ["cities", "city"]),
    ("select x::te", "te", None, []),  # a cast, not a variable; no table in the statement, no table named te
])
def test_suggest_fits_where_the_cursor_is(before: str, token: str, statement: str | None, expected: list[str]
                                          ) -> None:
    assert suggest(before, token, TABLES, ["city", "cities", "1bad"], statement) == expected


@pytest.fixture
def shell(db_url: str, db: oz.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[InteractiveShell, str]]:
    monkeypatch.chdir(tmp_path)
    table = f"trips_{uuid.uuid4().hex[:6]}"
    db.execute(f"create table {table} (origin text, dep_delay integer)")
    try:
        with toolkit_shell(db_url, monkeypatch) as ipython:
            yield ipython, table
    finally:
        db.execute(f"drop table if exists {table}")


def _complete(ipython: InteractiveShell, text: str, cursor: int | None = None) -> list[str]:
    deadline = time.monotonic() + 10
    while True:  # the first Tab may find the catalog still being read
        with provisionalcompleter():
            found = [c.text for c in ipython.Completer.completions(text, len(text) if cursor is None else cursor)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_tab_in_sql_lines_and_cells(shell: tuple[InteractiveShell, str]) -> None:
    ipython, table = shell
    ipython.user_ns["min_delay"] = 10
    assert _complete(ipython, f"%sql select * from {table[:7]}") == [table]
    assert _complete(ipython, f"%sql select * from {table} where dep") == ["dep_delay"]
    cell = f"%%sql\nselect t.or from {table} t"
    assert _complete(ipython, cell, cell.index(" from")) == ["t.origin"]
    assert _complete(ipython, f"%sql select * from {table} where dep_delay > :min_") == ["min_delay"]
    ipython.run_line_magic("sql", f"create table {table}_more (x integer)")  # DDL: the catalog is read again
    try:
        assert _complete(ipython, f"%sql select * from {table}_m") == [f"{table}_more"]
    finally:
        ipython.run_line_magic("sql", f"drop table {table}_more")
    with provisionalcompleter():  # plain Python is left to IPython
        assert "len" in [c.text for c in ipython.Completer.completions("le", 2)]


def test_tab_in_a_real_kernel(pg_url: str, pg: oz.Database, tmp_path: Path) -> None:
    table = f"kernel_trips_{uuid.uuid4().hex[:6]}"
    pg.execute(f"create table {table} (origin text)")
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path),
                                       env={**os.environ, "DATABASE_URL": pg_url})
    try:
        client.execute_interactive("%load_ext oriza_toolkit", timeout=60)
        code = f"%sql select * from {table[:10]}"
        matches: list[Any] = []
        deadline = time.monotonic() + 20
        while not matches and time.monotonic() < deadline:
            reply = client.complete(code, len(code), reply=True, timeout=20)
            matches = reply["content"]["matches"]
        assert table in matches
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        pg.execute(f"drop table if exists {table}")
