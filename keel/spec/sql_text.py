"""The ``:name`` parameters of a ``sql`` step's query, found by a small tokenizer.

A query names its values as ``:name``; the values travel beside the query and are bound
by the database driver, never written into the SQL. To find the parameters (and to
write each driver's placeholder instead) the query is cut into pieces: code, text the
database reads as data or as a name (string literals, quoted identifiers, comments,
PostgreSQL dollar-quoted strings), and parameters. A ``:x`` inside a string, a comment
or a quoted name is not a parameter; nor is a PostgreSQL cast (``value::text``), nor a
``:`` right after a name or a number (an array slice, ``items[lo:hi]``).

Invariants: joining the pieces' source text gives the query back exactly; a parameter
name is ``[A-Za-z_][A-Za-z0-9_]*``; an unterminated string or comment runs to the end
of the query (the database then reports the error). This module is pure text work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["postgresql", "sqlite"]
DIALECTS: tuple[Dialect, ...] = ("postgresql", "sqlite")
#: what a parameter's name may be (also the rule for the keys of ``params``)
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of the query: ``code``; ``quoted`` (a string, a quoted name, a comment: the
    database reads it as data, never as a parameter); or ``param`` (``source`` is
    ``:name``, ``name`` the name)."""

    kind: Literal["code", "quoted", "param"]
    source: str
    name: str = ""


def pieces(query: str, dialect: Dialect) -> list[Piece]:
    """``query`` cut into pieces (see the module); consecutive code is one piece."""
    found: list[Piece] = []
    code_start = 0
    i = 0
    n = len(query)

    def flush(end: int) -> None:
        if end > code_start:
            found.append(Piece("code", query[code_start:end]))

    while i < n:
        end = _quoted_end(query, i, dialect)
        if end is not None:
            flush(i)
            found.append(Piece("quoted", query[i:end]))
            i = code_start = end
            continue
        char = query[i]
        if char == ":":
            if query.startswith("::", i):  # a cast, or (SQLite) nothing of ours
                i += 2
                continue
            match = PARAM_NAME.match(query, i + 1)
            if match is not None and not (i > 0 and _is_word_char(query[i - 1])):
                flush(i)
                found.append(Piece("param", query[i : match.end()], match.group()))
                i = code_start = match.end()
                continue
        i += 1
    flush(n)
    return found


def parameter_names(query: str, dialect: Dialect) -> list[str]:
    """The parameters of ``query``, each once, in the order they first appear."""
    names: dict[str, None] = {}
    for piece in pieces(query, dialect):
        if piece.kind == "param":
            names.setdefault(piece.name, None)
    return list(names)


#: why a query of two statements is refused (validation and the step say the same)
ONE_STATEMENT = (
    "the query holds more than one statement: a sql step runs one (one step per "
    "statement, or one statement with a WITH clause)"
)


def more_than_one_statement(query: str, dialect: Dialect) -> bool:
    """Whether something follows a ``;`` of ``query`` besides blanks, comments and
    further ``;`` (a ``;`` in a string, a quoted name or a comment does not count)."""
    shape = "".join(
        piece.source if piece.kind == "code" else " " if piece.source.startswith(("--", "/*"))
        else "x"  # a string, a quoted name, a parameter: something, without a ';'
        for piece in pieces(query, dialect)
    )  # fmt: skip
    _, semicolon, rest = shape.partition(";")
    return bool(semicolon and rest.strip(" \t\r\n;"))


#: the statements that read without writing (what ``side_effect`` defaults from)
READING_VERBS = frozenset({"SELECT", "VALUES", "TABLE", "SHOW", "EXPLAIN"})
#: the statement a ``WITH`` clause leads to
_MAIN_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"})
_WORD_OR_PAREN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|[()]")


@dataclass(frozen=True, slots=True)
class Statement:
    """What kind of statement a query is, as far as its words say: ``verb`` is its
    first keyword (after a ``WITH`` clause, the statement the clause leads to), upper
    case, or ``""``; ``words`` are the keywords at the verb's level of parentheses."""

    verb: str
    words: tuple[str, ...]

    @property
    def reads_only(self) -> bool:
        """A statement that changes nothing (``EXPLAIN ANALYZE`` runs its statement)."""
        if self.verb == "EXPLAIN":
            return "ANALYZE" not in self.words[:3]
        return self.verb in READING_VERBS and not self.selects_into

    @property
    def selects_into(self) -> bool:
        """``SELECT ... INTO table``: PostgreSQL makes a table and gives no rows."""
        return self.verb == "SELECT" and "INTO" in self.words

    @property
    def gives_rows(self) -> bool:
        """Whether the statement answers with rows (a query, or ``RETURNING``)."""
        if self.verb in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            return "RETURNING" in self.words
        return self.verb in (*READING_VERBS, "FETCH") and not self.selects_into


def statement(query: str, dialect: Dialect) -> Statement:
    """The kind of statement ``query`` is (see ``Statement``)."""
    tokens: list[tuple[int, str]] = []  # (depth, WORD)
    depth = 0
    for piece in pieces(query, dialect):
        if piece.kind != "code":
            continue
        for token in _WORD_OR_PAREN.findall(piece.source):
            if token == "(":
                depth += 1
            elif token == ")":
                depth = max(depth - 1, 0)
            else:
                tokens.append((depth, token.upper()))
    if not tokens:
        return Statement("", ())
    level, verb = tokens[0]
    if verb == "WITH":
        verb = next((w for d, w in tokens if d == level and w in _MAIN_VERBS), "")
    words = tuple(word for d, word in tokens if d == level)
    if verb and verb in words:
        words = words[words.index(verb) :]
    return Statement(verb, words)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _quoted_end(query: str, i: int, dialect: Dialect) -> int | None:
    """Where the string, quoted name or comment starting at ``i`` ends, or None."""
    char = query[i]
    if query.startswith("--", i):
        newline = query.find("\n", i)
        return len(query) if newline < 0 else newline + 1
    if query.startswith("/*", i):
        return _block_comment_end(query, i, nested=dialect == "postgresql")
    if char == "'":
        escapes = dialect == "postgresql" and _escape_string_prefix(query, i)
        return _closing(query, i, "'", backslash=escapes)
    if char == '"':
        return _closing(query, i, '"')
    if dialect == "sqlite" and char == "`":
        return _closing(query, i, "`")
    if dialect == "sqlite" and char == "[":
        close = query.find("]", i + 1)
        return len(query) if close < 0 else close + 1
    if dialect == "postgresql" and char == "$" and not (i > 0 and _is_word_char(query[i - 1])):
        tag = _DOLLAR_TAG.match(query, i)
        if tag is not None:
            close = query.find(tag.group(), tag.end())
            return len(query) if close < 0 else close + len(tag.group())
    return None


def _escape_string_prefix(query: str, i: int) -> bool:
    """Whether the quote at ``i`` opens a PostgreSQL ``E'...'`` string (backslash escapes)."""
    if i == 0 or query[i - 1] not in "eE":
        return False
    return i == 1 or not _is_word_char(query[i - 2])


def _closing(query: str, i: int, quote: str, *, backslash: bool = False) -> int:
    """The end of a quoted run opened at ``i``: a doubled quote stands for one."""
    j = i + 1
    n = len(query)
    while j < n:
        char = query[j]
        if backslash and char == "\\":
            j += 2
            continue
        if char == quote:
            if j + 1 < n and query[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _block_comment_end(query: str, i: int, *, nested: bool) -> int:
    depth = 0
    j = i
    n = len(query)
    while j < n:
        if query.startswith("/*", j):
            depth = depth + 1 if nested or depth == 0 else depth
            j += 2
        elif query.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    return n
