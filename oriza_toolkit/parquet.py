"""Writing a streamed result to Parquet: one file, or a directory of parts, replaced atomically.

A directory of ``part-00000.parquet``, ``part-00001.parquet``, ... is what DuckDB
(``read_parquet('dir/*.parquet')``), polars (``scan_parquet('dir/')``), pyarrow datasets,
Spark and Dask read as one table. Batches are written as they arrive, so memory holds a
chunk, not the result.

Everything is written under a temporary name beside the target (``.NAME.xxxxxxxx.partial``:
the same filesystem, so the last step is a rename) and moved into place only when the
whole result is written. A query that fails part-way, an interrupt, a full or read-only
disk leave the file or directory that was there exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import provenance
from .errors import WriteError

__all__ = ["ParquetSink", "check_parquet"]


def check_parquet(path: object, rows_per_file: object) -> None:
    """Raise ``TypeError``/``ValueError`` for a destination no write could use."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise TypeError(f"path must be a file or directory path, not {path!r}")
    if rows_per_file is not None and (isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int)
                                      or rows_per_file < 1):
        raise ValueError(f"rows_per_file must be a whole number of at least 1, not {rows_per_file!r}")
    target = Path(path)
    if rows_per_file is None and target.is_dir():
        raise ValueError(f"{str(target)!r} is a directory; give a file path, or rows_per_file= to write parts into it")
    if rows_per_file is not None and target.exists() and (not target.is_dir() or any(target.glob("part-*.parquet"))):
        raise ValueError(f"{str(target)!r} already holds a result; give a new or empty directory")
    existing = next((parent for parent in target.absolute().parents if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"cannot write {str(target)!r}: {str(existing)!r} is a file, not a directory")


class ParquetSink:
    """Record batches in, Parquet out: ``path`` itself, or with ``rows_per_file`` a
    directory of parts of at most that many rows (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], rows_per_file: int | None = None,
                 origin: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.rows_per_file = rows_per_file
        self.origin = origin  # provenance, written into each file with its own rows and seconds
        self._clock = time.perf_counter()
        self.rows = 0
        self._stage = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial"
        self._parts = 0
        self._writer: Any = None
        self._in_file = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (split across parts where ``rows_per_file`` says)."""
        with self._errors():
            while True:
                room = batch.num_rows if self.rows_per_file is None else self.rows_per_file - self._in_file
                piece, batch = batch.slice(0, room), batch.slice(room)
                self._writer_for(piece.schema).write_batch(piece)
                self._in_file += piece.num_rows
                self.rows += piece.num_rows
                if self.rows_per_file is not None and self._in_file >= self.rows_per_file:
                    self._close_file()
                if not batch.num_rows:
                    return

    def close(self) -> None:
        """Finish the last file and move the result into place."""
        with self._errors():
            self._close_file()
            if self.rows_per_file is None:
                os.replace(self._stage, self.path)  # atomic: the old file stays until this moment
            elif not self.path.exists():
                os.replace(self._stage, self.path)
            else:  # an existing directory holding no result: the parts go into it
                for part in sorted(self._stage.iterdir()):
                    os.replace(part, self.path / part.name)
                self._stage.rmdir()

    def abort(self) -> None:
        """Remove what was written (the write failed or was interrupted); the target is untouched."""
        with contextlib.suppress(OSError):  # the disk that failed the write may fail the last flush too
            self._close_file()
        if self._stage.is_dir():
            shutil.rmtree(self._stage, ignore_errors=True)
        else:
            self._stage.unlink(missing_ok=True)

    def _writer_for(self, schema: pa.Schema) -> Any:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.rows_per_file is None:
                target = self._stage
            else:
                self._stage.mkdir(exist_ok=True)
                target = self._stage / f"part-{self._parts:05d}.parquet"
                self._parts += 1
            self._writer = pq.ParquetWriter(target, schema)
        return self._writer

    def _close_file(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            if self.origin is not None:
                writer.add_key_value_metadata(provenance.arrow_metadata(
                    {**self.origin, "rows": self._in_file, "seconds": round(time.perf_counter() - self._clock, 6)}))
            self._in_file = 0
            writer.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """OSErrors (pyarrow's IO errors are OSErrors too) as one line naming the path."""
        try:
            yield
        except OSError as error:
            # pyarrow's strerror names the temporary file; the system's words for the errno do not
            reason = os.strerror(error.errno) if error.errno else " ".join(str(error).split())
            raise WriteError(str(self.path), reason, kind="file") from None
