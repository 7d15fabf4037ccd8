"""Where the database stands against the migrations and the models, changing nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from alembic import command as alembic_command

from ..database import Database
from ..errors import MigrationError, SchemaDiffError
from ..queries import query_error
from .config import ConfigArg, alembic_config
from .running import execute, lock, on_loop, quiet_alembic, using

__all__ = ["SchemaStatus", "schema_status"]


@dataclass
class SchemaStatus:
    """Where the database stands against the migrations and the models."""

    current: list[str]
    heads: list[str]
    pending: list[str]
    diffs: list[Any]

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.diffs

    def __str__(self) -> str:
        return self.summary()

    def summary(self, upgrade_hint: str = 'upgrade("head")') -> str:
        """One line; ``upgrade_hint`` is how the reader applies pending revisions."""
        current = ", ".join(self.current) or "base (empty)"
        text = f"current: {current}; head: {', '.join(self.heads) or 'none'}"
        if self.pending:
            text += f"; {len(self.pending)} pending: {upgrade_hint} applies them"
        if self.diffs:
            text += f"; models differ from the database in {len(self.diffs)} way(s)"
        return text + ("; up to date" if self.up_to_date else "")


def schema_status(db: Database | None = None, *, config: ConfigArg = None) -> SchemaStatus:
    """Current revision(s), head(s), pending revisions and model differences, changing nothing.

    The differences are what Alembic's own ``check`` finds, with env.py's compare options.

    Example::

        >>> print(schema_status())   # doctest: +SKIP
        current: 39d91c29198e; head: 39d91c29198e; up to date
    """
    status = SchemaStatus([], [], [], [])

    def inspect(connection: Connection) -> None:
        with quiet_alembic():
            status.current = list(MigrationContext.configure(connection).get_current_heads())

    with using(db) as database:
        with lock:
            try:
                cfg = alembic_config(config)
                script = ScriptDirectory.from_config(cfg)
                status.heads = list(script.get_heads())
                on_loop(database, _on_connection(database, inspect))
            except CommandError as error:
                raise MigrationError("status", str(error)) from None
            except SQLAlchemyError as error:  # e.g. a role that may not read alembic_version
                raise MigrationError("status", query_error(error, "status", "", database.backend).detail) from None
        pending = script.iterate_revisions(tuple(status.heads), tuple(status.current) or "base")
        status.pending = [rev.revision for rev in pending if rev.revision not in status.current]
        if not status.pending and status.heads:
            try:
                execute("check", "check", alembic_command.check, database, config=config)
            except SchemaDiffError as error:
                status.diffs = error.diffs
            except MigrationError as error:
                if "MetaData" not in error.detail:  # no target_metadata: nothing to compare with
                    raise
    return status


async def _on_connection(database: Database, call: Callable[[Connection], None]) -> None:
    async with database.engine.connect() as conn:
        await conn.run_sync(call)
