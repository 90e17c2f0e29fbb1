"""Whole-workflow validation: one focused test per rule, and every problem in one call."""

from __future__ import annotations

from typing import Any

import pytest

from keel.errors import SpecError, SpecIssue
from keel.spec.callables import signature_of
from keel.spec.graph import DependencyGraph
from keel.spec.model import WorkflowSpec
from keel.spec.validate import _Validator, check, parse_spec, validate
from tests.unit import fixtures_tasks

FIXTURES = "tests.unit.fixtures_tasks"
INPUT = {
    "type": "object",
    "properties": {
        "doc": {"type": "string"},
        "count": {"type": "integer"},
        "words": {"type": "array", "items": {"type": "string"}},
        "numbers": {"type": "array", "items": {"type": "integer"}},
        "claim": {
            "type": "object",
            "properties": {"id": {"type": "string"}},
            "additionalProperties": False,
        },
        "meta": {"type": "object", "additionalProperties": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _task(node_id: str, function: str = "m:f", **fields: Any) -> dict[str, Any]:
    task = function if ":" in function else f"{FIXTURES}:{function}"
    return {"id": node_id, "task": task, **fields}


def _map(node_id: str, function: str, items: str, item_arg: str, **fields: Any) -> dict[str, Any]:
    node = _task(node_id, function, **fields)
    return {**node, "kind": "map", "items": items, "item_arg": item_arg}


def _spec(*nodes: dict[str, Any], **fields: Any) -> WorkflowSpec:
    return parse_spec({"name": "w", "input_schema": INPUT, "nodes": list(nodes), **fields})


def _issues(*nodes: dict[str, Any], resolve: bool = False, **fields: Any) -> list[SpecIssue]:
    return validate(_spec(*nodes, **fields), resolve_tasks=resolve)


def _one(*nodes: dict[str, Any], resolve: bool = False, **fields: Any) -> SpecIssue:
    issues = _issues(*nodes, resolve=resolve, **fields)
    assert len(issues) == 1, issues
    return issues[0]


# --- a valid workflow -----------------------------------------------------------------------


def test_a_valid_workflow_has_no_issues_even_with_tasks_resolved() -> None:
    spec = _spec(
        _task("extract", "extract", args={"document": "${{ input.doc }}"}),
        _task("score", "score", args={"claim": "${{ nodes.extract.output }}", "weight": 2}),
        _task("count", "numbers", args={"count": "${{ input.count }}"}),
        _map("doubled", "double", "nodes.count.output", "item", args={"factor": 3}),
        _task("total", "add", args={"a": "${{ nodes.doubled.output[0] }}"}, when="input.count > 0"),
        _task("hello", "greet", args={"name": "${{ nodes.extract.output.id }}"}, after=["score"]),
        _task("cleanup", "nothing", after=["total", "hello"], join="all_done"),
        outputs={"score": "nodes.score.output", "id": "nodes.extract.output.id"},
    )
    assert validate(spec, resolve_tasks=True) == []
    assert check(spec, resolve_tasks=True) is spec


# --- structure of the graph -------------------------------------------------------------------


def test_duplicate_id() -> None:
    issue = _one(_task("a"), _task("b"), _task("a", "m:g"))
    assert issue.code == "duplicate_id"
    assert issue.loc == ("nodes", 2, "id")
    assert issue.node == "a"
    assert issue.message == "duplicate node id 'a' (first used by the 1st node)"


def test_empty_nodes() -> None:
    issue = _one()
    assert issue.code == "empty"
    assert issue.loc == ("nodes",)
    assert "at least one node" in issue.message


def test_cycle_names_the_nodes_in_order() -> None:
    issue = _one(
        _task("a", after=["c"]),
        _task("b", args={"x": "${{ nodes.a.output }}"}),
        _task("c", when="nodes.b.output > 1"),
    )
    assert issue.code == "cycle"
    assert issue.message == "dependency cycle: a -> b -> c -> a"
    assert issue.loc == ("nodes", 0)
    assert issue.node == "a"


def test_a_two_node_cycle() -> None:
    issue = _one(_task("p", after=["q"]), _task("q", after=["p"]))
    assert issue.message == "dependency cycle: p -> q -> p"


@pytest.mark.parametrize(
    "closing",
    [
        {"args": {"x": "${{ nodes.b.output }}"}},
        {"when": "nodes.b.output > 1"},
        {"concurrency": {"key": "string(nodes.b.output)", "limit": 1}},
        {"rate_limit": {"key": "string(nodes.b.output)", "limit": 1}},
    ],
)
def test_a_cycle_through_any_kind_of_reference_is_found(closing: dict[str, Any]) -> None:
    # the graph validation checks is built from the expressions it has read already:
    # every place an expression can sit must still make an edge
    issues = _issues(_task("a", **closing), _task("b", args={"x": "${{ nodes.a.output }}"}))
    assert "dependency cycle: a -> b -> a" in [issue.message for issue in issues]


def test_a_cycle_through_a_handler_is_found() -> None:
    # a handles b's failure (b is its parent) and b reads a's output
    issues = _issues(_task("a"), _task("b", args={"x": "${{ nodes.a.output }}"}, on_failure="a"))
    assert "dependency cycle: a -> b -> a" in [issue.message for issue in issues]


def test_a_cycle_through_a_map_and_an_approval_is_found() -> None:
    approval = {"id": "ok", "kind": "approval", "title": "t",
                "description": "${{ nodes.m.output }}"}  # fmt: skip
    issues = _issues(
        _map("m", "double", "nodes.ok.output.items", "item"),
        approval,
    )
    assert "dependency cycle: m -> ok -> m" in [issue.message for issue in issues]


def test_validation_sees_the_graph_the_spec_has() -> None:
    spec = _spec(
        _task("a", args={"a": "${{ input.count }}"}),
        _map("m", "double", "nodes.a.output", "item", when="nodes.a.output > 0"),
        _task("h", args={"x": "${{ nodes.m.output }}"}, after=["a"]),
        _task("c", on_failure="h", concurrency={"key": "string(nodes.a.output)", "limit": 1}),
        {"id": "ok", "kind": "approval", "title": "t", "description": "${{ nodes.c.output }}"},
        outputs={"last": "nodes.ok.output"},
    )
    validator = _Validator(spec, False, {})
    assert list(validator.run()) == []
    expected = DependencyGraph.from_spec(spec)
    assert (validator.graph.parents, validator.graph.children) == (
        expected.parents,
        expected.children,
    )


def test_one_mismatch_is_reported_at_every_step_that_repeats_it() -> None:
    # the check of a pair of schemas is remembered; each node still gets its issue
    issues = _issues(
        _task("g1", "greet", args={"name": "${{ input.doc }}"}),
        *[_task(f"a{i}", "add", args={"a": f"${{{{ nodes.g{i}.output }}}}"}) for i in (1, 2)],
        _task("g2", "greet", args={"name": "${{ input.doc }}"}),
        resolve=True,
    )
    assert [(issue.code, issue.node) for issue in issues] == [
        ("type_mismatch", "a1"),
        ("type_mismatch", "a2"),
    ]
    assert all("gives string but the parameter expects integer" in i.message for i in issues)


def test_join_one_failed_needs_a_parent() -> None:
    issue = _one(_task("a", join="one_failed"))
    assert issue.code == "join_without_parents"
    assert issue.loc == ("nodes", 0, "join")
    assert "add 'after'" in issue.message
    assert _issues(_task("a"), _task("b", after=["a"], join="one_failed")) == []


# --- after ------------------------------------------------------------------------------------


def test_after_names_an_unknown_node_with_a_suggestion() -> None:
    issue = _one(_task("extract"), _task("b", after=["extrct"]))
    assert issue.code == "unknown_node"
    assert issue.loc == ("nodes", 1, "after", 0)
    assert issue.message == "'after' names unknown node 'extrct' (did you mean 'extract'?)"


def test_after_names_an_unknown_node_without_a_close_match() -> None:
    issue = _one(_task("extract"), _task("b", after=["zzz"]))
    assert issue.message == "'after' names unknown node 'zzz'"


def test_after_names_the_node_itself() -> None:
    issue = _one(_task("a"), _task("b", after=["a", "b"]))
    assert issue.code == "cycle"
    assert issue.loc == ("nodes", 1, "after", 1)
    assert issue.message == "a node cannot run after itself"


# --- expressions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "loc"),
    [
        (_task("a", args={"x": "${{ input.doc + }}"}), ("nodes", 0, "args", "x", "expr")),
        (_task("a", when="input.count >"), ("nodes", 0, "when")),
        (_map("a", "m:f", "input.words[", "w"), ("nodes", 0, "items")),
        (
            _task("a", concurrency={"key": "(input.doc", "limit": 1}),
            ("nodes", 0, "concurrency", "key"),
        ),
    ],
)
def test_unparseable_expression_wherever_it_is(node: dict[str, Any], loc: tuple[Any, ...]) -> None:
    issue = _one(node)
    assert issue.code == "expression_syntax"
    assert issue.loc == loc
    assert issue.node == "a"
    assert "does not parse at 1:" in issue.message


def test_unparseable_output_expression() -> None:
    issue = _one(_task("a"), outputs={"r": "nodes.a.output +"})
    assert issue.code == "expression_syntax"
    assert issue.loc == ("outputs", "r")
    assert issue.node is None


def test_unknown_name_says_what_expressions_can_read() -> None:
    issue = _one(_task("a", when="inptu.count > 1"))
    assert issue.code == "unknown_name"
    assert issue.loc == ("nodes", 0, "when")
    assert "unknown name 'inptu'" in issue.message
    assert "'input'" in issue.message
    assert "'nodes.<id>.output'" in issue.message


def test_unknown_node_with_did_you_mean() -> None:
    issue = _one(_task("extract"), _task("b", args={"x": "${{ nodes.extarct.output }}"}))
    assert issue.code == "unknown_node"
    assert issue.loc == ("nodes", 1, "args", "x", "expr")
    assert "refers to unknown node 'extarct'" in issue.message
    assert "(did you mean 'extract'?)" in issue.message


def test_unknown_node_in_outputs() -> None:
    issue = _one(_task("a"), outputs={"r": "nodes.b.output"})
    assert issue.code == "unknown_node"
    assert issue.loc == ("outputs", "r")


def test_self_reference() -> None:
    issue = _one(_task("a", when="nodes.a.output != null"))
    assert issue.code == "cycle"
    assert issue.node == "a"
    assert "the node's own output" in issue.message


def test_dynamic_node_access() -> None:
    issues = _issues(_task("a"), _task("b", when='nodes[input.doc].output == "x"'))
    assert [issue.code for issue in issues] == ["dynamic_reference"]
    assert "write nodes.<id>.output" in issues[0].message


@pytest.mark.parametrize(
    ("source", "shown"), [("nodes.a.status", "nodes.a.status"), ("nodes.a", "nodes.a")]
)
def test_a_node_itself_or_another_field_is_not_a_value(source: str, shown: str) -> None:
    issue = _one(_task("a"), _task("b", args={"x": "${{ " + source + " }}"}))
    assert issue.code == "unknown_field"
    assert f"'{shown}' is not a value; use nodes.a.output" in issue.message


# --- paths in the input ---------------------------------------------------------------------


def test_unknown_input_field_when_additional_properties_is_false() -> None:
    issue = _one(_task("a", args={"x": "${{ input.claim.idd }}"}))
    assert issue.code == "unknown_field"
    assert issue.loc == ("nodes", 0, "args", "x", "expr")
    assert "input.claim has no field 'idd' (fields: id)" in issue.message


def test_unknown_top_level_input_field() -> None:
    issue = _one(_task("a", when="input.dco == 'x'"))
    assert "input has no field 'dco'" in issue.message
    assert "doc" in issue.message, "the known fields are listed"


def test_open_objects_admit_any_field() -> None:
    assert _issues(_task("a", args={"x": "${{ input.meta.anything.deep }}"})) == []
    assert _issues(_task("a", args={"x": "${{ input.labels.anything }}"})) == []


def test_unknown_input_field_in_outputs() -> None:
    issue = _one(_task("a"), outputs={"r": "input.nope"})
    assert issue.loc == ("outputs", "r")
    assert issue.code == "unknown_field"


# --- arguments against real functions -------------------------------------------------------


def test_without_resolve_tasks_functions_are_not_imported() -> None:
    assert _issues(_task("a", "no.such.module:f", args={"anything": 1})) == []


def test_missing_argument() -> None:
    issue = _one(_task("a", "add", args={"b": 1}), resolve=True)
    assert issue.code == "missing_argument"
    assert issue.loc == ("nodes", 0, "args")
    assert issue.message == f"missing required argument 'a' of {FIXTURES}:add"


def test_unknown_argument_lists_the_parameters() -> None:
    issue = _one(_task("a", "add", args={"a": 1, "c": 2}), resolve=True)
    assert issue.code == "unknown_argument"
    assert issue.loc == ("nodes", 0, "args", "c")
    assert "unknown argument 'c'" in issue.message
    assert "(parameters: a, b)" in issue.message


def test_keyword_arguments_accept_any_name() -> None:
    assert _issues(_task("a", "anything", args={"whatever": 1}), resolve=True) == []


def test_literal_type_mismatch() -> None:
    issue = _one(_task("a", "add", args={"a": "one"}), resolve=True)
    assert issue.code == "type_mismatch"
    assert issue.loc == ("nodes", 0, "args", "a")
    assert issue.message == "argument 'a' gives string but the parameter expects integer"


def test_an_integer_is_accepted_as_a_number() -> None:
    claim = "${{ nodes.e.output }}"
    nodes = (
        _task("e", "extract", args={"document": "x"}),
        _task("s", "score", args={"claim": claim, "weight": 2}),
    )
    assert _issues(*nodes, resolve=True) == []


def test_expression_type_mismatch_from_the_input() -> None:
    issue = _one(_task("a", "add", args={"a": "${{ input.doc }}"}), resolve=True)
    assert issue.code == "type_mismatch"
    assert issue.message == (
        "argument 'a' (input.doc) gives string but the parameter expects integer"
    )


def test_expression_type_mismatch_from_an_upstream_model() -> None:
    issues = _issues(
        _task("e", "extract", args={"document": "${{ input.doc }}"}),
        _task("g", "greet", args={"name": "${{ nodes.e.output.amount }}"}),
        resolve=True,
    )
    assert [(issue.code, issue.node) for issue in issues] == [("type_mismatch", "g")]
    assert "(nodes.e.output.amount) gives number" in issues[0].message


def test_unknown_field_of_an_upstream_model() -> None:
    issues = _issues(
        _task("e", "extract", args={"document": "x"}),
        _task("g", "greet", args={"name": "${{ nodes.e.output.nmae }}"}),
        resolve=True,
    )
    assert [issue.code for issue in issues] == ["unknown_field"]
    assert "nodes.e.output has no field 'nmae' (fields: amount, id, tags)" in issues[0].message


def test_untyped_parameters_accept_anything() -> None:
    assert _issues(_task("a", "untyped", args={"value": {"x": [1]}}), resolve=True) == []


def test_complex_expressions_are_not_type_checked() -> None:
    # only plain paths have a known type; anything computed might be right
    assert _issues(_task("a", "add", args={"a": "${{ size(input.doc) }}"}), resolve=True) == []


def test_signatures_given_by_the_caller_are_used_without_importing() -> None:
    spec = _spec(_task("a", "not.imported:fn", args={"a": "x"}))
    signatures = {"not.imported:fn": signature_of(fixtures_tasks.add)}
    issues = validate(spec, signatures=signatures)
    assert [issue.code for issue in issues] == ["type_mismatch"]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("tests.unit.no_such_module:f", "cannot import module 'tests.unit.no_such_module'"),
        (
            f"{FIXTURES}:no_such_function",
            f"module '{FIXTURES}' has no attribute 'no_such_function'",
        ),
        (f"{FIXTURES}:NOT_A_FUNCTION", "is a int, not a function"),
        ("tests.unit.fixtures_broken:f", "raised RuntimeError: this module fails on import"),
    ],
)
def test_unresolvable_import_path(function: str, expected: str) -> None:
    issue = _one(_task("a", function), resolve=True)
    assert issue.code == "unresolved_task"
    assert issue.loc == ("nodes", 0, "task")
    assert expected in issue.message


# --- map nodes --------------------------------------------------------------------------------


def test_map_item_arg_must_be_a_parameter() -> None:
    issues = _issues(_map("m", "double", "input.numbers", "itme"), resolve=True)
    codes = {issue.code: issue for issue in issues}
    assert codes["unknown_argument"].loc == ("nodes", 0, "item_arg")
    assert "item_arg 'itme' is not a parameter" in codes["unknown_argument"].message
    assert "missing required argument 'item'" in codes["missing_argument"].message


def test_map_item_arg_must_not_be_passed_in_args() -> None:
    issue = _one(_map("m", "double", "input.numbers", "item", args={"item": 1}), resolve=True)
    assert issue.code == "duplicate_argument"
    assert issue.loc == ("nodes", 0, "args", "item")


def test_map_items_must_be_a_list() -> None:
    issue = _one(_map("m", "double", "input.count", "item"), resolve=True)
    assert issue.code == "type_mismatch"
    assert issue.loc == ("nodes", 0, "items")
    assert issue.message == "items gives integer but a map needs array"


def test_map_items_must_suit_the_item_parameter() -> None:
    issue = _one(_map("m", "double", "input.words", "item"), resolve=True)
    assert issue.code == "type_mismatch"
    assert issue.message == "each item gives string but the parameter expects integer"


def test_map_items_from_an_upstream_list() -> None:
    ok = _issues(
        _task("n", "numbers", args={"count": 3}),
        _map("m", "double", "nodes.n.output", "item"),
        resolve=True,
    )
    assert ok == []
    issue = _one(
        _task("w", "words", args={"count": 3}),
        _map("m", "double", "nodes.w.output", "item"),
        resolve=True,
    )
    assert issue.message == "each item gives string but the parameter expects integer"


def test_a_map_output_is_a_list() -> None:
    issue = _one(
        _map("m", "double", "input.numbers", "item"),
        _task("g", "add", args={"a": "${{ nodes.m.output }}"}),
        resolve=True,
    )
    assert (
        issue.message
        == "argument 'a' (nodes.m.output) gives array but the parameter expects integer"
    )


# --- every problem at once ------------------------------------------------------------------


def test_all_problems_are_reported_in_one_call() -> None:
    spec = _spec(
        _task("a", "add", args={"a": "one"}),  # type mismatch
        _task("a", "greet", args={"name": "x"}),  # duplicate id
        _task("b", when="nodes.zz.output"),  # unknown node
        _task("c", after=["d"]),  # cycle c -> d -> c
        _task("d", after=["c"], join="one_failed"),
        _task("e", when="input.x >"),  # syntax
        _task("f", "missing:f"),  # unresolvable
        outputs={"r": "bogus"},  # unknown name
    )
    issues = validate(spec, resolve_tasks=True)
    codes = {issue.code for issue in issues}
    assert {
        "type_mismatch",
        "duplicate_id",
        "unknown_node",
        "cycle",
        "expression_syntax",
        "unresolved_task",
        "unknown_name",
    } <= codes
    assert len(issues) >= 7
    with pytest.raises(SpecError) as raised:
        check(spec, resolve_tasks=True)
    assert raised.value.issues == issues
    assert raised.value.workflow == "w"
    assert f"({len(issues)} problems)" in str(raised.value)


def test_a_spec_without_an_input_schema_accepts_any_input_field() -> None:
    spec = parse_spec(
        {"name": "open", "nodes": [{"id": "a", "task": "m:f", "args": {"x": "${{ input.x.y }}"}}]}
    )
    assert validate(spec) == []


def test_a_mistyped_kind_or_field_is_named_with_what_was_likely_meant() -> None:
    data = {
        "name": "typos",
        "nodes": [
            {"id": "a", "kind": "htttp", "url": "https://example.com"},
            {"id": "b", "kind": "http", "url": "https://example.com", "header": {},
             "retry": {"max_attempt": 2}},
            {"id": "c", "task": "m:f", "circuit": {"zzz": 1}},
        ],
        "triggers": [{"kind": "schedule", "cronn": "0 * * * *"}],
    }  # fmt: skip
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    messages = [issue.message for issue in caught.value.issues]
    assert messages[0].startswith("unknown node kind 'htttp' (did you mean 'http'?): use 'task'")
    assert "unknown field 'header' (did you mean 'headers'?)" in messages
    assert "unknown field 'max_attempt' (did you mean 'max_attempts'?)" in messages
    assert "unknown field 'cronn' (did you mean 'cron'?)" in messages
    (circuit,) = [message for message in messages if "'zzz'" in message]
    assert circuit.startswith("unknown field 'zzz' (known: ")  # no close match: the list
