"""Which code ``keel resume`` loads for the runs it continues.

A run records where its code came from (``origin``: the file ``keel run`` was given, or
the module of a workflow started with ``keel.Client.start``). Anyone who can start a run
can write that field, and importing a file or module runs it, so a recorded origin is
never imported on its own say-so. ``keel resume`` loads:

1. the code the user names (``--code FILE_OR_MODULE``, repeatable) and the ``modules``
   of the worker settings (keel.toml, ``[tool.keel]``, ``KEEL_WORKER_MODULES``);
2. a run's recorded origin only once the user confirms it: asked in a terminal, or
   ``--yes`` beforehand. It is shown as recorded, so the user sees what would run.

A run whose recorded code is neither named nor confirmed is not resumed; the message
gives the command that resumes it. Loading only imports code: the run's definition is
the version pinned in the store, so a module that defines several workflows is fine.
One origin that fails to load leaves the other runs to resume.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from keel.cli.common import import_code, origin_of

if TYPE_CHECKING:
    from keel.store.records import RunRecord


@dataclass
class Chosen:
    """The runs whose code is loaded, and why the others are left."""

    runs: list[RunRecord] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def load_for(
    records: list[RunRecord], named: list[str], configured: tuple[str, ...], *, yes: bool
) -> Chosen:
    loaded: set[str] = set()
    for location in [*named, *configured]:
        import_code(location, "keel resume: ")
        loaded.add(_location(origin_of(location)))
    chosen = Chosen()
    failed: dict[str, str] = {}
    for record in records:
        where = _location(record.origin) if record.origin else None
        if where is not None and where not in loaded:
            if where not in failed:
                failed[where] = _confirm_and_load(where, record, yes=yes)
                if not failed[where]:
                    loaded.add(where)
            if failed[where]:
                chosen.left.append(f"run {record.id[:8]} not resumed: {failed[where]}")
                continue
        chosen.runs.append(record)
    return chosen


def load_recorded(record: RunRecord, *, yes: bool, again: str = "") -> str:
    """Load the code ``record`` recorded, once the user confirms it; why not ("" when
    it is loaded, or when the run recorded none). For commands that need one run's code
    (``keel skip`` checks an output against its task's return type). ``again``: the
    way to name the code instead, for the message, ``{where}`` standing for the code
    (without one: pass --yes)."""
    if not record.origin:
        return ""
    return _confirm_and_load(_location(record.origin), record, yes=yes, again=again)


def _location(origin: str) -> str:
    """The file or module of an origin, without the ``:workflow`` it may name."""
    from keel.authoring.loading import split_target

    return split_target(origin)[0]


def _confirm_and_load(where: str, record: RunRecord, *, yes: bool, again: str | None = None) -> str:
    """Load a recorded origin the user confirms; else why not ("" when loaded).
    ``again``: how to name the code instead, ``{where}`` standing for it ("": the
    command has no ``--code``, only --yes loads it; None: ``keel resume``'s)."""
    command = f"keel resume {record.id[:8]} --code {where}" if again is None else again
    command = command.replace("{where}", where)
    if not yes:
        if not sys.stdin.isatty():
            if not command:
                return (f"its code {where} is recorded in the database, and recorded code "
                        "is loaded only when you confirm it: pass --yes to load it")  # fmt: skip
            return (
                f"its code {where} is recorded in the database, and recorded code is "
                f"loaded only when you name it: {command} (or --yes to load what runs "
                "recorded)"
            )
        question = f"run {record.id[:8]} recorded its code as {where}: load it?"
        if not typer.confirm(question, default=False, err=True):
            if not command:
                return f"you did not confirm its code {where}; pass --yes to load it"
            return f"you did not confirm its code {where}; to load it: {command}"
    try:
        import_code(where)
    except typer.Exit:  # the message is printed already
        return f"its code {where} could not be loaded (see above)"
    return ""
