"""``@keel.task``: a plain function that becomes a node when called inside a workflow.

Outside a workflow, a task is its function: calling it calls it, which keeps unit tests
trivial. Inside a workflow being traced, calling it records a node whose arguments are
the expressions of the values passed, and returns a reference to its future output.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar, Unpack, cast, overload

from keel.authoring.option_problems import raise_problems
from keel.authoring.options import (
    CallOptions,
    MapOptions,
    NodeOptions,
    StepOptions,
    TaskOptions,
    option_names,
    read_options,
)
from keel.authoring.tracing import NodeOutput, Trace, current_trace, require_trace
from keel.authoring.values import Value, contains_value, to_expression, to_json
from keel.errors import TracingError
from keel.spec.callables import Signature, signature_of

P = ParamSpec("P")
R = TypeVar("R")


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
        self._checked_signature: Signature | None = None
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__module__ = function.__module__

    @functools.cached_property
    def _signature(self) -> inspect.Signature:
        """The function's Python signature, read once (a step may be called many times)."""
        return inspect.signature(self.__wrapped__)

    def signature(self) -> Signature:
        """What validation checks calls of this step against. Read once its type hints
        resolve (a JSON Schema per parameter costs as much as tracing 20 steps); until
        then (a forward reference to a class defined later), at every workflow."""
        if self._checked_signature is not None:
            return self._checked_signature
        signature = signature_of(self.__wrapped__)
        if signature.hints_resolved:
            self._checked_signature = signature
        return signature

    def __repr__(self) -> str:
        return f"<keel task {self.import_path}>"

    def options(self, **options: Unpack[StepOptions]) -> Task[P, R]:
        """A copy of this task with node settings changed for one use in a workflow.

        ``on_failure`` is ``"fail"``, ``"continue"`` or the id of a handler node."""
        given = read_options(options, StepOptions, "Task.options", base_retry=self.options_.retry)
        if current_trace() is None:  # no workflow to report them with
            raise_problems(given.problems, f"{self.name}.options()")
        merged = self.options_.merged(given)
        copy = Task(self.__wrapped__, merged, name=merged.id or self.name)
        copy.import_path = self.import_path
        copy._checked_signature = self._checked_signature  # the same function
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
        """The node keywords of a call (``when``, ``after``) that are not parameters of
        the function, taken out of ``kwargs``, on top of the task's options."""
        if not kwargs:  # most calls pass values only: the task's own options as they are
            return self.options_
        parameters = self._signature.parameters
        own = {
            keyword: kwargs.pop(keyword)
            for keyword in option_names(CallOptions)
            if keyword in kwargs and keyword not in parameters
        }
        return self.options_.merged(read_options(own, CallOptions, self.name))

    @functools.cached_property
    def _positional(self) -> tuple[str, ...] | None:
        """The parameter names, if every parameter can be passed by position (no ``*args``,
        no keyword-only ones): values passed by position then bind by a zip."""
        parameters = self._signature.parameters.values()
        if all(parameter.kind in _POSITIONAL for parameter in parameters):
            return tuple(parameter.name for parameter in parameters)
        return None

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Argument names and values as the function would receive them."""
        names = self._positional
        if not kwargs and names is not None and len(args) <= len(names):
            return dict(zip(names, args, strict=False))  # what bind_partial gives, sooner
        signature = self._signature
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
        if self.import_path not in trace.signatures:  # a step called 200 times: read once
            trace.signatures[self.import_path] = self.signature()
        node = options.node(trace, kind, self.name)
        node["task"] = self.import_path
        return node


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def argument_data(value: object, what: str) -> dict[str, Any]:
    if contains_value(value):
        return {"expr": to_expression(value)}
    return {"value": to_json(value, what=what)}


@overload
def task(function: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *, name: str | None = None, **options: Unpack[TaskOptions]
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    **options: Unpack[TaskOptions],
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Declare a function as a step: ``@keel.task`` or ``@keel.task(retries=3, timeout="30s")``.

    ``retries=N`` means up to N more attempts after the first (``max_attempts = N + 1``).
    ``compensate=undo`` names the function that undoes the step if the run fails later
    (it gets the step's arguments and ``output``); ``circuit="crm-api"`` puts the step
    behind a circuit breaker; ``isolation="process"`` runs each attempt in a child
    process that its timeout can kill; ``side_effect=True`` marks a step that changes the
    world (``keel fork`` warns before running it again). ``TaskOptions`` lists them all.
    """
    given = read_options(options, TaskOptions, "task")
    raise_problems(given.problems, "@keel.task" + (f"(name={name!r})" if name else "(...)"))

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        if isinstance(fn, Task):
            raise TracingError(f"{fn.name} is already a keel task")
        return Task(fn, given, name=name)

    return decorate(function) if function is not None else decorate


def map_task(
    step: Task[..., Any],
    items: Value | Sequence[Any],
    *,
    item_arg: str | None = None,
    args: Mapping[str, Any] | None = None,
    **options: Unpack[MapOptions],
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
    node_options = step.options_.merged(read_options(options, MapOptions, "map_task"))
    node = step.node_data(trace, node_options, kind="map")
    node["items"] = to_expression(items)
    node["item_arg"] = chosen
    node["args"] = {
        name: argument_data(value, f"keel.map({step.name}, {name}=...)")
        for name, value in fixed.items()
    }
    return trace.add(node)
