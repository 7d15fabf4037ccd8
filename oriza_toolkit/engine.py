"""The event loop every engine lives on, in a background thread.

Jupyter kernels already run a loop in the main thread, so ``asyncio.run`` fails there
and ``loop.run_until_complete`` would need nest-asyncio. Instead each ``Database`` runs
its AsyncEngine on a private loop in a daemon thread: blocking calls submit a coroutine
and wait for it, awaitable calls submit it and await the wrapped future from whatever
loop the caller is on. One engine, one pool, in every environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["EventLoopThread", "make_engine"]

T = TypeVar("T")

# How often a waiting caller redraws progress.
POLL_SECONDS = 0.1
# How long a blocking call waits, after Ctrl-C, for its queries to be cancelled on the server.
CANCEL_GRACE_SECONDS = 5.0

# Execution option marking a connection that will write (SQLite then begins IMMEDIATE).
WRITE_OPTION = "oriza_write"

# Session settings that make COPY output easy to parse exactly (see frames.py).
POSTGRES_SERVER_SETTINGS = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "iso_8601",
    "TimeZone": "UTC",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "application_name": "oriza_toolkit",
}


class EventLoopThread:
    """An asyncio loop running forever in a daemon thread."""

    def __init__(self, name: str = "oriza-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop; the returned future is safe to wait on anywhere."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], *, poll: Callable[[], None] | None = None) -> T:
        """Run ``coro`` on the loop and block until it ends, calling ``poll`` now and then.

        ``poll`` runs on the calling thread (it draws progress bars where the user sees
        them). On KeyboardInterrupt the coroutine is cancelled, and we wait (briefly) until
        the cancellation has reached the server before re-raising, so an interrupted cell
        leaves no query running.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("a blocking oriza_toolkit call was made on the toolkit's own loop; await its a* twin")
        finished = threading.Event()

        async def tracked() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = self.submit(tracked())
        try:
            while poll is not None and not future.done():
                concurrent.futures.wait([future], timeout=POLL_SECONDS)
                poll()
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(CANCEL_GRACE_SECONDS)
            raise

    async def run_async(self, coro: Coroutine[Any, Any, T], *, poll: Callable[[], None] | None = None) -> T:
        """Await ``coro`` on the loop from any other loop; cancelling the caller cancels it."""
        if self.in_loop_thread():
            return await coro
        future = asyncio.wrap_future(self.submit(coro))
        try:
            while poll is not None and not future.done():
                await asyncio.wait({future}, timeout=POLL_SECONDS)
                poll()
            return await future
        except asyncio.CancelledError:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


def make_engine(url: URL, **options: Any) -> AsyncEngine:
    """Create the AsyncEngine for ``url`` with the toolkit's defaults; ``options`` win."""
    options.setdefault("pool_pre_ping", True)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        connect_args = dict(options.pop("connect_args", {}))
        settings = {**POSTGRES_SERVER_SETTINGS, **connect_args.get("server_settings", {})}
        connect_args["server_settings"] = settings
        options["connect_args"] = connect_args
    if url.get_backend_name() == "sqlite":
        # A writer waits this long for another to finish (a big write can take seconds).
        options.setdefault("connect_args", {}).setdefault("timeout", 120)
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _make_sqlite_transactional(engine)
    return engine


def _make_sqlite_transactional(engine: AsyncEngine) -> None:
    """SQLAlchemy's recipe: let SQLite's own BEGIN cover DDL too, so a failed write or
    migration rolls back whole; writers take the write lock at BEGIN (IMMEDIATE) so two
    of them queue instead of deadlocking; and foreign keys are enforced."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")
