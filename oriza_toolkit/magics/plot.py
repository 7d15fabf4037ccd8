"""``%sqlplot histogram|boxplot|bar|pie --table T --column C``: plots computed in SQL
(``plots.py``), with JupySQL's spelling."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .. import connections
from ..errors import OrizaError
from ..plots import Plotter
from ..settings import settings

__all__ = ["PlotMagics"]

_KINDS = ("histogram", "boxplot", "bar", "pie")


def _plot_options(func: Any) -> Any:
    """The options of ``%sqlplot`` (IPython's decorators are untyped: applied here)."""
    decorators = [
        magic_arguments(),
        argument("kind", help="histogram, boxplot, bar or pie"),
        argument("-t", "--table", required=True, help="a table, or a snippet saved with %%sql --save"),
        argument("-s", "--column", required=True, help="the column to plot"),
        argument("-b", "--bins", type=int, default=20, help="histogram bins (default 20)"),
        argument("--top", type=int, default=20, help="bar/pie: the most common values shown (default 20)"),
        argument("-w", "--with", dest="with_snippets", metavar="NAME[,NAME]", help="snippets to put in front"),
        argument("-c", "--connection", metavar="NAME", help="the named connection to use"),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@magics_class
class PlotMagics(Magics):
    """``%sqlplot``."""

    @_plot_options
    @no_var_expand
    @line_magic
    def sqlplot(self, line: str) -> Any:
        """Plot a column with the numbers computed by the server: ``%sqlplot histogram
        --table flights --column dep_delay --bins 50``."""
        options = parse_argstring(self.sqlplot, line)
        if options.kind not in _KINDS:
            raise UsageError(f"%sqlplot draws {', '.join(_KINDS)}, not {options.kind!r}")
        uses = [n.strip() for n in (options.with_snippets or "").split(",") if n.strip()]
        try:
            plot = Plotter(connections.get(options.connection or settings.connection))
            if options.kind == "histogram":
                return plot.histogram(options.table, options.column, bins=options.bins, with_=uses)
            if options.kind == "boxplot":
                return plot.boxplot(options.table, options.column, with_=uses)
            draw = plot.bar if options.kind == "bar" else plot.pie
            return draw(options.table, options.column, top=options.top, with_=uses)
        except (OrizaError, TypeError, ValueError, ImportError) as error:
            raise UsageError(str(error)) from None
