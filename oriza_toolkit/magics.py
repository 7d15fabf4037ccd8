"""IPython magics: ``%alembic`` (any Alembic command line) over :mod:`oriza_toolkit.migrations`.

Loaded by ``%load_ext oriza_toolkit``. A thin layer: errors become a one-line
``UsageError`` here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from traitlets import Bool

from . import migrations
from .database import Database, connect
from .errors import OrizaError

__all__ = ["OrizaMagics", "load_ipython_extension"]


@magics_class
class OrizaMagics(Magics):
    """``%alembic``; settings through ``%config OrizaMagics.<name> = ...``."""

    auto_upgrade = Bool(False, help="Upgrade the database to head when the extension loads.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        """The notebook's database: ``oz.connect()`` on first use (DATABASE_URL, .env or SQLite)."""
        if self._db is None or self._db.closed:
            self._db = connect()
        return self._db

    @no_var_expand
    @line_magic
    def alembic(self, line: str) -> None:
        """Run an Alembic command: ``%alembic upgrade head``, ``%alembic revision --autogenerate -m "x"``.

        With no arguments, show where the schema stands.
        """
        try:
            if not line.strip():
                print(migrations.schema_status(self.db))
                return
            result = migrations.run(line, self.db)
        except OrizaError as error:
            raise UsageError(str(error)) from None
        print(result.output, end="")

    def announce_schema(self) -> None:
        """One line when the database is behind head; upgrade instead if ``auto_upgrade``."""
        try:
            status = migrations.schema_status(self.db)
            if status.pending and self.auto_upgrade:
                migrations.upgrade("head", self.db)
                print(f"oriza_toolkit: upgraded the database to {', '.join(status.heads)}")
            elif status.pending:
                print(f"oriza_toolkit: the database is {len(status.pending)} revision(s) behind head; "
                      "run %alembic upgrade head")
        except OrizaError as error:
            print(f"oriza_toolkit: schema status unavailable: {error}")


def load_ipython_extension(ipython: Any) -> None:
    magics = OrizaMagics(shell=ipython, parent=ipython)
    ipython.register_magics(magics)
    magics.announce_schema()
