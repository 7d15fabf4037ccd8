"""Bad input: each case is one clear line naming what is wrong, raised where the user
called, and the next call works. Exact messages, so a change to one is a decision."""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

import oriza_toolkit as oz
from oriza_toolkit import ConfigError, QueryError

DF = pd.DataFrame({"a": [1]})
DUP = pd.DataFrame([[1, 2]], columns=["a", "a"])
MULTI = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("sales", "q1"), ("sales", "q2")]))

Case = tuple[str, Callable[[Any], Any], type[BaseException], str]

# The same on PostgreSQL and SQLite.
COMMON: list[Case] = [
    ('sql None', lambda db: db.query(None), TypeError, "query 'query': the SQL must be a string or a SQLAlchemy statement, not NoneType"),
    ('sql int', lambda db: db.query(42), TypeError, "query 'query': the SQL must be a string or a SQLAlchemy statement, not int"),
    ('sql bytes', lambda db: db.query(b"select 1"), TypeError, "query 'query': the SQL must be a string or a SQLAlchemy statement, not bytes"),
    ('empty sql', lambda db: db.query(""), ValueError, "query 'query': the SQL is empty"),
    ('only a comment', lambda db: db.query("   -- just a note\n"), ValueError, "query 'query': the SQL is empty"),
    ('two statements', lambda db: db.query("select 1; select 2"), ValueError, "query 'query': the SQL holds more than one statement; run one statement at a time"),
    ('open literal', lambda db: db.query("select 'abc"), ValueError, "query 'query': unterminated string literal starting at character 8"),
    ('open identifier', lambda db: db.query('select "abc'), ValueError, "query 'query': unterminated quoted identifier starting at character 8"),
    ('open comment', lambda db: db.query("select /* x"), ValueError, "query 'query': unterminated /* comment starting at character 8"),
    ('open dollar quote', lambda db: db.query("select $$x"), ValueError, "query 'query': unterminated dollar-quoted string starting at character 8"),
    ('param without params', lambda db: db.query("select :x as x"), ValueError, "query 'query' uses :x but no params were given"),
    ('param missing', lambda db: db.query("select :x as x", {"y": 1}), ValueError, "query 'query' uses :x but params has no key 'x'"),
    ('positional list', lambda db: db.query("select :x as x", [1]), TypeError, "query 'query': params must be a mapping of parameter names to values (e.g. {'id': 1} for :id), not list"),
    ('positional tuple', lambda db: db.query("select :x as x", (1,)), TypeError, "query 'query': params must be a mapping of parameter names to values (e.g. {'id': 1} for :id), not tuple"),
    ('param name int', lambda db: db.query("select 1", {1: 2}), TypeError, "query 'query': parameter names must be strings, not 1"),
    ('timeout str', lambda db: db.query("select 1", timeout="5"), TypeError, "timeout must be a number of seconds, not str '5'"),
    ('timeout zero', lambda db: db.query("select 1", timeout=0), ValueError, 'timeout must be a positive number of seconds, not 0'),
    ('timeout negative', lambda db: db.query("select 1", timeout=-1), ValueError, 'timeout must be a positive number of seconds, not -1'),
    ('timeout bool', lambda db: db.query("select 1", timeout=True), TypeError, 'timeout must be a number of seconds, not bool True'),
    ('timeout nan', lambda db: db.query("select 1", timeout=float("nan")), ValueError, 'timeout must be a positive number of seconds, not nan'),
    ('batch list', lambda db: db.query_many(["select 1"]), TypeError, "queries must be a mapping of names to SQL or (SQL, params) pairs, e.g. {'n': 'select count(*) from t'}, not list"),
    ('batch errors', lambda db: db.query_many({"a": "select 1"}, errors="bogus"), ValueError, "errors must be 'raise' or 'return', not 'bogus'"),
    ('batch name int', lambda db: db.query_many({1: "select 1"}), TypeError, 'query names must be strings, not 1'),
    ('batch 3-tuple', lambda db: db.query_many({"a": ("select 1", {}, 3)}), TypeError, "query 'a': give SQL or a (SQL, params) pair, not a 3-tuple"),
    ('batch sql None', lambda db: db.query_many({"a": None}), TypeError, "query 'a': the SQL must be a string or a SQLAlchemy statement, not NoneType"),
    ('batch missing param', lambda db: db.query_many({"a": "select :x as x"}), ValueError, "query 'a' uses :x but no params were given"),
    ('batch concurrency 0', lambda db: db.query_many({"a": "select 1"}, max_concurrency=0), ValueError, 'max_concurrency must be a whole number of at least 1, not 0'),
    ('batch concurrency above the pool', lambda db: db.query_many({"a": "select 1"}, max_concurrency=50), ValueError, "max_concurrency=50 is more than this pool can give (15: pool_size + max_overflow); open the Database with a bigger pool_size= or max_overflow=, or leave max_concurrency out"),
    ('script missing param', lambda db: db.run_script("select 1 as a; select :missing as m", {"other": 1}), ValueError, "query 'statement 2' uses :missing but params has no key 'missing'"),
    ('script only comments', lambda db: db.run_script("-- nothing here\n"), ValueError, "the SQL is empty"),
    ('in with a list', lambda db: db.query("select 1 as x where 1 in (:ids)", {"ids": [1, 2]}), ValueError, "query 'query': a list binds as one array, so 'in :ids' cannot take it; write '= any(:ids)'"),
    ('batch timeout str', lambda db: db.query_many({"a": "select 1"}, timeout="x"), TypeError, "timeout must be a number of seconds, not str 'x'"),
    ('execute None', lambda db: db.execute(None), TypeError, "query 'execute': the SQL must be a string or a SQLAlchemy statement, not NoneType"),
    ('execute empty', lambda db: db.execute(""), ValueError, "query 'execute': the SQL is empty"),
    ('write list', lambda db: db.write([1, 2], "t"), TypeError, 'write takes a pandas DataFrame, not list'),
    ('write empty table name', lambda db: db.write(DF, ""), TypeError, "the table name must be a non-empty string, not ''"),
    ('write if_exists', lambda db: db.write(DF, "t", if_exists="bogus"), ValueError, "if_exists must be 'fail', 'append' or 'replace', not 'bogus'"),
    ('write duplicate columns', lambda db: db.write(DUP, "t"), ValueError, 'the frame has duplicate column names: a'),
    ('write mixed kinds', lambda db: db.write(pd.DataFrame({"c": pd.Series([1, "a"], dtype=object)}), "t"), ValueError, "column 'c' mixes int and str values (e.g. 1 and 'a'), which no column type holds as they are; make them one kind first, e.g. frame['c'].astype(str)"),
    ('write mixed dates', lambda db: db.write(pd.DataFrame({"d": pd.Series([None, dt.date(2024, 1, 1), "2024-01-02"], dtype=object)}), "t"), ValueError, "column 'd' mixes date and str values (e.g. datetime.date(2024, 1, 1) and '2024-01-02'), which no column type holds as they are; make them one kind first, e.g. frame['d'].astype(str)"),
    ('write no columns', lambda db: db.write(pd.DataFrame(), "t"), ValueError, "the frame has no columns; a table needs at least one"),
    ('write multiindex columns', lambda db: db.write(MULTI, "t"), ValueError, "the frame's columns are a MultiIndex (e.g. ('sales', 'q1')); flatten them first, e.g. frame.columns = ['_'.join(map(str, c)) for c in frame.columns]"),
    ('write schema int', lambda db: db.write(DF, "t", schema=5), TypeError, 'schema must be a string, not int'),
    ('describe empty', lambda db: db.describe(""), TypeError, "the table name must be a non-empty string, not ''"),
    ('describe missing', lambda db: db.describe("no_such_table"), QueryError, "query 'describe' failed: no table named 'no_such_table'"),
    ('tables schema int', lambda db: db.tables(schema=5), TypeError, 'schema must be a string, not int'),
]
POSTGRES: list[Case] = [
    ('syntax error', lambda db: db.query("selec 1"), QueryError, 'query \'selec 1\' failed: syntax error at or near "selec" (at character 1: \'selec 1\')'),
    ('missing table', lambda db: db.query("select * from no_such_table where x = :x", {"x": 1}), QueryError, 'query \'select * from no_such_table where x = :x\' failed: relation "no_such_table" does not exist (at character 15: \'no_such_table where x =\')'),
    ('bad parameter value', lambda db: db.query("select :a::int as a", {"a": "abc"}), QueryError, 'query \'select :a::int as a\' failed: invalid input syntax for type integer: "abc" (at character 8: \':a::int as a\')'),
    ('unencodable parameter', lambda db: db.query("select :d::date as d", {"d": 3.5}), QueryError, "query 'select :d::date as d' failed: invalid parameter value: invalid input for query argument :d: 3.5 ('float' object has no attribute 'toordinal')"),
    ('infinity timestamp', lambda db: db.query("select 'infinity'::timestamp as ts"), QueryError, 'query "select \'infinity\'::timestamp as ts" failed: column \'ts\' holds \'infinity\', which has no timestamp equivalent in a DataFrame; cast or filter it in the SQL'),
    ('long identifier', lambda db: db.query("select 1 as " + "x" * 70), QueryError, "query 'select 1 as xxxxxxxxxxxxxxxxxxxxxxxxx...' failed: the name 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is longer than PostgreSQL's 63-byte limit and would be cut; use a shorter one"),
    ('write long column name', lambda db: db.write(pd.DataFrame({"x" * 70: [1]}), "t"), ValueError, "the name 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is longer than postgresql's 63-byte limit and would be cut; use a shorter one"),
    ('write long multibyte name', lambda db: db.write(pd.DataFrame({"é" * 40: [1]}), "t"), ValueError, "the name 'éééééééééééééééééééééééééééééé...' is longer than postgresql's 63-byte limit and would be cut; use a shorter one"),
    ('value out of range', lambda db: db.query("select :n::int as n", {"n": 2**40}), QueryError, 'query \'select :n::int as n\' failed: value "1099511627776" is out of range for type integer (at character 8: \':n::int as n\')'),
]
SQLITE: list[Case] = [
    ('syntax error', lambda db: db.query("selec 1"), QueryError, 'query \'selec 1\' failed: near "selec": syntax error'),
    ('missing table', lambda db: db.query("select * from no_such_table where x = :x", {"x": 1}), QueryError, "query 'select * from no_such_table where x = :x' failed: no such table: no_such_table"),
]
CONNECT: list[Case] = [
    ('unparseable url', lambda url: oz.connect("not a url"), ConfigError, 'cannot parse the database URL; expected e.g. postgresql://user:password@host:5432/dbname'),
    ('unsupported dialect', lambda url: oz.connect("mysql://u:p@h/d"), ConfigError, "unsupported database 'mysql' in the URL; oriza_toolkit works with postgresql:// and sqlite:// URLs"),
    ('port not a number', lambda url: oz.connect("postgresql://u:hunter2@h:abc/d"), ConfigError, 'the port in the database URL must be a number from 1 to 65535'),
    ('port out of range', lambda url: oz.connect("postgresql://u:hunter2@h:70000/d"), ConfigError, 'the port in the database URL must be a number from 1 to 65535'),
    ('empty url', lambda url: oz.connect(""), ConfigError, "the database URL is empty; give a URL, a connection name, or nothing for DATABASE_URL"),
    ('bad connection name', lambda url: oz.connections.get("a b"), ValueError, "not a valid connection name: 'a b' (a word of letters, digits and _)"),
    ('url int', lambda url: oz.connect(42), TypeError, 'the database URL must be a string or a sqlalchemy URL, not int'),
    ('bad engine option', lambda url: oz.connect(url, bogus_option=1), ConfigError, "invalid engine option: Invalid argument(s) 'bogus_option' sent to create_engine()"),
    ('bad connect_timeout', lambda url: oz.connect(url + "?connect_timeout=abc"), ConfigError, "connect_timeout must be a number of seconds, not 'abc'"),
]


def _check(call: Callable[[], Any], kind: type[BaseException], message: str) -> None:
    with pytest.raises(kind) as caught:
        call()
    assert str(caught.value) == message
    assert "\n" not in message
    # raised at the call: the only toolkit frame in the traceback is the public call's own
    toolkit = [frame.f_code.co_name for frame, _ in traceback.walk_tb(caught.value.__traceback__)
               if "oriza_toolkit" in frame.f_code.co_filename]
    assert len(toolkit) <= 1, toolkit


@pytest.mark.parametrize(("name", "call", "kind", "message"), COMMON, ids=[c[0] for c in COMMON])
def test_bad_input(db: oz.Database, name: str, call: Callable[[Any], Any], kind: type[BaseException],
                   message: str) -> None:
    _check(lambda: call(db), kind, message)
    assert db.query("select 1 as ok").ok[0] == 1


@pytest.mark.parametrize(("name", "call", "kind", "message"), POSTGRES, ids=[c[0] for c in POSTGRES])
def test_bad_input_postgres(pg: oz.Database, name: str, call: Callable[[Any], Any], kind: type[BaseException],
                            message: str) -> None:
    _check(lambda: call(pg), kind, message)
    assert pg.query("select 1 as ok").ok[0] == 1


@pytest.mark.parametrize(("name", "call", "kind", "message"), SQLITE, ids=[c[0] for c in SQLITE])
def test_bad_input_sqlite(sqlite_url: str, name: str, call: Callable[[Any], Any], kind: type[BaseException],
                          message: str) -> None:
    with oz.connect(sqlite_url) as db:
        _check(lambda: call(db), kind, message)
        assert db.query("select 1 as ok").ok[0] == 1


@pytest.mark.parametrize(("name", "call", "kind", "message"), CONNECT, ids=[c[0] for c in CONNECT])
def test_bad_connect(pg_url: str, name: str, call: Callable[[Any], Any], kind: type[BaseException],
                     message: str) -> None:
    _check(lambda: call(pg_url), kind, message)
    with oz.connect(pg_url) as db:
        assert db.query("select 1 as ok").ok[0] == 1
