"""The one event loop every engine of the process lives on, in a background thread.

Jupyter kernels already run a loop in the main thread, so ``asyncio.run`` fails there
and ``loop.run_until_complete`` would need nest-asyncio. Instead every ``Database`` runs
its AsyncEngine on one private loop in a daemon thread, started on first use: blocking
calls submit a coroutine and wait for it (:func:`run`), awaitable calls submit it and
await the wrapped future from whatever loop the caller is on (:func:`arun`). One thread
for the whole process, however many ``Database`` objects come and go.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from .errors import OrizaError

__all__ = ["Progress", "arun", "in_loop_thread", "run", "submit", "submit_quietly"]

T = TypeVar("T")

# How often a waiting caller redraws progress.
POLL_SECONDS = 0.1
# How long a blocking call waits, after Ctrl-C, for its queries to be cancelled on the server.
CANCEL_GRACE_SECONDS = 5.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _get_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_serve, args=(loop,), name="oriza-loop", daemon=True)
            _thread.start()
            _loop = loop
        return _loop


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


class Progress(Protocol):
    """What a caller shows while it waits: redrawn at each poll, finished at the end."""

    def poll(self) -> None: ...

    def finish(self) -> None: ...


def in_loop_thread() -> bool:
    return threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    """Schedule ``coro`` on the loop; the returned future is safe to wait on anywhere."""
    return asyncio.run_coroutine_threadsafe(coro, _get_loop())


def submit_quietly(make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Schedule ``make()`` on the loop from any thread (a finalizer's too), its outcome
    ignored: for giving connections back when their owner is dropped."""
    with contextlib.suppress(Exception):  # the interpreter may be exiting
        asyncio.run_coroutine_threadsafe(make(), _get_loop())


def run(coro: Coroutine[Any, Any, T], progress: Progress | None = None) -> T:
    """Run ``coro`` on the loop and block until it ends, polling ``progress`` now and then.

    ``progress`` is drawn on the calling thread (where the user sees it), and finished
    however the call ends. On KeyboardInterrupt the coroutine is cancelled, and we wait
    (briefly) until the cancellation has reached the server before re-raising, so an
    interrupted cell leaves no query running. The toolkit's own errors are raised without
    the loop thread's frames (noise to the caller).
    """
    try:
        return _run(coro, progress)
    except (OrizaError, KeyboardInterrupt) as error:
        raise error.with_traceback(None) from None
    finally:
        if progress:
            progress.finish()


def _run(coro: Coroutine[Any, Any, T], progress: Progress | None) -> T:
    if in_loop_thread():
        coro.close()
        raise RuntimeError("a blocking oriza_toolkit call was made on the toolkit's own loop; await its a* twin")
    loop = _get_loop()
    # Held until the task ends: a bare lock is the cheapest hand-back between threads (an
    # Event's condition costs a small query ~15 us more).
    running = threading.Lock()
    running.acquire()
    started: list[asyncio.Task[T]] = []

    def start() -> None:
        task = loop.create_task(coro)
        task.add_done_callback(lambda _: running.release())
        started.append(task)

    loop.call_soon_threadsafe(start)
    try:
        while not running.acquire(timeout=POLL_SECONDS):
            if progress is not None:
                progress.poll()
        return started[0].result()
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(lambda: started[0].cancel())  # after start(): the loop runs them in order
        # (Its task may have ended as the interrupt came, the lock already taken here.)
        stopped = (bool(started) and started[0].done()) or running.acquire(timeout=CANCEL_GRACE_SECONDS)
        raise KeyboardInterrupt("interrupted: its queries were cancelled on the server" if stopped else
                                f"interrupted: its queries were still stopping after {CANCEL_GRACE_SECONDS:g} s"
                                ) from None


async def arun(coro: Coroutine[Any, Any, T], progress: Progress | None = None) -> T:
    """Await ``coro`` on the loop from any other loop; cancelling the caller cancels it.
    ``progress`` as for :func:`run`."""
    try:
        return await _arun(coro, progress)
    except OrizaError as error:
        raise error.with_traceback(None) from None
    finally:
        if progress:
            progress.finish()


async def _arun(coro: Coroutine[Any, Any, T], progress: Progress | None) -> T:
    if in_loop_thread():
        return await coro
    caller = asyncio.get_running_loop()
    stopped = asyncio.Event()

    async def tracked() -> T:
        try:
            return await coro
        finally:
            with contextlib.suppress(RuntimeError):  # the caller's loop may be gone
                caller.call_soon_threadsafe(stopped.set)

    future = asyncio.wrap_future(submit(tracked()))
    waking = _Waker(caller)
    try:
        while progress is not None and not future.done():
            await asyncio.wait({future}, timeout=POLL_SECONDS)
            progress.poll()
        return await future
    except asyncio.CancelledError:
        future.cancel()
        # As run() does: only once the work has stopped (its cancellation has reached the
        # server) does the caller go on, so what it does next (closing a stream) finds it idle.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_GRACE_SECONDS):
                await stopped.wait()
        raise
    finally:
        waking.cancel()


class _Waker:
    """A timer that wakes ``loop`` every :data:`POLL_SECONDS` until cancelled.

    ipykernel's interrupt of an async cell schedules the cell's cancellation from its
    SIGINT handler with a plain ``call_soon``, which does not wake a loop asleep in
    ``select()``: with nothing else due, the cell would wait for its query to end (a
    stream on a busy server, forever). A timer makes the loop look again.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_later(POLL_SECONDS, self._tick)

    def _tick(self) -> None:
        self._handle = self._loop.call_later(POLL_SECONDS, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()
