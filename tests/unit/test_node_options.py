"""Node options have one definition (``keel.authoring.options``): every authoring
function takes its options from it, each option sets the spec field of its own name
(the key a YAML author writes), and a keyword it does not define is refused.

The functions and their option classes are found by introspection, so an option added
to a class is tested here for every function that takes it, and one that no sample
covers fails ``test_every_option_has_a_sample``."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import pytest
import yaml

import keel
from keel.authoring.options import (
    CallOptions,
    StepOptions,
    TaskOptions,
    WaitOptions,
    option_names,
)
from keel.authoring.yaml_source import read_documents, spec_from_document
from keel.spec.canonical import canonical_data
from keel.spec.model import (
    ApprovalNode,
    MapNode,
    SideTask,
    SignalNode,
    SubworkflowNode,
    TaskNode,
    TimerNode,
    WorkflowSpec,
)
from keel.spec.policies import EffectivePolicies, NodeDefaults, NodePolicies

HERE = __name__


@keel.task
def step(x: int) -> int:
    return x


@keel.task
def undo(x: int, output: int) -> None:
    """A compensation: it gets the step's arguments and its output."""


def _plain(x: int) -> int:
    return x


@keel.workflow
def child(x: int) -> int:
    return step(x)


Options = dict[str, Any]
Build = Callable[[Any, Options], object]

#: each authoring function that takes node options, how a workflow body uses it, and
#: the node model its options become
BUILDERS: dict[str, tuple[Callable[..., Any], Build, type[Any]]] = {
    "@keel.task": (keel.task, lambda x, o: keel.task(name="step", **o)(_plain)(x), TaskNode),
    "task.options": (keel.Task.options, lambda x, o: step.options(**o)(x), TaskNode),
    "keel.map": (keel.map, lambda x, o: keel.map(step, [1, 2], **o), MapNode),
    "keel.approval": (keel.approval, lambda x, o: keel.approval("Check", **o), ApprovalNode),
    "keel.signal": (keel.signal, lambda x, o: keel.signal("go", **o), SignalNode),
    "keel.timer": (keel.timer, lambda x, o: keel.timer("1m", **o), TimerNode),
    "workflow.options": (
        keel.Workflow.options, lambda x, o: child.options(**o)(x=x), SubworkflowNode,
    ),
}  # fmt: skip
#: keywords of a call, which share the function's own keywords (no signature to read)
CALLS: dict[str, tuple[type[Any], Build, type[Any]]] = {
    "a task call": (CallOptions, lambda x, o: step(x, **o), TaskNode),
    "a workflow call": (WaitOptions, lambda x, o: child(x=x, **o), SubworkflowNode),
}

#: an example of each option: the value given in Python, and the key and value a YAML
#: author writes for the same node
SAMPLES: dict[str, tuple[Any, str, Any]] = {
    "id": ("main", "id", "main"),
    "description": ("why it runs", "description", "why it runs"),
    "when": ("input.x > 1", "when", "input.x > 1"),
    "after": (["first"], "after", ["first"]),
    "join": ("all_done", "join", "all_done"),
    "on_failure": ("continue", "on_failure", "continue"),
    "retries": (2, "retry", {"max_attempts": 3}),
    "retry": (keel.RetryPolicy(initial_backoff=5), "retry", {"initial_backoff": 5}),
    "timeout": ("1m", "timeout", "1m"),
    "queue": ("slow", "queue", "slow"),
    "priority": (5, "priority", 5),
    "concurrency": (
        keel.ConcurrencyPolicy(key="input.x", limit=2), "concurrency",
        {"key": "input.x", "limit": 2},
    ),
    "rate_limit": (
        keel.RateLimitPolicy(key="'api'", limit=10), "rate_limit", {"key": "'api'", "limit": 10},
    ),
    "compensate": (undo, "compensate", f"{HERE}:undo"),
    "circuit": ("crm", "circuit", "crm"),
    "isolation": ("process", "isolation", "process"),
    "max_parallel": (3, "max_parallel", 3),
    "side_effect": (True, "side_effect", True),
}  # fmt: skip


def options_class(function: Callable[..., Any]) -> type[Any]:
    """The class a function's ``**options: Unpack[...]`` names."""
    hint = typing.get_type_hints(function)["options"]
    assert typing.get_origin(hint) is typing.Unpack, f"{function} takes no **options"
    (options,) = typing.get_args(hint)
    return typing.cast(type[Any], options)


def every_use() -> list[tuple[str, type[Any], Build, type[Any]]]:
    uses = [(name, options_class(fn), build, node) for name, (fn, build, node) in BUILDERS.items()]
    return uses + [(name, *use) for name, use in CALLS.items()]


USES = every_use()
CASES = [
    pytest.param(build, model, option, id=f"{name}-{option}")
    for name, options, build, model in USES
    for option in option_names(options)
]


def traced(build: Build, options: Options) -> WorkflowSpec:
    def body(x: int) -> None:
        step.options(id="first")(x)
        build(x, options)

    return keel.workflow(name="options")(body).spec


def test_every_option_has_a_sample() -> None:
    defined = {option for _, options, _, _ in USES for option in option_names(options)}
    assert defined == set(SAMPLES)


def test_the_functions_take_the_option_classes_they_are_documented_with() -> None:
    found = {name: options.__name__ for name, options, _, _ in USES}
    assert found == {
        "@keel.task": "TaskOptions", "task.options": "StepOptions", "keel.map": "MapOptions",
        "keel.approval": "WaitOptions", "keel.signal": "WaitOptions", "keel.timer": "TimerOptions",
        "workflow.options": "WaitOptions", "a task call": "CallOptions",
        "a workflow call": "WaitOptions",
    }  # fmt: skip


@pytest.mark.parametrize(("build", "model", "option"), CASES)
def test_an_option_sets_the_spec_field_a_yaml_author_writes(
    build: Build, model: type[Any], option: str
) -> None:
    value, key, written = SAMPLES[option]
    plain, given = traced(build, {}), traced(build, {option: value})
    assert isinstance(given.nodes[-1], model)
    assert key in model.model_fields, f"{model.__name__} has no field '{key}'"
    before, after = canonical_data(plain)["nodes"][-1], canonical_data(given)["nodes"][-1]
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert changed == {key}, "an option sets the spec field of its own name, and only that"
    data = canonical_data(plain)
    data["nodes"][-1][key] = written
    (document,) = read_documents(yaml.safe_dump(data), "options.yaml")
    assert spec_from_document(document).nodes[-1] == given.nodes[-1]


@pytest.mark.parametrize(("name", "options", "build"), [(n, o, b) for n, o, b, _ in USES[:-2]])
def test_a_misspelt_option_is_refused_naming_it_and_the_one_meant(
    name: str, options: type[Any], build: Build
) -> None:
    meant = option_names(options)[-1]
    with pytest.raises(TypeError, match=rf"unexpected keyword argument '{meant}_'\. Did you mean "
                                        rf"'{meant}'\?"):  # fmt: skip
        traced(build, {f"{meant}_": SAMPLES[meant][0]})


def test_an_option_a_function_does_not_define_is_refused_as_before() -> None:
    with pytest.raises(TypeError, match=r"timer\(\) got an unexpected keyword argument 'retries'"):
        traced(BUILDERS["keel.timer"][1], {"retries": 2})
    with pytest.raises(TypeError, match=r"^task\(\) got an unexpected keyword argument 'id'"):
        keel.task(id="x")  # type: ignore[call-overload]


def test_the_spec_policies_are_the_task_options() -> None:
    """What a workflow can default and what a compensation carries are task options too;
    the effective policies resolve exactly the node's."""
    task_options = set(option_names(TaskOptions))
    assert set(NodePolicies.model_fields) <= task_options
    assert set(NodeDefaults.model_fields) <= set(NodePolicies.model_fields)
    assert set(SideTask.model_fields) - {"task"} <= task_options
    assert set(EffectivePolicies.model_fields) == set(NodePolicies.model_fields)
    assert set(option_names(StepOptions)) <= set(TaskNode.model_fields) | {"retries"}
