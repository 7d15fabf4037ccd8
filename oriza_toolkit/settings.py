"""The toolkit's settings, in one place.

``oriza_toolkit.settings`` is read by the library; in IPython, ``%config OrizaMagics.<name>``
writes the same object (the magics' traitlets read and write it, nothing is copied).

Example::

    import oriza_toolkit as oz
    oz.settings.progress = False        # no progress bars or batch summaries
    oz.settings.numeric = "decimal"     # numeric columns as exact Decimals instead of float64
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

__all__ = ["Settings", "in_kernel", "settings"]


@dataclass
class Settings:
    """Process-wide settings.

    ``progress``: ``"auto"`` (default: on in a Jupyter kernel, off in scripts), ``True`` or
    ``False``. ``display_rows``: rows of a ``%sql`` result rendered. ``numeric``:
    PostgreSQL ``numeric`` columns of a DataFrame as ``"float"`` (default: ``float64``, as
    pandas.read_sql gives them) or ``"decimal"`` (exact ``Decimal`` objects); arrow results
    and Parquet files are exact decimals either way. ``connection``: the named connection the magics use
    when a cell names none (``%oriza use NAME``; ``"default"`` is ``DATABASE_URL``'s).
    """

    progress: bool | Literal["auto"] = "auto"
    display_rows: int = 20
    numeric: Literal["float", "decimal"] = "float"
    connection: str = "default"

    def show_progress(self) -> bool:
        """Whether progress is drawn now (``"auto"``: inside a Jupyter kernel)."""
        return in_kernel() if self.progress == "auto" else bool(self.progress)


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (progress bars there are widgets)."""
    return "ipykernel" in sys.modules and _ipython_kernel()


def _ipython_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


settings = Settings()
