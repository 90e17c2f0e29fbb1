"""Which file a ``shell`` step's program is, and whether the worker allows it.

The rule (also in docs/steps/shell.md):

- The program is found as ``execvp`` would find it: a name without ``/`` on the step's
  ``PATH`` (the node's ``env.PATH`` if it sets one, else the base ``PATH`` of
  ``keel.steps.shell_config``), a name with ``/`` as a path (relative to the step's
  working folder).
- Each ``[shell] allow`` entry is a file too: an absolute path as written, a bare name as
  found on the *base* ``PATH`` (the operator's, never the node's: a node that sets
  ``PATH`` cannot make ``git`` mean its own file).
- The program may run when its file, symlinks resolved, is the file of an entry,
  symlinks resolved. So ``/usr/bin/python3`` (a link to ``python3.11``) is allowed by
  either name, and a program cannot pass as an allowed one by its name alone.

Caveat the docs repeat: one file is one program to this rule, so allowing a multi-call
binary (busybox) allows every name linked to it; and an allowed program may start
others (allowing a shell or an interpreter allows everything).

The step then runs the file it found (not a second lookup by name), with the name as
written as its ``argv[0]``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from keel.errors import NonRetryable
from keel.steps.shell_config import ShellConfig


class ProgramNotFound(NonRetryable):
    """The step's program is no file that can be run."""


class ProgramNotAllowed(NonRetryable):
    """The worker's ``[shell] allow`` does not name the step's program."""


def found_program(program: str, path: str, cwd: Path) -> Path:
    """The file ``program`` names (see the module), or ``ProgramNotFound``."""
    if "/" in program:
        candidate = cwd / program
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise ProgramNotFound(f"program {program!r} is not an executable file")
    located = shutil.which(program, path=path)
    if located is None:
        raise ProgramNotFound(
            f"program {program!r} is not found on the step's PATH ({path}); "
            "install it, or set PATH under the node's env or [shell] env of keel.toml"
        )
    return Path(located).absolute()


def allowed_files(config: ShellConfig) -> dict[Path, str]:
    """The files ``[shell] allow`` names (symlinks resolved), each with its entry; an
    entry that names no file allows nothing."""
    files: dict[Path, str] = {}
    base = config.base_path()
    for entry in config.allow:
        located = entry if os.path.isabs(entry) else shutil.which(entry, path=base)
        if located is not None and os.path.isfile(located):
            files.setdefault(Path(located).resolve(), entry)
    return files


def check_allowed(program: str, file: Path, config: ShellConfig) -> None:
    """Nothing if ``file`` (what ``program`` was found as) is allowed, else
    ``ProgramNotAllowed`` naming the program and the setting."""
    if file.resolve() in allowed_files(config):
        return
    where = config.source or "the worker's keel.toml"
    listed = ", ".join(repr(entry) for entry in config.allow) or "nothing"
    found = "" if str(file) == program else f" ({file})"
    raise ProgramNotAllowed(
        f"program {program!r}{found} is not allowed on this worker: add it to "
        f"[shell] allow in {where} (it allows {listed})"
    )
