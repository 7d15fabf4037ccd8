"""IPython magics over the library: ``%sql``/``%%sql``, ``%alembic`` and ``%oriza``.

Loaded by ``%load_ext oriza_toolkit``. A thin layer: each magic calls the public API and
errors become a one-line ``UsageError`` here and nowhere else. Settings are traitlets::

    %config OrizaMagics.progress = False        # no progress bars or batch summaries
    %config OrizaMagics.display_rows = 50       # rows shown of a %sql result
    %config OrizaMagics.auto_upgrade = True     # upgrade to head when the extension loads
    %config OrizaMagics.nested_asyncio = True   # let a cell's own asyncio.run(...) work
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Bool, Int, observe

from . import migrations
from .config import project_root
from .database import Database, connect
from .errors import MigrationError, OrizaError
from .progress import settings
from .queries import parameter_names

__all__ = ["OrizaMagics", "load_ipython_extension"]

_UPGRADE_HINT = "%alembic upgrade head"

_OPTION = re.compile(r"\s*(?:(?:-o|--out)\s+(?P<out>[A-Za-z_]\w*)|--timeout\s+(?P<timeout>\d+(?:\.\d+)?)"
                     r"|--rows\s+(?P<rows>\d+))(?=\s|$)")
_ASSIGN = re.compile(r"\s*(?P<out>[A-Za-z_]\w*)\s*<<")
_NAME_LINE = re.compile(r"^\s*--\s*name:\s*(?P<name>[A-Za-z_]\w*)\s*$", re.MULTILINE)


@dataclass
class SqlOptions:
    """What precedes the SQL: ``-o NAME`` (or ``NAME <<``), ``--timeout S``, ``--rows N``."""

    out: str | None = None
    timeout: float | None = None
    rows: int | None = None


def parse_sql_line(line: str) -> tuple[SqlOptions, str]:
    """Split a ``%sql`` line into its options and the SQL after them."""
    options = SqlOptions()
    rest = line
    while match := _OPTION.match(rest):
        if match["out"]:
            options.out = match["out"]
        if match["timeout"]:
            options.timeout = float(match["timeout"])
        if match["rows"]:
            options.rows = int(match["rows"])
        rest = rest[match.end():]
    if match := _ASSIGN.match(rest):
        options.out = match["out"]
        rest = rest[match.end():]
    return options, rest.strip()


def split_named_queries(cell: str) -> dict[str, str]:
    """``-- name: VAR`` lines split a cell into named queries; ``{}`` when there are none."""
    parts = _NAME_LINE.split(cell)
    if len(parts) == 1:
        return {}
    if parts[0].strip():
        raise UsageError("SQL before the first '-- name: VAR' line; give every query a name")
    names, bodies = parts[1::2], [body.strip() for body in parts[2::2]]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise UsageError(f"query names used twice: {', '.join(sorted(duplicates))}")
    empty = [n for n, body in zip(names, bodies, strict=True) if not body]
    if empty:
        raise UsageError(f"no SQL under '-- name: {empty[0]}'")
    return dict(zip(names, bodies, strict=True))


@magics_class
class OrizaMagics(Magics):
    """The toolkit's magics; settings through ``%config OrizaMagics.<name> = ...``."""

    auto_upgrade = Bool(False, help="Upgrade the database to head when the extension loads.").tag(config=True)
    progress = Bool(True, help="Show live progress and a per-query summary for batches.").tag(config=True)
    display_rows = Int(20, help="How many rows of a %sql result are rendered.").tag(config=True)
    nested_asyncio = Bool(False, help="Let a cell's own asyncio.run(...) work (nest-asyncio2).").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._db: Database | None = None
        settings.progress = self.progress
        if self.nested_asyncio:
            self._apply_nested_asyncio()

    @observe("progress")
    def _progress_changed(self, change: dict[str, Any]) -> None:
        settings.progress = bool(change["new"])

    @observe("nested_asyncio")
    def _nested_asyncio_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._apply_nested_asyncio()

    @staticmethod
    def _apply_nested_asyncio() -> None:
        import asyncio

        import nest_asyncio2

        nest_asyncio2.apply(asyncio.get_event_loop())

    @property
    def db(self) -> Database:
        """The notebook's database: ``oz.connect()`` on first use (DATABASE_URL, .env or SQLite)."""
        if self._db is None or self._db.closed:
            self._db = connect()
        return self._db

    # -- %sql ---------------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    def sql(self, line: str, cell: str | None = None) -> None:
        """Run SQL and show the result.

        ``%sql [-o NAME] [--timeout S] [--rows N] SELECT ...`` runs one query;
        ``NAME << SELECT ...`` binds the DataFrame to NAME, as ``-o NAME`` does. As a cell
        magic (``%%sql [options]``) the SQL is the cell; with ``-- name: VAR`` lines every
        query in it runs at once and each DataFrame is bound to its VAR::

            %%sql
            -- name: delays
            select carrier, avg(dep_delay) as delay from flights group by carrier
            -- name: routes
            select origin, dest, count(*) as n from flights group by 1, 2 order by n desc limit 10

        ``:name`` parameters are bound from the notebook's variables.
        """
        options, rest = parse_sql_line(line)
        body = f"{rest}\n{cell}" if cell is not None and rest else (cell if cell is not None else rest)
        named = split_named_queries(body)
        if named:
            self._run_many(named, options)
        elif body.strip():
            self._run_one(body.strip(), options)
        else:
            raise UsageError("no SQL given; e.g. %sql select 1 as x")

    @property
    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns  # type: ignore[no-any-return]

    def _params(self, sql: str) -> dict[str, Any]:
        namespace = self._namespace
        missing = [name for name in parameter_names(sql) if name not in namespace]
        if missing:
            raise UsageError(f"the SQL uses :{missing[0]} but no variable {missing[0]!r} is defined")
        return {name: namespace[name] for name in parameter_names(sql)}

    def _run_one(self, sql: str, options: SqlOptions) -> None:
        try:
            frame = self.db.query(sql, self._params(sql) or None, timeout=options.timeout)
        except OrizaError as error:
            raise UsageError(str(error)) from None
        if options.out:
            self._namespace[options.out] = frame
        self._show(frame, options.rows)

    def _run_many(self, named: dict[str, str], options: SqlOptions) -> None:
        batch = {name: (sql, self._params(sql)) for name, sql in named.items()}
        try:
            frames = self.db.query_many(batch, timeout=options.timeout, errors="return")
        except OrizaError as error:
            raise UsageError(str(error)) from None
        failed = {name: out for name, out in frames.items() if isinstance(out, Exception)}
        for name, out in frames.items():
            if not isinstance(out, Exception):
                self._namespace[name] = out
        if failed:
            bound = ", ".join(n for n in frames if n not in failed) or "nothing"
            raise UsageError(f"{next(iter(failed.values()))}; bound {bound}")
        if not settings.progress:
            print("bound " + ", ".join(f"{name} ({len(frame):,} rows)" for name, frame in frames.items()))

    def _show(self, frame: pd.DataFrame, rows: int | None) -> None:
        limit = rows if rows is not None else self.display_rows
        with pd.option_context("display.max_rows", limit, "display.min_rows", min(limit, 10)):
            display(frame)

    # -- %alembic -----------------------------------------------------------------------

    @no_var_expand
    @line_magic
    def alembic(self, line: str) -> None:
        """Run an Alembic command: ``%alembic upgrade head``, ``%alembic revision --autogenerate -m "x"``.

        With no arguments, show where the schema stands.
        """
        try:
            if not line.strip():
                print(migrations.schema_status(self.db).summary(_UPGRADE_HINT))
                return
            result = migrations.run(line, self.db)
        except OrizaError as error:
            raise UsageError(str(error)) from None
        print(result.output, end="")

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
        """The connection and schema at a glance; ``%oriza tables``; ``%oriza describe TABLE``."""
        words = line.split()
        try:
            if not words:
                db = self.db
                print(f"connection: {db.url.render_as_string(hide_password=True)}")
                print(f"dialect:    {db.dialect} ({db.engine.dialect.driver})")
                print(f"pool:       {db.pool_status()}")
                try:
                    schema = migrations.schema_status(db).summary(_UPGRADE_HINT)
                except MigrationError as error:
                    schema = f"unknown ({error.detail})"
                print(f"schema:     {schema}")
            elif words == ["tables"]:
                print("\n".join(self.db.tables()) or "(no tables)")
            elif len(words) == 2 and words[0] == "describe":
                display(self.db.describe(words[1]))
            else:
                raise UsageError("usage: %oriza | %oriza tables | %oriza describe TABLE")
        except OrizaError as error:
            raise UsageError(str(error)) from None


def load_ipython_extension(ipython: Any) -> None:
    magics = OrizaMagics(shell=ipython, parent=ipython)
    ipython.register_magics(magics)
    magics.announce_schema()
