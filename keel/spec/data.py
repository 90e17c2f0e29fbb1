"""JSON data that comes into keel from outside: a run's input, form data, a signal's
payload, a node output set by hand, a task's result.

Everything a run holds is stored as JSON text in SQLite or PostgreSQL and read back by
every worker, so a value must be JSON that any part of keel can carry. ``json_problem``
says why a Python value is not, without recursion (a 10,000-deep value must not crash
the check itself): nesting deeper than ``MAX_DEPTH``, integers too long to turn into
text, text with lone surrogates (no UTF-8 database takes them), NaN and infinities,
keys that are not text, values that are not JSON at all. ``loads`` parses JSON text and
reports the same problems (and syntax errors) as one ``InputError``.

Every entry point checks here before it records anything, so bad data is refused with
a message naming what was given, never half-way through a transaction.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from keel.errors import InputError

#: the deepest nesting of lists and objects accepted: far more than real data needs,
#: far less than what recursion limits of the parsers and databases along the way allow
MAX_DEPTH = 100
#: integers up to this size pass without a closer look (most integers are small)
_SMALL = 1 << 64


def _text_problem(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text with a lone surrogate ({text[exc.start]!r}), which is not valid Unicode"
    return None


def _int_problem(number: int) -> str | None:
    if -_SMALL < number < _SMALL:
        return None
    try:
        str(number)  # refused (quickly) past the interpreter's digit limit
    except ValueError:
        limit = sys.get_int_max_str_digits()
        return f"an integer with more than {limit} digits"
    return None


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON data, with where it is; None if it can."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        problem: str | None = None
        if isinstance(item, str):
            problem = _text_problem(item)
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, int):
            problem = _int_problem(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = f"{item}, which JSON cannot hold (use a finite number or null)"
        elif isinstance(item, list | tuple | dict):
            if depth >= MAX_DEPTH:
                problem = f"lists or objects nested more than {MAX_DEPTH} levels deep"
            elif isinstance(item, dict):
                for key, inner in item.items():
                    if not isinstance(key, str):
                        problem = f"the key {key!r}, which is not text"
                        break
                    problem = _text_problem(key)
                    if problem is not None:
                        problem = f"a key with {problem}"
                        break
                    stack.append((inner, f"{where}.{key}" if where else key, depth + 1))
            else:
                stack.extend((inner, f"{where}[{i}]", depth + 1) for i, inner in enumerate(item))
        else:
            problem = f"a {type(item).__name__}, which is not JSON data"
        if problem is not None:
            if len(where) > 60:
                where = where[:57] + "..."
            return f"{problem} at {where}" if where else problem
    return None


def check_json(value: Any, what: str) -> Any:
    """``value`` if it can be stored as JSON; else ``InputError`` naming ``what``."""
    problem = json_problem(value)
    if problem is not None:
        raise InputError(f"{what} holds {problem}")
    return value


def loads(text: str, what: str) -> Any:
    """Parse JSON text given as ``what`` (an option, a file) and check what it holds.

    Syntax errors are ``json.JSONDecodeError`` (callers choose what to say about text
    that is not JSON at all); everything else that is wrong is an ``InputError``.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(
            f"{what} holds lists or objects nested more than {MAX_DEPTH} levels deep"
        ) from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # integers past the digit limit
        limit = sys.get_int_max_str_digits()
        raise InputError(f"{what} holds an integer with more than {limit} digits") from None
    return check_json(value, what)
