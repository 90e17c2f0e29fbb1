"""keel: durable workflows for AI-agent and business processes.

The public surface is what ``__all__`` lists; everything else is private and may change.
"""

from keel.authoring import NodeOutput, Task, Value, Workflow, expr, task, when, workflow
from keel.authoring import map_task as map
from keel.errors import (
    ExpressionError,
    KeelError,
    SpecError,
    SpecIssue,
    TracingError,
    WorkflowNotFoundError,
)
from keel.spec import (
    ConcurrencyPolicy,
    EventTrigger,
    JoinRule,
    NodeDefaults,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
    WorkflowSpec,
)

__version__ = "0.1.0"

__all__ = [
    "ConcurrencyPolicy",
    "EventTrigger",
    "ExpressionError",
    "JoinRule",
    "KeelError",
    "NodeDefaults",
    "NodeOutput",
    "RetryPolicy",
    "ScheduleTrigger",
    "SpecError",
    "SpecIssue",
    "Task",
    "TracingError",
    "Value",
    "WebhookTrigger",
    "Workflow",
    "WorkflowNotFoundError",
    "WorkflowSpec",
    "__version__",
    "expr",
    "map",
    "task",
    "when",
    "workflow",
]
