"""``%sql`` / ``%%sql``: options, the SQL after them, and what the cell shows."""

from __future__ import annotations

import html
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

__all__ = ["Result", "SqlLine", "check_name", "parse_line", "split_named_queries"]

_OPTION = re.compile(r"--?[A-Za-z]")
_WORD = re.compile(r"\s*(\S+)")
_ASSIGN = re.compile(r"\s*(?P<out>\S+)\s*<<")
_NAME_LINE = re.compile(r"^[ \t]*--[ \t]*name:[ \t]*(?P<name>.*?)[ \t]*$", re.MULTILINE)


@dataclass
class SqlLine:
    """A ``%sql`` line: its parsed options and the SQL (or variable) after them."""

    options: Any
    rest: str


def parse_line(parser: MagicArgumentParser, line: str) -> SqlLine:
    """Split the leading options off ``line`` and parse them strictly; the rest, the SQL,
    is kept exactly as typed (never split, unquoted or expanded)."""
    arity = {flag: _values_taken(action) for action in parser._actions for flag in action.option_strings}
    taken: list[str] = []
    position = 0
    while (word := _WORD.match(line, position)) and _OPTION.match(word.group(1)):
        flag = word.group(1)
        taken.append(flag)
        position = word.end()
        for _ in range(0 if "=" in flag else arity.get(flag, 0)):
            value = _WORD.match(line, position)
            if value is None:
                break
            taken.append(value.group(1))
            position = value.end()
    options = parser.parse_args(taken)  # a bad option is a UsageError naming it
    rest = line[position:]
    if assign := _ASSIGN.match(rest):
        options.out = check_name(assign["out"], "NAME <<")
        rest = rest[assign.end():]
    if options.out is not None:
        check_name(options.out, "-o")
    return SqlLine(options, rest.strip())


def _values_taken(action: Any) -> int:
    if action.nargs == 0:
        return 0
    return action.nargs if isinstance(action.nargs, int) else 1


def check_name(name: str, where: str) -> str:
    """``name`` if it can be a Python variable, else a UsageError naming ``where``."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{where}: {name!r} is not a valid Python variable name")
    return name


def split_named_queries(cell: str) -> dict[str, str]:
    """``-- name: VAR`` lines split a cell into named queries; ``{}`` when there are none."""
    parts = _NAME_LINE.split(cell)
    if len(parts) == 1:
        return {}
    if parts[0].strip():
        raise UsageError("SQL before the first '-- name: VAR' line; give every query a name")
    names, bodies = parts[1::2], [body.strip() for body in parts[2::2]]
    for name in names:
        check_name(name, "-- name")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"query names used twice: {', '.join(duplicates)}")
    empty = [n for n, body in zip(names, bodies, strict=True) if not body]
    if empty:
        raise UsageError(f"no SQL under '-- name: {empty[0]}'")
    return dict(zip(names, bodies, strict=True))


def read_file(path: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as error:
        raise UsageError(f"-f: cannot read {path!r}: {error.strerror}") from None


class Result(pd.DataFrame):
    """A query's DataFrame, shown at most ``display_rows`` rows long, with exact decimals
    shown as rounded floats (the data keeps every digit); an EXPLAIN's plan is shown as the
    plain text it is. Anything computed from it is a plain DataFrame."""

    _metadata: ClassVar[list[str]] = ["display_rows"]
    display_rows: int = 20

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def _for_display(self) -> pd.DataFrame:
        return pd.DataFrame(self, copy=False)

    @property
    def _plan(self) -> str | None:
        """An EXPLAIN's plan as its text (lines whole, indentation kept), else None."""
        if list(self.columns) != ["QUERY PLAN"]:
            return None
        return "\n".join("" if line is None or line != line else str(line) for line in self["QUERY PLAN"])

    def __repr__(self) -> str:
        if (plan := self._plan) is not None:
            return plan
        with self._options():
            return repr(self._for_display())

    def _repr_html_(self) -> str | None:
        if (plan := self._plan) is not None:
            return f"<pre>{html.escape(plan)}</pre>"
        with self._options():
            shown: str | None = self._for_display()._repr_html_()  # type: ignore[operator]
            return shown

    def _options(self) -> Any:
        limit = self.display_rows
        return pd.option_context("display.max_rows", limit, "display.min_rows", min(limit, 10))
