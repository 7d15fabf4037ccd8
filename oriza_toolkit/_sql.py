"""SQL text as the toolkit reads it: parameters, statements and values, never by regex.

A small lexer walks the SQL the way PostgreSQL's does, so that nothing inside a string
literal (``'...'``, ``E'...'``, ``$tag$...$tag$``), a quoted identifier (``"..."``) or a
comment (``--``, nested ``/* */``) is ever taken for a parameter or a statement end.
``:name`` outside them is a parameter; ``::type`` is a cast, and ``:name::type`` both.

:func:`quote_literal` is the one place a value becomes SQL text (see its docstring).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql import Executable

__all__ = [
    "Params", "ParsedSQL", "QuerySpec", "Statement", "parameter_names", "parse", "quote_identifier", "quote_literal",
    "quote_type", "split_statements",
]

# What the public calls take: SQL text (or a SQLAlchemy Core statement), and its values.
Statement = str | Executable
Params = Mapping[str, Any]
# One entry of a batch: SQL alone, or (SQL, params).
QuerySpec = Statement | tuple[Statement, Params]

_IDENT_START = re.compile(r"[A-Za-z_\u0080-\uffff]")
_IDENT = re.compile(r"[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$")
_POSITIONAL = re.compile(r"\$(\d+)")
_WORD_BEFORE = re.compile(r"[\w$]")
# PostgreSQL silently cuts longer identifiers (NAMEDATALEN - 1 bytes).
MAX_IDENTIFIER_BYTES = 63
# Statements up to this long are parsed once and remembered (ParsedSQL is immutable).
_CACHED_LENGTH = 20_000


@dataclass(frozen=True)
class ParsedSQL:
    """One SQL statement split around its parameters.

    ``pieces`` holds the SQL between parameters, ``params`` the parameter keys in order
    of appearance (``len(pieces) == len(params) + 1``), ``starts`` where each piece began
    in the statement as written. ``keyword`` is the first word, lower-cased.
    """

    sql: str
    pieces: tuple[str, ...]
    params: tuple[str, ...]
    starts: tuple[int, ...]
    keyword: str
    long_identifier: str | None = None

    @property
    def names(self) -> list[str]:
        """The distinct parameter keys, in order of first use."""
        return list(dict.fromkeys(self.params))

    def missing(self, params: Mapping[str, object] | None) -> list[str]:
        """The parameter keys ``params`` gives no value for."""
        return [key for key in self.names if params is None or key not in params]

    def require(self, params: Mapping[str, object] | None) -> None:
        """Raise ``ValueError`` naming the first parameter ``params`` gives no value for."""
        if missing := self.missing(params):
            raise ValueError(f"no value given for the parameter :{missing[0]}")

    def render(self, value: Callable[[str], str]) -> tuple[str, Callable[[int], int]]:
        """The SQL with each parameter replaced by ``value(key)``, and a function mapping a
        1-based character position in the result back to one in :attr:`sql`."""
        out: list[str] = []
        shifts: list[tuple[int, int]] = []  # (start in output, start in sql) of each piece
        length = 0
        for i, piece in enumerate(self.pieces):
            shifts.append((length, self.starts[i]))
            out.append(piece)
            length += len(piece)
            if i < len(self.params):
                text = value(self.params[i])
                out.append(text)
                length += len(text)

        def original(position: int) -> int:
            for out_start, sql_start in reversed(shifts):
                if position - 1 >= out_start:
                    return sql_start + min(position - 1 - out_start, len(self.sql)) + 1
            return position

        return "".join(out), original

    def positional(self) -> tuple[str, list[str], Callable[[int], int]]:
        """The SQL with ``$1, $2, ...`` for the distinct parameters, their keys, and the
        position map of :meth:`render`."""
        return self._positional

    @functools.cached_property
    def _positional(self) -> tuple[str, list[str], Callable[[int], int]]:  # parse() keeps parsed statements
        names = self.names
        index = {name: f"${i}" for i, name in enumerate(names, start=1)}
        sql, original = self.render(index.__getitem__)
        return sql, names, original


def _tokens(sql: str, style: str = "named") -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` for each token PostgreSQL's lexer would see, white space and
    comments included: kinds are ``space``, ``comment``, ``string``, ``quoted``, ``dollar``,
    ``param``, ``word``, ``;`` and ``other``."""
    i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        start = i
        if c in " \t\r\n\f":
            while i < n and sql[i] in " \t\r\n\f":
                i += 1
            yield "space", start, i
        elif c == "-" and sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
            yield "comment", start, i
        elif c == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
            yield "comment", start, i
        elif c == ";":
            i += 1
            yield ";", start, i
        elif c == "'":
            i = _skip_quoted(sql, i, "'", backslashes=_is_escape_string(sql, i))
            yield "string", start, i
        elif c == '"':
            i = _skip_quoted(sql, i, '"', backslashes=False)
            yield "quoted", start, i
        elif c == "$" and (tag := _DOLLAR_TAG.match(sql, i)) and not _WORD_BEFORE.match(sql[i - 1 : i] or " "):
            close = sql.find(tag.group(), tag.end())
            if close < 0:
                raise ValueError(f"unterminated dollar-quoted string starting at character {i + 1}")
            i = close + len(tag.group())
            yield "dollar", start, i
        elif style == "numeric" and c == "$" and (number := _POSITIONAL.match(sql, i)):
            i = number.end()
            yield "param", start, i
        elif (
            style == "named"
            and c == ":"
            and not sql.startswith("::", i)
            and sql[i - 1 : i] != ":"
            and not _WORD_BEFORE.match(sql[i - 1 : i] or " ")
            and _IDENT_START.match(sql, i + 1)
        ):
            name = _IDENT.match(sql, i + 1)
            assert name is not None
            i = name.end()
            yield "param", start, i
        elif ident := _IDENT.match(sql, i):
            i = ident.end()
            yield "word", start, i
        else:
            i += 1
            yield "other", start, i


def parse(sql: str, *, style: str = "named") -> ParsedSQL:
    """Split one statement at its parameters: ``:name`` (``style="named"``) or ``$n``
    (``style="numeric"``, for SQL compiled by SQLAlchemy).

    A trailing ``;`` and the white space around it are dropped (comments stay). A second
    statement raises ``ValueError``, as does SQL with nothing but white space and comments.

    Example::

        >>> parse("select ':x' as s, :x as v -- :y").params
        ('x',)
    """
    if len(sql) <= _CACHED_LENGTH:  # notebooks run the same statements again and again
        return _parse_cached(sql, style)
    return _parse(sql, style)


@functools.lru_cache(maxsize=512)
def _parse_cached(sql: str, style: str) -> ParsedSQL:
    return _parse(sql, style)


def _parse(sql: str, style: str) -> ParsedSQL:
    pieces: list[str] = []
    params: list[str] = []
    starts: list[int] = [0]
    keyword = ""
    long_identifier: str | None = None
    piece_start = 0
    semicolon: int | None = None
    for kind, start, end in _tokens(sql, style):
        if kind in ("space", "comment"):
            continue
        if semicolon is not None:
            raise ValueError("the SQL holds more than one statement; run one statement at a time")
        if kind == ";":
            semicolon = start
        elif kind == "param":
            pieces.append(sql[piece_start:start])
            params.append(sql[start + 1 : end])
            piece_start = end
            starts.append(end)
        elif kind in ("word", "quoted"):
            word = sql[start:end] if kind == "word" else sql[start + 1 : end - 1].replace('""', '"')
            if not keyword and kind == "word":
                keyword = word.lower()
            if len(word.encode()) > MAX_IDENTIFIER_BYTES and long_identifier is None:
                long_identifier = word
        elif not keyword and sql[start] == "(":
            keyword = "("
    if not keyword and not params:
        raise ValueError("the SQL is empty")
    text = sql if semicolon is None else sql[:semicolon].rstrip()  # what follows ";" is only comments
    pieces.append(text[piece_start:])
    return ParsedSQL(text, tuple(pieces), tuple(params), tuple(starts), keyword, long_identifier)


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``, split at each ``;`` outside literals and comments; empty
    ones (only white space and comments) are dropped.

    Example::

        >>> split_statements("create temp table t as select ';' as x; select * from t;")
        ["create temp table t as select ';' as x", ' select * from t']
    """
    statements = []
    start = 0
    substance = False
    for kind, begin, end in _tokens(sql):
        if kind == ";":
            if substance:
                statements.append(sql[start:begin])
            start, substance = end, False
        elif kind not in ("space", "comment"):
            substance = True
    if substance:
        statements.append(sql[start:])
    return statements


def words(sql: str) -> set[str]:
    """The words of ``sql`` outside literals, quoted names and comments, lower-cased.

    Example::

        >>> sorted(words("select 'into' as x into t"))
        ['as', 'into', 'select', 't', 'x']
    """
    return {sql[start:end].lower() for kind, start, end in _tokens(sql) if kind == "word"}


def parameter_names(sql: str) -> list[str]:
    """The ``:name`` parameters of ``sql``, in order of first use; ``[]`` if it cannot be parsed.

    Example::

        >>> parameter_names("select * from t where a = :a and b = ':b' and c = :a::int")
        ['a']
    """
    try:
        return parse(sql).names
    except ValueError:
        return []


def quote_literal(text: str, type_sql: str | None) -> str:
    """The only function that turns a value into SQL: ``'text'::type``.

    ``text`` must be the value as the server's own output function wrote it (so it reads
    back as exactly the same value) and ``type_sql`` the type the server inferred for the
    parameter, from :func:`quote_type`; or None for ``'text'`` alone, whose type the server
    infers from where it stands, as it does for a parameter's. Quotes are doubled; with
    ``standard_conforming_strings`` on (checked by the caller) nothing else in a
    ``'...'`` literal is special, backslashes included. PostgreSQL text cannot hold NUL.

    Example::

        >>> quote_literal("it's", '"pg_catalog"."text"')
        '\\'it\\'\\'s\\'::"pg_catalog"."text"'
    """
    if "\x00" in text:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    quoted = "'" + text.replace("'", "''") + "'"
    return quoted if type_sql is None else f"{quoted}::{type_sql}"


def quote_type(schema: str, name: str) -> str:
    """A type as SQL, e.g. ``"pg_catalog"."int4"[]`` for asyncpg's ``int4[]``."""
    array = name.endswith("[]")
    base = name[:-2] if array else name
    return f"{quote_identifier(schema)}.{quote_identifier(base)}" + ("[]" if array else "")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_escape_string(sql: str, quote: int) -> bool:
    """Whether the ``'`` at ``quote`` opens an ``E'...'`` string (backslash escapes)."""
    return quote > 0 and sql[quote - 1] in "eE" and not _WORD_BEFORE.match(sql[quote - 2 : quote - 1] or " ")


def _skip_quoted(sql: str, start: int, quote: str, *, backslashes: bool) -> int:
    """The index just past the literal opened at ``start``."""
    i = start + 1
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslashes and c == "\\":
            i += 2
            continue
        if c == quote:
            if sql.startswith(quote, i + 1):
                i += 2
                continue
            return i + 1
        i += 1
    kind = "quoted identifier" if quote == '"' else "string literal"
    raise ValueError(f"unterminated {kind} starting at character {start + 1}")


def _skip_block_comment(sql: str, start: int) -> int:
    depth = 0
    i = start
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ValueError(f"unterminated /* comment starting at character {start + 1}")
