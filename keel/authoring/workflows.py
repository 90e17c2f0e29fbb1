"""``@keel.workflow``: trace a function once into a validated ``WorkflowSpec``.

The function's parameters become the input schema (type hints and pydantic models as
JSON Schema) and ``input.<name>`` values; its body records nodes; its return value
becomes the outputs. Tracing happens when the decorator runs, so an invalid workflow
fails at import with every problem listed, before anything can run.
"""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, Unpack, cast, overload

from pydantic import BaseModel, ConfigDict, create_model

from keel.authoring.definition_errors import InvalidWorkflow, refused
from keel.authoring.option_problems import raise_problems
from keel.authoring.options import WaitOptions, read_options, side_task_data
from keel.authoring.tasks import Task, import_path_of
from keel.authoring.tracing import RESULT, current_trace, tracing
from keel.authoring.values import Value, to_expression
from keel.errors import KeelError, SpecError, TracingError
from keel.spec.model import LlmBudget, WorkflowSpec
from keel.spec.policies import NodeDefaults
from keel.spec.registry import SpecRegistry
from keel.spec.triggers import Trigger
from keel.spec.validate import parse_and_validate

P = ParamSpec("P")
R = TypeVar("R")


class Workflow(Generic[P, R]):
    """A traced workflow: its ``spec`` is what keel stores, versions and runs; its
    ``registry`` has that spec and the definitions of the child workflows it calls (and
    of theirs), which a run of it may start."""

    def __init__(
        self,
        function: Callable[P, R],
        spec: WorkflowSpec,
        *,
        single_result: bool = False,
        registry: SpecRegistry | None = None,
    ) -> None:
        self.__wrapped__ = function
        self.spec = spec
        self.registry = (registry or SpecRegistry()).including(spec)
        #: the function returns one value (the run's output is ``{"result": value}``), so
        #: the workflow called as a step stands for that value, as its type says
        self.single_result = single_result
        self.name = spec.name
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__module__ = function.__module__

    @property
    def version(self) -> str:
        return self.spec.version

    def __repr__(self) -> str:
        return f"<keel workflow {self.name} version {self.version[:12]}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Inside another workflow's body: a step that runs this workflow as a child run
        and waits for it (its output is the child's output)."""
        if current_trace() is None:
            raise KeelError(
                f"workflow '{self.name}' is run by keel, not called: use `keel run` on its "
                "file, or call it inside another workflow to run it as a child run"
            )
        from keel.authoring.waits import child_run

        return cast(R, child_run(self, self.__wrapped__, args, dict(kwargs)))

    def options(self, **options: Unpack[WaitOptions]) -> Callable[P, R]:
        """This workflow as a step with node settings (a typed way to pass ``id``,
        ``when``, ``after``...): ``child.options(id="check", when=x > 1)(claim)``."""
        from keel.authoring.waits import child_run

        given = read_options(options, WaitOptions, "Workflow.options")
        if current_trace() is None:  # no workflow to report them with
            raise_problems(given.problems, f"workflow '{self.name}'.options()")

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if current_trace() is None:
                raise KeelError(f"workflow '{self.name}'.options(...) is a step of a workflow")
            return cast(R, child_run(self, self.__wrapped__, args, dict(kwargs), given))

        return call


def input_schema(function: Callable[..., Any]) -> dict[str, Any]:
    """JSON Schema of a workflow's parameters, titles removed (they are noise in versions)."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise TracingError(f"cannot read the type hints of {function.__qualname__}: {exc}") from exc
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TracingError(
                f"workflow parameter *{name}/**{name} is not supported; name every input"
            )
        hint = hints.get(name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hint, default)
    key = _schema_key(function.__name__, fields)
    known = _SCHEMAS.get(key) if key is not None else None
    if known is None:
        model = create_model(
            f"{function.__name__}_input", __config__=ConfigDict(extra="forbid"), **fields
        )
        known = (_without_titles(model.model_json_schema()), fields)
        if key is not None:
            if len(_SCHEMAS) >= _SCHEMAS_MOST:
                _SCHEMAS.clear()
            _SCHEMAS[key] = known
    schema: dict[str, Any] = copy.deepcopy(known[0])  # the caller's to keep or change
    return schema


#: input schemas built so far, by ``_schema_key`` (at most ``_SCHEMAS_MOST``); each entry
#: keeps the hints its key names by identity alive, so no other object takes their ids.
#: Building one costs a pydantic model, as much as tracing 50 steps, and a process
#: defines the same workflow again and again (tests, workers, ``keel run``)
_SCHEMAS: dict[tuple[object, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
_SCHEMAS_MOST = 256
#: defaults told apart by their type and repr (``1``, ``1.0``, ``True`` and ``-0.0`` differ)
_PLAIN_DEFAULTS = (str, int, float, bool, type(None))


def _schema_key(name: str, fields: Mapping[str, tuple[Any, Any]]) -> tuple[object, ...] | None:
    """What decides the input schema of these parameters, or None when that cannot be
    told for sure: only hints that are classes (the very objects, by identity) and
    defaults that are plain scalars qualify (``list[int]``, ``int | None``, a list as
    default... are built every time)."""
    key: list[object] = [name]
    for parameter, (hint, default) in fields.items():
        if not issubclass(type(hint), type):
            return None
        if default is ...:
            shown: object = ...
        elif type(default) in _PLAIN_DEFAULTS:
            shown = (type(default), repr(default))
        else:
            return None
        key.append((parameter, id(hint), shown))
    return tuple(key)


#: schema keywords whose values are data, not schemas: never edited
_DATA_KEYWORDS = frozenset({"default", "const", "enum", "examples"})


def _without_titles(schema: Any, *, in_properties: bool = False) -> Any:
    if isinstance(schema, dict):
        return {
            key: value
            if key in _DATA_KEYWORDS and not in_properties
            else _without_titles(
                value, in_properties=(key in ("properties", "$defs") and not in_properties)
            )
            for key, value in schema.items()
            if in_properties or not (key == "title" and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    return schema


def _outputs(returned: object, workflow: str) -> dict[str, str]:
    if returned is None:
        return {}
    if isinstance(returned, Mapping) and not isinstance(returned, Value):
        outputs = {}
        for key, value in returned.items():
            if not isinstance(key, str):
                raise TracingError(
                    f"workflow '{workflow}' returns a mapping with key {key!r}; "
                    "output names must be strings"
                )
            outputs[key] = to_expression(value)
        return outputs
    return {RESULT: to_expression(returned)}


def _model_data(value: Any) -> Any:
    """Spec data for a model given to the decorator (a trigger); anything else as it is,
    for the spec to check (a dict given for a trigger is read as one)."""
    return value.model_dump() if isinstance(value, BaseModel) else value


def _notifier_data(notifier: Any) -> Any:
    """Spec data for a notifier: a model as it dumps, a function as a callable notifier."""
    if hasattr(notifier, "model_dump"):
        return notifier.model_dump(mode="json")
    if callable(notifier):
        path = notifier.import_path if isinstance(notifier, Task) else import_path_of(notifier)
        return {"kind": "callable", "function": path}
    return notifier


def build_spec(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    max_parallel: int | None = None,
    deadline: str | float | None = None,
    expected_duration: str | float | None = None,
    llm_budget: LlmBudget | Mapping[str, Any] | None = None,
    defaults: NodeDefaults | None = None,
    triggers: Sequence[Trigger] = (),
    on_failure: Callable[..., Any] | None = None,
    notify: Sequence[Any] = (),
) -> tuple[WorkflowSpec, bool, SpecRegistry]:
    """The spec traced from ``function``, whether it returns a single value (its output
    is then ``{"result": value}``) rather than a mapping of named outputs, and the
    definitions of the child workflows it calls (it is validated against those)."""
    workflow_name = name or function.__name__
    schema = input_schema(function)
    parameters = inspect.signature(function).parameters
    with tracing(workflow_name) as trace:
        returned = function(**{param: Value(f"input.{param}") for param in parameters})
        outputs = _outputs(returned, workflow_name)
    data: dict[str, Any] = {
        "name": workflow_name,
        "description": description if description is not None else inspect.getdoc(function) or "",
        "input_schema": schema,
        "nodes": trace.nodes,
        "outputs": outputs,
        "triggers": [_model_data(trigger) for trigger in triggers],
    }
    if defaults is not None:
        data["defaults"] = defaults.model_dump(exclude_defaults=True)
    if max_parallel is not None:
        data["max_parallel"] = max_parallel
    if deadline is not None:
        data["deadline"] = deadline  # read by the spec, which reports it as written if bad
    if expected_duration is not None:
        data["expected_duration"] = expected_duration
    if llm_budget is not None:
        data["llm_budget"] = _model_data(llm_budget)
    if on_failure is not None:
        data["on_failure"] = side_task_data(on_failure, what="on_failure=")
    if notify:
        data["notify"] = [_notifier_data(notifier) for notifier in notify]
    single = returned is not None and not (
        isinstance(returned, Mapping) and not isinstance(returned, Value)
    )
    try:
        spec = parse_and_validate(data, source=workflow_name, signatures=trace.signatures,
                                  registry=trace.registry)  # fmt: skip
    except SpecError as exc:
        raise SpecError([*trace.issues, *exc.issues], workflow=workflow_name) from None
    if trace.issues:
        raise SpecError(trace.issues, workflow=workflow_name)
    return spec, single, trace.registry


@overload
def workflow(function: Callable[P, R], /) -> Workflow[P, R]: ...


@overload
def workflow(
    *,
    name: str | None = None,
    description: str | None = None,
    max_parallel: int | None = None,
    deadline: str | float | None = None,
    expected_duration: str | float | None = None,
    llm_budget: LlmBudget | Mapping[str, Any] | None = None,
    defaults: NodeDefaults | None = None,
    triggers: Sequence[Trigger] = (),
    on_failure: Callable[..., Any] | None = None,
    notify: Sequence[Any] = (),
) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...


def workflow(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    max_parallel: int | None = None,
    deadline: str | float | None = None,
    expected_duration: str | float | None = None,
    llm_budget: LlmBudget | Mapping[str, Any] | None = None,
    defaults: NodeDefaults | None = None,
    triggers: Sequence[Trigger] = (),
    on_failure: Callable[..., Any] | None = None,
    notify: Sequence[Any] = (),
) -> Workflow[P, R] | Callable[[Callable[P, R]], Workflow[P, R]]:
    """Declare a workflow. The body is traced once, now; see the module docstring.

    ``on_failure`` runs once if a run fails (after its compensations), with a
    ``failure`` argument describing what happened. ``notify`` lists who is told when a
    run fails: ``keel.WebhookNotifier(url=...)``, ``keel.EmailNotifier(...)``, or a
    function (called with the notification). ``deadline`` is a run's hard limit (it
    fails then); ``expected_duration``, shorter, only marks a run still going after it
    as late (``keel runs --late``). ``llm_budget`` (``keel.LlmBudget``, or its fields as
    a dict) caps what a run's model requests may cost, and says what happens when the
    next one would pass it."""

    def decorate(fn: Callable[P, R]) -> Workflow[P, R]:
        try:
            spec, single, children = build_spec(
                fn,
                name=name,
                description=description,
                max_parallel=max_parallel,
                deadline=deadline,
                expected_duration=expected_duration,
                llm_budget=llm_budget,
                defaults=defaults,
                triggers=triggers,
                on_failure=on_failure,
                notify=notify,
            )
        except KeelError as exc:
            if not refused(exc, name or fn.__name__):
                raise
            # the loader is importing: it raises this with the file's other problems
            # once the import is over, so the stand-in never reaches a caller
            return cast(Workflow[P, R], InvalidWorkflow(name or fn.__name__))
        return Workflow(fn, spec, single_result=single, registry=children)

    return decorate(function) if function is not None else decorate
