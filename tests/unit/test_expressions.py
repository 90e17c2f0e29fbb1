"""Expressions: what analysis finds without running them, normalisation, CEL literals."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import ExpressionError
from keel.spec.expressions import analyze, evaluate, literal, normalize

# --- analyze: node references -----------------------------------------------------------


def test_dotted_node_references_and_their_fields() -> None:
    info = analyze("nodes.extract.output.amount > 10 && nodes.score.output > 0.5")
    assert info.node_refs == {"extract", "score"}
    assert info.node_fields == {("extract", "output"), ("score", "output")}
    assert not info.dynamic_node_access
    assert info.free_names == frozenset()


@pytest.mark.parametrize("quote", ['"', "'"])
def test_bracket_node_references(quote: str) -> None:
    info = analyze(f"nodes[{quote}x{quote}].output + nodes[{quote}y{quote}][{quote}output{quote}]")
    assert info.node_refs == {"x", "y"}
    assert info.node_fields == {("x", "output"), ("y", "output")}
    assert not info.dynamic_node_access


def test_a_node_without_a_field_has_an_empty_field() -> None:
    info = analyze("nodes.a")
    assert info.node_refs == {"a"}
    assert info.node_fields == {("a", "")}


def test_a_node_field_other_than_output_is_reported_as_read() -> None:
    assert analyze('nodes.a.status == "ok"').node_fields == {("a", "status")}


def test_text_inside_string_literals_is_not_a_reference() -> None:
    info = analyze('"nodes.ghost.output and foo" + input.x')
    assert info.node_refs == frozenset()
    assert info.free_names == frozenset()
    assert info.paths == {("input", "x")}


def test_comments_are_not_references() -> None:
    info = analyze("input.x // nodes.ghost.output and foo")
    assert info.node_refs == frozenset()
    assert info.free_names == frozenset()


# --- analyze: names ---------------------------------------------------------------------


def test_unknown_root_names_are_free() -> None:
    info = analyze("size(input.items) > limit && inptu.x == 1")
    assert info.free_names == {"limit", "inptu"}


def test_functions_methods_fields_and_keywords_are_not_free() -> None:
    source = 'size(input.name) > 0 && input.name.startsWith("a") && input.t in ["x"] && true'
    info = analyze(source + " && input.u != null && !false")
    assert info.free_names == frozenset()


@pytest.mark.parametrize(
    "source",
    [
        "input.items.map(x, x.price * 2)",
        "input.items.filter(item, item.ok)",
        "input.items.all(i, i > 0)",
        "input.items.exists(i, i == 3)",
        "input.items.exists_one(i, i == 3)",
        "input.scores.all(k, v, v > 1 && k != '')",
    ],
)
def test_variables_bound_by_macros_are_not_free(source: str) -> None:
    assert analyze(source).free_names == frozenset()


def test_a_macro_does_not_hide_other_free_names() -> None:
    assert analyze("input.items.map(x, x * factor)").free_names == {"factor"}


# --- analyze: paths ---------------------------------------------------------------------


def test_paths_follow_fields_indexes_and_string_keys() -> None:
    info = analyze('input.claim.items[0]["sku"].code == nodes.a.output.id')
    assert info.paths == {
        ("input", "claim", "items", 0, "sku", "code"),
        ("nodes", "a", "output", "id"),
    }


def test_a_path_stops_before_a_method_call() -> None:
    info = analyze('input.name.startsWith("a")')
    assert info.paths == {("input", "name")}
    assert info.path is None, "a method call is not a plain path"


def test_a_path_stops_at_a_computed_index() -> None:
    assert analyze("input.items[input.i].x").paths == {("input", "items"), ("input", "i")}


def test_plain_path_only_when_the_whole_expression_is_one() -> None:
    assert analyze("input.claim.id").path == ("input", "claim", "id")
    assert analyze('nodes["a"].output[2]').path == ("nodes", "a", "output", 2)
    assert analyze("input.claim.id + 'x'").path is None
    assert analyze("size(input.x)").path is None
    assert analyze("1").path is None


# --- analyze: dynamic access --------------------------------------------------------------


@pytest.mark.parametrize("source", ["nodes[k].output", "nodes[input.k].output", "size(nodes)"])
def test_nodes_without_a_named_node_is_dynamic(source: str) -> None:
    info = analyze(source)
    assert info.dynamic_node_access
    assert info.node_refs == frozenset()


def test_dynamic_key_names_are_reported_too() -> None:
    assert analyze("nodes[k].output").free_names == {"k"}


def test_method_calls_on_node_outputs_keep_the_reference() -> None:
    info = analyze('nodes.a.output.name.endsWith("x") && nodes.b.output.tags.exists(t, t == 1)')
    assert info.node_refs == {"a", "b"}
    assert not info.dynamic_node_access
    assert info.free_names == frozenset()
    assert info.paths == {("nodes", "a", "output", "name"), ("nodes", "b", "output", "tags")}


# --- syntax errors ------------------------------------------------------------------------


def test_a_syntax_error_carries_line_and_column() -> None:
    with pytest.raises(ExpressionError) as raised:
        analyze("input.x &&\n  (input.y ==")
    error = raised.value
    assert error.line == 2
    assert error.column is not None
    assert error.column >= 1
    assert f"at {error.line}:{error.column}" in str(error)


def test_a_syntax_error_on_the_first_line() -> None:
    with pytest.raises(ExpressionError) as raised:
        analyze("input.x >")
    assert raised.value.line == 1
    assert "does not parse" in str(raised.value)
    assert "expecting {" not in str(raised.value), "the list of expected tokens is noise"


@pytest.mark.parametrize("source", ["", "   ", "\n\t"])
def test_an_empty_expression_is_an_error(source: str) -> None:
    with pytest.raises(ExpressionError, match="empty") as raised:
        analyze(source)
    assert raised.value.line is None


def test_expression_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not parse"):
        analyze("(")


# --- normalize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.x  >  1", "input.x > 1"),
        ("  input.x > 1\n", "input.x > 1"),
        ("input.x >\n\t  1", "input.x > 1"),
        ("a>1", "a>1"),
        ("size( input.x )", "size( input.x )"),
    ],
)
def test_normalize_collapses_runs_of_whitespace(source: str, expected: str) -> None:
    assert normalize(source) == expected


@pytest.mark.parametrize(
    "literal_text",
    ['"a   b"', "'a \t b'", '"""line 1\n   line 2"""', "r'raw   \\n'", '"say \\"hi  there\\""'],
)
def test_normalize_leaves_string_contents_untouched(literal_text: str) -> None:
    assert normalize(f"  {literal_text}   +   input.x ") == f"{literal_text} + input.x"


def test_normalize_is_idempotent_and_keeps_meaning() -> None:
    source = "  [1,   2]\n  .map(x,   x *  2)  "
    once = normalize(source)
    assert normalize(once) == once
    assert evaluate(once, {}) == evaluate(source, {}) == [2, 4]


def test_normalize_drops_comments_instead_of_joining_lines_into_them() -> None:
    source = "1 // the first\n + 2 // the second"
    assert evaluate(source, {}) == 3
    assert normalize(source) == "1 + 2"
    assert evaluate(normalize(source), {}) == 3


def test_normalize_keeps_slashes_inside_strings() -> None:
    source = '"http://x"  +  "/y"'
    assert normalize(source) == '"http://x" + "/y"'
    assert evaluate(normalize(source), {}) == "http://x/y"


# --- evaluate -------------------------------------------------------------------------------


def test_evaluate_reads_input_and_nodes() -> None:
    variables = {"input": {"x": 2}, "nodes": {"a": {"output": {"n": 5}}}}
    assert evaluate("nodes.a.output.n * input.x", variables) == 10
    assert evaluate("nodes.a.output.n > 3 && input.x == 2", variables) is True


def test_evaluate_a_missing_key_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match=r"cannot evaluate 'input\.missing'"):
        evaluate("input.missing", {"input": {}})


def test_evaluate_a_runtime_failure_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="cannot evaluate") as raised:
        evaluate("1 / 0", {})
    assert raised.value.__cause__ is not None, "the original error is kept as the cause"


def test_evaluate_a_syntax_error_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="does not parse") as raised:
        evaluate("1 +", {})
    assert raised.value.line == 1


# --- literal --------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _same(left: Any, right: Any) -> bool:
    """Equal, with the same JSON types all the way down (1 is not 1.0, True is not 1)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, float):
        return repr(left) == repr(right)  # tells -0.0 from 0.0
    return bool(left == right)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_literal_round_trips_through_cel(value: Any) -> None:
    assert _same(evaluate(literal(value), {}), value)


@pytest.mark.parametrize(
    "value",
    ['quote " and backslash \\', "new\nline\ttab\rreturn", "ünïcødé ✓ 😀", "${{ x }}", ""],
)
def test_literal_strings_with_special_characters(value: str) -> None:
    assert evaluate(literal(value), {}) == value


def test_literal_writes_tuples_as_lists_and_keys_as_strings() -> None:
    assert evaluate(literal((1, "a")), {}) == [1, "a"]
    assert evaluate(literal({1: True}), {}) == {"1": True}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), {1, 2}, object()])
def test_literal_rejects_what_cel_cannot_write(value: object) -> None:
    with pytest.raises(ExpressionError, match="cannot"):
        literal(value)


# --- loading CEL ----------------------------------------------------------------------------

_FRESH = """
import json, sys
from keel.spec.expressions import evaluate, check_syntax
check_syntax("size(input.x) > 1")
value = evaluate("input.x.map(v, v * 2)", {"input": {"x": [1, 2]}, "nodes": {}})
loaded = sorted(name for name in sys.modules
                if name.split(".")[0] in ("prompt_toolkit", "pygments", "typer", "cel"))
import cel  # the package still imports afterwards, sharing the compiled module
print(json.dumps({"value": value, "loaded": loaded,
                  "same": cel.compile is sys.modules["cel.cel"].compile,
                  "package": cel.compile("1 + 2").execute({})}))
"""


def test_evaluating_an_expression_loads_only_the_compiled_core_of_cel() -> None:
    # the cel package's __init__ imports its CLI (prompt_toolkit, pygments, typer): up to
    # a second on the first expression of every process, for a REPL keel never uses
    done = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(done.stdout)
    assert result["value"] == [2, 4]
    assert result["loaded"] == ["cel.cel"]
    assert result["same"] is True
    assert result["package"] == 3


def test_a_plan_evaluates_its_expressions_without_compiling_them_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A definition larger than the module's caches (100,000 nodes) must not parse and
    compile each expression again when its node starts: the plan holds them ready."""
    from keel.engine.plan import compile_plan
    from keel.spec import expressions, parse_spec

    spec = parse_spec({
        "name": "prepared",
        "nodes": [
            {"id": "a", "task": "m:f", "args": {"x": "${{ input.n + 1 }}"}},
            {"id": "b", "task": "m:f", "args": {"y": "${{ nodes.a.output }}",
                                                "z": "${{ [nodes.a.output, 2] }}"}},
        ],
    })  # fmt: skip
    plan = compile_plan(spec)
    assert set(plan.expressions) == {"input.n + 1", "nodes.a.output", "[nodes.a.output, 2]"}

    def compiled_again(source: str) -> None:
        raise AssertionError(f"{source!r} was compiled again")

    monkeypatch.setattr(expressions, "compile_expression", compiled_again)
    monkeypatch.setattr(expressions, "_direct_path", compiled_again)
    variables = {"input": {"n": 1}, "nodes": {"a": {"output": 5}}}
    assert plan.evaluate("input.n + 1", variables) == 2
    assert plan.evaluate("nodes.a.output", variables) == 5
    assert plan.evaluate("[nodes.a.output, 2]", variables) == [5, 2]


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("ab1._[]'\"/*+-()<>=!?:,{}\\$# \t\n")), max_size=16))
def test_normalize_without_whitespace_keeps_the_text_as_the_tokenizer_would(source: str) -> None:
    """The shortcut for text without whitespace (most expressions are a plain path)
    gives what collapsing the tokens gives."""
    from keel.spec import expressions

    collapsed = "".join(
        " " if match.lastgroup == "ws" else match.group()
        for match in expressions._TOKEN.finditer(source.strip())
    ).strip()
    assert normalize(source) == collapsed
