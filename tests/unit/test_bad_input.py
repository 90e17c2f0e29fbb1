"""Malformed data and specs are refused with what was wrong, before anything is stored.

``keel.spec.data`` checks JSON data wherever it enters (a run's input, a decision's
data, a signal's payload, an output set by hand, a task's result); YAML that would
expand without end or nest without end is refused while reading; a spec with several
kinds of problems reports them all; two workflows may not share a name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import keel
from keel.authoring.loading import load_all
from keel.authoring.yaml_source import load_yaml
from keel.errors import InputError, SpecError
from keel.runtime.client import Client
from keel.runtime.execution.invoke import Invocation, TaskCatalog, make_context
from keel.runtime.operations.interventions import approve, send_signal
from keel.spec.data import MAX_DEPTH, check_json, json_problem, loads
from keel.store.protocol import Store
from keel.store.sqlite import SQLiteStore
from tests.postgres import PostgresStore, open_postgres


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# --- one check for JSON data -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (nested(10_000), f"nested more than {MAX_DEPTH} levels deep at [0][0]"),
        ({"a": {"b": "x\ud800"}}, "text with a lone surrogate ('\\ud800'), which is not valid"),
        ({"a\udcff": 1}, "a key with text with a lone surrogate"),
        ({"n": 10**5000}, "an integer with more than 4300 digits at n"),
        ([1.0, float("nan")], "nan, which JSON cannot hold (use a finite number or null) at [1]"),
        ({1: "a"}, "the key 1, which is not text"),
        ({"when": object()}, "a object, which is not JSON data at when"),
    ],
)
def test_json_problem_names_what_and_where(value: Any, expected: str) -> None:
    problem = json_problem(value)
    assert problem is not None
    assert expected in problem, problem


def test_good_json_data_passes() -> None:
    value = {"a": [1, 2.5, "é", None, True, {"b": nested(MAX_DEPTH - 3)}], "big": 2**100}
    assert json_problem(value) is None
    assert check_json(value, "x") is value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 10_000 + "]" * 10_000, "--input holds lists or objects nested more than 100"),
        ("[" * 150 + "]" * 150, "--input holds lists or objects nested more than 100"),
        ("9" * 5000, "--input holds an integer with more than 4300 digits"),
        ('"\\ud800"', "--input holds text with a lone surrogate"),
        ("NaN", "--input holds nan, which JSON cannot hold"),
    ],
)
def test_loads_refuses_what_cannot_be_stored(text: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        loads(text, "--input")
    assert expected in str(caught.value)


def test_loads_leaves_syntax_errors_to_the_caller() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("not json", "--input")


# --- every entry point, on both stores -------------------------------------------------------


@keel.task
def echo(value: Any) -> Any:
    return value


@keel.workflow
def takes_anything(value: Any) -> Any:
    return echo(value)


@keel.workflow
def gated() -> Any:
    decided = keel.approval("Gate", id="gate")
    return keel.signal("go", id="go", after=[decided])


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = (
        SQLiteStore(tmp_path / "keel.db") if request.param == "sqlite" else open_postgres()
    )
    yield opened
    opened.close()
    if isinstance(opened, PostgresStore):
        opened.drop_schema()


BAD_VALUES = [nested(10_000), "lone \udc80", 10**5000, float("inf")]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=["deep", "surrogate", "digits", "infinity"])
def test_no_entry_point_records_data_the_store_cannot_hold(store: Store, bad: Any) -> None:
    client = Client(store=store)
    with pytest.raises(InputError, match="the input of workflow 'takes_anything' holds"):
        client.start(takes_anything, {"value": bad})
    assert store.list_runs() == []

    run_id = client.start(gated)
    before = len(store.history(run_id))
    with pytest.raises(InputError, match="the data for approval 'gate' holds"):
        approve(store, run_id, "gate", data={"x": bad})
    with pytest.raises(InputError, match="the data of signal 'go' holds"):
        send_signal(store, run_id, "go", bad)
    assert len(store.history(run_id)) == before
    assert [run.id for run in store.list_runs()] == [run_id]


# --- YAML that never ends --------------------------------------------------------------------


def yaml_issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_yaml(path)
    return [str(issue).replace(f"{tmp_path}/", "") for issue in caught.value.issues]


BOMB = "name: bomb\nlol: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"l{level}: &{chr(98 + level)} [{', '.join([f'*{chr(97 + level)}'] * 9)}]\n"
    for level in range(9)
)


#: the same with ``<<`` merges, each level defined inside the first merge of the next, so
#: that merging the outermost would expand everything before any value is built
_INNER = "&l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"
for _level in range(1, 8):
    _INNER = f"&l{_level} {{<<: [{_INNER}, {', '.join([f'*l{_level - 1}'] * 8)}]}}"
MERGE_BOMB = f"name: bomb\ntop: {{<<: [{_INNER}, {', '.join(['*l7'] * 8)}]}}\n"


@pytest.mark.parametrize("bomb", [BOMB, MERGE_BOMB], ids=["aliases", "merges"])
def test_a_yaml_alias_bomb_is_refused_instead_of_expanded(tmp_path: Path, bomb: str) -> None:
    (issue,) = yaml_issues(tmp_path, bomb + "nodes: []\n")
    assert issue.startswith("flow.yaml:1:1: the document expands to ")
    assert "values (aliases of aliases?); a workflow needs far fewer than 100,000" in issue


@pytest.mark.parametrize("depth", [150, 10_000])
def test_deeply_nested_yaml_is_refused(tmp_path: Path, depth: int) -> None:
    text = "name: deep\nnodes:\n  - id: a\n    task: m:f\n    args:\n      x: "
    (issue,) = yaml_issues(tmp_path, text + "[" * depth + "]" * depth + "\n")
    assert "values nested more than 100 levels deep" in issue


def test_a_yaml_alias_to_the_value_containing_it_is_refused(tmp_path: Path) -> None:
    (issue,) = yaml_issues(tmp_path, "name: t\nnodes: &x [*x]\n")
    assert "flow.yaml:2:8: a YAML alias refers to itself" in issue


# --- every problem of a spec at once ---------------------------------------------------------


def test_structural_and_semantic_problems_are_reported_together(tmp_path: Path) -> None:
    issues = yaml_issues(
        tmp_path,
        "name: both\n"
        "input_schema: {type: object, properties: {n: {type: integr}}}\n"
        "nodes:\n"
        "  - id: fetch\n"
        "    task: os:getcwd\n"
        "    timeout: -5s\n"  # structural: not positive
        "  - id: use\n"
        "    task: os:getcwd\n"
        "    after: [nowhere]\n"  # semantic: unknown node
        "    when: nodes.fetch.output > input.n\n"  # fine: fetch is broken, not missing
        "  - id: check\n"
        "    task: os:getcwd\n"
        "    unknown_field: 1\n"  # structural
        "    after: [fetchh]\n"  # and semantic, in the same node
        "  - id: loop_a\n"
        "    task: os:getcwd\n"
        "    after: [loop_b]\n"
        "  - id: loop_b\n"
        "    task: os:getcwd\n"
        "    after: [loop_a]\n"  # semantic: a cycle
        "outputs: {x: 'nodes.use.output +'}\n",  # semantic: does not parse
    )
    assert issues == [
        "flow.yaml:2:53: input_schema.properties.n.type: input_schema is not a valid JSON "
        "Schema: 'integr' is not valid under any of the given schemas (JSON types: string, "
        "number, integer, boolean, object, array, null)",
        "flow.yaml:6:14: node 'fetch', timeout: Input should be greater than 0",
        "flow.yaml:9:13: node 'use', after.0: 'after' names unknown node 'nowhere'",
        "flow.yaml:13:5: node 'check', unknown_field: unknown field 'unknown_field'",
        "flow.yaml:14:13: node 'check', after.0: 'after' names unknown node 'fetchh' (did you "
        "mean 'fetch'?)",
        "flow.yaml:15:5: node 'loop_a': dependency cycle: loop_a -> loop_b -> loop_a",
        "flow.yaml:21:14: outputs.x: expression does not parse at 1:19: Syntax error: "
        "mismatched input '<EOF>' in 'nodes.use.output +'",
    ]


def test_a_broken_field_of_a_node_still_lets_its_other_fields_be_checked(tmp_path: Path) -> None:
    issues = yaml_issues(
        tmp_path,
        "name: greeting\n"
        "nodes:\n"
        "  - {id: greet, task: os:getcwd}\n"
        "  - id: shout\n"
        "    task: os:path.join\n"
        "    join: sometimes\n"  # structural: not a join rule
        "    timeout: forever\n"  # structural: not a duration
        "    args: {a: '${{ nodes.gret.output }}'}\n"  # semantic, in the same node
        "  - id: wait\n"
        "    kind: approval\n"
        "    title: Check\n"
        "    timeout: -1h\n"  # structural: not positive
        "    description: '${{ nodes.shot.output }}'\n",  # semantic, in the same node
    )
    assert issues == [
        "flow.yaml:6:11: node 'shout', join: Input should be 'none_failed', 'all_succeeded', "
        "'one_succeeded', 'all_done' or 'one_failed'",
        "flow.yaml:7:14: node 'shout', timeout: cannot read duration 'forever': use forms "
        "like '30s', '5m', '1h30m', '2d', '250ms', an ISO 8601 duration such as 'PT5M', or a "
        "number of seconds",
        "flow.yaml:8:15: node 'shout', args.a.expr: 'nodes.gret.output' refers to unknown "
        "node 'gret' (did you mean 'greet'?)",
        "flow.yaml:12:14: node 'wait', timeout: Input should be greater than 0",
        "flow.yaml:13:18: node 'wait', description: 'nodes.shot.output' refers to unknown "
        "node 'shot' (did you mean 'shout'?)",
    ]


def test_a_broken_name_still_lets_the_nodes_be_checked(tmp_path: Path) -> None:
    issues = yaml_issues(tmp_path, "name: 9 lives\nnodes:\n  - {id: a, task: m:f, after: [b]}\n")
    assert len(issues) == 2
    assert "name: '9 lives' is not a valid name" in issues[0]
    assert "'after' names unknown node 'b'" in issues[1]


# --- one name, one workflow ------------------------------------------------------------------


def test_two_workflows_with_one_name_in_a_yaml_file_are_refused(tmp_path: Path) -> None:
    issues = yaml_issues(
        tmp_path,
        "name: same\nnodes: [{id: a, task: m:f}]\n---\nname: same\nnodes: [{id: b, task: m:f}]\n",
    )
    assert issues == [
        "flow.yaml:4:7: name: workflow name 'same' is used already at flow.yaml:1: give "
        "each workflow its own name"
    ]


def test_two_workflows_with_one_name_in_a_module_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice_named.py"
    path.write_text(
        "import keel\n\n@keel.task\ndef f() -> int:\n    return 1\n\n"
        "@keel.workflow(name='same')\ndef first() -> int:\n    return f()\n\n"
        "@keel.workflow(name='same')\ndef second() -> int:\n    return f()\n\n"
        "alias = first\n"
    )
    with pytest.raises(SpecError) as caught:
        load_all(str(path))
    assert f"two workflows are named 'same': {path}:7 and {path}:11" in str(caught.value)


# --- results checked against their return annotation ------------------------------------------


class Decision(BaseModel):
    approved: bool
    payout: float


@keel.task
def returns_bad_decision() -> Decision:
    return {"approved": True, "payout": "n/a"}  # type: ignore[return-value]


@keel.task
def returns_good_decision() -> Decision:
    return Decision(approved=False, payout=0)


@keel.task
def returns_something_but_says_none() -> None:
    return 3  # type: ignore[return-value]


@keel.task
def returns_an_object_for_an_int() -> int:
    return {"a": 1, "b": None, "c": True}  # type: ignore[return-value]


@keel.task
def returns_too_deep() -> Any:
    return nested(MAX_DEPTH + 1)


@keel.task
def unannotated():  # type: ignore[no-untyped-def]
    return {"anything": "goes"}


def invoke(name: str, isolation: str = "thread") -> Any:
    ctx = make_context("run", "wf", "node", 1, None)
    invocation = Invocation(TaskCatalog(), f"{__name__}:{name}", {}, ctx, isolation=isolation)
    return invocation.run() if isolation == "thread" else invocation.run_in_process(60)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_result_its_return_type_refuses_fails_the_attempt_for_good(isolation: str) -> None:
    outcome = invoke("returns_bad_decision", isolation)
    assert outcome.error is not None
    assert outcome.error.type == "ResultTypeError"
    assert not outcome.error.retryable
    assert outcome.error.message == (
        f"task '{__name__}:returns_bad_decision' returned what its return type Decision "
        "refuses: payout: Input should be a valid number, unable to parse string as a "
        'number (got "n/a")'
    )


def test_results_are_checked_as_declared_and_recorded_as_returned() -> None:
    assert invoke("returns_good_decision").output == {"approved": False, "payout": 0.0}
    assert invoke("unannotated").output == {"anything": "goes"}
    said_none = invoke("returns_something_but_says_none").error
    assert said_none is not None
    assert "its return type None refuses: Input should be None (got 3)" in said_none.message
    an_object = invoke("returns_an_object_for_an_int").error
    assert an_object is not None  # what was given is shown as JSON, not as a Python repr
    assert 'Input should be a valid integer (got {"a": 1, "b": null, "c": true})' in (
        an_object.message
    )
    too_deep = invoke("returns_too_deep").error
    assert too_deep is not None
    assert too_deep.type == "ResultNotJSON"
    assert "nested more than 100 levels deep" in too_deep.message
