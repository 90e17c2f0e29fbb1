"""How ``--help`` shows a command: fit to the terminal, flags as flags.

- A boolean flag takes no value, so it is shown as a plain flag (``--json``), not with
  a type as options that take a value are (typer prints ``<bool>``, even for ``--help``).
- A docstring's paragraphs are wrapped to the terminal's width: typer keeps the source
  line breaks, which leave ragged half-lines at 80 columns. A paragraph that starts
  with ``\\b`` (click's mark) keeps its lines.

``plain_flags`` gives every command and group of an application this behaviour, so a
command or flag added anywhere later needs nothing of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


def _without_type(params: Sequence[Any]) -> None:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # shown in the type column: nothing


def _reflowed(text: str | None) -> str | None:
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        part if part.startswith("\b") else " ".join(part.split()) for part in paragraphs
    )


class _PlainFlags:
    """What commands and groups share: a reflowed help text and flags without a type."""

    help: str | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflowed(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        _without_type(params)
        return params


class PlainFlagsCommand(_PlainFlags, TyperCommand):
    pass


class PlainFlagsGroup(_PlainFlags, TyperGroup):
    pass


def _chosen(cls: Any, default: type) -> bool:
    """Whether a command was registered with a class of its own (left alone)."""
    return isinstance(cls, type) and cls is not default


def plain_flags(app: typer.Typer) -> None:
    """Show the flags of every command registered on ``app`` (and its groups) plainly."""
    for command in app.registered_commands:
        if not _chosen(command.cls, TyperCommand):
            command.cls = PlainFlagsCommand
    for group in app.registered_groups:
        if not _chosen(group.cls, TyperGroup):
            group.cls = PlainFlagsGroup
        if group.typer_instance is not None:
            plain_flags(group.typer_instance)
