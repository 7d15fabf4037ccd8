"""The nycflights13 loader on PostgreSQL: one transaction, indexes and keys rebuilt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import oriza_toolkit as oz
from oriza_toolkit import migrations
from oriza_toolkit.examples.nycflights13.loader import load_nycflights13

SCHEMA_OBJECTS = """
select (select count(*) from pg_indexes where schemaname = 'public') as indexes,
       (select count(*) from pg_constraint where contype = 'f') as foreign_keys,
       (select string_agg(indexname, ',' order by indexname) from pg_indexes where tablename = 'flights') as names
"""


def test_bulk_load_rebuilds_what_it_dropped(scratch_database: Callable[[], str]) -> None:
    with oz.connect(scratch_database()) as db:
        migrations.upgrade("head", db)
        before = db.query(SCHEMA_OBJECTS)
        assert before.foreign_keys[0] >= 2 and "ix_flights_origin" in before.names[0]
        for _ in range(2):  # loading again replaces the rows
            counts = load_nycflights13(db, progress=False)
        assert counts == {"airlines": 16, "airports": 1458, "planes": 3322, "weather": 26115, "flights": 336776}
        after = db.query(SCHEMA_OBJECTS)
        assert after.to_dict("records") == before.to_dict("records")
        joined = db.query("select count(*) as n from flights join airlines using (carrier)")
        assert joined.n[0] == 336776
        assert migrations.schema_status(db).diffs == []


def test_a_failed_bulk_load_leaves_the_tables_as_they_were(scratch_database: Callable[[], str]) -> None:
    with oz.connect(scratch_database()) as db:
        migrations.upgrade("head", db)
        load_nycflights13(db, progress=False)
        db.execute("delete from flights where carrier = 'UA'")
        # a rule the data's airlines break: the COPY fails after the indexes and keys were dropped
        db.execute("alter table airlines add constraint oz_no_ua check (carrier <> 'UA') not valid")
        before = db.query("select count(*) as n from flights").n[0]
        objects = db.query(SCHEMA_OBJECTS).to_dict("records")
        try:
            load_nycflights13(db, progress=False)
        except oz.OrizaError as error:
            assert "oz_no_ua" in str(error)
        else:
            raise AssertionError("the load should fail on the check constraint")
        assert db.query("select count(*) as n from flights").n[0] == before
        assert db.query(SCHEMA_OBJECTS).to_dict("records") == objects


def test_a_column_the_user_added_is_filled_by_the_table(scratch_database: Callable[[], str]) -> None:
    url = scratch_database()
    with oz.connect(url) as db:
        migrations.upgrade("head", db)
        db.execute("alter table flights add column seat_class varchar(8) default 'economy'")
    # the README's schema change: the column added to the model too (in a process of its own,
    # so this test's models stay as they are)
    code = textwrap.dedent(f"""
        import sqlalchemy as sa
        import oriza_toolkit as oz
        from oriza_toolkit.examples.nycflights13 import Flight, load_nycflights13
        Flight.__table__.append_column(sa.Column("seat_class", sa.String(8), server_default="economy"))
        with oz.connect({url!r}) as db:
            print(load_nycflights13(db, progress=False)["flights"])
            print(db.query("select count(*) as n from flights where seat_class = 'economy'").n[0])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["336776", "336776"]
