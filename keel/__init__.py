"""keel: durable workflows for AI-agent and business processes.

The public surface is what ``__all__`` lists; everything else is private and may change.
"""

from keel.authoring import NodeOutput, Task, Value, Workflow, expr, task, when, workflow
from keel.authoring import map_task as map
from keel.errors import (
    ExpressionError,
    InputError,
    KeelError,
    NonRetryable,
    SpecError,
    SpecIssue,
    TracingError,
    WorkflowNotFoundError,
)
from keel.runtime.context import StepContext, context
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
    "InputError",
    "JoinRule",
    "KeelError",
    "NodeDefaults",
    "NodeOutput",
    "NonRetryable",
    "RetryPolicy",
    "ScheduleTrigger",
    "SpecError",
    "SpecIssue",
    "StepContext",
    "Task",
    "TracingError",
    "Value",
    "WebhookTrigger",
    "Workflow",
    "WorkflowNotFoundError",
    "WorkflowSpec",
    "__version__",
    "context",
    "expr",
    "map",
    "task",
    "when",
    "workflow",
]
