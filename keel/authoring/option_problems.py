"""Bad node options (``@keel.task(...)``, ``task.options(...)``...), each with what would
work and the ``file:line`` of the call that gave it.

Options are checked when they are given (``keel.authoring.options``), all of them: a
typo in one must not hide the others. Inside a workflow body the problems travel with
the options to the node they configure and are reported with the workflow's other
problems; given outside one, they are raised at once (``OptionError``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from keel.errors import OptionError, SpecIssue

#: where keel's own code lives: the first frame outside it is the user's call
_KEEL = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class OptionProblem:
    option: str
    message: str
    #: the user's file and line that gave the option
    file: str | None = None
    line: int | None = None

    def issue(self, index: int, node: str) -> SpecIssue:
        """The problem as a spec issue of node ``node`` (at ``index`` in the nodes)."""
        return SpecIssue(
            self.message, loc=("nodes", index, self.option), node=node, code="bad_option",
            source=self.file, line=self.line,
        )  # fmt: skip

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file is not None else ""
        return f"{where}{self.option}: {self.message}"


def is_keel_code(filename: str) -> bool:
    """Whether a frame's file is keel's own code (the user's calls are the others)."""
    return Path(filename).resolve().is_relative_to(_KEEL)


def caller() -> tuple[str | None, int | None]:
    """The file and line of the innermost call from outside keel's own code."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not is_keel_code(filename):
            return filename, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return None, None


def raise_problems(problems: tuple[OptionProblem, ...], owner: str) -> None:
    """Raise ``OptionError`` listing every problem of ``owner``'s options, if any."""
    if not problems:
        return
    count = len(problems)
    lines = [f"{owner} has {count} bad option{'s' if count != 1 else ''}:"]
    lines += [f"  {problem}" for problem in problems]
    raise OptionError("\n".join(lines))
