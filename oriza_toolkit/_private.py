"""Private APIs of SQLAlchemy, pandas, Alembic and distributed that the toolkit uses, each behind one wrapper.

Each is checked once, at import; where it is missing (a newer release renamed it), the
wrapper falls back to a public, slower or more conservative way and says so once. The
version bounds in ``pyproject.toml`` admit only the releases these were checked against,
and ``tests/test_private.py`` fails loudly when one goes missing. (asyncpg's
``_copy_out`` has its own wrapper, in ``backends/asyncpg_private.py``.)
"""

from __future__ import annotations

import argparse
import functools
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.pool import Pool, QueuePool

from .config import OrizaWarning

__all__ = [
    "HAS_FROM_ARRAYS", "HAS_MAX_OVERFLOW", "HAS_OBJECT_ARRAY_TUPLES", "alembic_config_files", "dask_task_stopped",
    "frame_from_arrays", "has_alembic_config_files", "object_matrix", "pool_max_overflow",
]


def _no_connection() -> Any:
    raise RuntimeError("only inspected, never connected")


HAS_MAX_OVERFLOW = isinstance(getattr(QueuePool(_no_connection, max_overflow=7), "_max_overflow", None), int)

# What DataFrame.from_records uses; the public API has no C-speed rows-to-columns.
try:
    from pandas._libs.lib import to_object_array_tuples as _to_object_array_tuples  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _to_object_array_tuples = None
HAS_OBJECT_ARRAY_TUPLES = _to_object_array_tuples is not None

# What pandas builds a DataFrame with once its columns are arrays: the public constructor
# checks and copies what a small result (a few rows) spends most of its time on.
HAS_FROM_ARRAYS = callable(getattr(pd.DataFrame, "_from_arrays", None))

_warned: set[str] = set()


def pool_max_overflow(pool: Pool) -> int:
    """How many connections ``pool`` opens beyond its size when busy (``max_overflow``; 0
    for pools without overflow). SQLAlchemy keeps it only as ``QueuePool._max_overflow``."""
    if not isinstance(pool, QueuePool):
        return 0
    if not HAS_MAX_OVERFLOW:
        _warn_once("_max_overflow", "SQLAlchemy's QueuePool has no _max_overflow; batches run at most pool_size "
                   "queries at once")
        return 0
    return max(int(pool._max_overflow), 0)


def frame_from_arrays(arrays: Sequence[Any], names: Sequence[str], rows: int) -> pd.DataFrame:
    """A DataFrame of ``arrays`` (numpy arrays or pandas extension arrays of ``rows``
    values each), named ``names`` (an object Index, as every read's), with a RangeIndex.

    Example::

        >>> frame_from_arrays([np.array([1.5])], ["x"], 1).x[0]
        np.float64(1.5)
    """
    columns = _names_index(tuple(names)).view()  # its own Index object: a user may set its .name
    if HAS_FROM_ARRAYS:
        frame: pd.DataFrame = pd.DataFrame._from_arrays(  # type: ignore[attr-defined]
            list(arrays), columns=columns, index=pd.RangeIndex(rows), verify_integrity=False)
        return frame
    _warn_once("_from_arrays", "pandas has no DataFrame._from_arrays; small results are built the slower public way")
    public = pd.DataFrame(dict(enumerate(arrays)), index=pd.RangeIndex(rows), copy=False)
    public.columns = columns
    return public


@functools.lru_cache(maxsize=512)
def _names_index(names: tuple[str, ...]) -> pd.Index:
    """A result's column names as an Index, made once per set of names (making one costs a
    small result's read ~10 us)."""
    return pd.Index(list(names), dtype=object)


def has_alembic_config_files() -> bool:
    """Whether Alembic's CommandLine still has the private method that picks its files
    from ``-c`` and ``ALEMBIC_CONFIG`` (checked when first needed: Alembic is imported
    only by the migrations)."""
    from alembic.config import CommandLine

    return callable(getattr(CommandLine, "_inis_from_config", None))


def alembic_config_files(options: argparse.Namespace | None) -> tuple[str, str]:
    """``(pyproject.toml, ini file)`` as the ``alembic`` command chooses them from the
    command line's ``-c`` options and the ``ALEMBIC_CONFIG`` environment variable."""
    from alembic.config import CommandLine

    if options is None:
        options = argparse.Namespace(config=None)
    if has_alembic_config_files():
        toml, ini = CommandLine._inis_from_config(CommandLine(), options)
        return str(toml), str(ini)
    _warn_once("_inis_from_config", "Alembic's CommandLine has no _inis_from_config; -c and ALEMBIC_CONFIG are "
               "read as plain ini file names")
    named = [name for name in options.config or () if name]
    return "pyproject.toml", named[-1] if named else os.environ.get("ALEMBIC_CONFIG") or "alembic.ini"


def object_matrix(rows: Sequence[Sequence[Any]], width: int) -> Any:
    """The rows as a 2-D object array (pandas' own C routine where it has it)."""
    if _to_object_array_tuples is not None and isinstance(rows, list) and isinstance(rows[0], tuple):
        return _to_object_array_tuples(rows)
    matrix = np.empty((len(rows), width), dtype=object)
    matrix[:] = [tuple(row) for row in rows]
    return matrix


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, OrizaWarning, stacklevel=3)


def dask_task_stopped() -> Callable[[], bool] | None:
    """Called in a Dask worker's task thread: a check of whether the worker has stopped
    wanting that task (the client cancelled it or let its futures go: a Ctrl-C on
    ``compute()``). None outside a worker's task, or where distributed's internals moved
    (``thread_state.key``, ``Worker.state.tasks``, ``TaskState.state``): then a read runs
    to its end, and that is said once."""
    try:
        import distributed.worker as dask_worker
        from distributed import get_worker
    except ImportError:
        return None
    key = getattr(getattr(dask_worker, "thread_state", None), "key", None)
    if key is None:
        return None
    try:
        tasks = get_worker().state.tasks
        state = tasks[key].state
    except ValueError:  # not in a worker
        return None
    except (AttributeError, KeyError, TypeError):
        _warn_once("dask_tasks", "distributed's worker internals changed: a cancelled Dask task's read runs to its "
                   "end on the server")
        return None
    if not isinstance(state, str):
        return None

    def stopped() -> bool:
        task = tasks.get(key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    return stopped
