"""What the worker lets ``shell`` steps run: the ``[shell]`` table of its ``keel.toml``
(found as the worker's config is: ``keel.runtime.worker.config.config_tables``).

    [shell]
    allow = ["git", "/usr/bin/pg_dump"]    # the programs a shell step may start
    env = {PATH = "/usr/local/bin:/usr/bin:/bin", GIT_TERMINAL_PROMPT = "0"}

``allow`` names programs: a bare name (``git``) means the file that name finds on the
steps' base ``PATH`` (``env.PATH`` here if set, else the worker's own ``PATH``); an
absolute path means that file. Both are compared after resolving symlinks
(``allowed_file``). A relative path with a ``/`` is refused: what it means would depend
on the folder a step runs in. ``env`` is given to every shell step's program, before the
node's own ``env`` (which may override it); its ``PATH`` is the steps' base ``PATH``.

Invariants: a key that is set but wrong (an unknown key, a value of the wrong type)
raises ``ShellConfigError`` naming the file and the key, never ignored. Without a
``[shell]`` table nothing may run. This module only reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from keel.errors import NonRetryable
from keel.runtime.worker.config_sections import check_keys, config_place, find_section, table_of
from keel.spec.step_nodes import VARIABLE_NAME

KEYS = ("allow", "env")
#: a variable name a program may be given (POSIX's portable names)


class ShellConfigError(NonRetryable):
    """The ``[shell]`` table is wrong; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class ShellConfig:
    #: the programs that may run, as written (bare names and absolute paths)
    allow: tuple[str, ...] = ()
    #: variables every shell step's program gets
    env: dict[str, str] = field(default_factory=dict)
    #: the file the table came from or was looked for in, for messages
    #: (``config_sections.config_place``; None: not read from a file)
    source: str | None = None

    def base_path(self) -> str:
        """The ``PATH`` steps run with unless their node sets one, and on which bare
        names in ``allow`` are looked up."""
        return self.env.get("PATH") or os.environ.get("PATH") or os.defpath


def load_shell_config(start: Path | None = None) -> ShellConfig:
    """The ``[shell]`` table of the config file above ``start`` (default: the current folder)."""
    folder = (start if start is not None else Path.cwd()).resolve()
    found = find_section(folder, "shell", ShellConfigError)
    if found is None:
        return ShellConfig(source=config_place(folder, "shell"))
    return parse_shell_table(found[0], found[2])


def parse_shell_table(label: str, raw: object) -> ShellConfig:
    """The ``shell`` table of a file; ``label`` names the file in errors."""
    raw = table_of(label, "shell", raw, ShellConfigError)
    check_keys(label, "shell", raw, KEYS, ShellConfigError)
    return ShellConfig(_allow(label, raw.get("allow", [])), _env(label, raw.get("env", {})), label)


def _allow(label: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ShellConfigError(
            f"{label}: shell.allow must be a list of program names or absolute paths "
            f'(e.g. ["git", "/usr/bin/pg_dump"]), got {value!r}'
        )
    programs: list[str] = []
    for entry in value:
        if not isinstance(entry, str) or not entry.strip() or "\0" in entry:
            raise ShellConfigError(
                f"{label}: shell.allow entries must be program names or absolute paths, "
                f"got {entry!r}"
            )
        program = entry.strip()
        if "/" in program and not os.path.isabs(program):
            raise ShellConfigError(
                f"{label}: shell.allow has {program!r}, a relative path: write a bare name "
                "(looked up on PATH) or an absolute path"
            )
        programs.append(program)
    return tuple(dict.fromkeys(programs))


def _env(label: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ShellConfigError(
            f'{label}: shell.env must be a table of strings (env = {{NAME = "value"}}), '
            f"got {value!r}"
        )
    env: dict[str, str] = {}
    for name, item in value.items():
        if not VARIABLE_NAME.match(name):
            raise ShellConfigError(
                f"{label}: shell.env has {name!r}, which is not a variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
        if not isinstance(item, str) or "\0" in item:
            raise ShellConfigError(f"{label}: shell.env.{name} must be a string")
        env[name] = item
    return env
