"""Python values written into ``${{ expression }}`` templates (an LLM prompt, the fields
of a built-in step).

A template is text as YAML would hold it; a Python value goes in by name:
``"Classify: ${{ text }}"`` with ``values={"text": ticket.text}`` becomes
``Classify: ${{ input.ticket.text }}``, the same spec whichever way it was written. A
``${{ name }}`` whose name is not in ``values`` is left as written (``input``, ``nodes``,
``secrets``: an expression already).

Invariant: an expression written into ``${{ }}`` never holds ``}}``, which would end the
part early; ``unclosing`` spaces such braces apart (the value is the same).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from keel.authoring.values import Value, expression_of, to_expression
from keel.errors import TracingError
from keel.spec.expressions import tokenize

_NAMED = re.compile(r"\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def named_parts(text: str) -> set[str]:
    """The names of the ``${{ name }}`` parts of ``text`` (parts that are one name)."""
    return {match.group(1) for match in _NAMED.finditer(text)}


def part_of(value: Any, what: str) -> str:
    """``${{ expression }}`` for a ``Value`` or a constant (its literal)."""
    source = expression_of(value) if isinstance(value, Value) else to_expression(value)
    return "${{ " + unclosing(source, what) + " }}"


def template(text: str, values: Mapping[str, Any], what: str) -> str:
    """``text`` with each ``${{ name }}`` of ``values`` replaced by its expression."""

    def part(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)  # input, nodes, item, secrets: an expression already
        return part_of(values[name], f"{what}(values={{{name!r}: ...}})")

    return _NAMED.sub(part, text) if values else text


def unclosing(source: str, what: str) -> str:
    """``source`` written without ``}}``, which would end its ``${{ }}`` part early (a
    nested map, a brace in a string): closing braces spaced apart, a brace inside a
    string literal escaped. The value is the same."""
    if "}}" not in source:
        return source
    written = ""
    end = 0
    for token in tokenize(source):
        text = token.text
        if token.kind == "string" and "}" in text:
            if text[0] in "rRbB":  # a raw or bytes literal: escapes are not read there
                raise TracingError(f"{what}: a raw or bytes string with '}}}}' cannot go in a "
                                   "template; pass the text as an ordinary string")  # fmt: skip
            text = text.replace("}", "\\u007d")
        written += source[end : token.offset]
        written += " " + text if text == "}" and written.endswith("}") else text
        end = token.offset + len(token.text)
    return written + source[end:]
