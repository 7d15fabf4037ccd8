"""%sql parsing and behaviour in-process, with an InteractiveShell (no kernel: milliseconds each)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import oriza_toolkit as oz
from oriza_toolkit import connections

from .conftest import toolkit_shell


@pytest.fixture
def shell(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.chdir(tmp_path)  # no alembic.ini here: a notebook outside any project
    with toolkit_shell(db_url, monkeypatch) as ipython:
        yield ipython


def sql(shell: InteractiveShell, line: str, cell: str | None = None) -> object:
    return shell.run_cell_magic("sql", line, cell) if cell is not None else shell.run_line_magic("sql", line)


@pytest.mark.parametrize(("line", "cell", "message"), [
    ("--timeout abc select 1", None, "argument --timeout: invalid float value: 'abc'"),
    ("--bogus select 1", None, "unrecognized arguments: --bogus"),
    ("--row 5 select 1", None, "unrecognized arguments: --row"),
    ("-o 1bad select 1", None, "-o: '1bad' is not a valid Python variable name"),
    ("1bad << select 1", None, "NAME <<: '1bad' is not a valid Python variable name"),
    ("", "-- name: 1abc\nselect 1", "-- name: '1abc' is not a valid Python variable name"),
    ("", "-- name: bad-name\nselect 1", "-- name: 'bad-name' is not a valid Python variable name"),
    ("", "-- name: class\nselect 1", "-- name: 'class' is not a valid Python variable name"),
    ("", "-- name: a\nselect 1\n-- name: a\nselect 2", "query names used twice: a"),
    ("", None, "no SQL given; e.g. %sql select 1 as x"),
    ("-c nope select 1", None, "no connection named 'nope': set DATABASE_URL_NOPE in the environment or in .env"),
    ("--persist t nosuchvar", None, "--persist: name a DataFrame variable after the table, not 'nosuchvar'"),
    ("-f /no/such/file.sql", None, "-f: cannot read '/no/such/file.sql': No such file or directory"),
    ("select :nope as x", None, "the SQL uses :nope but no variable 'nope' is defined"),
])
def test_bad_lines_are_one_line_usage_errors(shell: InteractiveShell, line: str, cell: str | None,
                                             message: str) -> None:
    with pytest.raises(UsageError) as caught:
        sql(shell, line, cell)
    assert str(caught.value) == message
    assert sql(shell, "select 1 as ok").ok[0] == 1  # type: ignore[attr-defined]


def test_a_query_returns_its_frame_and_options_work(shell: InteractiveShell) -> None:
    shell.user_ns["n"] = 3
    result = sql(shell, "--timeout=5 select :n as n, ':n' as lit;")
    assert isinstance(result, pd.DataFrame) and result.iloc[0].tolist() == [3, ":n"]
    assert sql(shell, "-o kept --no-display select 2 as v") is None and shell.user_ns["kept"].v[0] == 2
    sql(shell, "bound << select 4 as v -- a note")
    assert shell.user_ns["bound"].v[0] == 4
    (Path.cwd() / "q.sql").write_text("select 5 as v;\n")
    assert sql(shell, "-f q.sql").v[0] == 5  # type: ignore[attr-defined]


def test_a_session_persists_from_cell_to_cell(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    sql(shell, "", "create temp table session_t as select 1 as x;\ninsert into session_t values (2);")
    assert "1 row affected" in capsys.readouterr().out  # the last statement's count
    assert sql(shell, "select count(*) as n from session_t").n[0] == 2  # type: ignore[attr-defined]
    sql(shell, "", "begin; insert into session_t values (3); rollback;")
    assert sql(shell, "select count(*) as n from session_t").n[0] == 2  # type: ignore[attr-defined]


def test_postgres_everyday_statements(shell: InteractiveShell, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    if "postgresql" not in db_url:
        pytest.skip("PostgreSQL statements")
    assert "QUERY PLAN" in sql(shell, "explain select 1").columns  # type: ignore[attr-defined]
    sql(shell, "set timezone = 'Asia/Tokyo'")
    assert sql(shell, "show timezone").iloc[0, 0] == "Asia/Tokyo"  # type: ignore[attr-defined]
    sql(shell, "reset timezone")
    result = sql(shell, "select avg(x) as a from generate_series(1, 3) x where x <> 2 or x = 2")
    assert result.a[0] == 2.0 and str(result.a.dtype) == "float64"  # type: ignore[attr-defined]


def test_batches_bind_each_name_and_say_the_session_is_apart(shell: InteractiveShell,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    sql(shell, "select 1 as warm")
    sql(shell, "-o both", "-- name: a\nselect 1 as v\n-- name: b\nselect 2 as v\n")
    assert shell.user_ns["a"].v[0] == 1 and shell.user_ns["b"].v[0] == 2
    assert set(shell.user_ns["both"]) == {"a", "b"}
    assert "temp tables and SET of this notebook's %sql session are not visible" in capsys.readouterr().out


def test_consistent_batches(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    sql(shell, "--consistent", "-- name: n\nselect 3 as v\n-- name: m\nselect 4 as v\n")
    assert shell.user_ns["n"].v[0] == 3 and shell.user_ns["m"].v[0] == 4
    with pytest.raises(UsageError, match=r"^--consistent is for cells of '-- name: VAR' queries"):
        sql(shell, "--consistent select 1")


def test_persist_append_replace(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["frame"] = pd.DataFrame({"k": [1, 2]})
    try:
        sql(shell, "--persist magic_t frame")
        sql(shell, "--append magic_t frame")
        assert sql(shell, "select count(*) as n from magic_t").n[0] == 4  # type: ignore[attr-defined]
        sql(shell, "--replace magic_t frame")
        assert sql(shell, "select count(*) as n from magic_t").n[0] == 2  # type: ignore[attr-defined]
        assert "wrote 2 rows of frame to magic_t" in capsys.readouterr().out
    finally:
        sql(shell, "drop table if exists magic_t")


def test_named_connections(shell: InteractiveShell, db_url: str, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL_REPLICA", db_url)
    assert sql(shell, "-c replica select 7 as v").v[0] == 7  # type: ignore[attr-defined]
    assert oz.connect("replica") is connections.get("replica")  # one registry for Python and the magic
    with pytest.raises(UsageError, match=r"^--connect side: cannot connect to .* in the URL given for 'side' are "
                                         r"right$") as refused:
        sql(shell, "--connect side postgresql://bob:hunter2@127.0.0.1:1/x select 1")
    assert "hunter2" not in str(refused.value) and "side" not in connections.names()  # tried at once, not kept
    assert sql(shell, f"--connect side {db_url} select current_timestamp as t, 9 as v").v[0] == 9  # type: ignore[attr-defined]
    assert sql(shell, "-c side select 8 as v").v[0] == 8  # type: ignore[attr-defined]
    shell.run_line_magic("oriza", "connections")
    shell.run_line_magic("oriza", "close side")
    out = capsys.readouterr().out
    assert f"side: {oz.mask_url(oz.connections.get('replica').url)}" in out and "replica: " in out
    assert "closed side" in out


def test_load_ext_outside_a_project_is_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    ipython = InteractiveShell.instance()
    try:
        ipython.run_line_magic("load_ext", "oriza_toolkit")
        assert capsys.readouterr().out == "" and list(tmp_path.iterdir()) == []
    finally:
        ipython.run_line_magic("unload_ext", "oriza_toolkit")
        InteractiveShell.clear_instance()


def test_another_extensions_sql_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    ipython = InteractiveShell.instance()
    try:
        def theirs(line: str, cell: str | None = None) -> str:
            return "theirs"

        ipython.register_magic_function(theirs, "line_cell", "sql")  # as JupySQL would have
        ipython.run_line_magic("load_ext", "oriza_toolkit")
        assert "the toolkit's is %osql" in capsys.readouterr().out
        assert ipython.run_line_magic("sql", "select 1") == "theirs"
        assert ipython.run_line_magic("osql", "select 1 as x").x[0] == 1
        ipython.run_line_magic("unload_ext", "oriza_toolkit")
        assert ipython.run_line_magic("sql", "select 1") == "theirs"
        assert "osql" not in ipython.magics_manager.magics["line"]
    finally:
        InteractiveShell.clear_instance()


def test_a_lost_session_reconnects_and_says_so(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with toolkit_shell(pg_url, monkeypatch) as ipython:
        pid = ipython.run_line_magic("sql", "select pg_backend_pid() as pid").pid[0]
        with oz.connect(pg_url) as admin:
            admin.query("select pg_terminate_backend(:pid) as t", {"pid": int(pid)})
            deadline = time.monotonic() + 10
            while admin.query("select count(*) as n from pg_stat_activity where pid = :pid", {"pid": int(pid)}
                              ).n[0] and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(0.2)  # the session's socket sees the server hang up
        assert ipython.run_line_magic("sql", "select 2 as x").x[0] == 2  # the next cell reconnects...
        assert "the session's connection was lost, so this ran on a new one" in capsys.readouterr().out  # says so
        assert ipython.run_line_magic("sql", "select 3 as x").x[0] == 3
        assert "was lost" not in capsys.readouterr().out  # once


def test_settings_are_one_object(shell: InteractiveShell, db_url: str) -> None:
    if "postgresql" not in db_url:
        pytest.skip("numeric columns are PostgreSQL's")
    previous = oz.settings.numeric
    try:
        shell.run_line_magic("config", "OrizaMagics.numeric = 'float'")
        assert oz.settings.numeric == "float"
        assert str(sql(shell, "select 1.5::numeric as v").v.dtype) == "float64"  # type: ignore[attr-defined]
    finally:
        oz.settings.numeric = previous


def test_everyday_tasks_from_the_magic(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    """Big results, an SQL error, tables and describe, each from the magic."""
    big = sql(shell, "", "with recursive n(i) as (select 1 union all select i + 1 from n where i < 100000)\n"
                         "select i from n")
    assert len(big) == 100_000 and int(big.i.sum()) == 100_000 * 100_001 // 2  # type: ignore[arg-type,attr-defined]
    assert "100000 rows" in repr(big) and repr(big).count("\n") < 30  # shown cut, kept whole
    with pytest.raises(UsageError, match=r"^query 'select nope from no_such_table' failed: .*no_such_table"):
        sql(shell, "select nope from no_such_table")
    sql(shell, "create table everyday_t (id integer primary key, v text)")
    try:
        shell.run_line_magic("oriza", "tables")
        assert "everyday_t" in capsys.readouterr().out
        shell.run_line_magic("oriza", "describe everyday_t")
        assert "primary_key" in capsys.readouterr().out
    finally:
        sql(shell, "drop table everyday_t")


def test_loading_the_extension_keeps_the_settings(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(oz.settings, "progress", False)
    monkeypatch.setattr(oz.settings, "display_rows", 7)
    with toolkit_shell(db_url, monkeypatch) as ipython:
        assert (oz.settings.progress, oz.settings.display_rows) == (False, 7)
        ipython.run_line_magic("config", "OrizaMagics.display_rows = 9")
        assert oz.settings.display_rows == 9


def test_use_makes_a_named_connection_the_cells_default(shell: InteractiveShell, db_url: str,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL_WAREHOUSE", db_url)
    shell.run_line_magic("oriza", "use warehouse")
    warehouse = connections.get("warehouse")
    assert sql(shell, "select 5 as v").v[0] == 5  # type: ignore[attr-defined]
    assert warehouse.session_active  # the cell ran on warehouse's session
    shell.run_line_magic("oriza", "")
    out = capsys.readouterr().out
    assert "using warehouse: " in out and "connection: warehouse (" in out
    shell.run_line_magic("oriza", "use default")
    assert oz.settings.connection == "default"
    with pytest.raises(UsageError, match=r"^not a valid connection name: 'a-b'"):
        shell.run_line_magic("oriza", "use a-b")
    with pytest.raises(UsageError, match=r"^no connection named 'nowhere': set DATABASE_URL_NOWHERE"):
        shell.run_line_magic("oriza", "use nowhere")
    assert oz.settings.connection == "default"


def test_explain_is_shown_as_the_plan_text(shell: InteractiveShell, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("EXPLAIN's plan text is PostgreSQL's")
    plan = sql(shell, "explain (costs off) select g, g * 2 as twice_the_value_of_g from generate_series(1, 10) as g "
                      "where g > 5 order by g desc")
    assert isinstance(plan, pd.DataFrame) and list(plan.columns) == ["QUERY PLAN"]  # still the frame
    lines = repr(plan).splitlines()
    assert lines == plan["QUERY PLAN"].tolist()  # every line whole, nothing cut or right-aligned
    assert lines[0].startswith("Sort") and any(line.startswith("  ") for line in lines[1:])
    assert plan._repr_html_().startswith("<pre>") and "Function Scan" in plan._repr_html_()  # type: ignore[union-attr]


def test_help_and_messages_speak_the_notebooks_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no alembic.ini here or above
    with toolkit_shell(sqlite_url, monkeypatch) as ipython:
        ipython.run_line_magic("sql", "--help")
        assert capsys.readouterr().out.startswith("  %sql [-o NAME]")  # no reST "::" first
        with pytest.raises(UsageError, match=r"no alembic\.ini in .*; set one up with %alembic init$"):
            ipython.run_line_magic("alembic", "current")


def test_variables_written_as_other_tools_expand_them_get_a_pointer(shell: InteractiveShell,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["city"] = "Paris"
    assert sql(shell, "select '{city}' as c").c[0] == "{city}"  # type: ignore[attr-defined]  # kept as typed
    assert "note: {city} is not expanded here; write :city to bind the variable city" in capsys.readouterr().out
    sql(shell, "select '$city' as c")
    assert "note: $city is not expanded here; write :city" in capsys.readouterr().out
    sql(shell, "select :city as c, '{nothing}' as d")
    assert "note:" not in capsys.readouterr().out  # bound as :city; no such variable as nothing
