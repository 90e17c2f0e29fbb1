"""Authoring in Python: ``@keel.task`` and ``@keel.workflow`` trace a function into a spec.

Tasks are defined at module level (a node names its function as ``module:qualname``);
workflows are defined inside the tests, since tracing happens when the decorator runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import keel
from keel.authoring.workflows import input_schema
from keel.errors import KeelError, SpecError, TracingError
from keel.spec.graph import DependencyGraph
from keel.spec.model import ExprArg, LiteralArg, MapNode, TaskNode, WorkflowSpec

HERE = __name__


class Claim(BaseModel):
    id: str
    amount: float


@keel.task
def extract(document: str) -> Claim:
    """Read a claim from a document."""
    return Claim(id=document, amount=float(len(document)))


@keel.task(retries=3, timeout="30s")
def score(claim: Claim) -> float:
    return claim.amount / 10


@keel.task
def notify(message: str, level: int = 0) -> None:
    return None


@keel.task
def double(item: int, factor: int = 2) -> int:
    return item * factor


@keel.task
def numbers(count: int) -> list[int]:
    return list(range(count))


@keel.task(name="combined", queue="math", priority=5)
def combine(a: float, b: float) -> float:
    return a + b


@keel.task
def no_parameters() -> int:
    return 1


def _node(spec: WorkflowSpec, node_id: str) -> TaskNode | MapNode:
    return spec.node(node_id)


def _arg(spec: WorkflowSpec, node_id: str, name: str) -> ExprArg | LiteralArg:
    return _node(spec, node_id).args[name]


# --- @keel.task -------------------------------------------------------------------------------


def test_a_bare_task_keeps_its_function() -> None:
    assert isinstance(extract, keel.Task)
    assert extract.name == "extract"
    assert extract.import_path == f"{HERE}:extract"
    assert extract.__name__ == "extract"
    assert extract.__doc__ == "Read a claim from a document."
    assert extract.options_.retry is None
    assert extract.options_.fields.get("timeout") is None


def test_task_options_from_the_decorator() -> None:
    assert score.options_.retry is not None
    assert score.options_.retry.max_attempts == 4, "retries=3 is three more after the first"
    assert score.options_.fields.get("timeout") == 30.0
    assert combine.name == "combined"
    fields = combine.options_.fields
    assert (fields.get("queue"), fields.get("priority")) == ("math", 5)


@pytest.mark.parametrize("retries", [-1, 1.5, True])
def test_retries_must_be_a_whole_number(retries: Any) -> None:
    with pytest.raises(ValueError, match="retries: must be a whole number"):
        keel.task(retries=retries)


def test_a_task_cannot_be_decorated_twice() -> None:
    with pytest.raises(TracingError, match="already a keel task"):
        keel.task(extract)


def test_calling_a_task_outside_a_workflow_calls_the_function() -> None:
    assert extract("abcd") == Claim(id="abcd", amount=4.0)
    assert score(Claim(id="x", amount=5.0)) == 0.5
    assert double(3) == 6
    assert double(3, factor=5) == 15
    assert combine(1.0, b=2.0) == 3.0


def test_options_returns_a_changed_copy() -> None:
    changed = score.options(id="first", retries=0, queue="slow")
    assert changed.name == "first"
    assert changed.import_path == score.import_path
    assert changed.options_.retry is not None
    assert changed.options_.retry.max_attempts == 1
    assert changed.options_.fields.get("queue") == "slow"
    assert changed.options_.fields.get("timeout") == 30.0, "settings not given are kept"
    assert score.name == "score"
    assert score.options_.fields.get("queue") is None, "the original is unchanged"


# --- tracing a workflow ---------------------------------------------------------------------


def test_a_traced_workflow_infers_dependencies_from_data() -> None:
    @keel.workflow
    def claims(document: str) -> Any:
        claim = extract(document)
        high = score(claim)
        low = combine(claim.amount, 1.0)
        return combine.options(id="total")(high, low)

    spec = claims.spec
    assert isinstance(claims, keel.Workflow)
    assert [node.id for node in spec.nodes] == ["extract", "score", "combined", "total"]
    assert _node(spec, "extract").task == f"{HERE}:extract"
    assert _arg(spec, "extract", "document") == ExprArg(expr="input.document")
    assert _arg(spec, "score", "claim") == ExprArg(expr="nodes.extract.output")
    assert _arg(spec, "combined", "a") == ExprArg(expr="nodes.extract.output.amount")
    assert _arg(spec, "combined", "b") == LiteralArg(value=1.0)
    graph = DependencyGraph.from_spec(spec)
    assert graph.parents == {
        "extract": [],
        "score": ["extract"],
        "combined": ["extract"],
        "total": ["score", "combined"],
    }
    assert "combined" not in graph.children["score"], "parallel branches have no edge"
    assert "score" not in graph.children["combined"]
    assert spec.outputs == {"result": "nodes.total.output"}


@keel.task
def _positional_first(a: int, /, b: int, c: int = 0) -> int:
    return a + b + c


@keel.task
def _keyword_only(a: int, *, b: int = 0) -> int:
    return a + b


def _takes_later(value: _Later) -> int:  # type: ignore[name-defined]  # noqa: F821
    return 0


def test_a_step_whose_hints_resolve_later_is_checked_once_they_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a task's signature is read once, but only once its type hints resolve
    monkeypatch.delitem(globals(), "_Later", raising=False)
    step = keel.task(_takes_later)

    @keel.workflow
    def before(text: str) -> Any:
        return step(text)

    assert before.spec.nodes  # no type known yet: accepted
    monkeypatch.setitem(globals(), "_Later", int)
    with pytest.raises(SpecError, match="gives string but the parameter expects integer"):

        @keel.workflow
        def after(text: str) -> Any:
            return step(text)

    assert step.signature() is step.signature()


def test_values_passed_by_position_bind_to_the_parameters_in_order() -> None:
    @keel.workflow
    def flow(x: int) -> Any:
        one = _positional_first(x, 2)
        return _positional_first(one, x, 3)

    spec = flow.spec
    assert dict(spec.nodes[0].args) == {"a": ExprArg(expr="input.x"), "b": LiteralArg(value=2)}
    assert dict(spec.nodes[1].args) == {
        "a": ExprArg(expr="nodes._positional_first.output"),
        "b": ExprArg(expr="input.x"),
        "c": LiteralArg(value=3),
    }
    with pytest.raises(TracingError, match="too many positional arguments"):
        keel.workflow(lambda x: _positional_first(x, 1, 2, 3))  # type: ignore[call-arg]
    with pytest.raises(TracingError, match="too many positional arguments"):
        keel.workflow(lambda x: _keyword_only(x, 1))  # type: ignore[misc]


def test_policies_of_a_task_reach_its_node() -> None:
    @keel.workflow
    def flow(document: str) -> Any:
        return score(extract(document))

    node = _node(flow.spec, "score")
    assert node.retry is not None
    assert node.retry.max_attempts == 4
    assert node.timeout == 30.0
    assert _node(flow.spec, "extract").retry is None


def test_the_workflow_is_named_and_described_by_its_function() -> None:
    @keel.workflow
    def intake(document: str) -> None:
        """Take a claim in."""
        extract(document)

    assert intake.name == intake.spec.name == "intake"
    assert intake.spec.description == "Take a claim in."
    assert intake.version == intake.spec.version


def test_workflow_options_reach_the_spec() -> None:
    @keel.workflow(
        name="custom-name",
        description="explicit",
        max_parallel=3,
        deadline="1h",
        defaults=keel.NodeDefaults(queue="bulk"),
        triggers=[keel.ScheduleTrigger(cron="0 * * * *")],
    )
    def flow(document: str = "") -> None:  # a schedule without input: none is required
        extract(document)

    spec = flow.spec
    assert (spec.name, spec.description, spec.max_parallel) == ("custom-name", "explicit", 3)
    assert spec.deadline == 3600.0
    assert spec.defaults.queue == "bulk"
    assert spec.triggers == (keel.ScheduleTrigger(cron="0 * * * *"),)


def test_a_workflow_is_not_called_directly() -> None:
    @keel.workflow
    def flow(document: str) -> None:
        extract(document)

    with pytest.raises(KeelError, match="keel run"):
        flow("x")


def test_tracing_is_deterministic() -> None:
    def body(document: str) -> Any:
        return {"claim": extract(document), "score": score(extract(document))}

    assert keel.workflow(body).version == keel.workflow(body).version


# --- the input schema -----------------------------------------------------------------------


def test_input_schema_from_parameters_and_models() -> None:
    @keel.workflow
    def flow(document: str, claim: Claim, limit: int = 3, anything=None) -> None:  # type: ignore[no-untyped-def]
        notify(document, level=limit)
        score(claim)

    schema = flow.spec.input_schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["document", "claim"]
    properties = schema["properties"]
    assert properties["document"] == {"type": "string"}
    assert properties["limit"] == {"type": "integer", "default": 3}
    assert properties["claim"] == {"$ref": "#/$defs/Claim"}
    assert schema["$defs"]["Claim"]["properties"] == {
        "id": {"type": "string"},
        "amount": {"type": "number"},
    }
    assert "title" not in schema
    assert "title" not in schema["$defs"]["Claim"], "titles are noise in versions"


def _defaulted(limit: int = 1) -> None: ...
def _defaulted_true(limit: int = True) -> None: ...
def _defaulted_float(limit: int = 1.0) -> None: ...  # type: ignore[assignment]
def _defaulted_negative_zero(limit: float = -0.0) -> None: ...
def _defaulted_text(limit: str = "1") -> None: ...


def test_input_schemas_built_once_still_follow_every_hint_and_default() -> None:
    # schemas are remembered by their hints and defaults: equal-looking defaults of
    # other types, or other hints, must not get a schema built for another function
    expected = [
        (_defaulted, {"type": "integer", "default": 1}),
        (_defaulted_true, {"type": "integer", "default": True}),
        (_defaulted_float, {"type": "integer", "default": 1.0}),
        (_defaulted_negative_zero, {"type": "number", "default": -0.0}),
        (_defaulted_text, {"type": "string", "default": "1"}),
    ]
    for _ in range(2):
        for function, limit in expected:
            function.__name__ = "same_name"
            schema = input_schema(function)
            assert schema["properties"]["limit"] == limit
            assert repr(schema["properties"]["limit"]["default"]) == repr(limit["default"])
            schema["properties"]["limit"]["default"] = "changed by the caller"


def test_a_property_named_title_is_kept() -> None:
    @keel.workflow
    def flow(title: str) -> None:
        notify(title)

    assert flow.spec.input_schema["properties"] == {"title": {"type": "string"}}


def test_variadic_workflow_parameters_are_refused() -> None:
    def flow(*documents: str) -> None:
        return None

    with pytest.raises(TracingError, match="name every input"):
        keel.workflow(flow)


# --- conditions and ordering ----------------------------------------------------------------


def test_keel_when_guards_the_nodes_inside_its_block() -> None:
    @keel.workflow
    def flow(document: str) -> None:
        claim = extract(document)
        risk = score(claim)
        with keel.when(risk > 0.5):
            notify("high")
            with keel.when(claim.amount >= 100):
                notify("very high")
        notify("done")

    spec = flow.spec
    assert _node(spec, "notify").when == "nodes.score.output > 0.5"
    assert _node(spec, "notify_2").when == (
        "(nodes.score.output > 0.5) && (nodes.extract.output.amount >= 100)"
    )
    assert _node(spec, "notify_3").when is None
    assert DependencyGraph.from_spec(spec).parents["notify_2"] == ["extract", "score"]


def test_when_keyword_and_block_combine() -> None:
    @keel.workflow
    def flow(document: str, urgent: bool) -> None:
        risk = score(extract(document))
        notify("a", when=risk < 0.1)
        with keel.when(urgent == True):  # noqa: E712 - builds an expression
            notify("b", when="input.document != ''")

    spec = flow.spec
    assert _node(spec, "notify").when == "nodes.score.output < 0.1"
    assert _node(spec, "notify_2").when == "(input.urgent == true) && (input.document != '')"


def test_conditions_compose_with_operators() -> None:
    @keel.workflow
    def flow(document: str, tier: str) -> None:
        risk = score(extract(document))
        notify(
            "a",
            when=(risk > 0.5) & ~keel.expr('t in ["gold", "platinum"]', t=tier) | (risk == None),  # noqa: E711
        )

    assert _node(flow.spec, "notify").when == (
        '((nodes.score.output > 0.5) && !(input.tier in ["gold", "platinum"]))'
        " || (nodes.score.output == null)"
    )


def test_a_step_used_again_after_an_explicit_id_took_its_next_number_skips_it() -> None:
    @keel.workflow
    def flow() -> None:
        notify("a")
        notify("b")
        notify.options(id="notify_3")("c")
        notify("d")
        notify("e")

    messages = {
        node.id: node.args["message"].value  # type: ignore[union-attr]
        for node in flow.spec.nodes
    }
    assert messages == {"notify": "a", "notify_2": "b", "notify_3": "c", "notify_4": "d",
                        "notify_5": "e"}  # fmt: skip


def test_after_adds_order_without_data() -> None:
    @keel.workflow
    def flow(document: str) -> None:
        first = notify("first")
        second = notify("second", after=[first])
        notify("third", after=second)
        notify("fourth", after=["notify", "notify_2"])
        extract(document)

    spec = flow.spec
    assert _node(spec, "notify_2").after == ("notify",)
    assert _node(spec, "notify_3").after == ("notify_2",)
    assert _node(spec, "notify_4").after == ("notify", "notify_2")
    assert _node(spec, "notify").args == {"message": LiteralArg(value="first")}


def test_after_takes_only_steps_or_ids() -> None:
    def flow(document: str) -> None:
        claim = extract(document)
        notify("x", after=[claim.id])

    with pytest.raises(TracingError, match="after= takes"):
        keel.workflow(flow)


# --- node ids -------------------------------------------------------------------------------


def test_repeated_calls_get_numbered_ids() -> None:
    @keel.workflow
    def flow(a: str, b: str, c: str) -> None:
        extract(a)
        extract(b)
        extract(c)

    assert [node.id for node in flow.spec.nodes] == ["extract", "extract_2", "extract_3"]


def test_an_explicit_duplicate_id_is_an_error() -> None:
    def flow(a: str, b: str) -> None:
        extract.options(id="read")(a)
        extract.options(id="read")(b)

    with pytest.raises(TracingError, match="already has a node with id 'read'"):
        keel.workflow(flow)


def test_an_automatic_id_steps_around_explicit_ones() -> None:
    @keel.workflow
    def flow(a: str, b: str) -> None:
        extract.options(id="extract")(a)
        extract(b)

    assert [node.id for node in flow.spec.nodes] == ["extract", "extract_2"]


# --- keel.map -------------------------------------------------------------------------------


def test_map_defaults_item_arg_to_the_first_free_parameter() -> None:
    @keel.workflow
    def flow(count: int) -> Any:
        values = numbers(count)
        return keel.map(double, values, args={"factor": 3})

    node = _node(flow.spec, "double")
    assert isinstance(node, MapNode)
    assert node.items == "nodes.numbers.output"
    assert node.item_arg == "item"
    assert node.args == {"factor": LiteralArg(value=3)}
    assert flow.spec.outputs == {"result": "nodes.double.output"}
    assert DependencyGraph.from_spec(flow.spec).parents["double"] == ["numbers"]


def test_map_skips_parameters_fixed_by_args() -> None:
    @keel.workflow
    def flow(factors: list[int]) -> Any:
        return keel.map(double, factors, args={"item": 10}, id="scaled", max_parallel=2)

    node = _node(flow.spec, "scaled")
    assert isinstance(node, MapNode)
    assert node.item_arg == "factor"
    assert node.items == "input.factors"
    assert node.max_parallel == 2


def test_map_with_explicit_item_arg_and_a_constant_list() -> None:
    @keel.workflow
    def flow(count: int) -> Any:
        return keel.map(double, [1, 2, count], item_arg="item", when=count > 0)

    node = _node(flow.spec, "double")
    assert isinstance(node, MapNode)
    assert node.items == "[1, 2, input.count]"
    assert node.when == "input.count > 0"


def test_map_needs_a_parameter_for_the_items() -> None:
    def flow(count: int) -> Any:
        return keel.map(no_parameters, numbers(count))

    with pytest.raises(TracingError, match="no parameter left"):
        keel.workflow(flow)


def test_map_needs_a_task() -> None:
    def flow(count: int) -> Any:
        return keel.map(len, numbers(count))  # type: ignore[arg-type]

    with pytest.raises(TracingError, match=r"needs a @keel\.task"):
        keel.workflow(flow)


def test_map_and_when_only_work_inside_a_workflow() -> None:
    with pytest.raises(TracingError, match=r"only be used inside a @keel\.workflow"):
        keel.map(double, [1, 2])
    with (
        pytest.raises(TracingError, match=r"only be used inside a @keel\.workflow"),
        keel.when("true"),
    ):
        pass


# --- keel.expr and values ---------------------------------------------------------------------


def test_expr_substitutes_values_and_constants() -> None:
    @keel.workflow
    def flow(document: str) -> Any:
        claim = extract(document)
        label = keel.expr('"Claim " + id', id=claim.id)
        notify(label, level=keel.expr("size(d) * w", d=document, w=2))
        return {"big": keel.expr("a > limit", a=claim.amount, limit=100.5)}

    spec = flow.spec
    assert _arg(spec, "notify", "message") == ExprArg(expr='"Claim " + nodes.extract.output.id')
    assert _arg(spec, "notify", "level") == ExprArg(expr="size(input.document) * 2")
    assert spec.outputs == {"big": "nodes.extract.output.amount > 100.5"}


def test_expr_wraps_compound_values_in_parentheses() -> None:
    @keel.workflow
    def flow(a: int, b: int) -> Any:
        notify("x")
        return keel.expr("x * 2", x=keel.expr("p + q", p=a, q=b))

    assert flow.spec.outputs == {"result": "(input.a + input.b) * 2"}


def test_expr_does_not_replace_fields_or_string_contents() -> None:
    @keel.workflow
    def flow(document: str) -> Any:
        claim = extract(document)
        return keel.expr('c.id + "id"', c=claim)

    assert flow.spec.outputs == {"result": 'nodes.extract.output.id + "id"'}


def test_expr_refuses_unused_names() -> None:
    with pytest.raises(TracingError, match="names given but not used: y"):
        keel.expr("x + 1", x=1, y=2)


def test_values_index_with_literals() -> None:
    @keel.workflow
    def flow(rows: list[dict[str, str]]) -> Any:
        notify("x")
        return {"first": rows[0]["name"], "keyed": rows[1]['a "quoted" key']}

    assert flow.spec.outputs == {
        "first": 'input.rows[0]["name"]',
        "keyed": 'input.rows[1]["a \\"quoted\\" key"]',
    }


# --- outputs --------------------------------------------------------------------------------


def test_returning_a_mapping_names_the_outputs() -> None:
    @keel.workflow
    def flow(document: str) -> Any:
        claim = extract(document)
        return {"claim": claim, "id": claim.id, "fixed": 3, "pair": [claim.id, "x"]}

    assert flow.spec.outputs == {
        "claim": "nodes.extract.output",
        "id": "nodes.extract.output.id",
        "fixed": "3",
        "pair": '[nodes.extract.output.id, "x"]',
    }


def test_returning_one_value_or_nothing() -> None:
    @keel.workflow
    def one(document: str) -> Any:
        return extract(document)

    @keel.workflow
    def nothing(document: str) -> None:
        extract(document)

    assert one.spec.outputs == {"result": "nodes.extract.output"}
    assert nothing.spec.outputs == {}


def test_output_names_must_be_strings() -> None:
    def flow(document: str) -> Any:
        return {1: extract(document)}

    with pytest.raises(TracingError, match="output names must be strings"):
        keel.workflow(flow)


# --- misuse while tracing -------------------------------------------------------------------


def _misuse_if(document: str) -> None:
    if extract(document):
        notify("x")


def _misuse_for(count: int) -> None:
    for item in numbers(count):
        double(item)


def _misuse_math(count: int) -> None:
    double(count + 1)


def _misuse_format(document: str) -> None:
    notify(f"claim {extract(document).id}")


def _misuse_str(document: str) -> None:
    notify("claim " + str(extract(document).id))


def _misuse_len(count: int) -> None:
    double(len(numbers(count)))


def _misuse_in(document: str) -> None:
    if "x" in extract(document).id:
        notify("x")


def _misuse_setattr(document: str) -> None:
    claim = extract(document)
    claim.id = "changed"


def _misuse_not_json(document: str) -> None:
    notify(document, level=object())  # type: ignore[arg-type]


def _misuse_bad_call(document: str) -> None:
    double(document, 1, 2)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("function", "hint"),
    [
        (_misuse_if, "keel.when"),
        (_misuse_for, "keel.map(task, items)"),
        (_misuse_math, "keel.expr('x * 2', x=value)"),
        (_misuse_format, "cannot be formatted into text"),
        (_misuse_str, "cannot be formatted into text"),
        (_misuse_len, "size(x)"),
        (_misuse_in, "keel.expr("),
        (_misuse_setattr, "cannot be changed"),
        (_misuse_not_json, "object is not JSON"),
        (_misuse_bad_call, "double(): too many positional arguments"),
    ],
)
def test_misuse_raises_a_tracing_error_saying_what_to_do(function: Any, hint: str) -> None:
    with pytest.raises(TracingError) as raised:
        keel.workflow(function)
    assert hint in str(raised.value)


def test_a_workflow_cannot_be_defined_inside_another() -> None:
    def inner(document: str) -> None:
        extract(document)

    def outer(document: str) -> None:
        keel.workflow(inner)

    with pytest.raises(TracingError, match="define workflows at module level"):
        keel.workflow(outer)


def test_a_failed_trace_leaves_no_trace_behind() -> None:
    with pytest.raises(TracingError):
        keel.workflow(_misuse_if)
    assert extract("ab") == Claim(id="ab", amount=2.0), "tasks run as functions again"


# --- invalid workflows ----------------------------------------------------------------------


def test_an_invalid_workflow_fails_at_decoration_listing_every_problem() -> None:
    def broken(document: str, count: int) -> None:
        double(document)  # a str input for an int parameter
        notify(count)  # an int input for a str parameter
        notify("x", when="nodes.ghost.output")

    with pytest.raises(SpecError) as raised:
        keel.workflow(broken)
    error = raised.value
    assert error.workflow == "broken"
    codes = [(issue.code, issue.node) for issue in error.issues]
    assert ("type_mismatch", "double") in codes
    assert ("type_mismatch", "notify") in codes
    assert ("unknown_node", "notify_2") in codes
    text = str(error)
    assert text.startswith("workflow 'broken' is invalid (3 problems):")
    assert "argument 'item' (input.document) gives string but the parameter expects integer" in text


def test_a_structurally_invalid_workflow_is_a_spec_error() -> None:
    def broken(document: str) -> None:
        notify.options(priority=5000)(document)

    with pytest.raises(SpecError, match="priority"):
        keel.workflow(broken)


def test_a_timeout_longer_than_365_days_is_refused_naming_the_node_and_the_limit() -> None:
    def forever(count: int) -> None:
        double.options(timeout="999999999999999999s")(count)

    with pytest.raises(SpecError) as raised:
        keel.workflow(forever)
    (issue,) = raised.value.issues
    assert issue.node == "double"
    assert str(issue) == (
        f"{__file__}:{forever.__code__.co_firstlineno + 1}: node 'double', timeout: duration "
        "'999999999999999999s' is too long: keel accepts at most 365 days ('365d')"
    )


def test_a_refused_duration_of_a_workflow_or_a_wait_is_quoted_as_written() -> None:
    def slow(count: int) -> None:
        keel.timer("400d", id="pause")

    with pytest.raises(SpecError) as raised:
        keel.workflow(slow, deadline="forever")
    assert [str(issue) for issue in raised.value.issues] == [
        "node 'pause', duration: duration '400d' is too long: keel accepts at most 365 days "
        "('365d')",
        "deadline: cannot read duration 'forever': use forms like '30s', '5m', '1h30m', '2d', "
        "'250ms', an ISO 8601 duration such as 'PT5M', or a number of seconds",
    ]


def test_every_bad_option_is_reported_with_what_works_and_where() -> None:
    def sloppy(count: int) -> None:
        double.options(timeout="forever", on_failure="nope", join="sometimes")(count)
        double.options(isolation="fork", retries=-1)(count)

    with pytest.raises(SpecError) as raised:
        keel.workflow(sloppy)
    line = sloppy.__code__.co_firstlineno
    assert [str(issue) for issue in raised.value.issues] == [
        f"{__file__}:{line + 1}: node 'double', timeout: cannot read duration 'forever': use "
        "forms like '30s', '5m', '1h30m', '2d', '250ms', an ISO 8601 duration such as 'PT5M', "
        "or a number of seconds",
        f"{__file__}:{line + 1}: node 'double', join: 'sometimes' is not a join rule; use one "
        "of 'none_failed', 'all_succeeded', 'one_succeeded', 'all_done', 'one_failed'",
        f"{__file__}:{line + 2}: node 'double_2', retries: must be a whole number >= 0, got -1",
        f"{__file__}:{line + 2}: node 'double_2', isolation: 'fork' is not an isolation; use "
        "'thread' or 'process'",
        "node 'double', on_failure.handler: on_failure names unknown handler node 'nope'",
    ]


def test_bad_options_given_outside_a_workflow_are_refused_at_once_all_together() -> None:
    with pytest.raises(KeelError) as raised:
        double.options(join="sometimes", timeout=-1)
    line = test_bad_options_given_outside_a_workflow_are_refused_at_once_all_together
    where = f"{__file__}:{line.__code__.co_firstlineno + 2}"
    assert str(raised.value) == (
        "double.options() has 2 bad options:\n"
        f"  {where}: timeout: must be more than 0 seconds, got -1\n"
        f"  {where}: join: 'sometimes' is not a join rule; use one of 'none_failed', "
        "'all_succeeded', 'one_succeeded', 'all_done', 'one_failed'"
    )
