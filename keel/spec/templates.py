"""Text with ``${{ expression }}`` parts, such as an approval's description.

The parts are expressions like any other (they make dependencies and are validated);
filling a template evaluates each and writes strings as they are and anything else as
JSON, so a person reads ``Claim C-7 scored 0.93``, not a Python repr.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

_PART = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = re.compile(r"^\s*\$\{\{(.*?)\}\}\s*$", re.DOTALL)


def whole_expression(text: str) -> str | None:
    """The source of the one ``${{ expression }}`` that is all of ``text`` (whitespace
    around it aside), as written; None when ``text`` is anything else (plain text, or
    parts among text such as ``${{ a }} and ${{ b }}``)."""
    whole = _WHOLE.match(text)
    return whole.group(1) if whole is not None and "${{" not in whole.group(1) else None


def unclosed(text: str) -> bool:
    """Whether ``text`` has a ``${{`` no ``}}`` closes: it would be sent or shown as
    written, so validation refuses it."""
    return "${{" in _PART.sub("", text)


def template_expressions(text: str) -> Iterator[str]:
    """The expression sources inside ``text``, in order."""
    for match in _PART.finditer(text):
        yield match.group(1).strip()


def fill_template(text: str, evaluate: Callable[[str], Any]) -> str:
    """``text`` with each ``${{ expression }}`` replaced by its value."""

    def value(match: re.Match[str]) -> str:
        result = evaluate(match.group(1).strip())
        return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)

    return _PART.sub(value, text)


def fill_json(value: Any, evaluate: Callable[[str], Any]) -> Any:
    """A JSON template filled: a string that is wholly one ``${{ expression }}`` becomes
    the expression's value (any JSON: a number stays a number), a string with parts
    among text becomes text, lists and objects are filled item by item (keys as
    written), and anything else is as written."""
    if isinstance(value, str):
        whole = whole_expression(value)
        if whole is not None:
            return evaluate(whole.strip())
        return fill_template(value, evaluate) if "${{" in value else value
    if isinstance(value, list | tuple):
        return [fill_json(item, evaluate) for item in value]
    if isinstance(value, dict):
        return {key: fill_json(item, evaluate) for key, item in value.items()}
    return value
