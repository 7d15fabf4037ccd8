"""The documented dtype of every common PostgreSQL and SQLite type, checked on real servers."""

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import oriza_toolkit as oz

# (SQL expression, dtype, first value, second value is NULL?)
POSTGRES_TYPES = [
    ("1::smallint", "Int16", 1),
    ("2::integer", "Int32", 2),
    ("3::bigint", "Int64", 3),
    ("123456789012345678901234.5678901234::numeric", "float64", 1.2345678901234568e23),
    ("0.1::numeric(12, 2)", "float64", 0.1),
    ("1.5::real", "float32", 1.5),
    ("2.25::double precision", "float64", 2.25),
    ("'a''b'::text", "str", "a'b"),
    ("'v'::varchar(3)", "str", "v"),
    ("true", "boolean", True),
    ("'2024-02-29'::date", "datetime64[s]", pd.Timestamp("2024-02-29")),
    ("'13:14:15.5'::time", "object", dt.time(13, 14, 15, 500000)),
    ("'2024-01-02 03:04:05.123456'::timestamp", "datetime64[us]", pd.Timestamp("2024-01-02 03:04:05.123456")),
    ("'2024-01-02 03:04:05+02'::timestamptz", "datetime64[us, UTC]", pd.Timestamp("2024-01-02 01:04:05", tz="UTC")),
    ("'1 day 02:03:04.5'::interval", "timedelta64[us]", pd.Timedelta("1 day 02:03:04.5")),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "str", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("""'{"a": [1, 2]}'::json""", "object", {"a": [1, 2]}),
    ("""'{"b": null}'::jsonb""", "object", {"b": None}),
    ("'\\x00ff'::bytea", "object", b"\x00\xff"),
    ("array[1, 2, 3]", "object", [1, 2, 3]),
    ("array['x', 'y,z']", "object", ["x", "y,z"]),
    ("'ok'::mood", "category", "ok"),
]


@pytest.fixture
def mood(pg: oz.Database) -> oz.Database:
    pg.execute("DO $$ BEGIN CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); "
               "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    return pg


@pytest.mark.parametrize(("expression", "dtype", "value"), POSTGRES_TYPES, ids=[t[1] + ":" + t[0][:20]
                                                                                for t in POSTGRES_TYPES])
def test_postgres_type_to_dtype(mood: oz.Database, expression: str, dtype: str, value: object) -> None:
    # Second row is NULL of the same type: nullable dtypes must not degrade.
    sql = f"select v from (values ({expression}), (null)) as t(v)"
    df = mood.query(sql)
    assert str(df.v.dtype) == dtype
    assert df.v[0] == value
    assert pd.isna(df.v[1])
    # The parameterised path (materialised server-side) gives the same.
    with_params = mood.query(sql + " where :one = 1 or true", {"one": 1})
    assert str(with_params.v.dtype) == dtype
    assert with_params.v[0] == value


def test_enum_categories_keep_the_enum_order(mood: oz.Database) -> None:
    df = mood.query("select unnest(array['happy', 'sad']::mood[]) as m")
    assert list(df.m.cat.categories) == ["sad", "ok", "happy"] and df.m.cat.ordered
    assert df.m.min() == "sad"


def test_text_edge_cases_survive(pg: oz.Database) -> None:
    df = pg.query("select v from (values (''), (null), ('\\N'), ('a,\"b\"\nc'), ('NULL')) as t(v)")
    assert df.v[0] == "" and pd.isna(df.v[1]) and df.v[2] == "\\N"
    assert df.v[3] == 'a,"b"\nc' and df.v[4] == "NULL"


def test_computed_numerics_are_floats_analysts_can_compute_with(pg: oz.Database) -> None:
    df = pg.query("select g % 2 as k, avg(g) as d, sum(g)::numeric(12, 2) as s from generate_series(1, 10) g "
                  "group by 1 order by 1")
    assert str(df.d.dtype) == "float64" and df.d.tolist() == [6.0, 5.0] and df.s.tolist() == [30.0, 25.0]
    summary = df.describe()
    assert list(summary.columns) == ["k", "d", "s"] and summary.loc["mean", "d"] == 5.5
    assert np.log(df.d).round(6).tolist() == [1.791759, 1.609438]
    assert ((df.d * 10) / 10).tolist() == [6.0, 5.0]
    special = pg.query("select v from (values ('NaN'::numeric), ('Infinity'), ('-Infinity'), (null), (0.1)) as t(v)")
    values = special.v.tolist()
    assert values[0] != values[0] and values[1:3] == [float("inf"), float("-inf")] and values[4] == 0.1
    assert special.v.isna().tolist() == [True, False, False, True, False]  # NaN and NULL are alike in float64


def test_numeric_as_decimal_is_never_rounded(pg: oz.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oz.settings, "numeric", "decimal")
    df = pg.query("select v from (values (0.1::numeric), (12345678901234567890.000000000000000001), "
                  "(-3), (null)) as t(v)")
    assert df.v.dtype == object
    assert [str(x) for x in df.v[:3]] == ["0.1", "12345678901234567890.000000000000000001", "-3"]
    assert df.v[3] is None
    # pandas' arithmetic works on them (to the 28 digits of Python's default decimal context)
    assert ((df.v[[0, 2]] * 10) / 4).tolist() == [Decimal("0.25"), Decimal("-7.5")]
    special = pg.query("select v from (values ('NaN'::numeric), (1.25)) as t(v)")
    assert special.v.dtype == object and special.v[1] == Decimal("1.25") and special.v[0].is_nan()
    computed = pg.query("select avg(g) as d from generate_series(1, 3) g")
    assert computed.d[0] == Decimal("2") and computed.describe().loc["count", "d"] == 1


def test_float_specials(pg: oz.Database) -> None:
    df = pg.query("select v from (values ('Infinity'::float8), ('-Infinity'), ('NaN'), (1e-300)) as t(v)")
    values = df.v.tolist()
    assert values[0] == float("inf") and values[1] == float("-inf") and values[2] != values[2]
    assert values[3] == 1e-300


def test_json_arrays_of_composites(pg: oz.Database) -> None:
    df = pg.query("select row(1, 'a') as r, array[[1,2],[3,4]] as m")
    assert df.r[0] == {"f1": 1, "f2": "a"} and df.m[0] == [[1, 2], [3, 4]]
    assert json.dumps(df.r[0])


SQLITE_TYPES = [
    ("1", "Int64", 1),
    ("2.5", "float64", 2.5),
    ("'text'", "str", "text"),
    ("x'00ff'", "object", b"\x00\xff"),
]


@pytest.mark.parametrize(("expression", "dtype", "value"), SQLITE_TYPES)
def test_sqlite_type_to_dtype(sqlite_url: str, expression: str, dtype: str, value: object) -> None:
    with oz.connect(sqlite_url) as db:
        df = db.query(f"select v from (select {expression} as v union all select null) order by v is null")
    assert str(df.v.dtype) == dtype
    assert df.v[0] == value and pd.isna(df.v[1])


def test_sqlite_typed_core_statement(sqlite_url: str) -> None:
    from sqlalchemy import Boolean, Date, DateTime, Numeric, literal_column, select

    stmt = select(literal_column("1", Boolean).label("b"), literal_column("'2024-01-02'", Date).label("d"),
                  literal_column("'2024-01-02 03:04:05'", DateTime).label("ts"),
                  literal_column("1.25", Numeric(10, 2)).label("n"))
    with oz.connect(sqlite_url) as db:
        df = db.query(stmt)
    assert str(df.b.dtype) == "boolean" and df.b[0]
    assert str(df.d.dtype) == "datetime64[s]" and df.d[0] == pd.Timestamp("2024-01-02")
    assert str(df.ts.dtype) == "datetime64[us]" and df.ts[0] == pd.Timestamp("2024-01-02 03:04:05")
    assert df.n[0] == 1.25 and str(df.n.dtype) == "float64"


def test_sqlite_column_mixing_kinds_stays_objects(sqlite_url: str) -> None:
    with oz.connect(sqlite_url) as db:
        df = db.query("select 1 as v union all select 'two' union all select null")
    assert str(df.v.dtype) == "object" and sorted(df.v.dropna().tolist(), key=str) == [1, "two"]
