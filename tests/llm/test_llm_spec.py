"""A wrong ``llm`` node is refused when the workflow is loaded, with a message that says
where (YAML: file, line, column) and what to do, never at run time."""

from __future__ import annotations

import re
from typing import Any

import pytest

import keel
import keel.llm
from keel.authoring.yaml_source import load_yaml_text
from keel.errors import SpecError


def node(**fields: str) -> str:
    """A workflow of one ``llm`` node; ``fields`` replace or add its lines (a value of
    "" leaves the field out)."""
    lines = {"id": "classify", "kind": "llm", "provider": "local", "model": "stub-small",
             "max_tokens": "100", "prompt": '"Classify: ${{ input.text }}"',
             "output": "{type: object, properties: {label: {type: string}}}"}  # fmt: skip
    lines.update(fields)
    body = "\n".join(f"    {key}: {value}" for key, value in lines.items() if value)
    return f"name: bad\nnodes:\n  - {body.lstrip()}\n"


def problem(text: str) -> str:
    """The one problem ``text`` has, as printed."""
    with pytest.raises(SpecError) as raised:
        load_yaml_text(text, "flow.yaml")
    (issue,) = raised.value.issues
    return str(issue)


def line_of(text: str, key: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith(key))


def at(text: str, key: str) -> re.Pattern[str]:
    return re.compile(rf"^flow\.yaml:{line_of(text, key)}:\d+: node 'classify'")


def test_an_output_that_is_not_a_json_schema() -> None:
    text = node(output="{type: objekt}")
    said = problem(text)
    assert at(text, "output:").match(said)
    assert "output is not a valid JSON Schema" in said
    assert "objekt" in said


def test_an_output_that_is_not_an_object() -> None:
    text = node(output="{type: string}")
    said = problem(text)
    assert at(text, "output:").match(said)
    assert "type: object" in said


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ('"Classify: ${{ ticket.text }}"', "unknown name 'ticket'"),
        ('"Classify: ${{ nodes.nowhere.output }}"', "unknown node 'nowhere'"),
        ('"Classify: ${{ item }}"', "'item' is read only by the templates of an llm node with"),
        ('"Classify: ${{ input.text + }}"', "does not parse"),
    ],
)
def test_a_template_that_reads_what_does_not_exist(prompt: str, expected: str) -> None:
    text = node(prompt=prompt)
    said = problem(text)
    assert at(text, "prompt:").match(said)
    assert expected in said


def test_a_template_of_the_system_message_is_checked_too() -> None:
    text = node(system='"You are ${{ persona }}"')
    said = problem(text)
    assert at(text, "system:").match(said)
    assert "unknown name 'persona'" in said


def test_item_is_known_with_for_each() -> None:
    (spec,) = load_yaml_text(
        node(prompt='"Classify: ${{ item }}"', for_each="input.texts"), "flow.yaml"
    )
    assert spec.nodes[0].for_each == "input.texts"


def test_isolation_process_is_refused() -> None:
    text = node(isolation="process")
    said = problem(text)
    assert at(text, "isolation:").match(said)
    assert "isolation 'process' is for tasks" in said


def test_max_tokens_is_required() -> None:
    text = node(max_tokens="")
    said = problem(text)
    assert said.startswith("flow.yaml:3:")
    assert "missing required field 'max_tokens'" in said


@pytest.mark.parametrize("bound", ["max_items", "max_parallel"])
def test_a_bound_of_items_without_for_each(bound: str) -> None:
    text = node(**{bound: "3"})
    said = problem(text)
    assert at(text, f"{bound}:").match(said)
    assert "no for_each" in said


def test_an_unknown_output_mode() -> None:
    text = node(output_mode="xml")
    said = problem(text)
    assert at(text, "output_mode:").match(said)
    assert "'json_schema'" in said


def test_python_steps_are_checked_when_the_workflow_is_traced() -> None:
    with pytest.raises(SpecError, match="unknown name 'ticket'"):

        @keel.workflow
        def unknown_name(text: str) -> Any:
            return keel.llm.step("Classify ${{ ticket }}", model="m", max_tokens=10)

    with pytest.raises(SpecError, match="type: object"):

        @keel.workflow
        def text_output(text: str) -> Any:
            return keel.llm.step(
                "Classify ${{ text }}", values={"text": text}, model="m", max_tokens=10,
                output={"type": "string"},
            )  # fmt: skip
