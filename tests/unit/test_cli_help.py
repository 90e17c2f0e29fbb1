"""Every command's ``--help``: what its help texts write in brackets is shown (rich
markup would take ``[tool.keel]`` for a style and drop it), boolean flags are shown
as plain flags, without a type (``<bool>``), and nothing is cut at 80 columns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from keel.cli.app import app

#: a phrase in brackets as written in a help text (``\[`` is an escaped bracket)
_BRACKETED = re.compile(r"\\?\[([^\]\[]+)\]")
#: what a rich panel draws around the help; dropped with the whitespace when comparing
_FRAME = re.compile(r"[\s│╭╮╰╯─]+")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    subcommands: dict[str, Any] = getattr(command, "commands", {})  # a group's
    for name, sub in sorted(subcommands.items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(get_command(app)))
IDS = [" ".join(path) or "keel" for path, _ in COMMANDS]


def _help_texts(command: Any) -> list[str]:
    texts = [command.help or ""]
    texts += [getattr(param, "help", None) or "" for param in command.params]
    return texts


def _shown_help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return _FRAME.sub(" ", result.output)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_shows_what_its_texts_write_in_brackets(path: tuple[str, ...], command: Any) -> None:
    shown = _shown_help(path)
    for text in _help_texts(command):
        for phrase in _BRACKETED.findall(text):
            assert f"[{_FRAME.sub(' ', phrase)}]" in shown, f"keel {' '.join(path)} --help"


def test_the_worker_help_names_the_pyproject_table() -> None:
    assert "[tool.keel]" in _shown_help(("worker",))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_boolean_flags_are_shown_without_a_type(path: tuple[str, ...], command: Any) -> None:
    assert "<bool>" not in _shown_help(path)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_the_description_fills_80_columns_without_ragged_lines(
    path: tuple[str, ...], command: Any
) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    text = result.output.split("╭", 1)[0].split("\n")
    description = [line.rstrip() for line in text if not line.lstrip().startswith("Usage:")]
    paragraphs = "\n".join(description).strip("\n").split("\n\n")
    for paragraph in paragraphs:
        lines = [line for line in paragraph.splitlines() if line.strip()]
        for line in lines[:-1]:  # a line broken early leaves half a line in a paragraph
            assert len(line) > 60, f"keel {' '.join(path)} --help:\n{paragraph}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_no_word_is_cut_at_80_columns(path: tuple[str, ...], command: Any) -> None:
    """A word longer than its column (a URL, an environment variable) is cut with an
    ellipsis, losing what it says: help texts say such words where they fit."""
    assert "…" not in _shown_help(path), f"keel {' '.join(path)} --help"
