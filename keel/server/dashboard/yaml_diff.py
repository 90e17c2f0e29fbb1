"""The difference between two workflow definitions, as the workflow page (between two
deployed versions) and the editor (the text typed against the current version) show it.

Both definitions are compared as ``keel.authoring.yaml_source.dump_yaml`` writes them
(canonical: defaults left out, keys in one order), so the diff shows what changed in
meaning, never a difference of formatting in the files deployed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from keel.authoring.yaml_source import dump_yaml
from keel.spec.model import WorkflowSpec

#: lines of context around each change
CONTEXT = 3

Kind = Literal["file", "hunk", "add", "del", "same"]


@dataclass(frozen=True, slots=True)
class DiffLine:
    #: ``file`` (the two lines naming what is compared), ``hunk``, ``add``, ``del``,
    #: ``same``; a template draws it with the class ``diff-<kind>``
    kind: Kind
    text: str


def _label(spec: WorkflowSpec) -> str:
    return f"{spec.name} {spec.version[:12]}"


def yaml_diff(
    old: WorkflowSpec, new: WorkflowSpec, *, old_label: str | None = None,
    new_label: str | None = None,
) -> list[DiffLine]:  # fmt: skip
    """A unified diff of two definitions as YAML (empty: the same definition), its two
    first lines naming them (``old_label``, ``new_label``: name and version)."""
    lines = difflib.unified_diff(dump_yaml(old).splitlines(), dump_yaml(new).splitlines(),
                                 fromfile=old_label or _label(old),
                                 tofile=new_label or _label(new), n=CONTEXT,
                                 lineterm="")  # fmt: skip
    found: list[DiffLine] = []
    for line in lines:
        kind: Kind
        if line.startswith(("---", "+++")) and len(found) < 2:
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        found.append(DiffLine(kind, line))
    return found
