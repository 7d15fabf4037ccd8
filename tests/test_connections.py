"""connect() and the registry of named connections (connections.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import oriza_toolkit as oz
from oriza_toolkit import connections


def test_connect_opens_a_new_pool_each_time(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as first, oz.connect(sqlite_url) as second:
        assert first is not second and first.engine is not second.engine


def test_a_name_is_the_shared_database_until_closed(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL_WAREHOUSE", sqlite_url)
    shared = oz.connect("warehouse")
    assert oz.connect("warehouse") is shared is connections.get("warehouse")
    assert connections.names() == {"warehouse": oz.mask_url(shared.url)}
    connections.close("warehouse")
    assert shared.closed and oz.connect("warehouse") is not shared


def test_default_is_the_database_the_magics_use(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert oz.connect("default") is connections.get() is connections.get(connections.DEFAULT)
    assert oz.connect() is not connections.get()  # no argument: a new pool on the same database


def test_register_replaces_and_closes_what_had_the_name(tmp_path: Path) -> None:
    old = connections.register("scratch", f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    new = connections.register("scratch", f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    assert old.closed and not new.closed and connections.get("scratch") is new


def test_bad_names_and_unknown_names_are_one_line(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match=r"^not a valid connection name: 'a b' \(a word of letters, digits and _\)$"):
        connections.register("a b", sqlite_url)
    with pytest.raises(ValueError, match="not a valid connection name: 'a b'"):
        connections.get("a b")
    with pytest.raises(oz.ConfigError, match=r"^the database URL is empty; give a URL, a connection name"):
        oz.connect("")
    with pytest.raises(KeyError, match="no open connection named 'nope'"):
        connections.close("nope")
    with pytest.raises(oz.ConfigError, match="DATABASE_URL_NOWHERE"):
        oz.connect("nowhere")


def test_replicas_must_be_databases_or_names(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        with pytest.raises(TypeError, match="replicas must be a list of Database objects or connection names"):
            db.query("select 1 as g", partition_on="g", partitions=2, replicas="replica")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="replicas must be Database objects or connection names, not 3"):
            db.query("select 1 as g", partition_on="g", partitions=2, replicas=[3])  # type: ignore[list-item]


def test_reopening_a_name_with_other_options_is_an_error(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL_SIDE", sqlite_url)
    side = connections.get("side", pool_size=2)
    assert connections.get("side") is side and connections.get("side", pool_size=2) is side
    with pytest.raises(ValueError, match=r"connection 'side' is open with other engine options; close it first"):
        connections.get("side", pool_size=3)


def test_connection_errors_name_where_the_url_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL_DEAD", "postgresql://me:hunter2@127.0.0.1:1/x")
    with pytest.raises(oz.DatabaseConnectionError, match=r"database in DATABASE_URL_DEAD are right$") as caught:
        oz.connect("dead").query("select 1")
    assert "hunter2" not in str(caught.value)
    with oz.connect("postgresql://me:hunter2@127.0.0.1:1/x") as db, \
            pytest.raises(oz.DatabaseConnectionError, match=r"in the URL given to oz.connect\(\) are right$"):
        db.query("select 1")
