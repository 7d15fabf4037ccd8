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
    with pytest.raises(oz.WriteError, match=f"writing table '{table}' failed: .*already exists"):
        db.write(frame, table)
    assert db.write(frame, table, if_exists="append") == 3
    assert db.query(f"select count(*) as n from {table}").n[0] == 6
    assert db.write(frame.head(1), table, if_exists="replace") == 1
    assert db.query(f"select count(*) as n from {table}").n[0] == 1


def test_failed_write_leaves_the_table_as_it_was(db: oz.Database, table: str, frame: pd.DataFrame) -> None:
    db.write(frame, table)
    unencodable = pd.DataFrame({"id": [7, 8], "payload": [{"a": 1}, {"b": 2}]})
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


def test_writes_keep_integer_zone_and_decimal_types(pg: oz.Database) -> None:
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
