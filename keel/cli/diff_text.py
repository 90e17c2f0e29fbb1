"""``keel diff`` and ``keel versions`` as text people read, fitted to the console's width.

Made from the JSON documents (``keel.runtime.views``), the same over a store or a
server. A change is one line, ``path: before -> after`` with values as compact JSON,
each side shortened with "…" when the line would pass the width (``--json`` has them
whole).
"""

from __future__ import annotations

from typing import Any

from keel.spec.data_diff import Change, change_of, value_text
from keel.spec.diff import SpecDiff, spec_diff_of

#: what a side that has no value is shown as: a spec field not set (its default applies)
#: and a run's key not there
NOT_SET, ABSENT = "(not set)", "(absent)"
#: the narrowest a side of a change is shortened to
_SIDE_MIN = 12


def _shortened(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def change_line(change: Change, width: int, indent: int, missing: str) -> str:
    """``path: before -> after`` in at most ``width`` columns after ``indent`` spaces
    (the path whole; the two sides shortened alike when they must be)."""
    head = f"{' ' * indent}{change.where}: "
    before, after = value_text(change.before, missing), value_text(change.after, missing)
    room = max(2 * _SIDE_MIN, width - len(head) - 4)
    if len(before) + len(after) > room:  # a short side stays whole, a long one gives way
        half = room // 2
        if len(before) <= half:
            after = _shortened(after, room - len(before))
        elif len(after) <= half:
            before = _shortened(before, room - len(after))
        else:
            before, after = _shortened(before, half), _shortened(after, room - half)
    return f"{head}{before} -> {after}"


def _count(label: str, items: list[Any]) -> str:
    return f"{label} ({len(items)})"


def spec_diff_lines(doc: dict[str, Any], width: int) -> list[str]:
    """Two versions' diff: the versions, then nodes added, removed and changed (each
    changed node's field changes under it), edges added and removed, workflow changes."""
    diff: SpecDiff = spec_diff_of(doc)
    lines = [f"a  version {diff.a.version[:12]}  {diff.a.workflow}",
             f"b  version {diff.b.version[:12]}  {diff.b.workflow}"]  # fmt: skip
    if diff.same:
        return [*lines, "no differences: the same definition"]
    pad = max((len(n.id) for n in diff.nodes if n.state != "same"), default=0)
    for state, mark in (("added", "+"), ("removed", "-"), ("changed", "~")):
        nodes = diff.with_state(state)  # type: ignore[arg-type]
        if not nodes:
            continue
        lines.append(_count(f"nodes {state}", nodes))
        for node in nodes:
            what = ", ".join(node.fields) if state == "changed" else f"{node.kind} {node.summary}"
            lines.append(_shortened(f"  {mark} {node.id.ljust(pad)}  {what}", width))
            lines += [change_line(c, width, 6, NOT_SET) for c in node.changes]
    for state, mark in (("added", "+"), ("removed", "-")):
        edges = diff.edges_with(state)  # type: ignore[arg-type]
        if edges:
            lines.append(_count(f"edges {state}", edges))
            lines += [_shortened(f"  {mark} {e.parent} -> {e.child}", width) for e in edges]
    if diff.workflow:
        lines.append(_count("workflow", list(diff.workflow)))
        lines += [change_line(c, width, 2, NOT_SET) for c in diff.workflow]
    return lines


def run_diff_lines(doc: dict[str, Any], width: int) -> list[str]:
    """Two runs' diff: the runs, then each path that differs (the run's own first,
    then node by node), then the nodes only one run has."""
    sides = [doc["a"], doc["b"]]
    lines = [f"{name}  run {s['run_id'][:12]}  {s['workflow']} {s['version'][:12]}  {s['status']}"
             for name, s in zip("ab", sides, strict=True)]  # fmt: skip
    if doc["same"]:
        return [*lines, "no differences in input, status, output or any node"]
    for change in map(change_of, doc["changes"]):
        if change.path == ("version",):  # the digits people see, as everywhere else
            change = Change(change.path, change.before[:12], change.after[:12])
        lines.append(change_line(change, width, 2, ABSENT))
    for name, side in zip(("only_in_a", "only_in_b"), sides, strict=True):
        if doc[name]:
            said = f"only in run {side['run_id'][:12]}: {', '.join(doc[name])}"
            lines.append(_shortened(said, width))
    return lines
