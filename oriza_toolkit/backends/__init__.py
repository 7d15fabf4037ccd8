"""One backend per dialect, chosen once from the URL (as encode/databases does).

A backend makes the engine for its URL and knows how its driver reads a result into
arrow and writes a DataFrame; everything dialect-free lives in ``queries.py``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from ..queries import Params, Statement

__all__ = ["Backend", "Form", "backend_for"]

# What a read returns: a DataFrame, a pyarrow Table, or parts to combine with others'.
Form = Literal["frame", "arrow", "parts"]


class Backend(Protocol):
    """What ``queries.py`` and ``writes.py`` need from a dialect."""

    name: str

    def make_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine: ...

    async def read(self, conn: AsyncConnection, sql: Statement, params: Params | None, form: Form = "frame"
                   ) -> Any: ...

    def stream(self, conn: AsyncConnection, sql: Statement, params: Params | None, rows: int, arrow: bool
               ) -> AsyncGenerator[Any, None]: ...

    def combine(self, parts: Sequence[Any], form: Form) -> Any: ...

    async def write(
        self, conn: AsyncConnection, frame: pd.DataFrame, table: str, schema: str | None, encoded: Any
    ) -> None: ...

    def encode(self, frame: pd.DataFrame) -> Any: ...


def backend_for(url: URL) -> Backend:
    """The backend for ``url``'s dialect (``config.database_url`` has already vetted it)."""
    if url.get_backend_name() == "postgresql":
        from .postgresql import PostgresBackend

        return PostgresBackend()
    from .sqlite import SQLiteBackend

    return SQLiteBackend()
