"""``%alembic <any Alembic command line>``: migrations from a cell, over ``migrations.run``."""

from __future__ import annotations

import re

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand

from .. import completion, connections, migrations
from ..database import Database
from ..errors import MigrationError, OrizaError
from ..settings import settings

__all__ = ["UPGRADE_HINT", "AlembicMagics", "in_notebook_terms", "quiet"]

UPGRADE_HINT = "%alembic upgrade head"
# Alembic's log lines as the toolkit formats them (see migrations/running.py).
_INFO = re.compile(r"^INFO  \[[\w.]+\] (.*?)\r?$")
# The magic's own -v, before the command (Alembic's global options have none); after it,
# -v/--verbose is the command's own (history, current, heads) and shows the lines too.
_LEADING_VERBOSE = re.compile(r"^\s*(?:-v|--verbose)(?:\s+|$)")
_VERBOSE = re.compile(r"(?:^|\s)(?:-v|--verbose)(?:\s|$)")


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
        ``%alembic init migrations --metadata pkg.models:Base.metadata``. Alembic's INFO log
        lines are shown whole with ``%alembic -v ...`` (or when the command fails); otherwise
        only what autogenerate detected and what each migration ran.

        With no arguments, show where the schema stands.
        """
        verbose = bool(_LEADING_VERBOSE.match(line)) or bool(_VERBOSE.search(line))
        line = _LEADING_VERBOSE.sub("", line, count=1)
        try:
            if not line.strip():
                print(migrations.schema_status(self.db).summary(UPGRADE_HINT))
                return
            result = migrations.run(line, self.db)
            completion.forget(self.db)  # a migration may have changed the tables Tab offers
        except OrizaError as error:
            if isinstance(error, MigrationError) and error.output:  # what Alembic said on the way to failing
                print(error.output, end="")
            raise UsageError(in_notebook_terms(str(error))) from None
        print(result.output if verbose else quiet(result.output), end="")


def quiet(output: str) -> str:
    """Alembic's output without the noise of its INFO log lines ("Context impl ...", "Will
    assume transactional DDL", ...), keeping, shortened, what autogenerate detected and
    what each migration ran.

    Example::

        >>> quiet("INFO  [alembic.runtime.migration] Context impl SQLiteImpl.\n"
        ...       "INFO  [alembic.runtime.migration] Running upgrade  -> 1a2b, add x\n")
        'Running upgrade  -> 1a2b, add x\n'
    """
    kept = []
    for text in output.splitlines(keepends=True):
        found = _INFO.match(text)
        if found is None:
            kept.append(text)
        elif found.group(1).startswith(("Detected ", "Running upgrade", "Running downgrade", "Running stamp")):
            kept.append(found.group(1) + "\n")
    return "".join(kept)
