"""What an expression read that the data it was evaluated over does not have, in the
data's terms (``event.body has no field 'id'``), for the error of a failed evaluation:
CEL says ``KeyError: 'id'``, which names neither where it looked nor what it found.

Found by following each path the expression reads (``expressions.read_paths``) over
the data, and blaming only a read that fails as CEL did: a missing key (``KeyError``,
that very key), a list too short (``IndexError``), a field or item of something that
has none (another error: ``event.body.id`` when the body is null). So a read on a
branch CEL did not take (``has(event.x) ? event.x : ...``) is not blamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from keel.spec.expressions import read_paths

#: how a read fails: a key not in an object, an index past a list's end, a field or
#: item of something that is not an object or a list
_Failure = Literal["key", "index", "shape"]


def missing_read(
    source: str, variables: Mapping[str, Any], cause: BaseException | None
) -> str | None:
    """What ``source`` reads that ``variables`` lack, where CEL's error ``cause`` says
    it failed; None when no read fails that way."""
    if cause is None:
        return None
    key = str(cause.args[0]) if isinstance(cause, KeyError) and cause.args else None
    expected: _Failure = (
        "key" if isinstance(cause, KeyError) else "index" if isinstance(cause, IndexError)
        else "shape"
    )  # fmt: skip
    for path in read_paths(source, frozenset(variables)):
        found = _first_missing(path, variables)
        if found is None:
            continue
        failure, part, said = found
        if failure == expected and (key is None or str(part) == key):
            return said
    return None


def _first_missing(
    path: tuple[str | int, ...], variables: Mapping[str, Any]
) -> tuple[_Failure, str | int, str] | None:
    """How the first part of ``path`` that is not in the data fails, and in words."""
    value: Any = variables
    for depth, part in enumerate(path):
        where = _written(path[:depth])
        wanted = f"[{part}]" if isinstance(part, int) else f"field {part!r}"
        if isinstance(part, str) and isinstance(value, Mapping):
            if part not in value:
                return "key", part, f"{where} has no {wanted}"
        elif isinstance(part, int) and isinstance(value, list):
            if part >= len(value):
                count = f"{len(value)} item{'s' if len(value) != 1 else ''}"
                return "index", part, f"{where} has {count}: no {wanted}"
        elif isinstance(value, Mapping):  # an index of an object: CEL looks for the key
            return "key", part, f"{where} is an object, not a list: no {wanted}"
        else:
            shape = "a list" if isinstance(part, int) else "an object"
            return "shape", part, f"{where} is {_kind(value)}, not {shape}: no {wanted}"
        value = value[part]
    return None


def _written(path: tuple[str | int, ...]) -> str:
    """A path as an expression writes it: ``event.body.items[0]['x-id']``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _kind(value: Any) -> str:
    """A value's JSON type, with its article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
