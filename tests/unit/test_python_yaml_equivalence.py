"""Property: a workflow written in Python and the same one written in YAML are one spec.

Random DAGs are authored twice, once by tracing a Python function and once as YAML text
(with shuffled keys, other duration spellings and other whitespace); both must give
the same canonical JSON and therefore the same version.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import keel
from keel.authoring.yaml_source import read_documents, spec_from_document


@keel.task
def combine(inputs: list[int], label: str) -> int:
    return len(inputs) + len(label)


@dataclass(frozen=True)
class Step:
    parents: tuple[int, ...]
    condition_on: int | None
    threshold: int
    timeout_minutes: int | None


@st.composite
def dags(draw: st.DrawFn) -> list[Step]:
    size = draw(st.integers(min_value=1, max_value=12))
    steps = []
    for index in range(size):
        earlier = list(range(index))
        parents = (
            tuple(sorted(draw(st.sets(st.sampled_from(earlier), max_size=3)))) if earlier else ()
        )
        condition_on = draw(st.one_of(st.none(), st.sampled_from(earlier))) if earlier else None
        steps.append(Step(
            parents=parents,
            condition_on=condition_on,
            threshold=draw(st.integers(min_value=0, max_value=9)),
            timeout_minutes=draw(st.one_of(st.none(), st.integers(min_value=1, max_value=90))),
        ))  # fmt: skip
    return steps


def python_version(steps: list[Step]) -> str:
    def random_flow(seed: int) -> dict[str, Any]:
        refs: list[Any] = []
        for index, step in enumerate(steps):
            task = combine.options(id=f"n{index}")
            if step.timeout_minutes is not None:
                task = task.options(timeout=step.timeout_minutes * 60)
            if step.condition_on is not None:
                task = task.options(when=refs[step.condition_on] > step.threshold)
            inputs = [refs[parent] for parent in step.parents] or [seed]
            refs.append(task(inputs, f"label {index}"))
        return {"last": refs[-1]}

    return keel.workflow(name="random_flow")(random_flow).version


def yaml_text(steps: list[Step], rng: random.Random) -> str:
    def pad() -> str:
        return rng.choice(["", " ", "  "])

    def mapping(items: list[str], indent: str) -> str:
        rng.shuffle(items)
        return "".join(f"{indent}{item}\n" for item in items)

    nodes = []
    for index, step in enumerate(steps):
        refs = [f"nodes.n{parent}.output" for parent in step.parents] or ["input.seed"]
        inputs = "[" + ", ".join(refs) + "]"
        fields = [
            f"id: n{index}",
            f"task: {combine.import_path}",
            f"args:\n      inputs: ${{{{{pad()}{inputs}{pad()}}}}}\n      label: label {index}",
        ]
        if step.timeout_minutes is not None:
            fields.append(
                rng.choice(
                    [
                        f"timeout: {step.timeout_minutes}m",
                        f"timeout: {step.timeout_minutes * 60}",
                        f"timeout: PT{step.timeout_minutes}M",
                    ]
                )
            )
        if step.condition_on is not None:
            fields.append(
                f"when: '{pad()}nodes.n{step.condition_on}.output  >  "
                f"{step.threshold}{pad()}'".replace("  >  ", rng.choice([" > ", "  >  "]))
            )
        rng.shuffle(fields)
        nodes.append("  - " + "".join(f"{field}\n    " for field in fields).rstrip() + "\n")
    top = [
        "name: random_flow",
        "input_schema:\n  type: object\n  properties: {seed: {type: integer}}\n"
        "  required: [seed]\n  additionalProperties: false",
        f"outputs:\n  last: nodes.n{len(steps) - 1}.output",
        "nodes:\n" + "".join(nodes).rstrip("\n"),
    ]
    return mapping(top, "")


@settings(max_examples=60, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_python_and_yaml_forms_hash_the_same(steps: list[Step], rng: random.Random) -> None:
    text = yaml_text(steps, rng)
    (document,) = read_documents(text, "random.yaml")
    assert spec_from_document(document).version == python_version(steps), text
