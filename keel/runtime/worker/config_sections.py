"""One section of the worker's config file, for the part of keel that owns it (``[llm]``,
``[http]``, ``[shell]``, ``[sql]``, ``[email]``): finding it, and the checks every
section makes of its tables, so each reader says a wrong file or key the same way.

Invariant: an error names the file (its label) and the key, and is raised as the
owner's own error type (``error``), which says whether another attempt may help.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from keel.runtime.worker.config import WorkerConfigError, config_tables


def find_section(start: Path, name: str, error: type[Exception]) -> tuple[str, Path, object] | None:
    """The first table ``name`` of the config found from ``start`` upwards: the label of
    its file, the file's folder and the raw value; None where no file has one. An
    unreadable file (not TOML) raises ``error``."""
    try:
        found = config_tables(start)
    except WorkerConfigError as exc:
        raise error(str(exc)) from None
    if found is None:
        return None
    folder, tables = found
    for label, table in tables:
        if name in table:
            return label, folder, table[name]
    return None


def config_place(start: Path, name: str) -> str:
    """Which config file the ``[name]`` table was looked for in, for a message asking the
    operator to set something there: the label of the file holding the table, else of
    the file read (saying it has no such table), else that no file was found from
    ``start`` upwards and that keel looks there, not in the workflow file's folder. Never
    raises: an unreadable file is reported by the reader itself."""
    try:
        found = config_tables(start)
    except WorkerConfigError:
        found = None
    if found is None:
        return (
            f"the worker's keel.toml: none found in {start} or a folder above it (keel looks "
            "from the folder the worker runs in upwards, not from the workflow file's folder)"
        )
    tables = found[1]
    for label, table in tables:
        if name in table:
            return label
    return f"{tables[0][0]}, which has no [{name}] table"


def table_of(label: str, where: str, raw: object, error: type[Exception]) -> dict[str, object]:
    """``raw`` if it is a table, else ``error`` saying how to write ``[where]``."""
    if not isinstance(raw, dict):
        raise error(f"{label}: {where} must be a table (write it as [{where}])")
    return raw


def check_keys(
    label: str,
    where: str,
    table: Mapping[str, object],
    keys: tuple[str, ...],
    error: type[Exception],
) -> None:
    """``error`` naming each key of ``table`` that is not one of ``keys``."""
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise error(
            f"{label}: {where}: unknown key {', '.join(repr(key) for key in unknown)} "
            f"(known keys: {', '.join(keys)})"
        )
