"""The process-definition model: what a workflow is, independent of how it was written.

Imports nothing of keel but ``keel.errors``; every other layer builds on it.
"""

from keel.spec.canonical import canonical_data, spec_json, spec_version
from keel.spec.graph import DependencyGraph
from keel.spec.model import (
    Arg,
    ExprArg,
    JoinRule,
    LiteralArg,
    LlmBudget,
    MapNode,
    Node,
    TaskNode,
    WorkflowSpec,
)
from keel.spec.policies import (
    ConcurrencyPolicy,
    EffectivePolicies,
    NodeDefaults,
    RateLimitPolicy,
    RetryPolicy,
    effective_policies,
)
from keel.spec.triggers import (
    CompletionTrigger,
    EventTrigger,
    FileTrigger,
    ScheduleTrigger,
    Trigger,
    WebhookTrigger,
)
from keel.spec.validate import check, parse_spec, validate

__all__ = [
    "Arg",
    "CompletionTrigger",
    "ConcurrencyPolicy",
    "DependencyGraph",
    "EffectivePolicies",
    "EventTrigger",
    "ExprArg",
    "FileTrigger",
    "JoinRule",
    "LiteralArg",
    "LlmBudget",
    "MapNode",
    "Node",
    "NodeDefaults",
    "RateLimitPolicy",
    "RetryPolicy",
    "ScheduleTrigger",
    "TaskNode",
    "Trigger",
    "WebhookTrigger",
    "WorkflowSpec",
    "canonical_data",
    "check",
    "effective_policies",
    "parse_spec",
    "spec_json",
    "spec_version",
    "validate",
]
