"""IPython magics over the library: ``%sql``/``%%sql``, ``%alembic``, ``%oriza`` and ``%sqlplot``.

Loaded by ``%load_ext oriza_toolkit``. A thin layer: each magic parses its line, calls the
public API, and turns the library's errors into a one-line ``UsageError`` here and nowhere
else. One module per magic: ``sql.py`` (``cells.py`` parses its lines and shows its
results), ``alembic.py``, ``oriza.py``, ``plot.py``. Settings are traitlets of ``OrizaMagics`` that read
and write ``oriza_toolkit.settings``::

    %config OrizaMagics.progress = False        # no progress bars or batch summaries
    %config OrizaMagics.display_rows = 50       # rows shown of a %sql result
    %config OrizaMagics.numeric = "decimal"     # numeric columns as exact Decimals
    %config OrizaMagics.auto_upgrade = True     # upgrade to head when the extension loads
    %config OrizaMagics.nested_asyncio = True   # let a cell's own asyncio.run(...) work

If another extension (JupySQL) already owns ``%sql``, it keeps it and the toolkit's is
``%osql`` (always available), said once.
"""

from __future__ import annotations

from typing import Any

from . import complete
from .alembic import AlembicMagics
from .oriza import OrizaMagics
from .plot import PlotMagics
from .sql import SqlMagics

__all__ = ["AlembicMagics", "OrizaMagics", "PlotMagics", "SqlMagics", "load_ipython_extension",
           "unload_ipython_extension"]

_OURS = ("sql", "osql", "alembic", "oriza", "sqlplot")
_CLASSES = (OrizaMagics, SqlMagics, AlembicMagics, PlotMagics)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics; keep another extension's ``%sql`` if there is one."""
    magics = ipython.magics_manager.magics
    theirs = {kind: magics[kind].get("sql") for kind in ("line", "cell")}
    foreign = any(func is not None and not _is_ours(func) for func in theirs.values())
    instance = OrizaMagics(shell=ipython, parent=ipython)  # first: its settings apply to the others
    ipython.register_magics(instance)
    for magics_type in _CLASSES[1:]:
        ipython.register_magics(magics_type(shell=ipython, parent=ipython))
    if foreign:
        for kind, func in theirs.items():
            if func is None:
                magics[kind].pop("sql", None)
            else:
                magics[kind]["sql"] = func
        print("oriza_toolkit: %sql belongs to another extension, so the toolkit's is %osql")
    ipython.Completer.custom_matchers[:] = [m for m in ipython.Completer.custom_matchers
                                            if getattr(m, "__module__", "") != complete.__name__]
    ipython.Completer.custom_matchers.append(complete.make_matcher(ipython))
    instance.announce_schema()


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the toolkit's magics (another extension's ``%sql`` stays)."""
    magics = ipython.magics_manager.magics
    for kind in ("line", "cell"):
        for name in _OURS:
            if name in magics[kind] and _is_ours(magics[kind][name]):
                del magics[kind][name]
    registry = ipython.magics_manager.registry
    for magics_type in _CLASSES:
        registry.pop(magics_type.__name__, None)
    ipython.Completer.custom_matchers[:] = [m for m in ipython.Completer.custom_matchers
                                            if getattr(m, "__module__", "") != complete.__name__]


def _is_ours(func: Any) -> bool:
    return isinstance(getattr(func, "__self__", None), _CLASSES)
