"""``%oriza``, and the settings of every magic as traitlets (``%config OrizaMagics.<name>``)
that read and write ``oriza_toolkit.settings``."""

from __future__ import annotations

import json
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Bool, Enum, Int, Union, default, observe

from .. import connections, migrations, provenance
from ..config import mask_url, project_root
from ..database import Database
from ..errors import MigrationError, OrizaError
from ..settings import settings
from ..snippets import snippets
from .alembic import UPGRADE_HINT, in_notebook_terms

__all__ = ["OrizaMagics"]


@magics_class
class OrizaMagics(Magics):
    """``%oriza``; the magics' settings through ``%config OrizaMagics.<name> = ...``."""

    auto_upgrade = Bool(False, help="Upgrade the database to head when the extension loads.").tag(config=True)
    progress = Union([Bool(), Enum(["auto"])], help="Progress bars and batch summaries: True, False or "
                     "'auto' (on in a kernel).").tag(config=True)
    display_rows = Int(help="How many rows of a %sql result are shown.").tag(config=True)
    numeric = Enum(["float", "decimal"], help="PostgreSQL numeric columns of a DataFrame as float64 "
                   "(default) or exact Decimal objects.").tag(config=True)
    nested_asyncio = Bool(False, help="Let a cell's own asyncio.run(...) work (nest-asyncio2).").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        if self.nested_asyncio:
            self._apply_nested_asyncio()

    # Traits read oriza_toolkit.settings, and writing one writes it: one place for settings.
    @default("progress")
    def _progress_default(self) -> Any:
        return settings.progress

    @default("display_rows")
    def _display_rows_default(self) -> int:
        return settings.display_rows

    @default("numeric")
    def _numeric_default(self) -> str:
        return settings.numeric

    @observe("progress", "display_rows", "numeric")
    def _setting_changed(self, change: dict[str, Any]) -> None:
        setattr(settings, change["name"], change["new"])

    @observe("nested_asyncio")
    def _nested_asyncio_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._apply_nested_asyncio()

    @staticmethod
    def _apply_nested_asyncio() -> None:
        import asyncio

        import nest_asyncio2

        nest_asyncio2.apply(asyncio.get_event_loop())

    @staticmethod
    def use(name: str) -> None:
        """Make the named connection the one the magics use when a cell names none; it is
        opened (and tried) now, so a bad name or URL is said here."""
        db = connections.get(name)
        try:
            db.query("select 1 as connected")
        except OrizaError as error:
            raise UsageError(f"%oriza use {name}: {error}") from None
        settings.connection = name
        print(f"using {name}: {mask_url(db.url)}")

    @property
    def db(self) -> Database:
        """The database cells use when they name none (``%oriza use NAME``; by default
        DATABASE_URL, .env or the embedded SQLite file)."""
        return connections.get(settings.connection)

    def announce_schema(self) -> None:
        """One line when the database is behind head; upgrade instead if ``auto_upgrade``.

        Says nothing outside a project (no ``alembic.ini`` here or above).
        """
        if not (project_root() / "alembic.ini").is_file():
            return
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

    # -- %oriza -------------------------------------------------------------------------

    @no_var_expand
    @line_magic
    def oriza(self, line: str) -> None:
        """The connection and schema at a glance; ``%oriza tables [SCHEMA]``; ``%oriza describe TABLE``;
        ``%oriza connections``; ``%oriza use NAME`` (the connection cells use from now on; ``default``
        goes back to DATABASE_URL's); ``%oriza close NAME``; ``%oriza snippets`` (saved with
        ``%%sql --save NAME``); ``%oriza profile TABLE`` (computed on the server); ``%oriza provenance VAR`` (where a
        result came from)."""
        words = line.split()
        try:
            if not words:
                db = self.db
                print(f"connection: {settings.connection} ({mask_url(db.url)})")
                print(f"dialect:    {db.dialect} ({db.engine.dialect.driver})")
                print(f"pool:       {db.pool_status()}")
                try:
                    schema = migrations.schema_status(db).summary(UPGRADE_HINT)
                except MigrationError as error:
                    schema = f"unknown ({in_notebook_terms(error.detail)})"
                print(f"schema:     {schema}")
            elif words[0] == "tables" and len(words) <= 2:
                print("\n".join(self.db.tables(*words[1:])) or "(no tables)")
            elif len(words) == 2 and words[0] == "describe":
                display(self.db.describe(words[1]))
            elif words == ["connections"]:
                print("\n".join(f"{name}: {url}" for name, url in connections.names().items()) or "(none open)")
            elif len(words) == 2 and words[0] == "close":
                connections.close(words[1])
                if words[1] == settings.connection:
                    settings.connection = connections.DEFAULT
                print(f"closed {words[1]}")
            elif len(words) == 2 and words[0] == "use":
                self.use(words[1])
            elif len(words) == 2 and words[0] == "profile":
                display(self.db.profile(words[1]))
            elif len(words) == 2 and words[0] == "provenance":
                assert self.shell is not None
                if words[1] not in self.shell.user_ns:
                    raise UsageError(f"no variable named {words[1]!r}")
                found = getattr(self.shell.user_ns[words[1]], "attrs", {}).get(provenance.KEY)
                print(json.dumps(found, indent=2, default=str) if found else
                      f"{words[1]} carries no provenance (it is not a result the toolkit returned)")
            elif words == ["snippets"]:
                print("\n".join(f"{name}: {first}" for name, first in snippets.names().items())
                      or "(none saved: %%sql --save NAME)")
            else:
                raise UsageError("usage: %oriza | %oriza tables [SCHEMA] | %oriza describe TABLE | "
                                 "%oriza connections | %oriza use NAME | %oriza close NAME | %oriza snippets | "
                                 "%oriza profile TABLE | %oriza provenance VAR")
        except (OrizaError, KeyError, ValueError) as error:
            raise UsageError(str(error).strip("'\"")) from None

