"""Ways to write a spec: Python decorators that trace a function, and YAML files."""

from keel.authoring.tasks import Task, map_task, task
from keel.authoring.tracing import NodeOutput, when
from keel.authoring.values import Value, expr
from keel.authoring.waits import approval, signal, timer
from keel.authoring.workflows import Workflow, workflow

__all__ = [
    "NodeOutput",
    "Task",
    "Value",
    "Workflow",
    "approval",
    "expr",
    "map_task",
    "signal",
    "task",
    "timer",
    "when",
    "workflow",
]
