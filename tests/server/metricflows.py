"""The known workload the metrics tests count: ``two_steps``, a task on the default queue
then one on the queue ``io`` that fails its first attempt for the input ``n == 1`` (a
``ConnectionError``) and is retried at once. Three runs (n = 0, 1, 2) make 7 attempts:
3 of ``fetch``, 4 of ``save`` (one failed, then retried). ``family`` starts a run of
``two_steps`` as its child (its first and only node); ``held`` runs a task that waits for
the test (``release``)."""

from __future__ import annotations

import threading

import keel
from keel.authoring.yaml_source import load_yaml_text
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec

release = threading.Event()

TWO_STEPS_YAML = """
name: two_steps
input_schema:
  type: object
  properties:
    n: {type: integer}
  required: [n]
nodes:
  - id: fetch
    task: tests.server.metricflows:fetch
    args: {n: "${{ input.n }}"}
  - id: save
    task: tests.server.metricflows:save
    queue: io
    args: {value: "${{ nodes.fetch.output }}"}
    retry: {max_attempts: 2, initial_backoff: 0, jitter: 0}
"""


@keel.task
def fetch(n: int) -> int:
    return n


@keel.task
def save(value: int) -> int:
    if value == 1 and keel.context().attempt == 1:
        raise ConnectionError("the database went away")
    return value * 2


def two_steps() -> WorkflowSpec:
    (spec,) = load_yaml_text(TWO_STEPS_YAML, "two_steps.yaml")
    return spec


def family(event: str | None = None) -> WorkflowSpec:
    """``event``: also started by the event of that name."""
    child = two_steps()
    triggers = [] if event is None else [{"kind": "event", "event": event}]
    return parse_spec({"name": "family", "triggers": triggers, "nodes": [
        {"id": "child", "kind": "subworkflow", "workflow": child.name,
         "version": child.version, "input": {"n": 2}}]})  # fmt: skip


@keel.task
def wait_for_the_test() -> None:
    release.wait(30)


def held() -> WorkflowSpec:
    return parse_spec({"name": "held", "nodes": [
        {"id": "wait", "task": "tests.server.metricflows:wait_for_the_test"}]})  # fmt: skip


@keel.task
def noop() -> None:
    return None


def wide(width: int) -> WorkflowSpec:
    """``width`` independent nodes, all ready at once."""
    nodes = [{"id": f"n{i}", "task": "tests.server.metricflows:noop"} for i in range(width)]
    return parse_spec({"name": "wide", "nodes": nodes})
