"""df.attrs["oriza"]: where a result came from, on frames, arrow tables and Parquet files;
never a password."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import oriza_toolkit as oz

from .conftest import toolkit_shell

KEYS = {"sql", "params", "database", "revision", "started", "seconds", "rows"}


def _password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).password or "no-password-in-this-url"


def test_every_result_says_where_it_came_from(db: oz.Database, db_url: str, tmp_path: Path) -> None:
    sql = "select :city as city, :api_token as t"
    before = dt.datetime.now(dt.UTC)
    frame = db.query(sql, {"city": "Oslo", "api_token": "s3cret"})
    found = frame.attrs["oriza"]
    assert set(found) == KEYS
    assert found["sql"] == sql and found["params"] == {"city": "Oslo", "api_token": "***"}
    assert found["rows"] == 1 and 0 < found["seconds"] < 30
    assert before <= dt.datetime.fromisoformat(found["started"]) <= dt.datetime.now(dt.UTC)
    try:  # the shared test database may have been migrated by other tests
        revision = ",".join(db.query("select version_num from alembic_version order by 1").version_num) or None
    except oz.QueryError:
        revision = None
    assert found["database"] == oz.config.mask_url(db.url) and found["revision"] == revision
    batch = db.query_many({"a": "select 1 as a", "b": ("select :n as b", {"n": 2})}, progress=False)
    assert batch["b"].attrs["oriza"]["sql"] == "select :n as b" and batch["b"].attrs["oriza"]["params"] == {"n": 2}
    script = db.run_script("select 1 as a; select 2 as b, 3 as c")
    assert [f.attrs["oriza"]["sql"] for f in script] == ["select 1 as a", "select 2 as b, 3 as c"]
    table = db.query_arrow("select 1 as x union all select 2")
    assert json.loads(table.schema.metadata[b"oriza"])["rows"] == 2
    db.to_parquet("select 1 as x union all select 2", tmp_path / "x.parquet")
    written = json.loads(pq.read_metadata(tmp_path / "x.parquet").metadata[b"oriza"])
    assert written["rows"] == 2 and written["sql"] == "select 1 as x union all select 2"
    with oz.connect(db_url) as fresh:  # awaited from another loop, with the revision not read yet
        asyncio.run(fresh.ato_parquet("select 3 as x", tmp_path / "y.parquet"))
    assert json.loads(pq.read_metadata(tmp_path / "y.parquet").metadata[b"oriza"])["rows"] == 1
    secret = _password(db_url)
    for text in (json.dumps(found), json.dumps(batch["a"].attrs), table.schema.metadata[b"oriza"].decode(),
                 json.dumps(written)):
        assert secret not in text


def test_the_revision_is_the_schema_one_after_a_migration(sqlite_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with toolkit_shell(sqlite_url, monkeypatch) as shell:
        shell.run_line_magic("alembic", "init migrations")
        shell.run_line_magic("alembic", 'revision -m "first" --rev-id abc123')
        db = oz.connect("default")
        assert db.query("select 1 as x").attrs["oriza"]["revision"] is None
        shell.run_line_magic("alembic", "upgrade head")
        shell.user_ns["df"] = db.query("select 1 as x")
        assert shell.user_ns["df"].attrs["oriza"]["revision"] == "abc123"
        capsys.readouterr()
        shell.run_line_magic("oriza", "provenance df")
        shown = json.loads(capsys.readouterr().out)
        assert shown["revision"] == "abc123" and shown["sql"] == "select 1 as x"


def test_a_sql_cells_result_carries_it(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with toolkit_shell(db_url, monkeypatch) as shell:
        shell.user_ns["n"] = 3
        result = shell.run_line_magic("sql", "select :n as n")
        bound = shell.run_line_magic("sql", "-o kept --no-display select 4 as n")
    assert result.attrs["oriza"]["sql"] == "select :n as n" and result.attrs["oriza"]["params"] == {"n": 3}
    assert bound is None and shell.user_ns["kept"].attrs["oriza"]["rows"] == 1
