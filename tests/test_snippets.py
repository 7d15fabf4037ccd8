"""Snippets (snippets.py) and %%sql --save / --with / %oriza snippets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from oriza_toolkit import snippets as snippets_module
from oriza_toolkit.snippets import Snippets

from .conftest import toolkit_shell


def test_snippets_compose_as_ctes_each_once_and_before_their_users() -> None:
    store = Snippets()
    store.save("base", "select g from generate_series(1, 10) as g;  -- trailing comment")
    store.save("evens", "select g from base where g % 2 = 0", ["base"])
    store.save("big", "select g from base where g > :limit", ["base"])
    composed = store.compose("select count(*) from evens join big using (g)", ["evens", "big"])
    assert composed == ("WITH base AS (\nselect g from generate_series(1, 10) as g\n),\n"
                        "evens AS (\nselect g from base where g % 2 = 0\n),\n"
                        "big AS (\nselect g from base where g > :limit\n)\n"
                        "select count(*) from evens join big using (g)")
    own = store.compose("-- mine\nWITH RECURSIVE r(n) AS (select 1) select * from r, base", ["base"])
    assert own.startswith("WITH RECURSIVE base AS (\n") and own.endswith("),\nr(n) AS (select 1) select * from r, base")
    assert store.compose("select 1", []) == "select 1"
    assert list(store.names()) == ["base", "evens", "big"]


@pytest.mark.parametrize(("name", "sql", "uses", "message"), [
    ("bad name", "select 1", [], "a snippet name is a plain SQL name (letters, digits and _), not 'bad name'"),
    ("two", "select 1; select 2", [], "snippet 'two' must be one query, not 2 statements"),
    ("loop", "select 1", ["loop"], "snippets use each other in a circle: loop -> loop"),
    ("late", "select 1", ["nope"], "no snippet named 'nope' (saved: none yet); save one with %%sql --save nope"),
])
def test_bad_snippets_are_refused_and_nothing_is_kept(name: str, sql: str, uses: list[str], message: str) -> None:
    store = Snippets()
    with pytest.raises(ValueError) as caught:
        store.save(name, sql, uses)
    assert str(caught.value) == message
    assert store.names() == {}


@pytest.fixture
def shell(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(snippets_module, "snippets", Snippets())
    monkeypatch.setattr("oriza_toolkit.magics.sql.snippets", snippets_module.snippets)
    monkeypatch.setattr("oriza_toolkit.magics.oriza.snippets", snippets_module.snippets)
    with toolkit_shell(db_url, monkeypatch) as ipython:
        yield ipython


def test_save_then_with_in_cells(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["limit"] = 7
    saved = shell.run_cell_magic("sql", "--save nums", "with recursive r(g) as (select 1 union all "
                                 "select g + 1 from r where g < 10) select g from r")
    assert len(saved) == 10  # type: ignore[arg-type]  # --save runs it too
    assert shell.run_cell_magic("sql", "--save big --with nums --no-execute", "select g from nums where g > :limit") \
        is None
    assert "saved snippet big" in capsys.readouterr().out
    frame = shell.run_cell_magic("sql", "--with big", "select count(*) as n from big")
    assert frame.n[0] == 3  # type: ignore[union-attr]
    shell.run_cell_magic("sql", "--with nums", "-- name: low\nselect count(*) as n from nums where g < 4\n"
                                               "-- name: all_\nselect count(*) as n from nums\n")
    assert shell.user_ns["low"].n[0] == 3 and shell.user_ns["all_"].n[0] == 10
    shell.run_line_magic("oriza", "snippets")
    listed = capsys.readouterr().out
    assert "nums: with recursive r(g) as" in listed and "big: select g from nums where g > :limit" in listed
    with pytest.raises(UsageError, match=r"^no snippet named 'nope' \(saved: nums, big\); save one with "
                                         r"%%sql --save nope$"):
        shell.run_cell_magic("sql", "--with nope", "select 1")
    with pytest.raises(UsageError, match=r"^--save NAME keeps one query"):
        shell.run_cell_magic("sql", "--save two", "-- name: a\nselect 1\n-- name: b\nselect 2\n")
