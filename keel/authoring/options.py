"""Node options: the one definition of the keywords that configure a step.

Every authoring function takes its node options as ``**options: Unpack[...]`` of one of
the classes below, so editors complete the names and mypy refuses a misspelt one. The
same classes drive the run-time side: which keywords a function accepts (another one is
a ``TypeError``, as Python gives for a parameter that does not exist), how each value is
read (``Annotated`` with ``Read``: checked, and turned into what the spec field holds),
and the copy into the node's spec data, which is by name: an option sets the spec field
of the same name. Adding an option is one line in one class, and its field in the
spec's node model (``tests/unit/test_node_options.py`` checks that they agree).

Options are read when they are given, all of them: a value that cannot work becomes an
``OptionProblem`` with the caller's line and is left unset, to be reported with the
workflow's other problems (or at once, outside a workflow); a typo in one must not hide
the others.
"""

from __future__ import annotations

import difflib
import functools
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypedDict

from pydantic import BaseModel

from keel.authoring.option_problems import OptionProblem, caller
from keel.authoring.tracing import NodeOutput, node_id_of
from keel.authoring.values import Value
from keel.errors import OptionError, TracingError
from keel.spec.callables import is_keel_task
from keel.spec.durations import spec_duration
from keel.spec.model import JoinRule, SideTask
from keel.spec.policies import CircuitPolicy, ConcurrencyPolicy, RateLimitPolicy, RetryPolicy

if TYPE_CHECKING:
    from keel.authoring.tracing import Trace


@dataclass(frozen=True)
class Read:
    """How an option's value becomes what its spec field holds: ``convert`` returns it,
    or raises ``BadOptionError`` saying what would work. Options without one are kept as
    given (the spec checks them)."""

    convert: Callable[[Any], Any]


class CallOptions(TypedDict, total=False):
    """What a task called in a workflow's body takes besides its function's parameters
    (a parameter of the same name is the function's)."""

    #: run only if this holds: a comparison of future values (``score > 0.8``) or CEL
    #: text; conditions given in several places add up
    when: Value | str | None
    #: steps (their results, or node ids) to run after, besides those whose output it reads
    after: Sequence[NodeOutput | str] | NodeOutput | str


class _Placed(CallOptions, total=False):
    #: the node's id; by default the task's (or the title's) name, ``_2``... when taken
    id: str | None


class MapOptions(_Placed, total=False):
    """``keel.map``."""

    #: at most this many items at once (besides the run's and the workers' limits)
    max_parallel: int | None


class TimerOptions(_Placed, total=False):
    """``keel.timer``."""

    #: when the node runs, given how its parents ended (``keel.JoinRule``)
    join: Annotated[JoinRule | str | None, Read(_join_rule)]


class _Failure(TypedDict, total=False):
    #: ``"fail"`` (the run fails), ``"continue"``, or the id of a handler node
    on_failure: Annotated[str | None, Read(_failure_route)]


class WaitOptions(TimerOptions, _Failure, total=False):
    """``keel.approval``, ``keel.signal``, and a workflow called as a step."""


class TaskOptions(_Failure, total=False):
    """``@keel.task``: how its function runs; the defaults of every node it becomes."""

    #: up to N more attempts after the first: ``retry`` (or the task's) with
    #: ``max_attempts = N + 1``, its backoff kept
    retries: Annotated[int | None, Read(_whole_number)]
    retry: RetryPolicy | None
    #: per attempt: ``"30s"``, ``"5m"``, or seconds
    timeout: Annotated[str | float | None, Read(_seconds)]
    queue: str | None
    priority: int | None
    concurrency: ConcurrencyPolicy | None
    rate_limit: RateLimitPolicy | None
    #: a ``@keel.task`` that undoes the step if the run fails later (it gets the step's
    #: arguments and ``output``)
    compensate: Annotated[Callable[..., Any] | None, Read(_compensation)]
    #: a circuit breaker on a named resource: its name or a ``keel.CircuitPolicy``
    circuit: str | CircuitPolicy | None
    #: ``"thread"`` or ``"process"`` (a child process its timeout can kill)
    isolation: Annotated[str | None, Read(_isolation_mode)]
    #: the step changes the world (books, pays, sends): ``keel fork`` warns before it
    #: runs it again
    side_effect: Annotated[bool | None, Read(_flag)]


class StepOptions(TaskOptions, WaitOptions, total=False):
    """``task.options(...)``: a task's options for one use, and where the node sits."""

    description: str | None


#: the options that place a node in the graph; the others set spec fields of their name
_PLACEMENT = frozenset(_Placed.__annotations__)


@functools.cache
def _readers(options: type) -> dict[str, Read | None]:
    """Each option of a class above, in the order of its definition, with its ``Read``."""
    hints = typing.get_type_hints(options, include_extras=True)
    return {
        name: next((meta for meta in getattr(hint, "__metadata__", ()) if isinstance(meta, Read)),
                   None)
        for name, hint in hints.items()
    }  # fmt: skip


def option_names(options: type) -> tuple[str, ...]:
    """The keywords a class above defines."""
    return tuple(_readers(options))


class BadOptionError(ValueError):
    """An option's value that cannot work; the message says what would."""


@dataclass(frozen=True)
class NodeOptions:
    """A node's options once read: ``@keel.task`` sets a task's, ``task.options(...)``,
    ``keel.map`` and the keywords of a call add to them (``merged``)."""

    id: str | None = None
    #: conditions that must all hold (each ``when=`` given adds one)
    when: tuple[Value | str, ...] = ()
    after: tuple[NodeOutput | str, ...] = ()
    #: every other option given, read (``timeout`` in seconds...), by the spec field it sets
    fields: Mapping[str, Any] = field(default_factory=dict)
    #: options given with a value that cannot work (left out of ``fields``), to report
    problems: tuple[OptionProblem, ...] = ()

    @property
    def retry(self) -> RetryPolicy | None:
        retry = self.fields.get("retry")
        return retry if isinstance(retry, RetryPolicy) else None

    def merged(self, other: NodeOptions) -> NodeOptions:
        """``other`` on top of these: conditions, ``after`` and problems add up, the rest
        is replaced where ``other`` sets it."""
        return NodeOptions(
            id=other.id if other.id is not None else self.id,
            when=(*self.when, *other.when),
            after=(*self.after, *other.after),
            fields={**self.fields, **other.fields},
            problems=(*self.problems, *other.problems),
        )

    def spec_fields(self) -> dict[str, Any]:
        """The node's spec fields these options set, as plain data."""
        if not self.fields:  # a task without options: nothing to dump
            return {}
        return {
            name: value.model_dump(exclude_defaults=True) if isinstance(value, BaseModel) else value
            for name, value in self.fields.items()
        }

    def node(self, trace: Trace, kind: str, name: str) -> dict[str, Any]:
        """The data of a new node of ``trace`` with these options; its id is ``name``
        unless ``id`` was given (``name_2``... when taken). The problems of the options
        join the workflow's, reported with them."""
        node_id = trace.unique_id(self.id or name, explicit=self.id is not None)
        node: dict[str, Any] = {"id": node_id, "kind": kind, **self.spec_fields()}
        for problem in self.problems:
            trace.issues.append(problem.issue(len(trace.nodes), node_id))
        condition = trace.condition(self.when)
        if condition is not None:
            node["when"] = condition
        if self.after:
            node["after"] = [_node_id(item) for item in self.after]
        return node


def read_options(
    given: Mapping[str, object],
    options: type,
    owner: str,
    *,
    base_retry: RetryPolicy | None = None,
    own_fields: Sequence[str] = (),
) -> NodeOptions:
    """``given`` read as the class ``options`` defines them, for ``owner`` (the function
    they were given to, for the error naming a keyword it does not take, and suggesting
    one of the options or of its ``own_fields``). ``retries`` adjusts the ``retry``
    given, else ``base_retry`` (the task's own)."""
    readers = _readers(options)
    for name in given:
        if name not in readers:
            raise TypeError(_unexpected(owner, name, [*own_fields, *readers]))
    fields: dict[str, Any] = {}
    found: list[tuple[str, str]] = []
    for name, read in readers.items():
        value = given.get(name)
        if value is None or name in _PLACEMENT:
            continue
        try:
            fields[name] = read.convert(value) if read is not None else value
        except BadOptionError as exc:
            found.append((name, str(exc)))
    retries = fields.pop("retries", None)
    if retries is not None:
        base = fields.get("retry") or base_retry or RetryPolicy()
        fields["retry"] = RetryPolicy.model_validate(
            {**base.model_dump(), "max_attempts": retries + 1}
        )
    problems: tuple[OptionProblem, ...] = ()
    if found:
        file, line = caller()
        problems = tuple(OptionProblem(option, message, file, line) for option, message in found)
    when = given.get("when")
    return NodeOptions(
        id=typing.cast(str | None, given.get("id")),
        when=() if when is None else (typing.cast(Value | str, when),),
        after=_as_sequence(given.get("after", ())),
        fields=fields,
        problems=problems,
    )


def _unexpected(owner: str, name: str, known: Sequence[str]) -> str:
    """Python's message for a keyword a function does not take, with a suggestion."""
    message = f"{owner}() got an unexpected keyword argument '{name}'"
    close = difflib.get_close_matches(name, known, n=1)
    return message + (f". Did you mean '{close[0]}'?" if close else "")


def side_task_data(function: object, *, what: str) -> dict[str, Any]:
    """Spec data for a task run off the graph (a compensation, a failure handler): it
    brings the options a ``SideTask`` has (retry policy, timeout, isolation) along.
    ``what`` names the option in the error for a plain function, which workers would
    refuse to run."""
    if is_keel_task(function):
        task = typing.cast(_TaskLike, function)
        data: dict[str, Any] = {"task": task.import_path}
        data.update(
            (name, value)
            for name, value in task.options_.spec_fields().items()
            if name in SideTask.model_fields
        )
        return data
    if not callable(function):
        raise OptionError(f"{what} takes a @keel.task, got {type(function).__name__}")
    name = getattr(function, "__name__", type(function).__name__)
    raise OptionError(
        f"{what} takes a @keel.task, and {name} is a plain function: decorate it with "
        "@keel.task (workers run only keel tasks)"
    )


class _TaskLike(Protocol):
    """What a side task needs of a ``Task`` (whose module imports this one)."""

    import_path: str
    options_: NodeOptions


def _as_sequence(value: object) -> tuple[NodeOutput | str, ...]:
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


# --- how options are read ---------------------------------------------------------------------


def _whole_number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadOptionError(f"must be a whole number >= 0, got {value!r}")
    return value


def _seconds(value: object) -> float:
    try:
        seconds = spec_duration(value)
    except ValueError as exc:
        raise BadOptionError(str(exc)) from None
    if seconds <= 0:
        raise BadOptionError(f"must be more than 0 seconds, got {value!r}")
    return seconds


def _join_rule(value: object) -> str:
    rules = {rule.value for rule in JoinRule}
    if isinstance(value, str) and value in rules:
        return JoinRule(value).value
    shown = ", ".join(f"'{rule.value}'" for rule in JoinRule)
    raise BadOptionError(f"{value!r} is not a join rule; use one of {shown}")


def _failure_route(value: object) -> str:
    if isinstance(value, str) and value:
        return value  # "fail", "continue", or a handler node (checked with the workflow)
    raise BadOptionError(f"takes 'fail', 'continue' or the id of a handler node, got {value!r}")


def _isolation_mode(value: object) -> str:
    if value in ("thread", "process"):
        return str(value)
    raise BadOptionError(f"{value!r} is not an isolation; use 'thread' or 'process'")


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise BadOptionError(f"must be True or False, got {value!r}")


def _compensation(value: object) -> dict[str, Any]:
    return side_task_data(value, what="compensate=")
