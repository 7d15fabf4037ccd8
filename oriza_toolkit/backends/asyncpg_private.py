"""asyncpg's private APIs the toolkit uses, behind one guarded wrapper.

A read sends ``SET LOCAL ...; COPY (query) TO STDOUT`` as one simple-query message, so it
is one round trip and one implicit transaction. asyncpg's public ``copy_from_query``
wraps its argument in a COPY of its own, so it cannot send that; its private
``Connection._copy_out(text, output, timeout)`` can. Whether it is there is checked once,
at import: without it (a future asyncpg), reads take the public path, in an explicit
transaction (two more round trips, the same results), and say so once.

A read whose statement was described before is one network flight
(:func:`describe_and_copy_out`): Parse/Describe/Sync of the statement (unnamed) goes out
just before the COPY, so the server describes it afresh while the COPY runs. asyncpg
cannot send that pair, so the describe's answer is read off the connection's transport
(``Connection._transport``, ``_protocol``) before asyncpg's protocol sees the COPY's.

A read interrupted while rows flow is cancelled, then its connection closed
(:func:`cancel_and_close`) with asyncpg's own cancel request (``connect_utils._cancel``
with the connection's ``_addr``, ``_params`` and its protocol's backend key): closing the
connection drops the request asyncpg has queued for the same cancel if it has not gone
out yet.

The version bound in ``pyproject.toml`` admits only the asyncpg releases this was checked
against; ``tests/backends/test_postgresql.py`` fails loudly when the private parts go.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import asyncpg.connect_utils

from ..config import OrizaWarning

__all__ = ["HAS_CANCEL", "HAS_COPY_OUT", "HAS_TRANSPORT", "Described", "Sink", "cancel_and_close", "copy_out",
           "describe_and_copy_out", "flies", "query_offset"]

Sink = Callable[[bytes], Awaitable[None]]

_COPY_HEAD = "COPY ("
_COPY_TAIL = "\n) TO STDOUT"  # the text format: tab-separated, NULL as \N


def _has_copy_out() -> bool:
    method = getattr(asyncpg.connection.Connection, "_copy_out", None)
    if method is None:
        return False
    return list(inspect.signature(method).parameters)[:4] == ["self", "copy_stmt", "output", "timeout"]


def _has_cancel() -> bool:
    cancel = getattr(asyncpg.connect_utils, "_cancel", None)
    return cancel is not None and {"loop", "addr", "params", "backend_pid", "backend_secret"} <= set(
        inspect.signature(cancel).parameters) and {"_addr", "_params", "_protocol", "_cancellations"} <= set(
        asyncpg.connection.Connection.__slots__)


HAS_COPY_OUT = _has_copy_out()
HAS_TRANSPORT = {"_protocol", "_transport"} <= set(asyncpg.connection.Connection.__slots__)
HAS_CANCEL = _has_cancel()
_warned = False


def flies() -> bool:
    """Whether :func:`describe_and_copy_out` can be used."""
    return HAS_COPY_OUT and HAS_TRANSPORT


def query_offset(settings: str) -> int:
    """How many characters precede the query in the text the server sees (to map an
    error's position back into the query)."""
    return len(f"{settings}; {_COPY_HEAD}") if HAS_COPY_OUT else len(_COPY_HEAD)


async def copy_out(driver: Any, settings: str, query: str, sink: Sink) -> None:
    """Stream ``COPY (query) TO STDOUT`` (the text format) into ``sink``, with
    ``settings`` (``SET LOCAL`` statements) in force for the COPY's transaction only."""
    if HAS_COPY_OUT:
        await driver._copy_out(f"{settings}; {_COPY_HEAD}{query}{_COPY_TAIL}", sink, None)
        return
    _warn_once()
    if driver.is_in_transaction():  # the caller's own transaction: SET LOCAL lasts to its end
        await driver.execute(settings)
        await driver.copy_from_query(f"{query}\n", output=sink, format="text")
        return
    async with driver.transaction():
        await driver.execute(settings)
        await driver.copy_from_query(f"{query}\n", output=sink, format="text")


async def cancel_and_close(driver: Any, seconds: float) -> None:
    """Close ``driver``'s connection, once a request to cancel its statement has reached
    the server (or after ``seconds``: an unreachable server is closed on all the same).

    For a statement interrupted while its rows flowed: a server blocked sending to a
    client that stopped reading only stops when the connection closes, and one that had
    sent its rows and computes on (a sort, a sleep, a slow join) only stops for a cancel:
    closing alone left it running until its next write, minutes perhaps, after the caller
    was told it was cancelled. asyncpg queues a cancel request of its own, but closing the
    connection drops it if it has not gone out yet.
    """
    try:
        if HAS_CANCEL and not driver.is_closed():
            # asyncpg's own request is queued (in a whole read, not yet started): dropped now
            # rather than cut off half-sent by terminate() below (pgbouncer 1.18 exits on a
            # cancel connection that closes before it has forwarded the request).
            for task in list(driver._cancellations):
                task.cancel()
            protocol = driver._protocol
            async with asyncio.timeout(seconds):
                await asyncpg.connect_utils._cancel(loop=asyncio.get_running_loop(), addr=driver._addr,
                                                    params=driver._params, backend_pid=protocol.backend_pid,
                                                    backend_secret=protocol.backend_secret)
    except (OSError, TimeoutError, asyncpg.PostgresError):  # closed on all the same
        pass
    finally:
        driver.terminate()


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"asyncpg {asyncpg.__version__} has no Connection._copy_out; oriza_toolkit reads through "
                      "copy_from_query instead (correct, two round trips slower)", OrizaWarning, stacklevel=3)


@dataclass
class Described:
    """What the server said of a statement described ahead of a COPY: its parameters' and
    columns' type OIDs and the columns' names, or the error it raised."""

    parameters: list[int] = field(default_factory=list)
    columns: list[tuple[str, int]] = field(default_factory=list)
    error: dict[str, str] | None = None  # ErrorResponse fields by code: "M" message, "P" position, ...
    done: bool = False


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


_DESCRIBE_UNNAMED = _message(b"D", b"S\0") + _message(b"S", b"")


class _DescribeReader(asyncio.Protocol):
    """Takes the answer to Parse/Describe/Sync off the wire, then hands the transport,
    and whatever followed, back to asyncpg's protocol."""

    def __init__(self, transport: Any, protocol: Any, described: Described) -> None:
        self._transport = transport
        self._protocol = protocol
        self._described = described
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        position = 0
        while len(buffer) - position >= 5:
            end = position + 1 + int.from_bytes(buffer[position + 1:position + 5], "big")
            if end > len(buffer):
                break
            kind, body = buffer[position:position + 1], buffer[position + 5:end]
            position = end
            if kind == b"Z":
                self._described.done = True
                self._transport.set_protocol(self._protocol)
                if position < len(buffer):
                    self._protocol.data_received(buffer[position:])
                return
            _read_answer(kind, body, self._described)
        self._buffer = buffer[position:]

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return bool(self._protocol.eof_received())

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()


def _read_answer(kind: bytes, body: bytes, described: Described) -> None:
    if kind == b"t":
        count = int.from_bytes(body[:2], "big")
        described.parameters = [int.from_bytes(body[2 + 4 * i:6 + 4 * i], "big") for i in range(count)]
    elif kind == b"T":
        position, columns = 2, []
        for _ in range(int.from_bytes(body[:2], "big")):
            end = body.index(b"\0", position)
            type_oid = int.from_bytes(body[end + 7:end + 11], "big")
            columns.append((body[position:end].decode(), type_oid))
            position = end + 19
        described.columns = columns
    elif kind == b"E":
        fields, position = {}, 0
        while body[position]:
            end = body.index(b"\0", position + 1)
            fields[chr(body[position])] = body[position + 1:end].decode(errors="replace")
            position = end + 1
        described.error = fields
    # "1" (parsed), "n" (no columns), notices and parameter statuses say nothing needed here


async def describe_and_copy_out(driver: Any, statement: str, described: Described, settings: str, query: str,
                                sink: Sink) -> None:
    """Have the server describe ``statement`` (unnamed, its parameters' types inferred)
    into ``described`` and, sent with it in one flight, :func:`copy_out` ``query``; the
    description is complete before ``sink`` first receives data, and when the COPY ends
    or fails. A failed describe does not stop the COPY (each part ends in its own Sync,
    as transaction-mode pgbouncer needs)."""
    transport, protocol = driver._transport, driver._protocol
    describe = _message(b"P", b"\0" + statement.encode() + b"\0\0\0") + _DESCRIBE_UNNAMED
    transport.set_protocol(_DescribeReader(transport, protocol, described))
    ahead = _SentAhead(transport, describe)
    try:
        await driver._copy_out(f"{settings}; {_COPY_HEAD}{query}{_COPY_TAIL}", sink, None)
    finally:
        if not ahead.sent:  # asyncpg wrote nothing: no answer will come
            ahead.undo()
            transport.set_protocol(protocol)


class _SentAhead:
    """``message`` sent just before asyncpg's next write on ``transport``, in the same
    send: on a local server every send costs a wake-up of the server process, and two
    sends would cost two. (Where the transport takes no such stand-in, sent at once.)"""

    def __init__(self, transport: Any, message: bytes) -> None:
        self._transport = transport
        self._message = message
        self.sent = False
        try:
            transport.write = self._write
        except AttributeError:
            self._send(b"")

    def _write(self, data: Any) -> None:
        self.undo()
        self._send(bytes(data))

    def _send(self, data: bytes) -> None:
        self.sent = True
        self._transport.write(self._message + data)

    def undo(self) -> None:
        vars(self._transport).pop("write", None)
