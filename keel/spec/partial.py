"""The sound part of a spec whose structure is partly broken, so that validation can
report the semantic problems too, not only the structural ones (every problem at once).

Pydantic refuses a whole spec when one node has a wrong field; the semantic rules
(references, expressions, cycles, arguments) then have nothing to look at. Here each
broken node is replaced by a placeholder that keeps its place, its id (so indices,
references and positions still point where they did) and its sound ``after``, ``when``,
``join`` and ``on_failure``; each broken top-level field is dropped (its default
applies). The placeholder calls and waits for nothing, so what is checked of it is only
what was written in it. When the structure is too broken for that (the data is
not a mapping, ``nodes`` is not a list), there is no sound part.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from keel.errors import SpecIssue
from keel.spec.model import Node, WorkflowSpec
from keel.spec.types import NodeId

#: stands in for a workflow name that is itself broken
_NAME = "workflow"
#: fields every node kind has: a broken node keeps those that are sound, so that their
#: references and conditions are checked too
_COMMON = ("after", "when", "join", "on_failure")


def _placeholder(node: Any, index: int, broken: set[str | int]) -> dict[str, Any]:
    """A node that keeps ``node``'s id, place and sound common fields (not ``broken``)."""
    node_id = node.get("id") if isinstance(node, dict) else None
    try:
        node_id = TypeAdapter(NodeId).validate_python(node_id)
    except ValidationError:
        node_id = f"_node_{index}"  # its own id is broken: nothing can refer to it
    kept = {
        field: node[field]
        for field in _COMMON
        if isinstance(node, dict) and field in node and field not in broken
    }
    return {**kept, "id": node_id, "kind": "timer", "duration": 1}


#: fields whose default, when the written value is broken, would make demands of its own
#: (the arguments of a call, the input of a child run: missing ones would be reported)
_DEMANDING = frozenset({"args", "input", "kind", "id"})

#: one node of any kind, checked on its own (built once: an adapter costs a millisecond)
NODE: TypeAdapter[Any] = TypeAdapter(Node)


def _salvaged(node: Any, index: int, broken: set[str | int]) -> dict[str, Any]:
    """``node`` without its ``broken`` fields (their defaults apply), so what was written
    soundly in it is checked too (an expression in its arguments when its ``join`` is
    broken); the placeholder when that is not a node or would report what was not wrong."""
    if isinstance(node, dict) and broken and not broken & _DEMANDING:
        kept = {field: value for field, value in node.items() if field not in broken}
        try:
            NODE.validate_python(kept)
            return kept
        except ValidationError:
            pass
    return _placeholder(node, index, broken)


def sound_part(data: Any, issues: list[SpecIssue]) -> WorkflowSpec | None:
    """``data`` as a spec with its broken nodes and fields (``issues``, structural
    problems) set aside; None if there is nothing sound to check."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    broken_nodes: dict[int, set[str | int]] = {}  # each broken node's broken fields
    broken_fields: set[str | int] = set()
    for issue in issues:
        loc = issue.loc
        if not loc or (loc[0] == "nodes" and (len(loc) < 2 or not isinstance(loc[1], int))):
            return None
        if loc[0] == "nodes":
            broken_nodes.setdefault(int(loc[1]), set()).update(loc[2:3])
        else:
            broken_fields.add(loc[0])
    salvaged = {key: value for key, value in data.items() if key not in broken_fields}
    if "name" in broken_fields:
        salvaged["name"] = _NAME
    for keep_fields in (True, False):
        nodes = list(data["nodes"])
        for index, fields in broken_nodes.items():
            if 0 <= index < len(nodes):
                if keep_fields:
                    nodes[index] = _salvaged(nodes[index], index, fields)
                else:
                    nodes[index] = _placeholder(nodes[index], index, set(_COMMON))
        try:
            return WorkflowSpec.model_validate({**salvaged, "nodes": nodes})
        except ValidationError:
            continue
    return None
