import datetime as dt
import threading
import time
import uuid
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import oriza_toolkit as oz


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": pd.array([1, 2, None], dtype="Int64"),
        "name": ["a", None, "c,\"quoted\""],
        "score": [1.5, np.nan, -2.0],
        "flag": pd.array([True, None, False], dtype="boolean"),
        "at": pd.to_datetime(["2024-01-01 10:00", None, "2024-03-01 00:00"]),
    })


def test_write_then_read_back(db: oz.Database, table: str, frame: pd.DataFrame) -> None:
    assert db.write(frame, table) == 3
    back = db.query(f"select * from {table} order by id nulls last" if db.dialect == "postgresql"
                    else f"select * from {table} order by id is null, id")
    assert list(back.columns) == list(frame.columns)
    assert back.id.tolist()[:2] == [1, 2] and pd.isna(back.id[2])
    assert back.name[0] == "a" and pd.isna(back.name[1]) and back.name[2] == 'c,"quoted"'
    assert back.score[0] == 1.5 and pd.isna(back.score[1])


def test_if_exists_modes(db: oz.Database, table: str, frame: pd.DataFrame) -> None:
    db.write(frame, table)
    with pytest.raises(oz.WriteError, match=f"writing table '{table}' failed: .*already exists; pass "
                                            "if_exists='append' to add to it, or 'replace' to replace it$"):
        db.write(frame, table)
    assert db.write(frame, table, if_exists="append") == 3
    assert db.query(f"select count(*) as n from {table}").n[0] == 6
    assert db.write(frame.head(1), table, if_exists="replace") == 1
    assert db.query(f"select count(*) as n from {table}").n[0] == 1


def test_failed_write_leaves_the_table_as_it_was(db: oz.Database, table: str, frame: pd.DataFrame) -> None:
    db.write(frame, table)
    # sqlite3 cannot bind a plain object; PostgreSQL's text cannot hold a NUL character
    bad = [object(), object()] if db.dialect == "sqlite" else ["fine", "nul \x00 inside"]
    unencodable = pd.DataFrame({"id": [7, 8], "payload": bad})
    # replace drops, creates and fills in one transaction: failing mid-way restores the old table
    with pytest.raises(oz.WriteError, match=f"writing table '{table}' failed"):
        db.write(unencodable, table, if_exists="replace")
    back = db.query(f"select * from {table}")
    assert len(back) == 3 and list(back.columns) == list(frame.columns)


def test_bad_if_exists_is_rejected(db: oz.Database, table: str, frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="if_exists must be 'fail', 'append' or 'replace', not 'nonsense'"):
        db.write(frame, table, if_exists="nonsense")  # type: ignore[arg-type]


def test_text_edge_cases_round_trip(db: oz.Database, table: str) -> None:
    texts = ["", None, "\\N", 'a,"b"\nc', "NULL", "ünïcødé"]
    frame = pd.DataFrame({"i": range(len(texts)), "t": pd.array(texts, dtype="str")})
    db.write(frame, table)
    back = db.query(f"select t from {table} order by i").t.tolist()
    assert back[0] == "" and pd.isna(back[1]) and back[2:] == texts[2:]


def test_objects_that_csv_cannot_carry_go_in_as_records(pg: oz.Database) -> None:
    frame = pd.DataFrame({"b": [b"\x00\xff", None]})
    pg.execute("drop table if exists blobs")
    pg.execute("create table blobs (b bytea)")
    try:
        assert pg.write(frame, "blobs", if_exists="append") == 2
        assert pg.query("select b from blobs order by b nulls last").b[0] == b"\x00\xff"
    finally:
        pg.execute("drop table blobs")


def test_writes_keep_integer_zone_and_decimal_types(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oz.settings, "numeric", "decimal")
    frame = pd.DataFrame({
        "n": pd.array([1, None], dtype="Int64"),
        "at": pd.to_datetime(["2024-03-01 10:00", "2024-07-01 10:00"]).tz_localize("Europe/Paris"),
        "d": pd.Series([Decimal("1.50"), Decimal("-2.25")], dtype=pd.ArrowDtype(pa.decimal128(6, 2))),
    })
    try:
        pg.write(frame, "oz_typed_write", if_exists="replace")
        kinds = pg.query("select column_name, data_type from information_schema.columns "
                         "where table_name = 'oz_typed_write' order by ordinal_position")
        assert kinds.data_type.tolist() == ["bigint", "timestamp with time zone", "numeric"]
        back = pg.query("select * from oz_typed_write order by at")
        assert str(back.n.dtype) == "Int64" and pd.isna(back.n[1])
        assert back["at"].tolist() == frame["at"].dt.tz_convert("UTC").tolist()
        assert [str(v) for v in back.d] == ["1.50", "-2.25"]
    finally:
        pg.execute("drop table if exists oz_typed_write")


def test_a_big_write_outlasts_idle_in_transaction_timeout(pg_url: str) -> None:
    """The rows are encoded before the transaction opens, so it is never idle for long."""
    settings = {"server_settings": {"idle_in_transaction_session_timeout": "100"}}
    text = pd.Series([f"row {i} of a big frame" for i in range(1_000_000)], dtype="str")
    frame = pd.DataFrame({"i": range(1_000_000), "a": text, "b": text, "c": text, "d": text,
                          "at": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(range(1_000_000), "s")})
    with oz.connect(pg_url, connect_args=settings) as db:
        try:
            assert db.write(frame, "oz_big_write", if_exists="replace") == 1_000_000
            assert db.query("select count(*) as n from oz_big_write").n[0] == 1_000_000
        finally:
            db.execute("drop table if exists oz_big_write")


EVERY_TYPE = """
select g as id, (g % 300)::smallint as small, g::int8 * 1000003 as big,
       (g / 3.0)::numeric(12, 4) as amount, 12345678901234567890.123::numeric as huge,
       g / 7.0::float8 as score, (g / 3.0)::real as ratio,
       case when g % 4 = 0 then null else 'name ' || g end as name, g % 2 = 0 as flag,
       date '2020-01-01' + g as day, timestamp '2020-01-01' + g * interval '1.5 sec' as at,
       timestamptz '2020-01-01 00:00+00' + g * interval '1 min' as at_tz, g * interval '1.25 sec' as took,
       time '01:02:03.5' + g * interval '1 sec' as clock,
       case when g % 5 = 0 then null
            else jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g, null)) end as doc,
       decode(lpad(to_hex(g), 6, '0'), 'hex') as raw
from generate_series(1, 2000) as g order by g
"""


@pytest.mark.parametrize(("numeric", "stored"), [("float", "DOUBLE PRECISION"), ("decimal", "NUMERIC")])
def test_a_frame_read_from_postgresql_writes_back_exactly(pg: oz.Database, monkeypatch: pytest.MonkeyPatch,
                                                          numeric: str, stored: str) -> None:
    """Every type the read side returns, through a write and a second read: the same frame."""
    monkeypatch.setattr(oz.settings, "numeric", numeric)
    source = pg.query(EVERY_TYPE)
    name = f"oz_roundtrip_{uuid.uuid4().hex[:8]}"
    try:
        assert pg.write(source, name) == 2000
        back = pg.query(f"select * from {name} order by id")
        pd.testing.assert_frame_equal(back, source)
        types = dict(zip(pg.describe(name).column, pg.describe(name).type, strict=True))
        assert types["day"] == "DATE" and types["doc"] == "JSONB" and types["took"] == "INTERVAL"
        assert types["amount"] == stored and types["raw"] == "BYTEA" and types["clock"] == "TIME"
    finally:
        pg.execute(f"drop table if exists {name}")


def test_append_casts_to_the_tables_own_types(pg: oz.Database) -> None:
    source = pg.query(EVERY_TYPE)[["id", "amount", "name", "at_tz", "doc"]]
    name = f"oz_append_{uuid.uuid4().hex[:8]}"
    pg.execute(f"create table {name} (id bigint, amount numeric(14, 6), name varchar(20), at_tz timestamptz, doc json)")
    try:
        pg.write(source, name, if_exists="append")
        back = pg.query(f"select * from {name} order by id")
        assert back.id.tolist() == source.id.tolist() and str(back.id.dtype) == "Int64"
        assert back.amount.tolist() == source.amount.tolist()
        assert back.name.equals(source.name) and back.at_tz.equals(source.at_tz)
        assert back.doc.tolist() == source.doc.tolist()
    finally:
        pg.execute(f"drop table if exists {name}")


def test_json_a_value_cannot_be_is_one_line_naming_the_column(pg: oz.Database) -> None:
    frame = pd.DataFrame({"ok": [1], "doc": [{"price": Decimal("1.5")}]})
    with pytest.raises(oz.WriteError, match=r"writing table 'oz_never' failed: column 'doc' holds a value JSON "
                                            r"cannot represent \(Type is not JSON serializable: decimal.Decimal\)"):
        pg.write(frame, "oz_never")
    assert "oz_never" not in pg.tables()


def test_nan_and_infinite_decimals_are_stored_as_they_are(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oz.settings, "numeric", "decimal")
    table = f"t_{uuid.uuid4().hex[:10]}"
    given = [Decimal("1.25"), Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), None]
    try:
        pg.write(pd.DataFrame({"d": given}), table)
        back = pg.query(f"select d, d::text as t from {table}")
        assert back.t.tolist()[:4] == ["1.25", "NaN", "Infinity", "-Infinity"] and pd.isna(back.t[4])
        assert [str(v) for v in back.d] == ["1.25", "NaN", "Infinity", "-Infinity", "None"]
        nan_only = pd.DataFrame({"d": [Decimal("2.5"), Decimal("NaN")]})
        assert pg.write(nan_only, table, if_exists="append") == 2
        assert pg.query(f"select count(*) as n from {table} where d = 'NaN'").n[0] == 2
    finally:
        pg.execute(f"drop table if exists {table}")


def test_datetimes_in_several_zones_are_instants_and_mixed_ones_are_refused(db: oz.Database, table: str) -> None:
    utc = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    paris = dt.datetime(2024, 1, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    mixed = pd.DataFrame({"at": pd.Series([utc, dt.datetime(2024, 1, 1, 12)], dtype=object)})
    with pytest.raises(oz.WriteError, match=rf"^writing table '{table}' failed: column 'at' mixes datetimes with and "
                                            r"without a time zone; make them one kind first"):
        db.write(mixed, table)
    assert table not in db.tables()
    db.write(pd.DataFrame({"at": pd.Series([utc, paris], dtype=object)}), table)
    if db.dialect == "postgresql":
        back = db.query(f"select at from {table} order by at")
        assert back["at"].tolist() == [pd.Timestamp(utc), pd.Timestamp(paris)]  # the same instants, in UTC


def test_a_write_whose_server_backend_dies_fails_in_one_line(pg_url: str, pg: oz.Database) -> None:
    table = f"t_{uuid.uuid4().hex[:10]}"
    n = 2_000_000
    frame = pd.DataFrame({"id": np.arange(n), "x": np.arange(n) / 7, "s": pd.Series(np.arange(n)).astype(str)})
    outcome: dict[str, object] = {}

    def write() -> None:
        with oz.connect(pg_url) as db:
            try:
                db.write(frame, table)
            except oz.OrizaError as error:
                outcome["error"] = error

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 60
    while writer.is_alive() and time.monotonic() < deadline:
        copying = pg.query("select pid from pg_stat_activity where state = 'active' and query like :q",
                           {"q": f"COPY%{table}%"})
        if len(copying):
            pg.query("select pg_terminate_backend(:p) as t", {"p": int(copying.pid[0])})
            break
        time.sleep(0.02)
    writer.join(20)  # it used to wait forever for room to write on the closed connection
    assert not writer.is_alive()
    error = outcome.get("error")
    assert isinstance(error, oz.WriteError) and "\n" not in str(error), outcome
    assert str(error).startswith(f"writing table '{table}' failed: the connection to the server was lost")
    assert table not in pg.tables()  # nothing written


def test_empty_frames_make_a_table_with_their_columns_and_no_columns_is_refused(db: oz.Database, table: str) -> None:
    with pytest.raises(ValueError, match=r"^the frame has no columns; a table needs at least one$"):
        db.write(pd.DataFrame(), table)
    assert table not in db.tables()
    empty = pd.DataFrame({"n": pd.Series([], dtype="Int64"), "s": pd.Series([], dtype="str"),
                          "at": pd.Series([], dtype="datetime64[us, UTC]")})
    assert db.write(empty, table) == 0
    assert db.describe(table).column.tolist() == ["n", "s", "at"]
    assert db.write(pd.DataFrame({"n": [1], "s": ["x"], "at": [pd.Timestamp("2024-01-01", tz="UTC")]}), table,
                    if_exists="append") == 1
    assert db.query(f"select count(*) as c from {table}").c[0] == 1


def test_an_object_column_of_booleans_and_none_is_boolean(db: oz.Database, table: str) -> None:
    db.write(pd.DataFrame({"ok": pd.Series([True, None, np.bool_(False)], dtype=object)}), table)
    assert db.describe(table).type[0] == "BOOLEAN"
    back = db.query(f"select ok from {table}").ok
    assert back.tolist()[0] in (True, 1) and pd.isna(back[1]) and back.tolist()[2] in (False, 0)
