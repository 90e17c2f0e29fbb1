"""Values seen inside a workflow function while it is traced: references to the future.

Inside ``@keel.workflow`` a task call returns a ``Value`` standing for an output that
does not exist yet. Values support exactly what can be written down as an expression:
field access (``claim.document``), indexing, comparisons and ``&``/``|``/``~`` for
conditions. Everything that would need the real value now (``if``, ``for``, ``bool``,
arithmetic, f-strings) raises a ``TracingError`` saying what to write instead.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from pydantic import BaseModel

from keel.authoring.option_problems import caller
from keel.errors import TracingError
from keel.spec.expressions import literal, tokenize

_IF_HINT = (
    "a workflow function runs once, before any step, so its values are references to "
    "future results. Instead of `if`, pass `when=<condition>` to the step or write "
    "`with keel.when(<condition>):` around the steps it guards"
)
_FOR_HINT = "to run a step once per item of a future list, use keel.map(task, items)"
_MATH_HINT = (
    "arithmetic on a future result cannot run while tracing; compute it in a task, or "
    "write an expression: keel.expr('x * 2', x=value)"
)
_TEXT_HINT = (
    "a future result cannot be formatted into text while tracing; build the text in a "
    "task, or write an expression: keel.expr('\"Claim \" + id', id=value)"
)


#: a built-in step's call, whose fields take templates (``keel.authoring.step_calls``)
_STEP_CALL = re.compile(r"\b(?:keel\.)?(http|shell|sql|email)\s*\(")


def _text_hint(value: Value) -> str:
    """Why a future value cannot be made text now, and what to write instead: on the
    line of a built-in step's call (``keel.http(f"...{id}")``), the step's own template
    (its fields are filled when it runs); elsewhere an expression or a task."""
    file, line = caller()
    text = linecache.getline(file, line) if file is not None and line is not None else ""
    match = _STEP_CALL.search(text)
    if match is None:
        return _TEXT_HINT
    last = expression_of(value).rsplit(".", 1)[-1]
    name = last if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", last) else "value"
    if match.group(1) == "sql":
        return (
            "a future result cannot be formatted into text while the workflow is traced, "
            "and a query never holds values: write :" + name + " in the query and give "
            f'params={{"{name}": {name}}}'
        )
    return (
        "a future result cannot be formatted into text while the workflow is traced, but "
        f"the fields of keel.{match.group(1)} are templates, filled when the step runs: "
        f'write "${{{{ {name} }}}}" where the value goes and give values={{"{name}": '
        f'{name}}}, e.g. "https://api.example.com/claims/${{{{ {name} }}}}"'
    )


class Value:
    """A reference to data that exists only when the run executes (a CEL expression)."""

    __slots__ = ("_atomic", "_expr")
    __hash__ = None  # type: ignore[assignment]  # == builds a condition, so no hashing

    def __init__(self, expr: str, *, atomic: bool = True) -> None:
        object.__setattr__(self, "_expr", expr)
        object.__setattr__(self, "_atomic", atomic)

    # Values expose no public attributes: ``claim.expression`` must mean the field
    # ``expression`` of the claim, so every name goes to ``__getattr__``.
    def _operand(self) -> str:
        source = expression_of(self)
        return source if object.__getattribute__(self, "_atomic") else f"({source})"

    def __getattr__(self, name: str) -> Value:
        if name.startswith("_"):
            raise AttributeError(name)
        return Value(f"{self._operand()}.{name}")

    def __getitem__(self, key: str | int) -> Value:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise TracingError(f"index a future value with a string or an integer, not {key!r}")
        return Value(f"{self._operand()}[{literal(key)}]")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise TracingError("a future value cannot be changed; compute the change in a task")

    def _compare(self, operator: str, other: object) -> Value:
        return Value(f"{self._operand()} {operator} {operand(other)}", atomic=False)

    def __eq__(self, other: object) -> Value:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: object) -> Value:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: object) -> Value:
        return self._compare("<", other)

    def __le__(self, other: object) -> Value:
        return self._compare("<=", other)

    def __gt__(self, other: object) -> Value:
        return self._compare(">", other)

    def __ge__(self, other: object) -> Value:
        return self._compare(">=", other)

    def __and__(self, other: object) -> Value:
        return Value(f"{self._operand()} && {_condition(other)}", atomic=False)

    def __rand__(self, other: object) -> Value:
        return Value(f"{_condition(other)} && {self._operand()}", atomic=False)

    def __or__(self, other: object) -> Value:
        return Value(f"{self._operand()} || {_condition(other)}", atomic=False)

    def __ror__(self, other: object) -> Value:
        return Value(f"{_condition(other)} || {self._operand()}", atomic=False)

    def __invert__(self) -> Value:
        return Value(f"!{self._operand()}")

    def __bool__(self) -> NoReturn:
        raise TracingError(f"cannot use a future value as a truth value: {_IF_HINT}")

    def __iter__(self) -> Iterator[Any]:
        raise TracingError(f"cannot iterate over a future value: {_FOR_HINT}")

    def __contains__(self, item: object) -> NoReturn:
        raise TracingError(
            "`in` on a future value cannot run while tracing; write an expression: "
            'keel.expr(\'tier in ["gold", "platinum"]\', tier=value)'
        )

    def __len__(self) -> NoReturn:
        raise TracingError("len() of a future value is unknown; use keel.expr('size(x)', x=value)")

    def __str__(self) -> NoReturn:
        raise TracingError(_text_hint(self))

    def __format__(self, spec: str) -> NoReturn:
        raise TracingError(_text_hint(self))

    def __repr__(self) -> str:
        return f"<keel value {expression_of(self)}>"

    def _math(self, *_: object) -> NoReturn:
        raise TracingError(_MATH_HINT)

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _math
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _math
    __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = _math
    __int__ = __float__ = __index__ = __round__ = _math


def _condition(other: object) -> str:
    """The other side of ``&``/``|``: a condition, never a bare number or text.

    ``score > 0.8 & vip`` parses as ``score > (0.8 & vip)`` in Python; refusing the
    number turns that silent nonsense into an error.
    """
    if isinstance(other, Value | bool):
        return operand(other)
    raise TracingError(
        f"& and | join conditions, not {type(other).__name__} values; put parentheses "
        "around comparisons: (score > 0.8) & ~vip"
    )


def expression_of(value: Value) -> str:
    """The CEL source a value stands for."""
    return str(object.__getattribute__(value, "_expr"))


def operand(value: object) -> str:
    """CEL source for a value used inside a larger expression."""
    if isinstance(value, Value):
        return value._operand()
    return to_expression(value)


def contains_value(data: object) -> bool:
    if isinstance(data, Value):
        return True
    if isinstance(data, Mapping):
        return any(contains_value(item) for item in data.values())
    if isinstance(data, list | tuple):
        return any(contains_value(item) for item in data)
    return False


def to_json(data: object, *, what: str) -> Any:
    """Plain JSON for a constant (pydantic models are dumped); a clear error otherwise."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, Mapping):
        result = {}
        for key, item in data.items():
            if not isinstance(key, str):
                raise TracingError(f"{what}: mapping keys must be strings, got {key!r}")
            result[key] = to_json(item, what=what)
        return result
    if isinstance(data, list | tuple):
        return [to_json(item, what=what) for item in data]
    raise TracingError(
        f"{what}: {type(data).__name__} is not JSON; step inputs must be JSON values or "
        "pydantic models"
    )


def to_expression(data: object) -> str:
    """CEL source building ``data``: constants become literals, values their expressions."""
    if isinstance(data, Value):
        return expression_of(data)
    if isinstance(data, Mapping):
        items = (f"{literal(str(key))}: {to_expression(item)}" for key, item in data.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(data, list | tuple):
        return "[" + ", ".join(to_expression(item) for item in data) + "]"
    return literal(to_json(data, what="expression"))


def expr(source: str, /, **names: object) -> Value:
    """An expression written in CEL, with names bound to values or constants.

    ``keel.expr("score * weight > 0.5", score=score, weight=0.7)``. The source may also
    read ``input.<name>`` and ``nodes.<id>.output`` directly.
    """
    pieces: list[str] = []
    position = 0
    tokens = tokenize(source)
    used: set[str] = set()
    for index, token in enumerate(tokens):
        after_dot = index > 0 and tokens[index - 1].text == "."
        if token.kind != "ident" or token.text not in names or after_dot:
            continue
        pieces.append(source[position : token.offset])
        pieces.append(operand(names[token.text]))
        position = token.offset + len(token.text)
        used.add(token.text)
    pieces.append(source[position:])
    unused = sorted(set(names) - used)
    if unused:
        raise TracingError(f"keel.expr({source!r}): names given but not used: {', '.join(unused)}")
    return Value("".join(pieces), atomic=False)
