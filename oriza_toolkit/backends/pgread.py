"""PostgreSQL's COPY output as typed arrow chunks, parsed off the event loop.

COPY's text format (tab-separated, ``\\N`` for NULL, backslash escapes): the server
formats it ~10% faster than CSV (which quotes every value holding a quote or a comma, as
every JSON value does), every newline in it ends a row, and a value needs decoding only
where it holds a backslash (:func:`unescaped`: rare, and found in one scan of a column).

The loop thread only moves bytes: COPY's chunks go into a bounded :class:`Pipe`; a
thread of the read's own parses them with pyarrow's streaming CSV reader (tab-separated,
without quoting) and does all the CPU-heavy work (typing each batch, parsing JSON with
orjson, and for a whole result building the DataFrame), overlapping with the transfer.
When the pipe is full the loop stops reading the socket, so the server waits too: a slow
consumer of :func:`stream` holds a few chunks, never the result. A whole result that fits
in the first :data:`INLINE_BYTES` is parsed on the loop itself (a small query needs no
thread).
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..frames import (
    DECIMAL_TEXT,
    JSON,
    KIND,
    TEXT_DTYPES,
    Chunk,
    Form,
    Objects,
    frame_from_texts,
    joined_objects,
    json_values,
    object_array,
)
from ..settings import settings
from .asyncpg_private import Sink, cancel_and_close, copy_out, query_offset

__all__ = ["PgColumn", "copy_query", "copy_stream", "copy_whole", "guarded_copy_query"]

NULL_MARKER = "\\N"
# What the parser is handed at a time (more when one row is longer) ...
BLOCK_SIZE = 4 << 20
# ... and, reading a whole result, at least (unless it ended): each parsed chunk has a
# cost of its own, and a parser that keeps up would otherwise take a few rows at a time.
WHOLE_BLOCK = 1 << 20
# pyarrow's block size: rows arrive whole (see Pipe), so this only bounds one row.
MAX_ROW_BYTES = 1 << 30
# A result this small is parsed on the loop: starting a thread costs more.
INLINE_BYTES = 256 << 10
# A result this small, of simple types, skips pyarrow's CSV reader (see quick_batch).
QUICK_BYTES = 64 << 10
_QUICK_TYPES = frozenset({pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.string()})
# COPY bytes buffered before the parser catches up (then the socket waits).
PIPE_BYTES = 16 << 20
# Parsed chunks waiting for a slow consumer of a stream.
QUEUED_CHUNKS = 2
# How long a cancelled COPY may take to be answered before its connection is closed.
SETTLE_SECONDS = 5.0

# jemalloc gives freed blocks back to the system sooner than mimalloc (pyarrow's default):
# a whole-table read peaks ~60 MB lower for 1M rows, at the same speed.
try:
    _POOL = pa.jemalloc_memory_pool()
except NotImplementedError:  # a pyarrow built without it
    _POOL = pa.default_memory_pool()

# What the parser relies on, for the COPY's own (implicit) transaction only.
SETTINGS = "SET LOCAL DateStyle = 'ISO'; SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'"

_ARROW_INTEGERS = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "oid": pa.int64()}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "interval": pa.int64(),
}
# Types the server converts before COPY; "{}" is the column.
_SERVER_EXPRESSIONS = {
    "interval": "(extract(epoch from {}) * 1000000)::int8",
    "array": "to_json({})",
    "composite": "to_json({})",
    "record": "to_json({})",
}
# Sent as to_json(...) text (see _SERVER_EXPRESSIONS), or json already.
_JSON_VALUES = {"json", "jsonb", "record", "array", "composite"}


@dataclass(frozen=True)
class PgColumn:
    """One result column as the server described it."""

    name: str
    type_name: str
    kind: str = "scalar"
    enum_labels: tuple[str, ...] | None = None

    @property
    def server_expression(self) -> str | None:
        return _SERVER_EXPRESSIONS.get(self.kind if self.kind != "scalar" else self.type_name)

    @property
    def csv_type(self) -> pa.DataType:
        if self.kind != "scalar":
            return pa.string()
        return _ARROW_INTEGERS.get(self.type_name) or _ARROW_TYPES.get(self.type_name, pa.string())

    @property
    def is_json(self) -> bool:
        return self.kind in _JSON_VALUES or self.type_name in _JSON_VALUES


def copy_query(sql: str, columns: Sequence[PgColumn], *, dml: bool = False) -> tuple[str, int]:
    """The query to COPY for ``sql`` (converting on the server what the parser cannot read
    as it comes), and where in the text the server sees ``sql`` starts (to map an error
    position back).

    ``SET LOCAL`` of :data:`SETTINGS` goes in the same message (see
    ``asyncpg_private.copy_out``), so a read is one round trip and transaction-mode
    pgbouncer keeps it on one server connection. ``sql`` has been prepared already, so it
    is one statement.
    """
    offset = query_offset(SETTINGS)
    if not any(col.server_expression for col in columns):
        return sql, offset
    select, names = _select_list(columns)
    if dml:  # INSERT ... RETURNING can only be a CTE
        wrap = f"WITH _oz_q({names}) AS ("
        return f"{wrap}{sql}\n) SELECT {select} FROM _oz_q", offset + len(wrap)
    wrap = f"SELECT {select} FROM ("
    return f"{wrap}{sql}\n) AS _oz_q({names})", offset + len(wrap)


def guarded_copy_query(sql: str, columns: Sequence[PgColumn], types: Sequence[str]) -> tuple[str, int, int]:
    """:func:`copy_query` for a read sent before the server has described ``sql``, built
    on the columns it had when last described; ``types`` are their types as SQL. The
    query fails as the server analyses it, before it runs, unless ``sql`` still has that
    many columns, each of a type that converts implicitly to the one it had; the
    describe sent with it says what they are exactly. Also where ``sql`` starts in the
    text, and where the check after it starts (an error there means nothing ran).

    The check is in a branch the planner removes (``CASE WHEN false``): the plan is the
    one ``sql`` has alone.
    """
    offset = query_offset(SETTINGS)
    select, names = _select_list(columns)
    wrap = f"SELECT {select} FROM ("
    nulls = ", ".join(f"NULL::{kind}" for kind in types)
    check = (f"\n) AS _oz_q({names}) WHERE CASE WHEN false THEN EXISTS (SELECT _oz_q.* UNION ALL SELECT {nulls}) "
             "ELSE true END")
    return f"{wrap}{sql}{check}", offset + len(wrap), offset + len(wrap) + len(sql)


def _select_list(columns: Sequence[PgColumn]) -> tuple[str, str]:
    names = [f"c{i}" for i in range(len(columns))]
    select = ", ".join((col.server_expression or "{}").format(name) for name, col in zip(names, columns, strict=True))
    return select, ", ".join(names)


class Pipe(io.RawIOBase):
    """COPY's bytes, fed on the loop and read by pyarrow in the parser thread, bounded to
    :data:`PIPE_BYTES` (:meth:`feed` waits for the reader past that).

    :meth:`read` hands out whole rows only (a newline ends a row: COPY's text format
    escapes those in values), at least ``least`` bytes of them unless the data ended.
    pyarrow's CSV reader fails ("straddling object straddles two block boundaries") on a
    row spread over more than two of its blocks, which happens to a value longer than
    the block size, and to a far shorter one that arrives over a slow network in small
    reads. A row is held back until its end has arrived, however long it is; its bytes do
    not count against the bound (the reader needs all of them before it can return any).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, least: int = 1) -> None:
        super().__init__()
        self._loop = loop
        self._least = least
        self._chunks: deque[bytes | None] = deque()
        self._ready = threading.Condition()
        self._room = asyncio.Event()
        self._room.set()
        self._partial: list[bytes] = []  # the start of a row whose end has not arrived
        self._partial_bytes = 0
        self._ended = False
        self._reader_gone = False
        self.buffered = 0
        self.received = 0

    def readable(self) -> bool:
        return True

    async def feed(self, data: bytes) -> None:
        """COPY's sink (dropping what no reader will read any more)."""
        await self._room.wait()
        if self._reader_gone:
            return
        with self._ready:
            self._chunks.append(data)
            self.buffered += len(data)
            self.received += len(data)
            if self.buffered > PIPE_BYTES:
                self._room.clear()
            self._ready.notify()

    def reader_gone(self) -> None:
        """The parser stopped early (a value it cannot parse): from the parser's thread,
        let COPY run to its end without waiting for room."""
        self._reader_gone = True
        self._loop.call_soon_threadsafe(self._room.set)

    def end(self) -> None:
        """No more data (also on failure, so the reader stops)."""
        with self._ready:
            self._chunks.append(None)
            self._ready.notify()

    def read(self, size: int = -1) -> bytes:
        """The whole rows that have arrived, about :data:`BLOCK_SIZE` bytes of them at
        most unless one row is longer; waits while there are fewer than ``least`` bytes of
        whole rows (with the default of 1, a slow result reaches the parser row by row).
        At the end, whatever is left."""
        limit = size if size is not None and size >= 0 else 1 << 62
        rows: list[bytes] = []
        taken = 0
        while not self._ended and (taken < self._least or (taken < BLOCK_SIZE and self._chunks)):
            with self._ready:
                while not self._chunks:
                    self._ready.wait()
                chunk = self._chunks.popleft()
                if chunk is not None:
                    self.buffered -= len(chunk)
                    if self.buffered <= PIPE_BYTES and not self._room.is_set():
                        self._loop.call_soon_threadsafe(self._room.set)
            if chunk is None:
                self._ended = True
                rows.extend(self._partial)
                taken += self._partial_bytes
                self._partial, self._partial_bytes = [], 0
                break
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                self._partial.append(chunk)
                self._partial_bytes += len(chunk)
                continue
            rows.extend(self._partial)
            rows.append(chunk[:cut])
            taken += self._partial_bytes + cut
            self._partial, self._partial_bytes = [chunk[cut:]], len(chunk) - cut
        if taken > limit:
            raise ValueError(f"a row of more than {limit} bytes cannot be read")
        return b"".join(rows)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _batches(source: Any, columns: Sequence[PgColumn]) -> Iterator[pa.RecordBatch]:
    if isinstance(source, io.BytesIO) and (quick := quick_batch(source.getvalue(), columns)) is not None:
        yield quick
        return
    keys = [str(i) for i in range(len(columns))]
    types = {key: col.csv_type for key, col in zip(keys, columns, strict=True)}
    try:
        reader = pcsv.open_csv(
            source,
            memory_pool=_POOL,
            read_options=pcsv.ReadOptions(column_names=keys, block_size=MAX_ROW_BYTES),
            parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=[NULL_MARKER],
                true_values=["t"],
                false_values=["f"],
                strings_can_be_null=True,
                timestamp_parsers=[pcsv.ISO8601],
            ),
        )
    except pa.ArrowInvalid as error:
        if "Empty CSV file" not in str(error):
            raise
        return
    yield from reader


def quick_batch(data: bytes, columns: Sequence[PgColumn]) -> pa.RecordBatch | None:
    """A small result's COPY text as the batch pyarrow's reader would make of it, without
    the reader (its set-up costs more than a few rows take to parse), or None where that
    cannot be done exactly.

    Exact when no value holds an escape (see :func:`_plain_rows`) and every column
    arrives as text, an integer or a float (arrow's cast from text parses those as the
    reader does, ``NaN`` and ``Infinity`` too); booleans, dates and times go through the
    reader.
    """
    if not all(col.csv_type in _QUICK_TYPES for col in columns) or (rows := _plain_rows(data, columns)) is None:
        return None
    try:
        arrays = [pa.array([None if row[i] == NULL_MARKER else row[i] for row in rows], pa.string()).cast(col.csv_type)
                  for i, col in enumerate(columns)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # the reader says what was wrong, in its words
    return pa.RecordBatch.from_arrays(arrays, names=[str(i) for i in range(len(columns))])


def _plain_rows(data: bytes, columns: Sequence[PgColumn]) -> list[list[str]] | None:
    """A small result's COPY text split into rows of values, where no value holds an
    escape; else None.

    COPY escapes every backslash, tab and newline in a value, so where each backslash
    starts a NULL marker (``\\N``), a tab ends a value, a newline a row, and ``\\N``
    alone is NULL (the text ``\\N`` arrives as ``\\\\N``).
    """
    if len(data) > QUICK_BYTES or not data or not columns or data.count(b"\\") != data.count(b"\\N"):
        return None
    lines = data.decode().split("\n")
    if lines[-1] == "":
        lines.pop()
    rows = [line.split("\t") for line in lines]
    return None if any(len(row) != len(columns) for row in rows) else rows


def small_frame(data: bytes, columns: Sequence[PgColumn]) -> pd.DataFrame | None:
    """A small result's DataFrame straight from its COPY text
    (:func:`frames.frame_from_texts`: no parser, no arrow), where every column is an
    integer, a double, a boolean, a number read as floats or text, and no value holds an
    escape (as :func:`quick_batch`); else None."""
    dtypes = [_text_dtype(col) for col in columns]
    if None in dtypes or (rows := _plain_rows(data, columns)) is None:
        return None
    texts = [[None if value == NULL_MARKER else value for value in values] for values in zip(*rows, strict=True)]
    return frame_from_texts([col.name for col in columns], cast(list[str], dtypes), texts)


def _text_dtype(column: PgColumn) -> str | None:
    if column.kind != "scalar" or column.enum_labels is not None or column.is_json:
        return None
    if column.type_name == "numeric":
        return "float64" if settings.numeric == "float" else None
    if column.type_name in TEXT_DTYPES:
        return TEXT_DTYPES[column.type_name]
    return "str" if column.csv_type == pa.string() and column.type_name != "bytea" else None


def typed_chunk(batch: pa.RecordBatch, columns: Sequence[PgColumn], form: Form = "chunks") -> Chunk:
    """A parsed batch of COPY's text in final arrow types, named as the server named
    them, for a result read as ``form``.

    Text is decoded (:func:`unescaped`); intervals become durations, enums ordered
    dictionaries of their labels, bytea binary; JSON (json, jsonb, arrays, records) stays
    text, marked, and is also parsed here: only parsed for a DataFrame (its text is no
    longer needed: NULLs take its place), only text for arrow.
    """
    arrays = []
    fields = []
    objects: dict[int, Objects] = {}
    for i, col in enumerate(columns):
        array = batch.column(i)
        if array.type == pa.string():
            array = unescaped(array)
        metadata = None
        if col.is_json:
            metadata = {KIND: JSON}
            if form != "arrow":
                objects[i] = object_array(json_values(array))
            if form == "frame":
                array = pa.nulls(len(array), pa.string())
        elif col.type_name == "interval":
            array = array.cast(pa.duration("us"))
        elif col.type_name == "numeric":
            metadata = {KIND: DECIMAL_TEXT}  # sized by finish_table
        elif col.type_name == "bytea":
            array = pa.array([None if v is None else bytes.fromhex(v[2:]) for v in array.to_pylist()], pa.binary())
        elif col.enum_labels is not None:
            labels = pa.array(col.enum_labels, pa.string())
            indices = pc.index_in(array, value_set=labels).cast(pa.int32())
            array = pa.DictionaryArray.from_arrays(indices, labels, ordered=True)
        arrays.append(array)
        fields.append(pa.field(col.name, array.type, metadata=metadata))
    return Chunk(pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), objects)


# What COPY's text format writes for a backslash and the control characters it escapes.
_ESCAPES = (("\\b", "\b"), ("\\f", "\f"), ("\\n", "\n"), ("\\r", "\r"), ("\\t", "\t"), ("\\v", "\v"))
_BACKSLASH = re.compile(rb"\\")


def unescaped(array: pa.Array) -> pa.Array:
    r"""A text column of COPY's text format decoded: ``\\`` is a backslash, ``\n`` a
    newline, and so on for the control characters COPY escapes (:data:`_ESCAPES`).

    Only values holding a backslash change; whether any does is one scan of the column's
    bytes (NULLs hold none). A value never holds a NUL (the server's output functions write
    C strings), so an escaped backslash becomes one while the rest are decoded, then a
    backslash again; one left over is an escape COPY does not write, and fails the read.

    Example::

        >>> unescaped(pa.array([r"C:\\new", r"a\tb", None])).to_pylist()
        ['C:\\new', 'a\tb', None]
    """
    data = array.buffers()[2]
    if data is None or not _BACKSLASH.search(memoryview(data)):
        return array
    holds = pc.fill_null(pc.match_substring(array, "\\"), False)
    texts = pc.replace_substring(array.filter(holds), "\\\\", "\0")
    for escape, character in _ESCAPES:
        texts = pc.replace_substring(texts, escape, character)
    if pc.any(pc.match_substring(texts, "\\")).as_py():
        raise ValueError("COPY sent an escape its text format does not have")
    return pc.replace_with_mask(array, holds, pc.replace_substring(texts, "\0", "\\"))


def empty_chunk(columns: Sequence[PgColumn]) -> Chunk:
    """The zero-row chunk of ``columns`` (a result with no rows still has its schema)."""
    batch = pa.RecordBatch.from_arrays([pa.array([], col.csv_type) for col in columns],
                                       names=[str(i) for i in range(len(columns))])
    return typed_chunk(batch, columns)


def split_chunks(chunks: Sequence[Chunk], rows: int) -> tuple[Chunk, list[Chunk]]:
    """The first ``rows`` rows of ``chunks`` as one chunk, and the rest."""
    table = pa.Table.from_batches([c.batch for c in chunks])
    objects = joined_objects(chunks)
    head = table.slice(0, rows).combine_chunks()
    rest = table.slice(rows).combine_chunks()
    batch = head.to_batches()[0] if head.num_rows else pa.RecordBatch.from_pylist([], schema=head.schema)
    remainder = [Chunk(b, {i: values[rows:] for i, values in objects.items()}) for b in rest.to_batches()[:1]]
    return Chunk(batch, {i: values[:rows] for i, values in objects.items()}), remainder


def _parse(source: Any, columns: Sequence[PgColumn], convert: Callable[[list[Chunk]], Any], rows: int | None,
           emit: Callable[[str, Any], None], stop: threading.Event, form: Form) -> None:
    """Parse COPY's text from ``source``; ``emit("item", convert(chunks))`` for the whole
    result, or (given ``rows``) per chunk of that many rows, then ``emit("end")``, or
    ``emit("error", exception)``. ``form`` is what ``convert`` makes (see :func:`typed_chunk`)."""
    try:
        chunks: list[Chunk] = []
        held = emitted = 0
        for batch in _batches(source, columns):
            if stop.is_set():
                return
            chunks.append(typed_chunk(batch, columns, form))
            held += batch.num_rows
            while rows is not None and held >= rows:
                head, chunks = split_chunks(chunks, rows)
                held -= rows
                emit("item", convert([head]))
                emitted += 1
        if rows is None or held or not emitted:
            emit("item", convert(chunks or [empty_chunk(columns)]))
        emit("end", None)
    except BaseException as error:  # surfaced on the loop, where the caller awaits
        emit("error", error)
    finally:
        if isinstance(source, Pipe):
            source.reader_gone()


async def copy_whole(driver: Any, query: str, columns: Sequence[PgColumn] | Callable[[], Sequence[PgColumn]],
                     convert: Callable[[list[Chunk]], Any], send: Callable[[Sink], Awaitable[None]] | None = None,
                     small: Callable[[bytes, Sequence[PgColumn]], Any] | None = None, form: Form = "chunks") -> Any:
    """COPY ``query`` and return ``convert(chunks)`` of its whole result, parsed in a
    thread while it streams in (or here, if it all fits in :data:`INLINE_BYTES`).

    ``send`` runs the COPY into its sink (by default :func:`copy_out` of ``query``);
    ``columns`` may be a function that says them once the COPY's data starts or ends. A
    whole result parsed here is first offered to ``small`` (such as :func:`small_frame`),
    which returns it converted or None. ``form`` is what ``convert`` makes.
    """
    loop = asyncio.get_running_loop()
    known: list[Sequence[PgColumn]] = [columns] if not callable(columns) else []

    def described() -> Sequence[PgColumn]:
        if not known:
            assert callable(columns)
            known.append(columns())
        return known[0]

    head: list[bytes] = []  # what came before the thread started (all of a small result)
    received = 0
    pipe: Pipe | None = None
    stop = threading.Event()  # tells the parser thread to give up
    done: asyncio.Future[Any] | None = None  # the parser thread's outcome (made with it: a small read has none)

    def settle_from_thread(kind: str, value: Any) -> None:
        if kind != "end":
            assert done is not None
            loop.call_soon_threadsafe(_resolve, done, kind, value)

    async def sink(data: bytes) -> None:
        nonlocal pipe, received, done
        received += len(data)
        if pipe is not None:
            await pipe.feed(data)
            return
        head.append(data)
        if received > INLINE_BYTES:
            pipe, done = Pipe(loop, WHOLE_BLOCK), loop.create_future()
            threading.Thread(target=_parse, args=(pipe, described(), convert, None, settle_from_thread, stop, form),
                             name="oriza-copy-parser", daemon=True).start()
            for chunk in head:
                await pipe.feed(chunk)
            head.clear()

    try:
        await (send(sink) if send is not None else copy_out(driver, SETTINGS, query, sink))
    except BaseException as error:
        stop.set()
        if pipe is not None:
            pipe.end()
        await _after_interrupted_copy(driver, error, received)
        raise
    if pipe is None:
        data = b"".join(head)
        if small is not None and (value := small(data, described())) is not None:
            return value
        results: list[tuple[str, Any]] = []
        _parse(io.BytesIO(data), described(), convert, None, lambda kind, value: results.append((kind, value)),
               stop, form)
        kind, value = results[0]
        if kind == "error":
            raise value
        return value
    pipe.end()
    assert done is not None
    try:
        return await done
    finally:
        stop.set()


def _resolve(future: asyncio.Future[Any], kind: str, value: Any) -> None:
    if not future.done():
        if kind == "error":
            future.set_exception(value)
        else:
            future.set_result(value)


async def copy_stream(driver: Any, query: str, columns: Sequence[PgColumn], convert: Callable[[list[Chunk]], Any],
                      rows: int, form: Form = "chunks") -> AsyncGenerator[Any, None]:
    """COPY ``query`` and yield ``convert([chunk])`` for each chunk of ``rows`` rows
    (the last may be shorter; one empty chunk for no rows) as they are parsed; at most
    :data:`QUEUED_CHUNKS` wait for the consumer, then the parser, the pipe and the
    server wait too. Closing the iterator early stops the query on the server."""
    loop = asyncio.get_running_loop()
    pipe = Pipe(loop)
    out: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=QUEUED_CHUNKS)
    stop = threading.Event()

    def emit(kind: str, value: Any) -> None:
        if not stop.is_set():
            asyncio.run_coroutine_threadsafe(out.put((kind, value)), loop).result()

    thread = threading.Thread(target=_parse, args=(pipe, columns, convert, rows, emit, stop, form),
                              name="oriza-copy-parser", daemon=True)
    copying = asyncio.ensure_future(copy_out(driver, SETTINGS, query, pipe.feed))
    copying.add_done_callback(lambda _: pipe.end())
    thread.start()
    try:
        while True:
            kind, value = await out.get()
            if kind == "item":
                yield value
                continue
            if copying.done() or kind == "end":
                await copying  # a server error mid-COPY explains a truncated result
            if kind == "error":
                raise value
            return
    finally:
        stop.set()
        if not copying.done():
            copying.cancel()
            error = (await asyncio.gather(copying, return_exceptions=True))[0]
            await _after_interrupted_copy(driver, error, pipe.received)
        while thread.is_alive():  # let a blocked put through
            while not out.empty():
                out.get_nowait()
            await asyncio.sleep(0.001)


async def _after_interrupted_copy(driver: Any, error: BaseException | None, received: int) -> None:
    """Leave the connection idle after a COPY that did not finish.

    A server error has already ended it. A cancelled one: if rows were flowing, the
    server may be blocked sending to a client that no longer reads, which only stops when
    the connection closes, so it is cancelled and closed (the pool replaces it:
    :func:`asyncpg_private.cancel_and_close`); if none had come, asyncpg has sent a cancel
    request and the connection is kept once the server has answered it (or closed, after
    :data:`SETTLE_SECONDS`).
    """
    if not isinstance(error, asyncio.CancelledError) or driver.is_closed():
        return
    if received:
        await cancel_and_close(driver, SETTLE_SECONDS)
        return
    try:
        async with asyncio.timeout(SETTLE_SECONDS):
            await driver.execute("SELECT 1")  # asyncpg first waits for its cancel request to be answered
    except BaseException:  # the caller re-raises the cancellation
        driver.terminate()


_CSV_POSITION = re.compile(r"column #(\d+).*?invalid value '([^']*)'")


def arrow_message(message: str, columns: Sequence[PgColumn]) -> str:
    """pyarrow's "In CSV column #3: ... invalid value 'infinity'" in the user's terms."""
    found = _CSV_POSITION.search(message)
    if not found:
        return message
    column = columns[int(found.group(1))]
    return (f"column {column.name!r} holds {found.group(2)!r}, which has no {column.type_name} equivalent "
            "in a DataFrame; cast or filter it in the SQL")
