"""Writing a streamed result to Parquet: one file, or a directory of parts.

A directory of ``part-00000.parquet``, ``part-00001.parquet``, ... is what DuckDB
(``read_parquet('dir/*.parquet')``), polars (``scan_parquet('dir/')``), pyarrow datasets,
Spark and Dask read as one table. Batches are written as they arrive, so memory holds a
chunk, not the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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


class ParquetSink:
    """Record batches in, Parquet out: ``path`` itself, or with ``rows_per_file`` a
    directory of parts of at most that many rows."""

    def __init__(self, path: str | os.PathLike[str], rows_per_file: int | None = None) -> None:
        self.path = Path(path)
        self.rows_per_file = rows_per_file
        self.rows = 0
        self.files: list[Path] = []
        self._writer: Any = None
        self._in_file = 0

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (split across parts where ``rows_per_file`` says)."""
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

    def _writer_for(self, schema: pa.Schema) -> Any:
        if self._writer is None:
            if self.rows_per_file is None:
                target = self.path
                target.parent.mkdir(parents=True, exist_ok=True)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                target = self.path / f"part-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(target, schema)
            self.files.append(target)
        return self._writer

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._in_file = 0

    def close(self) -> None:
        """Finish the last file."""
        self._close_file()

    def abort(self) -> None:
        """Remove what was written (the write failed or was interrupted)."""
        self._close_file()
        for file in self.files:
            file.unlink(missing_ok=True)
        if self.rows_per_file is not None and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
