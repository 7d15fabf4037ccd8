"""asyncpg's one private API the toolkit uses, behind one guarded wrapper.

A read sends ``SET LOCAL ...; COPY (query) TO STDOUT`` as one simple-query message, so it
is one round trip and one implicit transaction. asyncpg's public ``copy_from_query``
wraps its argument in a COPY of its own, so it cannot send that; its private
``Connection._copy_out(text, output, timeout)`` can. Whether it is there is checked once,
at import: without it (a future asyncpg), reads take the public path, in an explicit
transaction (two more round trips, the same results), and say so once.

The version bound in ``pyproject.toml`` admits only the asyncpg releases this was checked
against; ``tests/backends/test_postgresql.py`` fails loudly when the private method goes.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ..config import OrizaWarning

__all__ = ["HAS_COPY_OUT", "copy_out", "query_offset"]

Sink = Callable[[bytes], Awaitable[None]]

_COPY_HEAD = "COPY ("
_COPY_TAIL = "\n) TO STDOUT (FORMAT csv, NULL E'\\\\N')"  # E'': the same on any standard_conforming_strings


def _has_copy_out() -> bool:
    method = getattr(asyncpg.connection.Connection, "_copy_out", None)
    if method is None:
        return False
    return list(inspect.signature(method).parameters)[:4] == ["self", "copy_stmt", "output", "timeout"]


HAS_COPY_OUT = _has_copy_out()
_warned = False


def query_offset(settings: str) -> int:
    """How many characters precede the query in the text the server sees (to map an
    error's position back into the query)."""
    return len(f"{settings}; {_COPY_HEAD}") if HAS_COPY_OUT else len(_COPY_HEAD)


async def copy_out(driver: Any, settings: str, query: str, sink: Sink) -> None:
    """Stream ``COPY (query) TO STDOUT`` as CSV (NULL as ``\\N``) into ``sink``, with
    ``settings`` (``SET LOCAL`` statements) in force for the COPY's transaction only."""
    if HAS_COPY_OUT:
        await driver._copy_out(f"{settings}; {_COPY_HEAD}{query}{_COPY_TAIL}", sink, None)
        return
    _warn_once()
    if driver.is_in_transaction():  # the caller's own transaction: SET LOCAL lasts to its end
        await driver.execute(settings)
        await driver.copy_from_query(f"{query}\n", output=sink, format="csv", null="\\N")
        return
    async with driver.transaction():
        # asyncpg writes NULL '\N': make sure the backslash is read as written
        await driver.execute(f"{settings}; SET LOCAL standard_conforming_strings = on")
        await driver.copy_from_query(f"{query}\n", output=sink, format="csv", null="\\N")


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"asyncpg {asyncpg.__version__} has no Connection._copy_out; oriza_toolkit reads through "
                      "copy_from_query instead (correct, two round trips slower)", OrizaWarning, stacklevel=3)
