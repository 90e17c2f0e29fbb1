"""The diff of two workflow versions: nodes added (before a recorded node), removed and
changed field by field (condition, retry policy, join...), dependencies as the plan
computes them, workflow policies, and the union graph with the changes marked."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.engine.plan import compile_plan
from keel.spec import parse_spec
from keel.spec.data_diff import MISSING, Change, data_changes, path_text, same_data
from keel.spec.diff import diff_specs, spec_diff_document, spec_diff_of
from keel.spec.model import WorkflowSpec
from keel.spec.render_diff import render_diff


def saga(*extra: dict[str, Any], **changes: Any) -> WorkflowSpec:
    """flight -> hotel -> car, each node's fields overridden by ``changes[id]``."""
    nodes: list[dict[str, Any]] = [
        {"id": "flight", "task": "m:flight", "args": {"who": "${{ input.who }}"}},
        {"id": "hotel", "task": "m:hotel", "args": {"f": "${{ nodes.flight.output }}"}},
        {"id": "car", "task": "m:car", "args": {"h": "${{ nodes.hotel.output }}"},
         "when": "input.car"},
    ]  # fmt: skip
    for node in nodes:
        node.update(changes.pop(node["id"], {}))
    return parse_spec({"name": "saga", "nodes": [*extra, *nodes], **changes})


def test_a_node_added_before_a_node_is_added_with_its_new_edge() -> None:
    old = saga()
    new = saga({"id": "check", "task": "m:check"}, flight={"after": ["check"]})
    diff = diff_specs(old, new)

    assert [(n.id, n.state) for n in diff.nodes] == [
        ("check", "added"), ("flight", "changed"), ("hotel", "same"), ("car", "same")]  # fmt: skip
    (flight,) = diff.with_state("changed")
    assert flight.fields == ("after",)
    assert [(e.parent, e.child) for e in diff.edges_with("added")] == [("check", "flight")]
    assert diff.edges_with("removed") == []
    assert not diff.same


def test_a_changed_condition_names_the_field_and_both_values() -> None:
    diff = diff_specs(saga(), saga(car={"when": "input.car and input.days > 1"}))

    (car,) = diff.with_state("changed")
    assert car.id == "car"
    assert car.changes == (Change(("when",), "input.car", "input.car and input.days > 1"),)
    assert diff.edges == diff_specs(saga(), saga()).edges  # no edge changed


def test_a_changed_retry_policy_is_shown_field_by_field_from_its_default() -> None:
    retried = {"retry": {"max_attempts": 5, "initial_backoff": "2s"}}
    diff = diff_specs(saga(hotel={"retry": {"max_attempts": 3}}), saga(hotel=retried))
    (hotel,) = diff.with_state("changed")
    assert hotel.fields == ("retry",)
    assert [(c.where, c.before, c.after) for c in hotel.changes] == [
        ("retry.max_attempts", 3, 5), ("retry.initial_backoff", MISSING, 2)]  # fmt: skip

    # a policy set where there was none: each field it sets, from "not set"
    (hotel,) = diff_specs(saga(), saga(hotel=retried)).with_state("changed")
    assert [(c.where, c.before) for c in hotel.changes] == [
        ("retry.initial_backoff", MISSING), ("retry.max_attempts", MISSING)]  # fmt: skip


def test_a_field_back_at_its_default_shows_the_default_not_a_missing_value() -> None:
    (hotel,) = diff_specs(saga(hotel={"join": "all_done"}), saga()).with_state("changed")
    assert hotel.changes == (Change(("join",), "all_done", "none_failed"),)


def test_edges_are_the_plans_parents_and_removed_nodes_keep_their_place() -> None:
    old = saga()
    # car reads flight instead of hotel; hotel is removed
    new = parse_spec({"name": "saga", "nodes": [
        {"id": "flight", "task": "m:flight", "args": {"who": "${{ input.who }}"}},
        {"id": "car", "task": "m:car", "args": {"h": "${{ nodes.flight.output }}"},
         "when": "input.car"},
    ]})  # fmt: skip
    diff = diff_specs(old, new)

    assert [(n.id, n.state) for n in diff.nodes] == [
        ("flight", "same"), ("hotel", "removed"), ("car", "changed")]  # fmt: skip
    plan_edges = {(p, child) for child, n in compile_plan(new).nodes.items() for p in n.parents}
    same_or_added = {(e.parent, e.child) for e in diff.edges if e.state != "removed"}
    assert same_or_added == plan_edges
    assert {(e.parent, e.child, e.state) for e in diff.edges} == {
        ("flight", "car", "added"), ("flight", "hotel", "removed"),
        ("hotel", "car", "removed")}  # fmt: skip


def test_workflow_policies_are_compared_and_equal_specs_have_no_difference() -> None:
    diff = diff_specs(saga(deadline="1h"), saga(deadline="2h", on_failure="m:alert"))
    assert [(c.where, c.before, c.after) for c in diff.workflow] == [
        ("deadline", 3600, 7200), ("on_failure.task", MISSING, "m:alert")]  # fmt: skip
    assert all(n.state == "same" for n in diff.nodes)

    same = diff_specs(saga(), saga())
    assert same.same
    assert same.workflow == ()
    assert spec_diff_document(same)["same"] is True


def test_the_document_reads_back_as_the_same_diff() -> None:
    diff = diff_specs(saga(hotel={"queue": "slow"}), saga({"id": "x", "task": "m:x"}))
    doc = spec_diff_document(diff)
    assert doc["kind"] == "versions"
    assert doc["a"]["version"] == diff.a.version
    assert spec_diff_of(doc) == diff
    (hotel,) = [n for n in doc["nodes"] if n["id"] == "hotel"]
    assert hotel["changes"] == [{"path": "queue", "parts": ["queue"], "change": "removed",
                                 "a": "slow"}]  # fmt: skip


def test_the_union_graph_marks_added_removed_and_changed() -> None:
    old = saga({"id": "gone", "task": "m:gone"}, car={"after": ["gone"]})
    new = saga({"id": "check", "task": "m:check"}, car={"retry": {"max_attempts": 2}})
    diff = diff_specs(old, new)

    mermaid = render_diff(diff, "mermaid")
    assert "class check added" in mermaid
    assert "class gone removed" in mermaid
    assert "class car changed" in mermaid
    assert "changed: after, retry" in mermaid
    assert "    gone -.-> car" in mermaid  # a removed edge: dotted...
    lines = mermaid.splitlines()
    edges = [line.strip() for line in lines if "-->" in line or "-.->" in line]
    removed = edges.index("gone -.-> car")
    assert any(
        line.strip().startswith("linkStyle") and str(removed) in line.split()[1].split(",")
        and "#c62828" in line for line in lines
    )  # ...and red  # fmt: skip

    dot = render_diff(diff, "dot")
    assert '"gone" -> "car" [color="#c62828", style=dashed];' in dot
    assert '"check" [label="check\\ntask m:check\\nadded", style=filled' in dot
    assert '"flight" -> "hotel";' in dot  # unchanged edges are plain
    with pytest.raises(ValueError, match="unknown graph format"):
        render_diff(diff, "png")


# --- the JSON diff underneath ------------------------------------------------------------


def test_paths_are_written_as_people_read_them() -> None:
    assert path_text(("nodes", "book_car", "output", "reference")) == (
        "nodes.book_car.output.reference"
    )
    assert path_text(("items", 2, "a key")) == 'items[2]["a key"]'
    assert path_text(()) == "."


def test_json_equality_is_jsons() -> None:
    assert data_changes({"a": 1}, {"a": 1.0}) == []
    assert data_changes({"a": 1}, {"a": True}) == [Change(("a",), 1, True)]
    assert data_changes([1, 2], [1, 2, 3]) == [Change((), [1, 2], [1, 2, 3])]
    assert data_changes([1, 2], [1, 3]) == [Change((1,), 2, 3)]
    assert data_changes({"a": {}}, {}) == [Change(("a",), {}, MISSING)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.5, 1.0]) | st.text("ab"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("ab", max_size=2), inner,
                                                                 max_size=3),
    max_leaves=12,
)  # fmt: skip


@given(json_values, json_values)
def test_two_values_have_no_change_exactly_when_they_are_the_same(a: Any, b: Any) -> None:
    changes = data_changes(a, b)
    assert (changes == []) == same_data(a, b)
    assert data_changes(a, a) == []
    # each change names a place where the two differ
    for change in changes:
        assert not same_data(change.before, change.after)
