"""Which child workflows a spec is checked against, and which a run stores, depend only
on the registry passed: a workflow's own (its children), the loader's (what it was told
to load), never on what this process happened to import before."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import keel
from keel.authoring.loading import load_all
from keel.authoring.yaml_source import load_yaml
from keel.errors import InputError, SpecError
from keel.runtime.operations.control import start_run
from keel.spec.registry import SpecRegistry
from keel.spec.validate import parse_and_validate
from keel.store.sqlite import SQLiteStore


@keel.task
def step(x: int) -> int:
    return x


@keel.workflow
def child(x: int) -> int:
    return step(x)


@keel.workflow
def parent(x: int) -> int:
    return child(x=x)


@keel.workflow
def grandparent(x: int) -> int:
    return parent(x=x)


def pinning(version: str, given: dict[str, Any], workflow: str = "child") -> dict[str, Any]:
    """Spec data of a workflow whose one node starts ``workflow`` at ``version``."""
    node = {"id": "sub", "kind": "subworkflow", "workflow": workflow, "version": version,
            "input": given}  # fmt: skip
    return {"name": "pinner", "nodes": [node]}


def codes(error: pytest.ExceptionInfo[SpecError]) -> set[str | None]:
    return {issue.code for issue in error.value.issues}


def test_a_workflow_carries_the_definitions_of_the_children_it_calls() -> None:
    assert set(child.registry) == {child.version}
    assert set(grandparent.registry) == {grandparent.version, parent.version, child.version}
    assert grandparent.registry[child.version] == child.spec


def test_a_child_is_checked_against_the_registry_passed_and_nothing_else() -> None:
    # ``child`` is defined in this process, yet a registry without it checks nothing
    data = pinning(child.version, {"y": 1})
    assert parse_and_validate(data).name == "pinner"
    assert parse_and_validate(data, registry=SpecRegistry([step_only.spec])).name == "pinner"
    with pytest.raises(SpecError) as raised:
        parse_and_validate(data, registry=SpecRegistry([child.spec]))
    assert codes(raised) == {"unknown_argument", "missing_argument"}
    with pytest.raises(SpecError) as raised:
        parse_and_validate(pinning(child.version, {"x": 1}, "other"), registry=child.registry)
    assert codes(raised) == {"wrong_workflow"}


@keel.workflow
def step_only(x: int) -> int:
    return step(x)


def test_a_python_parent_is_checked_against_the_children_its_body_calls() -> None:
    with pytest.raises(SpecError, match="missing required input 'x' of workflow 'child'"):

        @keel.workflow
        def careless(x: int) -> int:
            return child()  # type: ignore[call-arg]


def test_a_yaml_parent_is_checked_against_the_file_and_the_registry_given(tmp_path: Path) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text(
        textwrap.dedent("""\
            name: kid
            input_schema: {type: object, properties: {n: {type: integer}},
                           additionalProperties: false}
            nodes: [{id: a, task: "m:f"}]
            """)
    )
    (kid,) = load_yaml(path)
    text = path.read_text() + "---\n" + textwrap.dedent(f"""\
        name: dad
        nodes: [{{id: sub, kind: subworkflow, workflow: kid, version: {kid.version},
                  input: {{m: 1}}}}]
        """)  # fmt: skip
    path.write_text(text)
    with pytest.raises(SpecError, match="workflow 'kid' has no input 'm'"):
        load_yaml(path)
    # the Python child of this test module is imported, but not given: nothing to check
    path.write_text(yaml_pinning(child.version))
    assert load_yaml(path)
    with pytest.raises(SpecError, match="workflow 'child' has no input 'm'"):
        load_yaml(path, registry=child.registry)


def yaml_pinning(version: str) -> str:
    return textwrap.dedent(f"""\
        name: pinner
        nodes: [{{id: sub, kind: subworkflow, workflow: child, version: {version},
                  input: {{m: 1, x: 2}}}}]
        """)


def test_the_loader_builds_the_registry_of_what_it_loaded(tmp_path: Path) -> None:
    path = tmp_path / f"flows_{tmp_path.name}.py"
    path.write_text(
        textwrap.dedent("""\
            import keel

            @keel.task
            def step(x: int) -> int:
                return x

            @keel.workflow
            def kid(x: int) -> int:
                return step(x)

            @keel.workflow
            def dad(x: int) -> int:
                return kid(x=x)
            """)
    )
    loaded = {item.spec.name: item for item in load_all(str(path))}
    versions = {item.spec.version for item in loaded.values()}
    assert set(loaded["dad"].registry) == versions
    assert loaded["kid"].registry == loaded["dad"].registry, "one registry for the file"
    assert child.version not in loaded["dad"].registry, "nothing else this process knows"


def test_a_run_stores_the_children_of_the_registry_it_is_given(store: SQLiteStore) -> None:
    with pytest.raises(InputError, match="not loaded and not in the store"):
        start_run(store, parent.spec, {"x": 1})  # the child is defined here, not passed
    start_run(store, parent.spec, {"x": 1}, registry=parent.registry)
    assert store.load_spec(child.version) == child.spec
    assert start_run(store, parent.spec, {"x": 2}).spec_version == parent.version, (
        "the store has the child now"
    )


def test_a_client_starts_a_workflow_with_its_children(store: SQLiteStore) -> None:
    with keel.Client(store=store) as client:
        client.start(grandparent, {"x": 1})
    assert store.load_spec(child.version) == child.spec
