"""Tab in ``%sql`` lines and ``%%sql`` cells: IPython's completer asks
``completion.suggest`` for table, column and ``:variable`` names (``completion.py``)."""

from __future__ import annotations

import re
from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher

from .. import completion, connections
from ..settings import settings

__all__ = ["make_matcher"]

# A %sql/%osql line or %%sql/%%osql cell, its options (-c NAME chooses the connection), then the SQL.
_SQL_MAGIC = re.compile(r"^\s*%%?o?sql\b")
_CONNECTION = re.compile(r"(?:^|\s)(?:-c|--connection)\s+(\w+)")


def make_matcher(shell: Any) -> Any:
    """The matcher for ``shell`` (its namespace gives the ``:variables``)."""

    def sql_matcher(context: CompletionContext) -> SimpleMatcherResult:
        lines = context.full_text.split("\n")
        cell_options = lines[0].lstrip().startswith("%%") and context.cursor_line == 0
        if not _SQL_MAGIC.match(lines[0]) or cell_options:
            return {"completions": [], "suppress": False}
        before = "\n".join([*lines[: context.cursor_line], context.text_until_cursor])
        before = _SQL_MAGIC.sub("", before, count=1)
        statement = _SQL_MAGIC.sub("", context.full_text, count=1)
        chosen = _CONNECTION.search(lines[0])
        try:
            db = connections.get(chosen.group(1) if chosen else settings.connection)
        except Exception:  # a connection that cannot be opened completes nothing (the cell will say why)
            return {"completions": [], "suppress": False}
        names = completion.suggest(before, context.token, completion.catalog(db), shell.user_ns, statement)
        return {"completions": [SimpleCompletion(text=name, type="sql") for name in names],
                "suppress": bool(names)}

    matcher: Any = context_matcher()(sql_matcher)  # IPython's decorator is untyped
    return matcher
