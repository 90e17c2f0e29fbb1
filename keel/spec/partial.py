"""The sound part of a spec whose structure is partly broken, so that validation can
report the semantic problems too, not only the structural ones (every problem at once).

Pydantic refuses a whole spec when one node has a wrong field; the semantic rules
(references, expressions, cycles, arguments) then have nothing to look at. Here each
broken node is replaced by a placeholder that keeps its place and its id (so indices,
references and positions still point where they did), and each broken top-level field
is dropped (its default applies). The placeholder reads nothing, so it cannot cause a
semantic complaint of its own. When the structure is too broken for that (the data is
not a mapping, ``nodes`` is not a list), there is no sound part.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from keel.errors import SpecIssue
from keel.spec.model import WorkflowSpec
from keel.spec.types import NodeId

#: stands in for a workflow name that is itself broken
_NAME = "workflow"


def _placeholder(node: Any, index: int) -> dict[str, Any]:
    """A node that keeps ``node``'s id and place and reads nothing."""
    node_id = node.get("id") if isinstance(node, dict) else None
    try:
        node_id = TypeAdapter(NodeId).validate_python(node_id)
    except ValidationError:
        node_id = f"_node_{index}"  # its own id is broken: nothing can refer to it
    return {"id": node_id, "kind": "timer", "duration": 1}


def sound_part(data: Any, issues: list[SpecIssue]) -> WorkflowSpec | None:
    """``data`` as a spec with its broken nodes and fields (``issues``, structural
    problems) set aside; None if there is nothing sound to check."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    broken_nodes: set[int] = set()
    broken_fields: set[str | int] = set()
    for issue in issues:
        loc = issue.loc
        if not loc or (loc[0] == "nodes" and (len(loc) < 2 or not isinstance(loc[1], int))):
            return None
        if loc[0] == "nodes":
            broken_nodes.add(int(loc[1]))
        else:
            broken_fields.add(loc[0])
    salvaged = {key: value for key, value in data.items() if key not in broken_fields}
    if "name" in broken_fields:
        salvaged["name"] = _NAME
    nodes = list(data["nodes"])
    for index in broken_nodes:
        if 0 <= index < len(nodes):
            nodes[index] = _placeholder(nodes[index], index)
    salvaged["nodes"] = nodes
    try:
        return WorkflowSpec.model_validate(salvaged)
    except ValidationError:
        return None
