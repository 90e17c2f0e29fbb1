"""The process-definition model: a workflow is nodes, data mapping, conditions, policies.

Whatever a workflow was written in (Python decorators, YAML), it becomes one
``WorkflowSpec``. Node kinds are a discriminated union on ``kind``; adding a kind means
adding a model here and its rules to ``validate`` and the engine. Models are frozen:
a spec never changes after it is built, which is what makes its hash a version.

Arguments are either literals or expressions. In data form, ``{"expr": "..."}`` or
``{"value": ...}``; as shorthand (YAML), a string that is wholly ``${{ ... }}`` is an
expression and anything else is a literal, as in GitHub Actions.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    model_validator,
)

from keel.spec.node_base import (
    Arg,
    Compensation,
    ExprArg,
    FailureHandler,
    JoinRule,
    LiteralArg,
    OnFailure,
    SideTask,
    _NodeBase,
    _NodeCommon,
    _side_task_shorthand,
)
from keel.spec.notifiers import Notifier
from keel.spec.policies import NodeDefaults, RetryPolicy
from keel.spec.step_nodes import (
    STEP_TASKS,
    EmailNode,
    HttpNode,
    ShellNode,
    SqlNode,
    StepNode,
)
from keel.spec.triggers import Trigger
from keel.spec.types import Expression, ImportPath, JsonData, Name, NodeId, PositiveDuration

__all__ = [
    "MODEL_TASKS",
    "NODE_KINDS",
    "STEP_TASKS",
    "AgentNode",
    "AgentTool",
    "AnyNode",
    "ApprovalNode",
    "Arg",
    "CallNode",
    "Compensation",
    "EmailNode",
    "ExprArg",
    "FailureHandler",
    "HttpNode",
    "JoinRule",
    "LiteralArg",
    "LlmBudget",
    "LlmNode",
    "LlmOutputMode",
    "MapNode",
    "ModelNode",
    "Node",
    "OnFailure",
    "OnTimeout",
    "ShellNode",
    "SideTask",
    "SignalNode",
    "SqlNode",
    "StepNode",
    "SubworkflowNode",
    "TaskNode",
    "TimeoutRoute",
    "TimerNode",
    "WaitNode",
    "WorkflowSpec",
]


class TaskNode(_NodeBase):
    """Call a Python function (``package.module:function``) once."""

    kind: Literal["task"] = "task"
    task: ImportPath
    args: dict[str, Arg] = Field(default_factory=dict)
    #: undoes the node's effect when the run fails after the node succeeded (saga); it
    #: is called with the node's arguments and ``output`` (what the node returned)
    compensate: Compensation | None = None
    #: it changes the world (books, pays, sends): ``keel fork`` says so before it runs
    #: the node again. Left out of the spec (and its version) when False
    side_effect: bool = False


class MapNode(_NodeBase):
    """Call a function once per item of a list computed at run time; results keep order."""

    kind: Literal["map"] = "map"
    task: ImportPath
    #: expression giving the list to map over
    items: Expression
    #: the function parameter that receives each item
    item_arg: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: arguments that are the same for every item
    args: dict[str, Arg] = Field(default_factory=dict)
    #: at most this many items at once (besides the run's and the workers' limits)
    max_parallel: int | None = Field(None, ge=1)
    #: each item changes the world: as ``TaskNode.side_effect``
    side_effect: bool = False


class TimeoutRoute(BaseModel):
    """On timeout, fail the approval with ``ApprovalTimeout`` and route that failure to
    another node (it receives the ``error``, as an ``on_failure`` handler does); a
    rejection still follows the approval's own ``on_failure``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    route: NodeId


def _on_timeout_shorthand(value: Any) -> Any:
    if isinstance(value, str) and value not in ("reject", "approve", "notify"):
        return {"route": value}
    return value


#: ``reject`` (default): the approval fails with ``ApprovalTimeout`` and follows its
#: ``on_failure``; ``approve``: it is approved by keel with empty data; ``notify``: the
#: workflow's notifiers that listen to ``approval_overdue`` are told and it goes on
#: waiting; or the id of a node to route the timeout to (``{"route": id}``)
OnTimeout = Annotated[
    Literal["reject", "approve", "notify"] | TimeoutRoute, BeforeValidator(_on_timeout_shorthand)
]


class ApprovalNode(_NodeCommon):
    """Pause the run until a person approves or rejects; no worker or thread waits.

    ``description`` may hold ``${{ expression }}`` parts, filled in from upstream data
    when the approval opens, so the approver sees what they decide on. With a ``form``
    (a JSON Schema) the approver's data is checked against it; the data becomes the
    node's output. A rejection fails the node (``Rejected``), which follows its
    ``on_failure``.
    """

    kind: Literal["approval"] = "approval"
    title: str = Field(min_length=1)
    #: who should decide (people or groups): shown by ``keel approvals`` and kept with
    #: the approval; keel records who decided, it does not check identities
    assignees: tuple[str, ...] = ()
    role: str | None = None
    #: JSON Schema of the data the approver supplies (an object)
    form: dict[str, JsonData] | None = None
    #: how long a decision may take; then ``on_timeout`` applies
    timeout: PositiveDuration | None = None
    on_timeout: OnTimeout = "reject"


class TimerNode(_NodeCommon):
    """Wait for a duration, or until a time computed from the run's data (an expression
    giving an ISO-8601 date-time, or seconds since the epoch). The wait is a row in the
    store, not a sleeping thread: it fires after restarts, and costs nothing meanwhile."""

    kind: Literal["timer"] = "timer"
    duration: PositiveDuration | None = None
    until: Expression | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TimerNode:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a timer needs exactly one of 'duration' and 'until'")
        return self


class SignalNode(_NodeCommon):
    """Wait for a named event sent to the run (``keel signal RUN NAME``); its data
    becomes the node's output. A signal sent before the run gets here is kept for it."""

    kind: Literal["signal"] = "signal"
    signal: Name
    #: JSON Schema the signal's data must match (checked when it is sent)
    payload_schema: dict[str, JsonData] | None = None
    #: fail the node (``SignalTimeout``) if no signal came within this time
    timeout: PositiveDuration | None = None


_VERSION = re.compile(r"^[0-9a-f]{64}$")


def _check_version(value: str) -> str:
    if not _VERSION.match(value):
        raise ValueError(
            f"{value!r} is not a workflow version: give the child's full version, the "
            "sha256 shown by `keel graph` (64 hex digits); from Python, call the child "
            "workflow inside the parent and keel pins it for you"
        )
    return value


class SubworkflowNode(_NodeCommon):
    """Start another workflow as a child run and wait for it; its output becomes this
    node's output. The child is pinned by version; cancelling this run cancels it."""

    kind: Literal["subworkflow"] = "subworkflow"
    workflow: Name
    #: the child's spec version (its hash): a run never changes the graph it started with
    version: Annotated[str, AfterValidator(_check_version)]
    #: the child's input, field by field (expressions or literals, as task arguments)
    input: dict[str, Arg] = Field(default_factory=dict)


#: keel's own tasks that run the nodes asking a model, by node kind
MODEL_TASKS = {"llm": "keel.llm.steps:llm_step", "agent": "keel.llm.steps:agent_step"}
#: how a model is asked for an answer that fits ``output``: ``auto`` lets the provider
#: choose (OpenAI: ``json_schema``; a local server: ``json_object``)
LlmOutputMode = Literal["auto", "json_schema", "json_object", "tools", "prompted"]


class _ModelCall(_NodeBase):
    """What every node that asks a model has. ``prompt`` and ``system`` are text with
    ``${{ expression }}`` parts, filled in from upstream data when the node runs (a map's
    templates may also read ``item``). Every request is recorded with its usage and cost
    (``keel.llm``), and a later attempt is served the recorded answer."""

    #: the model's name, as the provider knows it
    model: str = Field(min_length=1)
    #: a provider configured under ``[llm.providers]`` (``openai`` and ``anthropic`` exist)
    provider: Name = "openai"
    prompt: str = Field(min_length=1)
    system: str = ""
    #: the most output tokens per request: every request is bounded
    max_tokens: int = Field(ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    #: JSON Schema of the answer (an object); without one the answer is text
    output: dict[str, JsonData] | None = None
    output_mode: LlmOutputMode = "auto"
    #: a cheaper model to switch to when the budget says ``degrade``
    degrade_to: str | None = Field(None, min_length=1)
    #: stream the answer, so ``keel logs --follow`` shows it while it is written
    stream: bool = False

    @property
    def task(self) -> str:
        """keel's own task that runs the node (the worker needs no user code for it)."""
        return MODEL_TASKS[self.kind]  # type: ignore[attr-defined]


class LlmNode(_ModelCall):
    """Ask a model once (per item, with ``for_each``). An answer that does not fit
    ``output`` is asked again with the validation error, at most ``reasks`` times; a
    truncated answer (``max_tokens`` reached) and a refusal are not re-asked."""

    kind: Literal["llm"] = "llm"
    reasks: int = Field(2, ge=0, le=10)
    #: ask once per item of this list (an expression); the templates read ``item``
    for_each: Expression | None = None
    #: the most items ``for_each`` may give: bounds the cost (``keel estimate``); a list
    #: longer than this fails the node
    max_items: int | None = Field(None, ge=1)
    max_parallel: int | None = Field(None, ge=1)


class AgentTool(BaseModel):
    """A task an agent may call. ``side_effect``: it changes the world; with
    ``approve=True`` each call needs a person's approval of its exact arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task: ImportPath
    #: the name the model sees (default: the function's name)
    name: Name | None = None
    description: str = ""
    #: JSON Schema of the arguments (filled in from the function's signature in Python)
    parameters: dict[str, JsonData] = Field(default_factory=lambda: {"type": "object"})  # type: ignore[arg-type]
    side_effect: bool = False
    approve: bool = False
    retry: RetryPolicy | None = None
    timeout: PositiveDuration | None = None

    @property
    def tool_name(self) -> str:
        return self.name or self.task.rpartition(":")[2]


def _tool_shorthand(value: Any) -> Any:
    return {"task": value} if isinstance(value, str) else value


class AgentNode(_ModelCall):
    """A bounded loop: the model answers or asks for tool calls; each tool call runs
    the tool's task and goes back to the model. It ends with the model's answer (fitting
    ``output`` if given), or fails when a bound is reached: ``max_turns`` model requests,
    ``max_tool_calls`` tool calls, ``max_cost`` dollars, or the same call asked for
    ``repeat_limit`` times in a row."""

    kind: Literal["agent"] = "agent"
    tools: tuple[Annotated[AgentTool, BeforeValidator(_tool_shorthand)], ...] = ()
    max_turns: int = Field(ge=1, le=1000)
    max_tool_calls: int = Field(ge=0, le=10_000)
    #: dollars this node may spend, every turn counted
    max_cost: float = Field(gt=0)
    repeat_limit: int = Field(3, ge=2)


class LlmBudget(BaseModel):
    """What a run's model requests may cost, and what happens when the next one would
    pass it. Each request reserves its most (its input and ``max_tokens`` of output at
    the model's price) before it is sent and settles to its cost after. ``fail``: the
    node fails (``BudgetExceeded``); ``ask``: the run waits for a person to approve
    more; ``degrade``: the node switches to its ``degrade_to`` model (and fails if it
    has none, or that one does not fit either)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: dollars per run
    per_run: float | None = Field(None, gt=0)
    #: dollars per UTC day over every run of the workflow
    per_day: float | None = Field(None, gt=0)
    on_exceed: Literal["fail", "ask", "degrade"] = "fail"
    #: who is asked when ``on_exceed`` is ``ask``
    assignees: tuple[str, ...] = ()


def _node_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind", "task")
        return kind if isinstance(kind, str) else "task"
    return str(getattr(value, "kind", "task"))


Node = Annotated[
    Annotated[TaskNode, Tag("task")]
    | Annotated[MapNode, Tag("map")]
    | Annotated[ApprovalNode, Tag("approval")]
    | Annotated[TimerNode, Tag("timer")]
    | Annotated[SignalNode, Tag("signal")]
    | Annotated[SubworkflowNode, Tag("subworkflow")]
    | Annotated[LlmNode, Tag("llm")]
    | Annotated[AgentNode, Tag("agent")]
    | Annotated[HttpNode, Tag("http")]
    | Annotated[ShellNode, Tag("shell")]
    | Annotated[SqlNode, Tag("sql")]
    | Annotated[EmailNode, Tag("email")],
    Discriminator(
        _node_kind,
        custom_error_type="unknown_node_kind",
        custom_error_message=(
            "unknown node kind: use 'task', 'map', 'approval', 'timer', 'signal', "
            "'subworkflow', 'llm', 'agent', 'http', 'shell', 'sql' or 'email'"
        ),
    ),
]
AnyNode = (
    TaskNode | MapNode | ApprovalNode | TimerNode | SignalNode | SubworkflowNode | LlmNode
    | AgentNode | HttpNode | ShellNode | SqlNode | EmailNode
)  # fmt: skip
#: nodes that ask a model (run by keel's own tasks, ``keel.llm``)
ModelNode = LlmNode | AgentNode
#: nodes that call a function, and nodes that wait for something outside the run
CallNode = TaskNode | MapNode | LlmNode | AgentNode | StepNode
WaitNode = ApprovalNode | TimerNode | SignalNode | SubworkflowNode
NODE_KINDS = ("task", "map", "approval", "timer", "signal", "subworkflow", "llm", "agent",
              "http", "shell", "sql", "email")  # fmt: skip


def _default_input_schema() -> dict[str, JsonValue]:
    return {"type": "object"}  # open: a spec that declares no inputs accepts any


class WorkflowSpec(BaseModel):
    """A whole workflow definition. Its ``version`` is the hash of its canonical JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    description: str = ""
    #: JSON Schema of the run's input (an object; its properties are ``input.<name>``)
    input_schema: dict[str, JsonData] = Field(default_factory=_default_input_schema)
    nodes: tuple[Node, ...]
    #: named results of the run, as expressions; the run's output is this mapping
    outputs: dict[str, Expression] = Field(default_factory=dict)
    defaults: NodeDefaults = Field(default_factory=NodeDefaults)
    #: at most this many nodes of one run execute at once
    max_parallel: int | None = Field(None, ge=1)
    #: the whole run must finish within this time after it starts
    deadline: PositiveDuration | None = None
    #: how long a run normally takes: one still unfinished after this is marked late
    #: (``RunLate``), and goes on; shorter than ``deadline``, the hard limit
    expected_duration: PositiveDuration | None = None
    #: runs once when the run fails, after the compensations, with a ``failure``
    #: argument (reason, failed node, error, compensations); e.g. to alert someone
    on_failure: Annotated[SideTask | None, BeforeValidator(_side_task_shorthand)] = None
    #: who is told when a run fails, a node fails, or a node runs out of retries
    notify: tuple[Notifier, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    #: what the run's model requests (``llm`` and ``agent`` nodes) may cost
    llm_budget: LlmBudget | None = None

    @cached_property
    def node_map(self) -> dict[str, AnyNode]:
        return {node.id: node for node in self.nodes}

    @cached_property
    def version(self) -> str:
        """sha256 of the canonical JSON: equal definitions have equal versions."""
        from keel.spec.canonical import spec_version

        return spec_version(self)

    def node(self, node_id: str) -> AnyNode:
        try:
            return self.node_map[node_id]
        except KeyError:
            raise KeyError(f"workflow '{self.name}' has no node '{node_id}'") from None
