"""Whether each node of a workflow runs, as far as can be told before the run, for
``keel estimate``.

A node's ``when`` that reads only the run's input (or nothing) is decided from the input
given; one that reads upstream results cannot be, so the node *may* run: ``min`` counts
it as skipped and ``expected`` as running in ``CONDITION_CHANCE`` of the runs. The
state flows down the graph by the join rules: what follows only skipped nodes is
skipped, what follows a conditional node is conditional too. Failure handlers and
``join: one_failed`` nodes run only when something fails: expected never, at most once.

Invariant: pure; nothing here evaluates an expression that reads upstream results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from keel.errors import ExpressionError
from keel.spec.expressions import evaluate
from keel.spec.graph import DependencyGraph, handled_by, safe_analyze
from keel.spec.model import JoinRule, WorkflowSpec

#: the share of runs a node whose condition cannot be decided before the run is
#: expected to run in
CONDITION_CHANCE = 0.5

Runs = Literal["always", "maybe", "skipped", "on_failure"]


@dataclass(frozen=True, slots=True)
class Chance:
    runs: Runs
    #: the expected share of runs in which the node runs
    share: float
    #: why it may not run ("" when it always does)
    why: str = ""


ALWAYS = Chance("always", 1.0)


def known_value(source: str, variables: dict[str, Any]) -> tuple[bool, Any]:
    """(True, value) when ``source`` can be evaluated before the run: it reads no node,
    only the input when the input is known (``variables["input"]`` is not None), and
    ``item`` only when ``variables`` has one; else (False, None)."""
    info = safe_analyze(source)
    if info is None or info.node_refs or info.dynamic_node_access:
        return False, None
    if "item" in info.free_names and "item" not in variables:
        return False, None
    if variables.get("input") is None and any(path[:1] == ("input",) for path in info.paths):
        return False, None
    scope = {"input": variables.get("input"), "nodes": {}, **variables}
    try:
        return True, evaluate(source, scope)
    except ExpressionError:
        return False, None


def chances(spec: WorkflowSpec, run_input: dict[str, Any] | None) -> dict[str, Chance]:
    """Every node's chance of running, given the run's input (None: not known)."""
    graph = DependencyGraph.from_spec(spec)
    handlers = handled_by(spec)
    result: dict[str, Chance] = {}
    for node_id in graph.topological_order():
        node = spec.node(node_id)
        parents = graph.parents[node_id]
        if node_id in handlers:
            handled = ", ".join(handlers[node_id])
            result[node_id] = Chance("on_failure", 0.0, f"runs only when {handled} fails")
            continue
        if node.join == JoinRule.ONE_FAILED:
            result[node_id] = Chance("on_failure", 0.0, "join one_failed: runs only on a failure")
            continue
        chance = _joined(node.join, {parent: result[parent] for parent in parents})
        if node.when is not None and chance.runs in ("always", "maybe"):
            chance = _condition(node.when, chance, run_input)
        result[node_id] = chance
    return result


def _joined(join: JoinRule, parents: dict[str, Chance]) -> Chance:
    """The chance that a node's join rule passes, from its parents' chances."""
    if not parents or join == JoinRule.ALL_DONE:
        return ALWAYS
    runs = {chance.runs for chance in parents.values()}
    if join == JoinRule.ALL_SUCCEEDED:
        if "skipped" in runs:
            return Chance("skipped", 0.0, "a parent is skipped (join all_succeeded)")
        if runs == {"always"}:
            return ALWAYS
        share = min(chance.share for chance in parents.values())
    else:  # none_failed, one_succeeded: one parent that ran is enough
        if "always" in runs:
            return ALWAYS
        if runs == {"skipped"}:
            return Chance("skipped", 0.0, "every parent is skipped")
        share = max(chance.share for chance in parents.values())
    unsure = [node for node, chance in parents.items() if chance.runs != "always"]
    return Chance("maybe", share, f"after {', '.join(unsure)}, which may not run")


def _condition(when: str, chance: Chance, run_input: dict[str, Any] | None) -> Chance:
    decided, value = known_value(when, {"input": run_input})
    if decided:
        if value is True:
            return chance
        return Chance("skipped", 0.0, f"its condition is {value!r} for this input")
    info = safe_analyze(when)
    if info is None or info.node_refs or info.dynamic_node_access:
        why = "its condition depends on upstream results"
    elif run_input is None:
        why = "its condition reads the input, not given"
    else:
        why = "its condition cannot be evaluated with this input"
    if chance.runs == "maybe":
        why = f"{chance.why}; {why}"
    return Chance("maybe", chance.share * CONDITION_CHANCE, why)
