"""``%alembic <any Alembic command line>``: migrations from a cell, over ``migrations.run``."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand

from .. import connections, migrations
from ..database import Database
from ..errors import OrizaError
from ..settings import settings

__all__ = ["UPGRADE_HINT", "AlembicMagics", "in_notebook_terms"]

UPGRADE_HINT = "%alembic upgrade head"


def in_notebook_terms(message: str) -> str:
    """A library message with its Python calls as the magics a notebook user types."""
    return message.replace("set one up with init()", "set one up with %alembic init")


@magics_class
class AlembicMagics(Magics):
    """``%alembic``."""

    @property
    def db(self) -> Database:
        """The database cells use when they name none (``%oriza use NAME``; by default
        DATABASE_URL, .env or the embedded SQLite file)."""
        return connections.get(settings.connection)

    @no_var_expand
    @line_magic
    def alembic(self, line: str) -> None:
        """Run an Alembic command: ``%alembic upgrade head``, ``%alembic revision --autogenerate -m "x"``,
        ``%alembic init migrations --metadata pkg.models:Base.metadata``.

        With no arguments, show where the schema stands.
        """
        try:
            if not line.strip():
                print(migrations.schema_status(self.db).summary(UPGRADE_HINT))
                return
            result = migrations.run(line, self.db)
        except OrizaError as error:
            raise UsageError(in_notebook_terms(str(error))) from None
        print(result.output, end="")
