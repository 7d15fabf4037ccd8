"""Saved queries that later queries use by name, as common table expressions.

``%%sql --save NAME`` keeps a cell's query under ``NAME``; ``--with NAME[,NAME]`` puts the
named queries in front of a query as ``WITH NAME AS (...)``, together with the snippets
they were saved ``--with`` themselves (each once, a snippet before those that use it).
The SQL is kept as written: its ``:parameters`` are bound when the composed query runs.

Example::

    store = Snippets()
    store.save("late", "select * from flights where dep_delay > :minutes")
    store.compose("select carrier, count(*) from late group by carrier", ["late"])
    # 'WITH late AS (\\nselect * from flights where dep_delay > :minutes\\n)\\nselect carrier, ...'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from . import _sql

__all__ = ["Snippet", "Snippets", "snippets"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Snippet:
    """A saved query and the snippets it was saved with."""

    sql: str
    uses: tuple[str, ...] = ()


class Snippets:
    """The snippets of this process (``%oriza snippets`` lists them)."""

    def __init__(self) -> None:
        self._saved: dict[str, Snippet] = {}

    def save(self, name: str, sql: str, uses: Sequence[str] = ()) -> None:
        """Keep one query under ``name`` (replacing what was there), using ``uses``.

        Raises ``ValueError`` for a name that is not a plain SQL identifier, SQL that is
        not one statement, or a snippet that would use itself."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"a snippet name is a plain SQL name (letters, digits and _), not {name!r}")
        statements = _sql.split_statements(sql)
        if len(statements) != 1:
            raise ValueError(f"snippet {name!r} must be one query, not {len(statements)} statements")
        self._order([*uses], saving=name)  # unknown names and cycles fail before anything is kept
        self._saved[name] = Snippet(_sql.parse(statements[0]).sql.strip(), tuple(uses))

    def compose(self, sql: str, names: Sequence[str]) -> str:
        """``sql`` with the snippets ``names`` (and those they use) in front as CTEs; a
        query that has its own ``WITH`` keeps it, after them."""
        if not names:
            return sql
        ordered = self._order(list(names))
        ctes = ",\n".join(f"{name} AS (\n{self._saved[name].sql}\n)" for name in ordered)
        head, rest = _leading_with(sql)
        if head:
            return f"{head} {ctes},\n{rest}"
        return f"WITH {ctes}\n{sql}"

    def names(self) -> dict[str, str]:
        """Each snippet's name and the first line of its SQL."""
        return {name: snippet.sql.splitlines()[0] for name, snippet in self._saved.items()}

    def _order(self, names: list[str], saving: str | None = None) -> list[str]:
        """``names`` and what they use, each after what it uses."""
        ordered: list[str] = []
        visiting: list[str] = [saving] if saving else []

        def visit(name: str) -> None:
            if name in ordered:
                return
            if name in visiting:
                raise ValueError(f"snippets use each other in a circle: {' -> '.join([*visiting, name])}")
            if name not in self._saved:
                known = ", ".join(self._saved) or "none yet"
                raise ValueError(f"no snippet named {name!r} (saved: {known}); save one with %%sql --save {name}")
            visiting.append(name)
            for used in self._saved[name].uses:
                visit(used)
            visiting.pop()
            ordered.append(name)

        for name in names:
            visit(name)
        return ordered


def _leading_with(sql: str) -> tuple[str, str]:
    """``("WITH", rest)`` or ``("WITH RECURSIVE", rest)`` when ``sql`` starts with its own
    CTEs (after comments), else ``("", sql)``."""
    found = re.match(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(with(?:\s+recursive)?)\b", sql, re.IGNORECASE | re.DOTALL)
    if not found:
        return "", sql
    return found.group(1), sql[found.end():].lstrip()


snippets = Snippets()
