"""The expression language of specs: CEL, checked and analysed without running it.

Expressions map data between nodes (``nodes.extract.output.amount``), decide conditions
(``nodes.score.output > 0.8``) and compute map items. CEL is safe by construction: no
I/O, no loops without bounds, no access to Python. This module adds what CEL's binding
does not give us: the list of nodes an expression reads (the dependency edges), the
names it uses that are not defined, and whitespace normalisation so that layout never
changes a workflow's version.

Invariant: analysis is purely lexical and never evaluates user text.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import cel

from keel.errors import ExpressionError

#: Fields a reference ``nodes.<id>.<field>`` may read. Later node kinds extend this.
NODE_FIELDS = frozenset({"output"})
#: Names every expression may use at its root.
ROOT_NAMES = frozenset({"input", "nodes"})
_MACROS = frozenset(
    {"map", "filter", "all", "exists", "exists_one", "transformList", "transformMap"}
)
_KEYWORDS = frozenset({"true", "false", "null", "in"})
CEL_RESERVED = frozenset(
    {
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
        "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
        "void", "while",
    }
)  # fmt: skip

_TOKEN = re.compile(
    r"""
    (?P<ws>(?:\s|//[^\n]*)+)  # a // comment counts as layout
  | (?P<string>(?:[rR][bB]?|[bB][rR])(?:\"\"\".*?\"\"\"|'''.*?'''|"[^"\n]*"|'[^'\n]*')
        |[bB]?(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''
        |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int


@dataclass(frozen=True)
class ExpressionInfo:
    """What an expression reads, found without evaluating it."""

    source: str
    #: ids of nodes referenced as ``nodes.<id>``
    node_refs: frozenset[str]
    #: ``(node, field)`` pairs, to reject fields that do not exist
    node_fields: frozenset[tuple[str, str]]
    #: root names that are neither known roots nor bound by a macro
    free_names: frozenset[str]
    #: every chain of fields read from a root name, e.g. ``("input", "claim", "id")``
    paths: frozenset[tuple[str | int, ...]]
    #: uses of ``nodes`` that are not ``nodes.<id>``, e.g. ``nodes[x]``
    dynamic_node_access: bool
    #: when the whole expression is a plain path (``input.claim.id``), its parts
    path: tuple[str | int, ...] | None


def tokenize(source: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "other"
        if kind != "ws":
            tokens.append(Token(kind, match.group(), match.start()))
    return tokens


_SPACE = re.compile(r"\s")


def normalize(source: str) -> str:
    """Collapse whitespace outside string literals, so layout never changes a version.

    Comments are layout too: kept, a ``// comment`` would swallow the lines joined after it.
    """
    if _SPACE.search(source) is None and "//" not in source:  # a plain path: as it is
        return source
    out: list[str] = []
    for match in _TOKEN.finditer(source.strip()):
        if match.lastgroup == "ws":
            out.append(" ")
        else:
            out.append(match.group())
    return "".join(out).strip()


def _string_value(text: str) -> str | None:
    """The value of a simple string literal token, or None if it is not one."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and "\\" not in text:
        return text[1:-1]
    return None


def _read_chain(tokens: list[Token], start: int) -> tuple[list[str | int], int]:
    """Read ``root.a["b"][0]...`` from ``start``; return the parts and the next index."""
    path: list[str | int] = [tokens[start].text]
    i = start + 1
    while i < len(tokens):
        tok = tokens[i]
        if tok.text == "." and i + 1 < len(tokens) and tokens[i + 1].kind == "ident":
            if i + 2 < len(tokens) and tokens[i + 2].text == "(":
                break  # a method call such as .startsWith(...)
            path.append(tokens[i + 1].text)
            i += 2
        elif tok.text == "[" and i + 2 < len(tokens) and tokens[i + 2].text == "]":
            key = tokens[i + 1]
            if key.kind == "number" and key.text.isdigit():
                path.append(int(key.text))
            elif key.kind == "string" and (value := _string_value(key.text)) is not None:
                path.append(value)
            else:
                break
            i += 3
        else:
            break
    return path, i


def _chain(tokens: list[Token], start: int) -> tuple[str | int, ...]:
    return tuple(_read_chain(tokens, start)[0])


def _plain_path(tokens: list[Token]) -> tuple[str | int, ...] | None:
    if not tokens or tokens[0].kind != "ident":
        return None
    path, end = _read_chain(tokens, 0)
    return tuple(path) if end == len(tokens) else None


def _closing(tokens: list[Token], open_index: int) -> int:
    depth = 0
    for index in range(open_index, len(tokens)):
        text = tokens[index].text
        if text in "([{":
            depth += 1
        elif text in ")]}":
            depth -= 1
            if depth == 0:
                return index
    return len(tokens)


def _macro_scopes(tokens: list[Token]) -> list[tuple[str, int, int]]:
    """Variables bound by macros (``.map(x, ...)``) and the token range where they are."""
    scopes = []
    for i, tok in enumerate(tokens):
        if (
            tok.kind == "ident"
            and tok.text in _MACROS
            and i > 0
            and tokens[i - 1].text == "."
            and i + 3 < len(tokens)
            and tokens[i + 1].text == "("
            and tokens[i + 2].kind == "ident"
            and tokens[i + 3].text == ","
        ):
            end = _closing(tokens, i + 1)
            scopes.append((tokens[i + 2].text, i + 1, end))
            if i + 5 < len(tokens) and tokens[i + 4].kind == "ident" and tokens[i + 5].text == ",":
                scopes.append((tokens[i + 4].text, i + 1, end))
    return scopes


def _is_bound(name: str, index: int, scopes: list[tuple[str, int, int]]) -> bool:
    return any(name == bound and start < index < end for bound, start, end in scopes)


@lru_cache(maxsize=4096)
def analyze(source: str) -> ExpressionInfo:
    """Find the references of an expression. Raises ``ExpressionError`` if it does not parse.

    Cached: a spec is analysed by the graph and by validation, and a definition by every
    process that loads it; the result is frozen, a pure function of the text."""
    check_syntax(source)
    tokens = tokenize(source)
    scopes = _macro_scopes(tokens)
    refs: set[str] = set()
    fields: set[tuple[str, str]] = set()
    free: set[str] = set()
    paths: set[tuple[str | int, ...]] = set()
    dynamic = False
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text in _KEYWORDS or _is_bound(tok.text, i, scopes):
            continue
        if i > 0 and tokens[i - 1].text == ".":
            continue  # a field or a method, not a root name
        if i + 1 < len(tokens) and tokens[i + 1].text == "(":
            continue  # a function call such as size(x)
        if tok.text not in ROOT_NAMES:
            free.add(tok.text)
            continue
        paths.add(_chain(tokens, i))
        if tok.text != "nodes":
            continue
        node, after = _node_reference(tokens, i)
        if node is None:
            dynamic = True
            continue
        refs.add(node)
        if after is not None:
            fields.add((node, after))
    return ExpressionInfo(
        source=source,
        node_refs=frozenset(refs),
        node_fields=frozenset(fields),
        free_names=frozenset(free),
        paths=frozenset(paths),
        dynamic_node_access=dynamic,
        path=_plain_path(tokens),
    )


def read_paths(source: str, roots: frozenset[str]) -> list[tuple[str | int, ...]]:
    """The chains of fields an expression reads from each of ``roots`` (``event.body.id``
    as ``("event", "body", "id")``), in the order written; names a macro binds are not
    roots. Lexical, as ``analyze``: for saying what a failed evaluation missed."""
    tokens = tokenize(source)
    scopes = _macro_scopes(tokens)
    paths: list[tuple[str | int, ...]] = []
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text not in roots or _is_bound(tok.text, i, scopes):
            continue
        if i > 0 and tokens[i - 1].text == ".":
            continue  # a field of something else
        if i + 1 < len(tokens) and tokens[i + 1].text == "(":
            continue  # a function call
        paths.append(_chain(tokens, i))
    return paths


def _node_reference(tokens: list[Token], i: int) -> tuple[str | None, str | None]:
    """Read ``nodes.<id>[.<field>]`` or ``nodes["<id>"]...`` starting at token ``i``."""
    j = i + 1
    node: str | None = None
    if j + 1 < len(tokens) and tokens[j].text == "." and tokens[j + 1].kind == "ident":
        node, j = tokens[j + 1].text, j + 2
    elif j + 2 < len(tokens) and tokens[j].text == "[" and tokens[j + 2].text == "]":
        node = _string_value(tokens[j + 1].text) if tokens[j + 1].kind == "string" else None
        j += 3
    if node is None:
        return None, None
    if j + 1 < len(tokens) and tokens[j].text == "." and tokens[j + 1].kind == "ident":
        return node, tokens[j + 1].text
    if j + 2 < len(tokens) and tokens[j].text == "[" and tokens[j + 1].kind == "string":
        return node, _string_value(tokens[j + 1].text)
    return node, ""


_LOCATION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


_CORE = "cel.cel"
_loading = threading.Lock()


def cel_core() -> ModuleType:
    """CEL's compiled module (``cel.cel``: ``compile``, ``Program``), loaded on first use
    without running the ``cel`` package's ``__init__``.

    That ``__init__`` imports the package's command-line REPL (prompt_toolkit, pygments,
    typer): 0.1-0.9 s on the first expression of every process, for nothing keel uses,
    while the compiled module alone loads in about a millisecond. It is registered under
    its own name, so a later ``import cel`` reuses it (a PyO3 module cannot be
    initialised twice). Should the package's layout change, ``import cel`` it is.
    """
    core = sys.modules.get(_CORE)
    if core is not None:
        return core
    with _loading:
        core = sys.modules.get(_CORE)
        if core is not None:
            return core
        package = importlib.util.find_spec("cel")  # finds it without importing it
        folders = package.submodule_search_locations if package is not None else None
        found = importlib.machinery.PathFinder.find_spec(_CORE, folders) if folders else None
        if found is None or not isinstance(found.loader, importlib.machinery.ExtensionFileLoader):
            import cel

            return cel
        core = importlib.util.module_from_spec(found)
        found.loader.exec_module(core)
        sys.modules[_CORE] = core
        return core


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> cel.Program:
    """Compile once and cache: the same expression is evaluated for every run."""
    try:
        program: cel.Program = cel_core().compile(source)
        return program
    except (ValueError, RuntimeError) as exc:
        text = str(exc)
        found = _LOCATION.search(text)
        if found:
            line, column, reason = int(found.group(1)), int(found.group(2)), found.group(3)
            reason = reason.split(" expecting {")[0]  # CEL lists every possible token
            raise ExpressionError(
                f"expression does not parse at {line}:{column}: {reason.strip()}",
                line=line,
                column=column,
            ) from None
        raise ExpressionError(f"expression does not parse: {text}") from None


def check_syntax(source: str) -> None:
    if not source.strip():
        raise ExpressionError("expression is empty")
    if _direct_path(source) is None:  # a plain path is valid CEL: no need to load CEL
        compile_expression(source)


_SCALARS = (str, int, float, bool, type(None))
_MISSING = object()


@lru_cache(maxsize=4096)
def _direct_path(source: str) -> tuple[str | int, ...] | None:
    """The parts of an expression that is only a path from a root (``nodes.a.output.b``)."""
    try:
        path = _plain_path(tokenize(source))
    except ExpressionError:
        return None
    if path is None or path[0] not in ROOT_NAMES or CEL_RESERVED.intersection(path):
        return None
    return path


def _follow(variables: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = variables
    for part in path:
        found = (isinstance(value, dict) and isinstance(part, str) and part in value) or (
            isinstance(value, list) and isinstance(part, int) and part < len(value)
        )
        if not found:
            return _MISSING
        value = value[part]
    return value


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    """Evaluate an expression over ``variables`` (``input``, ``nodes``).

    Most mappings are a plain path to a scalar (``nodes.n1.output.id``); those are
    looked up directly, which gives what CEL gives at a tenth of the cost of converting
    the variables for CEL. Anything else, a missing key included (so the error is CEL's),
    and containers (CEL returns fresh ones, so a task cannot change a stored output in
    place), go through CEL.
    """
    return _evaluate(source, _direct_path(source), None, variables)


def _evaluate(
    source: str, path: tuple[str | int, ...] | None, program: Any, variables: dict[str, Any]
) -> Any:
    if path is not None:
        value = _follow(variables, path)
        if value is not _MISSING and isinstance(value, _SCALARS):
            return value
    try:
        return (program or compile_expression(source)).execute(variables)
    except ExpressionError:
        raise
    except Exception as exc:  # CEL reports missing keys, bad types... as various errors
        raise ExpressionError(f"cannot evaluate {source!r}: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Prepared:
    """An expression made ready once, when a definition is compiled into a plan: its
    plain path and, unless it is only a path, its CEL program. The plan holds them, so a
    definition with more expressions than the module's caches hold (100,000 nodes)
    evaluates each without parsing or compiling it again, as a small one does."""

    source: str
    path: tuple[str | int, ...] | None
    #: ``cel.Program`` (None: a plain path, or it did not compile: CEL says why if used)
    program: Any = None

    def evaluate(self, variables: dict[str, Any]) -> Any:
        return _evaluate(self.source, self.path, self.program, variables)


def prepare(source: str) -> Prepared:
    path = _direct_path(source)
    program = None
    if path is None:
        try:
            program = compile_expression(source)
        except Exception:  # evaluating it raises the error, where it is used (the node)
            program = None
    return Prepared(source, path, program)


def literal(value: Any) -> str:
    """Write a JSON value as CEL source, so generated expressions can embed constants."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            raise ExpressionError(f"{value} cannot be written in an expression")
        return text
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return '"' + escaped.replace("\r", "\\r").replace("\t", "\\t") + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{literal(str(key))}: {literal(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    raise ExpressionError(f"cannot write {type(value).__name__} value {value!r} in an expression")
