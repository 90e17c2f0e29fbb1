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
