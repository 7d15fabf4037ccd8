"""Example data sets: ``load_nycflights13(db)`` loads the nycflights13 example's tables.

Kept here for the quickstart's import; the example itself lives in
:mod:`oriza_toolkit.examples.nycflights13`.
"""

from __future__ import annotations

from .examples.nycflights13.loader import aload_nycflights13, load_nycflights13, read_nycflights13

__all__ = ["aload_nycflights13", "load_nycflights13", "read_nycflights13"]
