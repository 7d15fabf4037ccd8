"""``%sql`` / ``%%sql`` (and ``%osql``, the same under a name no other extension takes).

The options are declared with IPython's ``magic_arguments``; the SQL after them is kept
exactly as typed (``cells.py`` parses the line and shows the result). Statements run on
the default (or ``-c NAME``) Database's session connection; a cell of ``-- name: VAR``
queries runs them all at once on pooled connections. ``--save NAME`` keeps a query as a
snippet that ``--with NAME`` puts in front of later ones (``snippets.py``).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, argument_group, kwds, magic_arguments

from .. import completion, connections
from .._sql import parameter_names, parse, split_statements
from ..database import Database
from ..errors import OrizaError
from ..frames import RowsAffected, rows
from ..settings import settings
from ..snippets import snippets
from .cells import Result, parse_line, read_file, split_named_queries

__all__ = ["SqlMagics"]

# Statements after which the catalog Tab completes from is read again.
_DDL = {"create", "alter", "drop", "comment", "truncate"}
# {name} and $name (not a $tag$ dollar quote): how other tools put a variable's value into SQL.
_EXPANSIONS = re.compile(r"(\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)(?![\w$]))")


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
        argument("-c", "--connection", metavar="NAME",
                 help="the named connection to use (DATABASE_URL_<NAME>; default: %%oriza use's)"),
        argument("--connect", nargs=2, metavar=("NAME", "URL"), help="open URL as the connection NAME"),
        argument("--no-display", action="store_true", help="show nothing; return nothing"),
        argument("--consistent", action="store_true",
                 help="'-- name:' queries all see one moment of the database (one snapshot)"),
        argument("-f", "--file", metavar="PATH", help="run the SQL in this file"),
        argument("--save", metavar="NAME", help="keep this query as the snippet NAME (for --with)"),
        argument("--no-execute", action="store_true", help="with --save: keep the query without running it"),
        argument("--with", dest="with_snippets", metavar="NAME[,NAME]",
                 help="put these snippets in front of the query as WITH NAME AS (...)"),
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
class SqlMagics(Magics):
    """``%sql``/``%%sql`` and ``%osql``; settings are ``OrizaMagics``'s (``oz.settings``)."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._warned_batch = False

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
            print(parser.format_help().removeprefix("::").lstrip("\n"))  # "::" is IPython's reST marker
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
                if options.connection is not None:
                    raise UsageError("give --connect NAME URL or -c NAME, not both")
                db = self._connect(*options.connect)
                if not body.strip():
                    return None
            else:
                db = connections.get(options.connection or settings.connection)
            writing = [(mode, table) for mode, table in (("fail", options.persist), ("append", options.append),
                                                         ("replace", options.replace)) if table]
            if writing:
                return self._write(db, body.strip(), writing)
            if not body.strip():
                raise UsageError(f"no SQL given; e.g. %{name} select 1 as x")
            uses = [n.strip() for n in (options.with_snippets or "").split(",") if n.strip()]
            named = split_named_queries(body)
            if options.save or options.no_execute:
                if named or not options.save:
                    raise UsageError("--save NAME keeps one query (not '-- name:' queries); --no-execute goes "
                                     "with --save")
                snippets.save(options.save, body, uses)
                if options.no_execute:
                    print(f"saved snippet {options.save}")
                    return None
            if named:
                return self._run_many(db, {key: snippets.compose(sql, uses) for key, sql in named.items()}, options)
            body = snippets.compose(body, uses)
            if options.consistent:
                raise UsageError("--consistent is for cells of '-- name: VAR' queries (one query sees one moment "
                                 "anyway)")
            return self._run_script(db, body, options)
        except (OrizaError, TypeError, ValueError) as error:
            raise UsageError(str(error)) from None
        except KeyboardInterrupt:
            raise UsageError("interrupted: the cell's queries were cancelled on the server") from None

    @staticmethod
    def _connect(name: str, url: str) -> Database:
        """Open ``url`` as the connection ``name``, trying it at once: a wrong password is
        said here, naming ``name``, not at the next query."""
        db = connections.register(name, url)
        try:
            db.query("select 1 as connected")
        except OrizaError as error:
            connections.close(name)
            raise UsageError(f"--connect {name}: {error}") from None
        print(f"connected {name}: {connections.names()[name]}")
        return db

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
        for found in _EXPANSIONS.finditer(sql):
            name = found.group(2) or found.group(3)
            if name in namespace and name not in names:  # how other tools splice variables in; not here
                print(f"note: {found.group(1)} is not expanded here; write :{name} to bind the variable {name}")
                break
        return {name: namespace[name] for name in names}

    def _run_script(self, db: Database, sql: str, options: Any) -> Any:
        try:
            results = db.run_script(sql, self._params(sql) or None, timeout=options.timeout)
        finally:
            if any(parse(statement).keyword in _DDL for statement in split_statements(sql)):
                completion.forget(db)  # Tab offers the tables as they are now
        if db.session_reconnected:
            print("oriza_toolkit: the session's connection was lost, so this ran on a new one "
                  "(temp tables and SET from before are gone)")
        frame = results[-1]
        if isinstance(frame, RowsAffected):  # a statement without rows
            if not options.no_display:
                print(frame)
            return None
        result = Result(frame)
        result.attrs.update(frame.attrs)  # the provenance travels with what the cell returns
        result.display_rows = options.rows if options.rows is not None else settings.display_rows
        if options.out:
            self._namespace[options.out] = frame
        return None if options.no_display else result

    def _run_many(self, db: Database, named: dict[str, str], options: Any) -> Any:
        if db.session_active and not self._warned_batch:
            self._warned_batch = True
            print("note: '-- name:' queries run at once on pooled connections, so temp tables and SET "
                  "of this notebook's %sql session are not visible to them")
        batch = {name: (sql, self._params(sql)) for name, sql in named.items()}
        frames = db.query_many(batch, timeout=options.timeout, errors="return", consistent=options.consistent)
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
            print("bound " + ", ".join(f"{name} ({rows(len(frame))})" for name, frame in bound.items()))
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
        written = db.write(frame, table, if_exists=mode)  # type: ignore[arg-type]
        print(f"wrote {rows(written)} of {variable} to {table}")
