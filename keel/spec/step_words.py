"""A built-in step in a few words, for people: what it does (a picture's label, a row of
``keel graph``) and, for ``keel fork``, what running it again does to the world.

The words come from the spec's templates as written (``POST api.example.com/claims/${{
input.id }}``): nothing is filled, so a secret's value can never show here, only its
reference. The step's ``task`` (keel's own ``keel.steps.http:http_step``) is an
implementation detail a person need not read.

Invariant: pure, and each text is one line of at most ``LIMIT`` characters.
"""

from __future__ import annotations

import json
from typing import Any

from keel.spec.step_nodes import EmailNode, HttpNode, ShellNode, SqlNode, StepNode

#: the longest summary (a long URL or command is cut, and says so with an ellipsis)
LIMIT = 60


def _text(value: Any) -> str:
    """A template as one line of text."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return " ".join(text.split())


def _cut(text: str, limit: int = LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _address(url: Any) -> str:
    """A URL template without its scheme when it is ``https`` (``api.example.com/...``);
    a plain ``http://`` is kept, so what is not encrypted says so."""
    text = _text(url)
    return text.removeprefix("https://")


def _command(node: ShellNode) -> str:
    return " ".join(_text(part) for part in node.command)


def _statement(node: SqlNode) -> str:
    words = node.query.split()
    return words[0].upper() if words else ""


def _recipients(node: EmailNode) -> str:
    return ", ".join(_text(address) for address in node.to)


def step_summary(node: StepNode) -> str:
    """What the step does, without its kind: ``POST api.example.com/notes``, ``echo
    hi``, ``SELECT on claims``, ``to ops@example.com``."""
    if isinstance(node, HttpNode):
        return _cut(f"{node.method} {_address(node.url)}")
    if isinstance(node, ShellNode):
        return _cut(_command(node))
    if isinstance(node, SqlNode):
        return _cut(f"{_statement(node)} on {node.connection}")
    return _cut(f"to {_recipients(node)}")


def step_effect(node: StepNode) -> str | None:
    """What running the step again does to the world, or None if it changes nothing
    (``changes_the_world``): ``POST to https://...``, ``runs convert``, ``writes to
    claims``, ``sends email to ...``."""
    if not node.changes_the_world:
        return None
    if isinstance(node, HttpNode):
        return _cut(f"{node.method} to {_text(node.url)}", 2 * LIMIT)
    if isinstance(node, ShellNode):
        return _cut(f"runs {_text(node.command[0])}", 2 * LIMIT)
    if isinstance(node, SqlNode):
        return f"writes to {node.connection} ({_statement(node)})"
    return _cut(f"sends email to {_recipients(node)}", 2 * LIMIT)
