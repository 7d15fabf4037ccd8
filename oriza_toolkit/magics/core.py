"""The magics class: settings as traitlets, and ``%sql``, ``%alembic``, ``%oriza``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, argument_group, kwds, magic_arguments
from IPython.display import display
from traitlets import Bool, Enum, Int, Union, default, observe

from .. import connections, migrations
from ..config import mask_url, project_root
from ..database import Database
from ..errors import MigrationError, OrizaError
from ..queries import parameter_names
from ..settings import settings
from .sql import Result, parse_line, read_file, split_named_queries

__all__ = ["OrizaMagics"]

_UPGRADE_HINT = "%alembic upgrade head"


def _sql_options(func: Any) -> Any:
    """The options of ``%sql``/``%osql`` (declared once for both)."""
    decorators = [
        magic_arguments(),
        kwds(description="Run SQL. The SQL follows the options, or is the cell.",
             epilog="NAME << SQL binds the result to NAME, like -o NAME. In a cell, '-- name: VAR' lines "
                    "run every query at once and bind each result to its VAR."),
        argument("-o", "--out", metavar="NAME", help="bind the result to this variable"),
        argument("--timeout", type=float, metavar="SECONDS", help="cancel the query on the server after this"),
        argument("--rows", type=int, metavar="N", help="rows of the result to show"),
        argument("-c", "--connection", metavar="NAME", default=connections.DEFAULT,
                 help="the named connection to use (DATABASE_URL_<NAME>)"),
        argument("--connect", nargs=2, metavar=("NAME", "URL"), help="open URL as the connection NAME"),
        argument("--no-display", action="store_true", help="show nothing; return nothing"),
        argument("-f", "--file", metavar="PATH", help="run the SQL in this file"),
        argument_group("Writing a DataFrame variable to a table (the SQL is the variable's name)"),
        argument("--persist", metavar="TABLE", help="create TABLE from the frame"),
        argument("--append", metavar="TABLE", help="append the frame to TABLE"),
        argument("--replace", metavar="TABLE", help="replace TABLE with the frame"),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    func.parser.allow_abbrev = False  # "--row 5" is an error, not --rows
    return func


@magics_class
class OrizaMagics(Magics):
    """The toolkit's magics; settings through ``%config OrizaMagics.<name> = ...``."""

    auto_upgrade = Bool(False, help="Upgrade the database to head when the extension loads.").tag(config=True)
    progress = Union([Bool(), Enum(["auto"])], help="Progress bars and batch summaries: True, False or "
                     "'auto' (on in a kernel).").tag(config=True)
    display_rows = Int(help="How many rows of a %sql result are shown.").tag(config=True)
    numeric = Enum(["decimal", "float"], help="PostgreSQL numeric columns as exact decimals or float64."
                   ).tag(config=True)
    nested_asyncio = Bool(False, help="Let a cell's own asyncio.run(...) work (nest-asyncio2).").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._warned_batch = False
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

    @property
    def db(self) -> Database:
        """The notebook's default database (DATABASE_URL, .env or the embedded SQLite file)."""
        return connections.get(connections.DEFAULT)

    # -- %sql ---------------------------------------------------------------------------

    @_sql_options
    @no_var_expand
    @line_cell_magic
    def sql(self, line: str, cell: str | None = None) -> Any:
        """Run SQL; return (and show) its DataFrame."""
        return self._sql("sql", line, cell)

    @_sql_options
    @no_var_expand
    @line_cell_magic
    def osql(self, line: str, cell: str | None = None) -> Any:
        """The toolkit's %sql under a name no other extension takes."""
        return self._sql("osql", line, cell)

    def _sql(self, name: str, line: str, cell: str | None) -> Any:
        magic = getattr(self, name)
        parser = magic.parser
        if any(word in ("-h", "--help") for word in line.split()[:8]) and line.lstrip().startswith("-"):
            print(parser.format_help())
            return None
        parsed = parse_line(parser, line)
        options = parsed.options
        body = "\n".join(part for part in (parsed.rest, cell or "") if part.strip())
        if options.file:
            if body.strip():
                raise UsageError("-f: give the SQL in the file or after the options, not both")
            body = read_file(options.file)
        try:
            if options.connect:
                conn_name, url = options.connect
                connections.register(conn_name, url)
                print(f"connected {conn_name}: {connections.names()[conn_name]}")
                if not body.strip():
                    return None
            db = connections.get(options.connection)
            writing = [(mode, table) for mode, table in (("fail", options.persist), ("append", options.append),
                                                         ("replace", options.replace)) if table]
            if writing:
                return self._write(db, body.strip(), writing)
            if not body.strip():
                raise UsageError(f"no SQL given; e.g. %{name} select 1 as x")
            named = split_named_queries(body)
            if named:
                return self._run_many(db, named, options)
            return self._run_script(db, body, options)
        except (OrizaError, TypeError, ValueError) as error:
            raise UsageError(str(error)) from None
        except KeyboardInterrupt:
            raise UsageError("interrupted: the cell's queries were cancelled on the server") from None

    @property
    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns  # type: ignore[no-any-return]

    def _params(self, sql: str) -> dict[str, Any]:
        namespace = self._namespace
        names = parameter_names(sql)
        missing = [name for name in names if name not in namespace]
        if missing:
            raise UsageError(f"the SQL uses :{missing[0]} but no variable {missing[0]!r} is defined")
        return {name: namespace[name] for name in names}

    def _run_script(self, db: Database, sql: str, options: Any) -> Any:
        results = db.run_script(sql, self._params(sql) or None, timeout=options.timeout)
        if db.session_reconnected:
            print("oriza_toolkit: the session's connection was lost, so this ran on a new one "
                  "(temp tables and SET from before are gone)")
        frame = results[-1]
        if "rowcount" in frame.attrs:  # a statement without rows (frames.rows_affected)
            count, status = frame.attrs["rowcount"], frame.attrs["status"]
            if not options.no_display:
                print(f"{count:,} rows affected" if count is not None else status or "done")
            return None
        result = Result(frame)
        result.display_rows = options.rows if options.rows is not None else self.display_rows
        if options.out:
            self._namespace[options.out] = frame
        return None if options.no_display else result

    def _run_many(self, db: Database, named: dict[str, str], options: Any) -> Any:
        if db.session_active and not self._warned_batch:
            self._warned_batch = True
            print("note: '-- name:' queries run at once on pooled connections, so temp tables and SET "
                  "of this notebook's %sql session are not visible to them")
        batch = {name: (sql, self._params(sql)) for name, sql in named.items()}
        frames = db.query_many(batch, timeout=options.timeout, errors="return")
        failed = {name: out for name, out in frames.items() if isinstance(out, Exception)}
        bound = {name: out for name, out in frames.items() if not isinstance(out, Exception)}
        self._namespace.update(bound)
        if options.out:
            self._namespace[options.out] = bound
        if failed:  # each error is in the summary above when progress is on: say it once
            detail = (f"{len(failed)} of {len(frames)} queries failed ({', '.join(failed)})" if settings.show_progress()
                      else str(next(iter(failed.values()))))
            raise UsageError(f"{detail}; bound {', '.join(bound) or 'nothing'}")
        if not settings.show_progress() and not options.no_display:
            print("bound " + ", ".join(f"{name} ({len(frame):,} rows)" for name, frame in bound.items()))
        return None

    def _write(self, db: Database, variable: str, writing: list[tuple[str, str]]) -> None:
        if len(writing) > 1:
            raise UsageError("give one of --persist, --append, --replace")
        (mode, table), = writing
        if not variable.isidentifier() or variable not in self._namespace:
            raise UsageError(f"--{'persist' if mode == 'fail' else mode}: name a DataFrame variable after "
                             f"the table, not {variable!r}")
        frame = self._namespace[variable]
        if not isinstance(frame, pd.DataFrame):
            raise UsageError(f"{variable!r} is a {type(frame).__name__}, not a DataFrame")
        rows = db.write(frame, table, if_exists=mode)  # type: ignore[arg-type]
        print(f"wrote {rows:,} rows of {variable} to {table}")

    # -- %alembic -----------------------------------------------------------------------

    @no_var_expand
    @line_magic
    def alembic(self, line: str) -> None:
        """Run an Alembic command: ``%alembic upgrade head``, ``%alembic revision --autogenerate -m "x"``,
        ``%alembic init migrations --metadata pkg.models:Base.metadata``.

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
        """The connection and schema at a glance; ``%oriza tables [SCHEMA]``; ``%oriza describe TABLE``;
        ``%oriza connections``; ``%oriza close NAME``."""
        words = line.split()
        try:
            if not words:
                db = self.db
                print(f"connection: {mask_url(db.url)}")
                print(f"dialect:    {db.dialect} ({db.engine.dialect.driver})")
                print(f"pool:       {db.pool_status()}")
                try:
                    schema = migrations.schema_status(db).summary(_UPGRADE_HINT)
                except MigrationError as error:
                    schema = f"unknown ({error.detail})"
                print(f"schema:     {schema}")
            elif words[0] == "tables" and len(words) <= 2:
                print("\n".join(self.db.tables(*words[1:])) or "(no tables)")
            elif len(words) == 2 and words[0] == "describe":
                display(self.db.describe(words[1]))
            elif words == ["connections"]:
                print("\n".join(f"{name}: {url}" for name, url in connections.names().items()) or "(none open)")
            elif len(words) == 2 and words[0] == "close":
                connections.close(words[1])
                print(f"closed {words[1]}")
            else:
                raise UsageError("usage: %oriza | %oriza tables [SCHEMA] | %oriza describe TABLE | "
                                 "%oriza connections | %oriza close NAME")
        except (OrizaError, KeyError) as error:
            raise UsageError(str(error).strip("'\"")) from None

