"""What every node of a spec shares: its arguments (expressions or literals), where it
sits in the graph (``after``, ``when``, ``join``) and what its failure does, plus the
execution policies of nodes that call a function.

Kept apart from ``keel.spec.model`` so that families of node kinds (keel's built-in steps,
``keel.spec.step_nodes``) can build on the same base without an import cycle;
``keel.spec.model`` re-exports every name, which stays where code imports it from.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Tag

from keel.spec.policies import Isolation, NodePolicies, RetryPolicy
from keel.spec.templates import whole_expression
from keel.spec.types import Expression, ImportPath, JsonData, NodeId, PositiveDuration


class JoinRule(StrEnum):
    """When a node runs, given how its parents ended (succeeded, skipped or failed).

    The rule is applied once every parent has ended; then ``when`` is evaluated. A node
    with no parents always passes its join. "Failed" includes parents that did not run
    because their own parents failed (``upstream_failed``). A node whose join does not
    pass becomes *skipped* if no parent failed, else *upstream_failed*; with the default
    ``on_failure`` a failed node fails the whole run anyway, so these rules matter for
    nodes whose failures are allowed to continue.

    - ``none_failed`` (default): no parent failed and at least one succeeded. A branch
      skipped by its condition skips what only depends on it, while a join after an
      if/else runs when one side ran.
    - ``all_succeeded``: every parent succeeded.
    - ``one_succeeded``: at least one parent succeeded, even if others failed.
    - ``all_done``: always, whatever the parents did (clean-up, notifications).
    - ``one_failed``: at least one parent failed (error handling); else skipped.
    """

    NONE_FAILED = "none_failed"
    ALL_SUCCEEDED = "all_succeeded"
    ONE_SUCCEEDED = "one_succeeded"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"


class ExprArg(BaseModel):
    """An argument computed from the run's input and upstream outputs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    expr: Expression


class LiteralArg(BaseModel):
    """An argument given as a constant JSON value."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    value: JsonData


def _argument_shorthand(value: Any) -> Any:
    if type(value) is dict and len(value) == 1 and ("expr" in value or "value" in value):
        return value  # already in data form (what tracing writes): checked first
    if isinstance(value, ExprArg | LiteralArg):
        return value
    if isinstance(value, str):
        whole = whole_expression(value)  # not "${{ a }} and ${{ b }}"
        if whole is not None:
            return {"expr": whole}
        if "${{" in value:
            raise ValueError(
                "an argument is either a whole ${{ expression }} or a literal; to combine "
                'text and values write one expression: ${{ "Claim " + input.id }}'
            )
        return {"value": value}
    if isinstance(value, dict) and len(value) == 1 and ("expr" in value or "value" in value):
        return value
    return {"value": value}


def _argument_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "expr" if "expr" in value else "value"
    return "expr" if isinstance(value, ExprArg) else "value"


Arg = Annotated[
    Annotated[ExprArg, Tag("expr")] | Annotated[LiteralArg, Tag("value")],
    Discriminator(_argument_kind),
    BeforeValidator(_argument_shorthand),
]


class FailureHandler(BaseModel):
    """Route a node's failure to another node of the workflow, which receives the error.

    The handler runs only when a node it handles failed (after its last attempt), with
    an ``error`` argument: ``{"node", "type", "message", "traceback", "attempts"}``. The
    failure no longer fails the run; the failed node's other children see it as failed,
    by their join rules. If the handler itself fails, its own ``on_failure`` applies.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    handler: NodeId


def _on_failure_shorthand(value: Any) -> Any:
    if isinstance(value, str) and value not in ("fail", "continue"):
        return {"handler": value}
    return value


#: ``fail`` (default): the node's failure fails the run (after its compensations);
#: ``continue``: the run goes on and the node's children treat it as failed by their
#: join rules; or the id of a handler node (``{"handler": id}``)
OnFailure = Annotated[
    Literal["fail", "continue"] | FailureHandler, BeforeValidator(_on_failure_shorthand)
]


class SideTask(BaseModel):
    """A function run outside the graph: a compensation, or the run's failure handler.

    It has its own retry policy and timeout (it often has to succeed when things are
    already going wrong, so give it more attempts than the step it undoes).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    task: ImportPath
    retry: RetryPolicy | None = None
    timeout: PositiveDuration | None = None
    isolation: Isolation | None = None


def _side_task_shorthand(value: Any) -> Any:
    return {"task": value} if isinstance(value, str) else value


Compensation = Annotated[SideTask, BeforeValidator(_side_task_shorthand)]


class _NodeCommon(BaseModel):
    """What every node has: where it sits in the graph and what its failure does."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: NodeId
    description: str = ""
    #: explicit dependencies, in addition to those read from expressions
    after: tuple[NodeId, ...] = ()
    #: condition evaluated once the join rule passes; false means the node is skipped
    when: Expression | None = None
    join: JoinRule = JoinRule.NONE_FAILED
    on_failure: OnFailure = "fail"


class _NodeBase(_NodeCommon, NodePolicies):
    """A node that calls a function: it has execution policies (retry, timeout...)."""
