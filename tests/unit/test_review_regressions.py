"""Regressions for problems found in review: each test failed before its fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import keel
from keel.errors import TracingError
from keel.spec.expressions import analyze, normalize


class Tricky(BaseModel):
    expression: str
    node_id: str


@keel.task
def make() -> Tricky:
    return Tricky(expression="e", node_id="n")


@keel.task
def use(a: str, b: str) -> str:
    return a + b


@keel.task
def step(x: int) -> int:
    return x


@keel.task(name="fetch")
def get(x: int) -> int:
    return x


def test_a_macro_variable_named_nodes_does_not_hide_real_references() -> None:
    info = analyze("[1, 2].exists(nodes, nodes > 1) && nodes.a.output > 0")
    assert info.node_refs == {"a"}


def test_a_macro_variable_is_unknown_outside_its_macro() -> None:
    assert analyze("[1, 2].map(x, x + 1) + [x]").free_names == {"x"}


def test_raw_strings_ending_in_a_backslash_are_one_token() -> None:
    assert analyze('input.path.endsWith(r"\\") && input.q == "a  b"').free_names == set()
    assert normalize('r"\\"  +  "a  b"') == 'r"\\" + "a  b"'


def test_fields_named_like_value_internals_are_fields() -> None:
    @keel.workflow
    def tricky() -> str:
        made = make()
        return use(made.expression, made.node_id)

    args = tricky.spec.node("use").args
    assert args["a"].model_dump() == {"expr": "nodes.make.output.expression"}
    assert args["b"].model_dump() == {"expr": "nodes.make.output.node_id"}


def test_and_with_a_number_is_refused() -> None:
    with pytest.raises(TracingError, match="put parentheses"):

        @keel.workflow
        def precedence(vip: bool) -> int:
            score = step(1)
            return step.options(when=score > 0.8 & ~vip)(2)  # type: ignore[operator]


def test_conditions_add_up_instead_of_replacing_each_other() -> None:
    @keel.workflow
    def both(a: int) -> int:
        return step.options(when=keel.expr("a < 5", a=a))(a, when=keel.expr("a > 1", a=a))

    assert both.spec.node("step").when == "(input.a < 5) && (input.a > 1)"


def test_retries_keep_the_tasks_backoff() -> None:
    policy = keel.RetryPolicy(initial_backoff=10, max_backoff=600)
    slow = keel.task(retry=policy)(_slow_body)
    retry = slow.options(retries=4).options_.retry
    assert retry is not None
    assert (retry.max_attempts, retry.initial_backoff, retry.max_backoff) == (5, 10, 600)


def _slow_body(x: int) -> int:
    return x


@pytest.mark.parametrize("after", ["step", ("step",)])
def test_after_accepts_one_id_or_several(after: Any) -> None:
    @keel.workflow
    def ordered(x: int) -> int:
        step(x)
        return keel.map(get, [1, 2], after=after)  # type: ignore[return-value]

    assert ordered.spec.node("fetch").after == ("step",)


def test_a_named_task_can_be_used_twice() -> None:
    @keel.workflow
    def twice(x: int) -> int:
        get(x)
        return get(x)

    assert [node.id for node in twice.spec.nodes] == ["fetch", "fetch_2"]


# --- loading and YAML robustness ------------------------------------------------------------


def _yaml_issues(tmp_path: Any, text: str | bytes) -> list[str]:
    from keel.authoring.yaml_source import load_yaml
    from keel.errors import SpecError

    path = tmp_path / "flow.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_yaml(path)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: t\nnodes:\n  - id: a\n    task: !foo x\n", "could not determine a constructor"),
        ("name: t\nnodes:\n  - id: !!int abc\n", "cannot read 'abc'"),
        ("a: &x [*x]\n", "refers to itself"),
        (b"name: t\nnodes: [\xff]\n", "not UTF-8"),
        ("name: t\x07\n", "unacceptable character"),
        ("name: t\nnodes:\n  - id: a\n    task: m:f\n    args: {x: .nan}\n", "cannot be stored"),
    ],
)
def test_unreadable_yaml_is_a_spec_error_not_a_crash(
    tmp_path: Any, text: str | bytes, expected: str
) -> None:
    issues = _yaml_issues(tmp_path, text)
    assert any(expected in issue for issue in issues), issues


def test_a_file_named_like_another_module_is_refused(tmp_path: Any) -> None:
    from keel.authoring.loading import load_all
    from keel.errors import WorkflowNotFoundError

    (tmp_path / "json.py").write_text("X = 1\n")
    with pytest.raises(WorkflowNotFoundError, match="rename the file"):
        load_all(str(tmp_path / "json.py"))
    import json

    assert hasattr(json, "dumps"), "the real json module is untouched"


def test_nan_from_python_is_refused_with_the_node_named() -> None:
    from keel.errors import SpecError

    with pytest.raises(SpecError, match=r"node 'step', args\.x\.value: nan cannot be stored"):

        @keel.workflow
        def not_a_number() -> int:
            return step(float("nan"))  # type: ignore[arg-type]


def test_template_braces_in_an_expression_field_get_a_plain_hint() -> None:
    from keel.spec import parse_spec, validate

    spec = parse_spec(
        {"name": "t", "nodes": [{"id": "a", "task": "m:f", "when": "${{ input.x > 1 }}"}]}
    )
    (issue,) = validate(spec)
    assert "already an expression; write it without ${{ }}" in issue.message


def test_title_keys_inside_default_values_are_kept() -> None:
    @keel.workflow
    def titled(meta: dict[str, Any] = {"title": "Report", "n": 1}) -> int:  # noqa: B006
        return step(1)

    assert titled.spec.input_schema["properties"]["meta"]["default"] == {"title": "Report", "n": 1}


def test_yaml_merge_keys_can_be_overridden(tmp_path: Any) -> None:
    from keel.authoring.yaml_source import load_yaml

    path = tmp_path / "merge.yaml"
    path.write_text(
        "name: m\nnodes:\n  - &base {id: a, task: 'json:dumps', timeout: 5s}\n"
        "  - <<: *base\n    id: b\n"
    )
    (spec,) = load_yaml(path)
    assert [(node.id, node.timeout) for node in spec.nodes] == [("a", 5.0), ("b", 5.0)]
