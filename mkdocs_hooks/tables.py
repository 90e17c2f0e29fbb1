"""Pipes in code spans inside tables, read the same on GitHub and on the site.

GitHub splits a table row at every ``|`` not escaped, even inside a code span, so the
pages write ``\\|`` there (`` `a\\|b` `` shows ``a|b`` on GitHub). Python-Markdown keeps a
code span whole and would show the backslash. ``on_page_markdown`` drops the backslash
of ``\\|`` inside code spans of table rows (lines starting with ``|``, outside fenced
blocks) before the page is rendered; nothing else of a page changes.
"""

from __future__ import annotations

import re
from typing import Any

CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def on_page_markdown(markdown: str, **_: Any) -> str:
    """The page with ``\\|`` made ``|`` inside the code spans of its table rows."""
    lines = markdown.split("\n")
    fenced = False
    for number, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.lstrip().startswith("|") and "\\|" in line:
            lines[number] = unescape_code_pipes(line)
    return "\n".join(lines)


def unescape_code_pipes(row: str) -> str:
    """One table row with ``\\|`` made ``|`` inside its code spans only."""
    return CODE_SPAN.sub(lambda m: m.group(1) + m.group(2).replace("\\|", "|") + m.group(1), row)
