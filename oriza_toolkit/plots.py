"""Plots whose numbers the server computes: only bins, quartiles or counts travel.

``db.plot.histogram("flights", "dep_delay", bins=50)`` asks the server for the column's
range, then for the count in each bin (one ``GROUP BY``), and draws those; a 100M-row
table plots in the time of two aggregates. ``boxplot`` asks for the quartiles and the
whiskers (1.5 IQR), ``bar`` and ``pie`` for the most common values and their counts.
``%sqlplot`` is the same from a cell, with JupySQL's spelling. SQLite has no
``percentile_cont``: a boxplot there is refused in one line. Needs matplotlib
(``pip install 'oriza_toolkit[plot]'``).

Example::

    ax = db.plot.histogram("flights", "dep_delay", bins=50)
    ax = db.plot.bar("flights", "carrier", top=10)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from . import _sql
from .errors import raised_at_call
from .snippets import snippets

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .backends import Backend


class Queryable(Protocol):
    """What a plot needs of a Database (not imported: the Database imports this module)."""

    @property
    def backend(self) -> Backend: ...

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame: ...

__all__ = ["Plotter"]


@raised_at_call
class Plotter:
    """``db.plot``: histogram, boxplot, bar and pie of a table's column, computed in SQL.

    ``table`` is a table name (``"schema.t"`` too) or a snippet saved with ``%%sql --save``;
    ``with_`` names more snippets to put in front. Each returns the matplotlib ``Axes``.
    """

    def __init__(self, db: Queryable) -> None:
        self._db = db

    def histogram(self, table: str, column: str, *, bins: int = 20, with_: Sequence[str] = (),
                  ax: Axes | None = None) -> Axes:
        """Counts of ``column``'s values in ``bins`` equal bins between its min and max
        (NULL, NaN and infinities left out). Example: ``db.plot.histogram("flights", "dep_delay", bins=50)``."""
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a whole number of at least 1, not {bins!r}")
        edges, counts = self.histogram_counts(table, column, bins=bins, with_=with_)
        axes = _axes(ax)
        if len(counts):
            axes.stairs(counts, edges, fill=True)
        axes.set_xlabel(column)
        axes.set_ylabel("count")
        axes.set_title(f"{column} in {table}")
        return axes

    def histogram_counts(self, table: str, column: str, *, bins: int = 20, with_: Sequence[str] = ()
                         ) -> tuple[list[float], list[int]]:
        """The bin edges (``bins + 1``) and counts :meth:`histogram` draws."""
        value = f"CAST({_sql.quote_identifier(column)} AS {self._db.backend.float_type})"
        finite = f"{value} > :_oz_low AND {value} < :_oz_high"
        wide = {"_oz_low": -1.7976931348623157e308, "_oz_high": 1.7976931348623157e308}
        bounds = self._query(f"SELECT min({value}) AS low, max({value}) AS high FROM {{}} WHERE {finite}",
                             table, with_, wide)
        low, high = bounds["low"].iloc[0], bounds["high"].iloc[0]
        if pd.isna(low):
            return [], []
        low, high = float(low), float(high)
        width = (high - low) / bins if high > low else 1.0
        counted = self._query(
            f"SELECT CASE WHEN {value} >= :_oz_top THEN {bins - 1} "
            f"ELSE {self._db.backend.floor(f'({value} - :_oz_start) / :_oz_width')} END AS bin, count(*) AS n "
            f"FROM {{}} WHERE {finite} GROUP BY 1 ORDER BY 1",
            table, with_, {**wide, "_oz_top": high if high > low else math.inf, "_oz_start": low,
                           "_oz_width": width})
        counts = [0] * bins
        for index, n in zip(counted["bin"], counted["n"], strict=True):
            counts[min(int(index), bins - 1)] += int(n)
        return [low + width * i for i in range(bins)] + [high if high > low else low + width * bins], counts

    def boxplot(self, table: str, column: str, *, with_: Sequence[str] = (), ax: Axes | None = None) -> Axes:
        """Quartiles and 1.5-IQR whiskers of ``column``, computed by the server."""
        stats = self.box_stats(table, column, with_=with_)
        axes = _axes(ax)
        axes.bxp([{**stats, "fliers": [], "label": column}], showfliers=False)
        axes.set_title(f"{column} in {table}")
        return axes

    def box_stats(self, table: str, column: str, *, with_: Sequence[str] = ()) -> dict[str, float]:
        """``q1``, ``med``, ``q3``, ``whislo``, ``whishi`` (matplotlib's names) of ``column``."""
        backend = self._db.backend
        value = f"CAST({_sql.quote_identifier(column)} AS {backend.float_type})"
        quartiles = [backend.quantile(value, f) for f in (0.25, 0.5, 0.75)]
        if None in quartiles:
            raise ValueError(f"a boxplot needs quartiles, which {backend.name} cannot compute in SQL; "
                             "plot a histogram, or read the column and use pandas")
        q = self._query(f"SELECT {quartiles[0]} AS q1, {quartiles[1]} AS med, {quartiles[2]} AS q3 FROM {{}}",
                        table, with_, {})
        q1, med, q3 = (float(q[name].iloc[0]) for name in ("q1", "med", "q3"))
        reach = 1.5 * (q3 - q1)
        whiskers = self._query(f"SELECT min({value}) AS lo, max({value}) AS hi FROM {{}} "
                               f"WHERE {value} >= :_oz_low AND {value} <= :_oz_high",
                               table, with_, {"_oz_low": q1 - reach, "_oz_high": q3 + reach})
        return {"q1": q1, "med": med, "q3": q3, "whislo": float(whiskers["lo"].iloc[0]),
                "whishi": float(whiskers["hi"].iloc[0])}

    def bar(self, table: str, column: str, *, top: int = 20, with_: Sequence[str] = (), ax: Axes | None = None
            ) -> Axes:
        """The ``top`` most common values of ``column`` and their counts, as bars."""
        counts = self.value_counts(table, column, top=top, with_=with_)
        axes = _axes(ax)
        axes.bar([str(v) for v in counts.index], counts.to_numpy())
        axes.set_xlabel(column)
        axes.set_ylabel("count")
        axes.set_title(f"{column} in {table}")
        return axes

    def pie(self, table: str, column: str, *, top: int = 20, with_: Sequence[str] = (), ax: Axes | None = None
            ) -> Axes:
        """The ``top`` most common values of ``column`` as shares of a pie."""
        counts = self.value_counts(table, column, top=top, with_=with_)
        axes = _axes(ax)
        axes.pie(counts.to_numpy(), labels=[str(v) for v in counts.index])
        axes.set_title(f"{column} in {table}")
        return axes

    def value_counts(self, table: str, column: str, *, top: int = 20, with_: Sequence[str] = ()) -> pd.Series:
        """The ``top`` most common values of ``column`` (NULL included) and their counts."""
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"top must be a whole number of at least 1, not {top!r}")
        ident = _sql.quote_identifier(column)
        found = self._query(f"SELECT {ident} AS value, count(*) AS n FROM {{}} GROUP BY {ident} "
                            f"ORDER BY n DESC, {ident} LIMIT {int(top)}", table, with_, {})
        return pd.Series(found["n"].to_numpy(), index=pd.Index(found["value"], name=column), name="count")

    def _query(self, template: str, table: str, with_: Sequence[str], params: dict[str, Any]) -> pd.DataFrame:
        """``template`` with ``{}`` as the table (or snippet), snippets in front."""
        if not isinstance(table, str) or not table.strip():
            raise TypeError(f"table must name a table or a snippet, not {table!r}")
        uses = list(with_) + ([table] if table in snippets.names() and table not in with_ else [])
        target = table if table in uses else ".".join(_sql.quote_identifier(p) for p in table.split("."))
        return self._db.query(snippets.compose(template.format(target), uses), params or None)


def _axes(ax: Axes | None) -> Axes:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'oriza_toolkit[plot]'") from None
    if ax is not None:
        return ax
    _, axes = plt.subplots()
    return axes
