"""``@keel.task``: a plain function that becomes a node when called inside a workflow.

Outside a workflow, a task is its function: calling it calls it, which keeps unit tests
trivial. Inside a workflow being traced, calling it records a node whose arguments are
the expressions of the values passed, and returns a reference to its future output.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar, cast, overload

from keel.authoring.option_problems import (
    OptionProblem,
    caller,
    isolation_problem,
    join_problem,
    on_failure_problem,
    raise_problems,
)
from keel.authoring.tracing import NodeOutput, Trace, current_trace, node_id_of, require_trace
from keel.authoring.values import Value, contains_value, to_expression, to_json
from keel.errors import OptionError, TracingError
from keel.spec.callables import signature_of
from keel.spec.durations import spec_duration
from keel.spec.model import JoinRule
from keel.spec.policies import CircuitPolicy, ConcurrencyPolicy, RateLimitPolicy, RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")
#: keyword arguments a task call accepts for the node itself, when the function has none
NODE_KEYWORDS = ("after", "when")


@dataclass(frozen=True)
class NodeOptions:
    """Per-node settings; ``@keel.task`` sets defaults, ``task.options(...)`` overrides."""

    id: str | None = None
    description: str | None = None
    #: conditions that must all hold (each ``when=`` given adds one)
    when: tuple[Value | str, ...] = ()
    after: tuple[NodeOutput | str, ...] = ()
    join: JoinRule | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    queue: str | None = None
    priority: int | None = None
    concurrency: ConcurrencyPolicy | None = None
    rate_limit: RateLimitPolicy | None = None
    #: "fail", "continue", or the id of a handler node
    on_failure: str | None = None
    #: the compensation's spec data (see ``side_task_data``)
    compensate: dict[str, Any] | None = None
    circuit: CircuitPolicy | None = None
    isolation: str | None = None
    #: options given with a value that cannot work (left unset above), to report
    problems: tuple[OptionProblem, ...] = ()

    def merged(self, other: NodeOptions) -> NodeOptions:
        """``other`` on top of these: conditions and ``after`` add up, the rest is replaced.

        Identity checks only: a condition is a Value, whose ``==`` builds an expression.
        """
        changes: dict[str, Any] = {
            name: getattr(other, name)
            for name in NodeOptions.__dataclass_fields__
            if not _unset(getattr(other, name))
        }
        changes["when"] = (*self.when, *other.when)
        changes["after"] = (*self.after, *other.after)
        changes["problems"] = (*self.problems, *other.problems)
        return replace(self, **changes)

    def policy_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.retry is not None:
            fields["retry"] = self.retry.model_dump(exclude_defaults=True)
        if self.timeout is not None:
            fields["timeout"] = self.timeout
        if self.queue is not None:
            fields["queue"] = self.queue
        if self.priority is not None:
            fields["priority"] = self.priority
        if self.concurrency is not None:
            fields["concurrency"] = self.concurrency.model_dump()
        if self.rate_limit is not None:
            fields["rate_limit"] = self.rate_limit.model_dump()
        if self.on_failure is not None:
            fields["on_failure"] = self.on_failure
        if self.compensate is not None:
            fields["compensate"] = self.compensate
        if self.circuit is not None:
            fields["circuit"] = self.circuit.model_dump()
        if self.isolation is not None:
            fields["isolation"] = self.isolation
        if self.join is not None:
            fields["join"] = JoinRule(self.join).value
        if self.description:
            fields["description"] = self.description
        return fields


def make_options(
    *,
    id: str | None = None,
    description: str | None = None,
    when: Value | str | None = None,
    after: Sequence[NodeOutput | str] = (),
    join: JoinRule | str | None = None,
    retries: int | None = None,
    retry: RetryPolicy | None = None,
    timeout: str | float | None = None,
    queue: str | None = None,
    priority: int | None = None,
    concurrency: ConcurrencyPolicy | None = None,
    rate_limit: RateLimitPolicy | None = None,
    base_retry: RetryPolicy | None = None,
    on_failure: str | None = None,
    compensate: Callable[..., Any] | None = None,
    circuit: str | CircuitPolicy | None = None,
    isolation: str | None = None,
) -> NodeOptions:
    """Node options from keyword arguments; ``retries=N`` adjusts ``retry`` (or the task's
    own ``base_retry``) to ``N + 1`` attempts, keeping its backoff settings.

    Each option that cannot work is left unset and listed in ``problems`` (all of them,
    with what would work and the caller's line) for whoever reports them."""
    found: list[tuple[str, str]] = []
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            found.append(("retries", f"must be a whole number >= 0, got {retries!r}"))
            retries = None
        else:
            base = retry or base_retry or RetryPolicy()
            retry = RetryPolicy.model_validate({**base.model_dump(), "max_attempts": retries + 1})
    seconds: float | None = None
    if timeout is not None:
        try:
            seconds = spec_duration(timeout)
        except ValueError as exc:
            found.append(("timeout", str(exc)))
        if seconds is not None and seconds <= 0:
            found.append(("timeout", f"must be more than 0 seconds, got {timeout!r}"))
            seconds = None
    checks = (("join", join, join_problem), ("on_failure", on_failure, on_failure_problem),
              ("isolation", isolation, isolation_problem))  # fmt: skip
    for option, value, check in checks:
        problem = check(value) if value is not None else None
        if problem is not None:
            found.append((option, problem))
    bad = {option for option, _ in found}
    problems: tuple[OptionProblem, ...] = ()
    if found:
        file, line = caller()
        problems = tuple(OptionProblem(option, message, file, line) for option, message in found)
    return NodeOptions(
        id=id,
        description=description,
        when=() if when is None else (when,),
        after=tuple(_as_sequence(after)),
        join=JoinRule(join) if join is not None and "join" not in bad else None,
        retry=retry,
        timeout=seconds,
        queue=queue,
        priority=priority,
        concurrency=concurrency,
        rate_limit=rate_limit,
        on_failure=on_failure if "on_failure" not in bad else None,
        compensate=(
            side_task_data(compensate, what="compensate=") if compensate is not None else None
        ),
        circuit=CircuitPolicy(name=circuit) if isinstance(circuit, str) else circuit,
        isolation=isolation if "isolation" not in bad else None,
        problems=problems,
    )


def side_task_data(function: Callable[..., Any], *, what: str) -> dict[str, Any]:
    """Spec data for a task run off the graph (a compensation, a failure handler): it
    brings its retry policy, timeout and isolation along. ``what`` names the option in
    the error for a plain function, which workers would refuse to run."""
    if isinstance(function, Task):
        data: dict[str, Any] = {"task": function.import_path}
        options = function.options_
        if options.retry is not None:
            data["retry"] = options.retry.model_dump(exclude_defaults=True)
        if options.timeout is not None:
            data["timeout"] = options.timeout
        if options.isolation is not None:
            data["isolation"] = options.isolation
        return data
    if not callable(function):
        raise OptionError(f"{what} takes a @keel.task, got {type(function).__name__}")
    name = getattr(function, "__name__", type(function).__name__)
    raise OptionError(
        f"{what} takes a @keel.task, and {name} is a plain function: decorate it with "
        "@keel.task (workers run only keel tasks)"
    )


def import_path_of(function: Callable[..., Any]) -> str:
    """``module:qualname``; a script run as ``__main__`` is named by its file's stem."""
    module = function.__module__
    if module == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if main_file:
            module = Path(main_file).stem
    return f"{module}:{function.__qualname__}"


class Task(Generic[P, R]):
    """A function that keel can run as a durable step. Call it like the function.

    It carries ``TASK_MARKER``: workers run only functions that do (or that their
    settings allow by name), never whatever a spec happens to name."""

    __keel_task__: ClassVar[bool] = True

    def __init__(
        self, function: Callable[P, R], options: NodeOptions, *, name: str | None = None
    ) -> None:
        self.__wrapped__ = function
        self.options_ = options
        #: the default node id; a second use in one workflow gets ``name_2``
        self.name = name or function.__name__
        self.import_path = import_path_of(function)
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__module__ = function.__module__

    def __repr__(self) -> str:
        return f"<keel task {self.import_path}>"

    def options(
        self,
        *,
        id: str | None = None,
        description: str | None = None,
        when: Value | str | None = None,
        after: Sequence[NodeOutput | str] = (),
        join: JoinRule | str | None = None,
        retries: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: str | float | None = None,
        queue: str | None = None,
        priority: int | None = None,
        concurrency: ConcurrencyPolicy | None = None,
        rate_limit: RateLimitPolicy | None = None,
        on_failure: str | None = None,
        compensate: Callable[..., Any] | None = None,
        circuit: str | CircuitPolicy | None = None,
        isolation: str | None = None,
    ) -> Task[P, R]:
        """A copy of this task with node settings changed for one use in a workflow.

        ``on_failure`` is ``"fail"``, ``"continue"`` or the id of a handler node."""
        given = make_options(
            id=id,
            description=description,
            when=when,
            after=after,
            join=join,
            retries=retries,
            retry=retry,
            timeout=timeout,
            queue=queue,
            priority=priority,
            concurrency=concurrency,
            rate_limit=rate_limit,
            base_retry=self.options_.retry,
            on_failure=on_failure,
            compensate=compensate,
            circuit=circuit,
            isolation=isolation,
        )
        if current_trace() is None:  # no workflow to report them with
            raise_problems(given.problems, f"{self.name}.options()")
        merged = self.options_.merged(given)
        copy = Task(self.__wrapped__, merged, name=merged.id or self.name)
        copy.import_path = self.import_path
        return copy

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        trace = current_trace()
        if trace is None:
            return self.__wrapped__(*args, **kwargs)
        return cast(R, self._record(trace, args, dict(kwargs)))

    def _record(self, trace: Trace, args: tuple[Any, ...], kwargs: dict[str, Any]) -> NodeOutput:
        options = self._pop_node_keywords(kwargs)
        arguments = self.bind(args, kwargs)
        node = self.node_data(trace, options, kind="task")
        node["args"] = {
            name: argument_data(value, f"{self.name}({name}=...)")
            for name, value in arguments.items()
        }
        return trace.add(node)

    def _pop_node_keywords(self, kwargs: dict[str, Any]) -> NodeOptions:
        parameters = inspect.signature(self.__wrapped__).parameters
        options = self.options_
        for keyword in NODE_KEYWORDS:
            if keyword in kwargs and keyword not in parameters:
                value = kwargs.pop(keyword)
                if keyword == "after":
                    options = replace(options, after=(*options.after, *_as_sequence(value)))
                else:
                    options = replace(options, when=(*options.when, value))
        return options

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Argument names and values as the function would receive them."""
        signature = inspect.signature(self.__wrapped__)
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise TracingError(f"{self.name}(): {exc}") from None
        arguments: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                raise TracingError(
                    f"{self.name}(): *{name} is not supported in a step; pass a list instead"
                )
            if kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            else:
                arguments[name] = value
        return arguments

    def node_data(self, trace: Trace, options: NodeOptions, *, kind: str) -> dict[str, Any]:
        node_id = trace.unique_id(options.id or self.name, explicit=options.id is not None)
        trace.signatures[self.import_path] = signature_of(self.__wrapped__)
        node: dict[str, Any] = {"id": node_id, "kind": kind, "task": self.import_path}
        node.update(options.policy_fields())
        for problem in options.problems:  # reported with the workflow's other problems
            trace.issues.append(problem.issue(len(trace.nodes), node_id))
        condition = trace.condition(options.when)
        if condition is not None:
            node["when"] = condition
        if options.after:
            node["after"] = [_node_id(item) for item in options.after]
        return node


def _unset(option: object) -> bool:
    return option is None or (isinstance(option, tuple | dict) and len(option) == 0)


def argument_data(value: object, what: str) -> dict[str, Any]:
    if contains_value(value):
        return {"expr": to_expression(value)}
    return {"value": to_json(value, what=what)}


def _as_sequence(value: object) -> Sequence[NodeOutput | str]:
    if isinstance(value, NodeOutput | str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    raise TracingError(f"after= takes steps or node ids, not {type(value).__name__}")


def _node_id(item: NodeOutput | str) -> str:
    if isinstance(item, NodeOutput):
        return node_id_of(item)
    if isinstance(item, str):
        return item
    raise TracingError(
        f"after= takes the results of steps (or node ids), not {type(item).__name__}"
    )


@overload
def task(function: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    retries: int | None = None,
    retry: RetryPolicy | None = None,
    timeout: str | float | None = None,
    queue: str | None = None,
    priority: int | None = None,
    concurrency: ConcurrencyPolicy | None = None,
    rate_limit: RateLimitPolicy | None = None,
    on_failure: str | None = None,
    compensate: Callable[..., Any] | None = None,
    circuit: str | CircuitPolicy | None = None,
    isolation: str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int | None = None,
    retry: RetryPolicy | None = None,
    timeout: str | float | None = None,
    queue: str | None = None,
    priority: int | None = None,
    concurrency: ConcurrencyPolicy | None = None,
    rate_limit: RateLimitPolicy | None = None,
    on_failure: str | None = None,
    compensate: Callable[..., Any] | None = None,
    circuit: str | CircuitPolicy | None = None,
    isolation: str | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Declare a function as a step: ``@keel.task`` or ``@keel.task(retries=3, timeout="30s")``.

    ``retries=N`` means up to N more attempts after the first (``max_attempts = N + 1``).
    ``compensate=undo`` names the function that undoes the step if the run fails later
    (it gets the step's arguments and ``output``); ``circuit="crm-api"`` puts the step
    behind a circuit breaker; ``isolation="process"`` runs each attempt in a child
    process that its timeout can kill.
    """
    options = make_options(
        retries=retries,
        retry=retry,
        timeout=timeout,
        queue=queue,
        priority=priority,
        concurrency=concurrency,
        rate_limit=rate_limit,
        on_failure=on_failure,
        compensate=compensate,
        circuit=circuit,
        isolation=isolation,
    )
    raise_problems(options.problems, "@keel.task" + (f"(name={name!r})" if name else "(...)"))

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        if isinstance(fn, Task):
            raise TracingError(f"{fn.name} is already a keel task")
        return Task(fn, options, name=name)

    return decorate(function) if function is not None else decorate


def map_task(
    step: Task[..., Any],
    items: Value | Sequence[Any],
    *,
    item_arg: str | None = None,
    args: Mapping[str, Any] | None = None,
    id: str | None = None,
    max_parallel: int | None = None,
    when: Value | str | None = None,
    after: Sequence[NodeOutput | str] = (),
) -> Value:
    """Run ``step`` once per item of ``items`` (a future list); the output is the list of
    results in item order. ``args`` are passed unchanged to every call."""
    trace = require_trace("keel.map")
    if not isinstance(step, Task):
        raise TracingError(f"keel.map needs a @keel.task, not {type(step).__name__}")
    fixed = dict(args or {})
    parameters = [
        name for name in inspect.signature(step.__wrapped__).parameters if name not in fixed
    ]
    chosen = item_arg or (parameters[0] if parameters else None)
    if chosen is None:
        raise TracingError(f"keel.map: {step.name} has no parameter left to receive the items")
    options = step.options_.merged(make_options(id=id, when=when, after=after))
    node = step.node_data(trace, options, kind="map")
    node["items"] = to_expression(items)
    node["item_arg"] = chosen
    node["args"] = {
        name: argument_data(value, f"keel.map({step.name}, {name}=...)")
        for name, value in fixed.items()
    }
    if max_parallel is not None:
        node["max_parallel"] = max_parallel
    return trace.add(node)
