"""The connection one read hands to the next: single reads in a row skip the pool.

A small read costs little on the server and a lot in the client, and much of what the
client spends goes to SQLAlchemy's checkout and return (an AsyncConnection, two greenlet
switches, the pool's events and reset): measured on ``select 1`` in a loop, ~25% of the
whole call. So the connection a read ends with, if it ends idle (not cancelled, no
transaction open on it, whether its statement failed or not), stays checked out for the
next read of the same engine, for at most :data:`IDLE_SECONDS` after its last use and
:data:`HELD_SECONDS` in all; then it goes back to the pool, whose checks
(``pool_pre_ping``, ``pool_recycle``, the toolkit's closed-connection check) it meets
again at its next checkout.

While it waits it is one connection checked out of the pool (``Database.pool_status``
does not count it as in use). Any read can take it, a batch's runners too, so it never
keeps a query waiting for the pool; it goes back at once when the Database is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

__all__ = ["HELD_SECONDS", "IDLE_SECONDS", "held", "keep", "release", "take"]

# How long an idle connection waits for the next read, and how long one is kept out of the
# pool in all, however busy (so the pool's own checks still see it every few seconds).
IDLE_SECONDS = 0.5
HELD_SECONDS = 5.0


class _Slot:
    __slots__ = ("closing", "conn", "idle_since", "out_since", "timer")

    def __init__(self) -> None:
        self.conn: AsyncConnection | None = None
        self.out_since = 0.0  # when the connection was checked out of the pool
        self.idle_since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.closing: set[asyncio.Task[None]] = set()  # idle ones on their way back to the pool


# By the sync Engine under each AsyncEngine (which takes no weak references).
_slots: weakref.WeakKeyDictionary[Engine, _Slot] = weakref.WeakKeyDictionary()


def take(engine: AsyncEngine) -> tuple[AsyncConnection, float] | None:
    """The connection kept for ``engine``, and when it left the pool; None if there is none."""
    slot = _slots.get(engine.sync_engine)
    if slot is None or slot.conn is None:
        return None
    conn, slot.conn = slot.conn, None
    return conn, slot.out_since


def keep(engine: AsyncEngine, conn: AsyncConnection, out_since: float, *, idle: bool) -> bool:
    """Keep ``conn`` (checked out at ``out_since``, loop time) for the next read of
    ``engine``; False (the caller gives it back) where it must go back to the pool: it is
    not ``idle`` (the caller knows its driver: open, no transaction, no execution options
    of its own), one is kept already, it has been out for :data:`HELD_SECONDS`, or the
    engine keeps no idle connections (``NullPool``: a snapshot's holder, or the user's
    choice)."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    slot = _slots.get(engine.sync_engine)
    if slot is None:
        slot = _slots[engine.sync_engine] = _Slot()
    if not idle or slot.conn is not None or now - out_since > HELD_SECONDS or isinstance(engine.pool, NullPool):
        return False
    slot.conn, slot.out_since, slot.idle_since = conn, out_since, now
    if slot.timer is None:
        slot.timer = loop.call_later(IDLE_SECONDS, _expire, engine.sync_engine)
    return True


def held(engine: AsyncEngine) -> int:
    """How many connections are kept for ``engine`` (0 or 1)."""
    slot = _slots.get(engine.sync_engine)
    return int(slot is not None and slot.conn is not None)


async def release(engine: AsyncEngine) -> None:
    """Give the connection kept for ``engine`` back to the pool (before it is disposed), and
    wait for one the idle timer is giving back: a connection returned after the pool is
    disposed goes into a pool nobody holds, open on the server until garbage collection."""
    slot = _slots.get(engine.sync_engine)
    if slot is None:
        return
    if slot.timer is not None:
        slot.timer.cancel()
        slot.timer = None
    conn, slot.conn = slot.conn, None
    if conn is not None:
        await _close(conn)
    if slot.closing:
        await asyncio.wait(set(slot.closing))


def _expire(engine: Engine) -> None:
    slot = _slots.get(engine)
    if slot is None:
        return
    slot.timer = None
    if slot.conn is None:
        return
    loop = asyncio.get_running_loop()
    left = slot.idle_since + IDLE_SECONDS - loop.time()
    if left > 0:  # used again since: look again when it will have idled long enough
        slot.timer = loop.call_later(left, _expire, engine)
        return
    conn, slot.conn = slot.conn, None
    task = loop.create_task(_close(conn))
    slot.closing.add(task)  # held here too: a task nobody holds may be collected
    task.add_done_callback(slot.closing.discard)


async def _close(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):  # a dead connection is dropped by the pool
        await conn.close()
