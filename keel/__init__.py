"""keel: durable workflows for AI-agent and business processes.

The public surface is what ``__all__`` lists; everything else is private and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.authoring import (
        NodeOutput,
        Task,
        Value,
        Workflow,
        approval,
        expr,
        signal,
        task,
        timer,
        when,
        workflow,
    )
    from keel.authoring import map_task as map
    from keel.authoring.secret_refs import secrets
    from keel.authoring.step_calls import email, http, shell, sql
    from keel.errors import (
        ApprovalNeeded,
        ExpressionError,
        InputError,
        KeelError,
        NonRetryable,
        RetryLater,
        SpecError,
        SpecIssue,
        TracingError,
        WorkflowNotFoundError,
    )
    from keel.runtime.client import Client
    from keel.runtime.execution.context import StepContext, context
    from keel.spec import (
        CompletionTrigger,
        ConcurrencyPolicy,
        EventTrigger,
        FileTrigger,
        JoinRule,
        LlmBudget,
        NodeDefaults,
        RateLimitPolicy,
        RetryPolicy,
        ScheduleTrigger,
        WebhookTrigger,
        WorkflowSpec,
    )
    from keel.spec.notifiers import CallableNotifier, EmailNotifier, WebhookNotifier
    from keel.spec.policies import CircuitPolicy
    from keel.steps.secret_value import secret

#: where each public name lives; imported on first use so that ``import keel`` (and so
#: every CLI command, ``keel --help`` included) does not load pydantic, CEL and the
#: runtime before it needs them
_HOMES = {
    **dict.fromkeys(
        ("NodeOutput", "Task", "Value", "Workflow", "approval", "expr", "signal", "task",
         "timer", "when", "workflow"),
        "keel.authoring",
    ),
    "map": "keel.authoring",
    # the built-in steps in a workflow, and secrets by reference (keel.secrets.NAME) or,
    # in a task's body, by value (keel.secret("NAME"))
    **dict.fromkeys(("email", "http", "shell", "sql"), "keel.authoring.step_calls"),
    "secrets": "keel.authoring.secret_refs",
    "secret": "keel.steps.secret_value",
    **dict.fromkeys(
        ("ApprovalNeeded", "ExpressionError", "InputError", "KeelError", "NonRetryable",
         "RetryLater", "SpecError",
         "SpecIssue", "TracingError", "WorkflowNotFoundError"),
        "keel.errors",
    ),
    **dict.fromkeys(("StepContext", "context"), "keel.runtime.execution.context"),
    "Client": "keel.runtime.client",
    **dict.fromkeys(
        ("CallableNotifier", "EmailNotifier", "WebhookNotifier"), "keel.spec.notifiers"
    ),
    "CircuitPolicy": "keel.spec.policies",
    **dict.fromkeys(
        ("CompletionTrigger", "ConcurrencyPolicy", "EventTrigger", "FileTrigger", "JoinRule",
         "LlmBudget",
         "NodeDefaults", "RateLimitPolicy", "RetryPolicy", "ScheduleTrigger", "WebhookTrigger",
         "WorkflowSpec"),
        "keel.spec",
    ),
}  # fmt: skip
_RENAMED = {"map": "map_task"}


def __getattr__(name: str) -> Any:
    if name == "llm":  # the LLM steps' package: keel.llm.step(...), keel.llm.agent(...)
        return importlib.import_module("keel.llm")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'keel' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), _RENAMED.get(name, name))
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "ApprovalNeeded",
    "CallableNotifier",
    "CircuitPolicy",
    "Client",
    "CompletionTrigger",
    "ConcurrencyPolicy",
    "EmailNotifier",
    "EventTrigger",
    "ExpressionError",
    "FileTrigger",
    "InputError",
    "JoinRule",
    "KeelError",
    "LlmBudget",
    "NodeDefaults",
    "NodeOutput",
    "NonRetryable",
    "RateLimitPolicy",
    "RetryLater",
    "RetryPolicy",
    "ScheduleTrigger",
    "SpecError",
    "SpecIssue",
    "StepContext",
    "Task",
    "TracingError",
    "Value",
    "WebhookNotifier",
    "WebhookTrigger",
    "Workflow",
    "WorkflowNotFoundError",
    "WorkflowSpec",
    "__version__",
    "approval",
    "context",
    "email",
    "expr",
    "http",
    "map",
    "secret",
    "secrets",
    "shell",
    "signal",
    "sql",
    "task",
    "timer",
    "when",
    "workflow",
]
