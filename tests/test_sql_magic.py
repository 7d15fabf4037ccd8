"""%sql, %%sql, %oriza and the settings, in a real Jupyter kernel."""

from pathlib import Path

import oriza_toolkit as oz

from .notebook import run_cells


def test_sql_magics_bind_variables_and_parameters(db: oz.Database, db_url: str, tmp_path: Path) -> None:
    cells = [
        "%load_ext oriza_toolkit",
        "%sql select 1 as x, 'a' as y",
        "%sql -o first select 1 as x\nprint(int(first.x[0]) * 10)",
        "limit_ = 3\n%sql three << select n from (select 1 as n union all select 2 union all select 3 "
        "union all select 4) t where n <= :limit_ order by n\nprint(three.n.tolist())",
        "%%sql\n-- name: a\nselect 1 as v\n-- name: b\nselect :limit_ as v\n",
        "print(int(a.v[0]), int(b.v[0]))",
        "%%sql --rows 4\nselect n from (select 1 as n union all select 2 union all select 3 union all select 4 "
        "union all select 5 union all select 6 union all select 7 union all select 8 union all select 9 "
        "union all select 10) t order by n",
        "%sql select :undefined_variable as x",
        "%%sql\n-- name: good\nselect 1 as v\n-- name: broken\nselect nope\n",
        "print(int(good.v[0]))",
        "%config OrizaMagics.progress = False",
        "%%sql\n-- name: c\nselect 1 as v\n-- name: d\nselect 2 as v\n",
        "%oriza",
        "%oriza tables",
        "%oriza frobnicate",
        "print('still alive')",
    ]
    out = run_cells(cells, tmp_path, {"DATABASE_URL": db_url}, raises={7, 8, 14})
    assert "x" in out[1] and "a" in out[1]
    assert out[2].strip().endswith("10")
    assert out[3].strip().endswith("[1, 2, 3]")
    assert "a  done" in out[4] and "b  done" in out[4]
    assert out[5].strip() == "1 3"
    assert "[10 rows x 1 columns]" in out[6] and "4    5" not in out[6]  # long results are not all rendered
    assert out[7].strip() == "UsageError: the SQL uses :undefined_variable but no variable 'undefined_variable' " \
                             "is defined"
    last = out[8].strip().splitlines()[-1]
    assert "broken  failed" in out[8] and "query 'broken' failed" in out[8]
    assert last == "UsageError: 1 of 2 queries failed (broken); bound good"
    assert out[9].strip() == "1"
    assert out[11].strip() == "bound c (1 row), d (1 row)"
    assert "connection: " in out[12] and "pool:" in out[12] and "schema:" in out[12]
    assert "***" in out[12] or db.dialect == "sqlite"
    assert out[14].startswith("UsageError: usage: %oriza")
    assert out[15].strip() == "still alive"


def test_nested_asyncio_is_opt_in(db_url: str, tmp_path: Path) -> None:
    cells = [
        "import asyncio\n%load_ext oriza_toolkit\nasync def answer():\n    return 42",
        "asyncio.run(answer())",
        "%config OrizaMagics.nested_asyncio = True",
        "asyncio.run(answer())",
    ]
    out = run_cells(cells, tmp_path, {"DATABASE_URL": db_url}, raises={1})
    assert "RuntimeError" in out[1]
    assert out[3].strip() == "42"


def test_progress_leaves_only_the_summary(pg_url: str, tmp_path: Path) -> None:
    cells = [
        "%load_ext oriza_toolkit",
        "%%sql\n-- name: ok\nselect pg_sleep(0.3)::text as v\n-- name: bad\nselect nope\n",
        "x = %sql select pg_sleep(2.5)::text as s, 1 as n\nprint(int(x.n[0]))",
    ]
    out = run_cells(cells, tmp_path, {"DATABASE_URL": pg_url}, raises={1})
    assert "ok   done" in out[1] and "bad  failed" in out[1] and "2 of 2 queries finished" in out[1]
    assert out[1].count("column \"nope\" does not exist") == 1  # said once, in the summary
    assert out[1].strip().endswith("UsageError: 1 of 2 queries failed (bad); bound ok")
    assert out[2].strip() == "1"
    assert not any("%|" in text or "running:" in text for text in out)  # no stale bar in the saved notebook
