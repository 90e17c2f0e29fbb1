"""Run one attempt of a task: find the function, turn JSON arguments into the types its
signature asks for, call it, and turn what it returns (or raises) into JSON data.

Everything that can go wrong with user code ends here as an ``ErrorInfo`` (a recorded
failure), never as an exception escaping into the worker: a missing module, arguments
that do not fit the signature, an exception, a result that is not JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import reprlib
import threading
import traceback
import typing
from collections.abc import Callable
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from keel.engine.events import ErrorInfo
from keel.errors import ApprovalNeeded, NonRetryable, RetryLater
from keel.runtime.execution.context import StepContext, _current
from keel.runtime.execution.task_access import (
    CODE_MISSING,
    NOT_ALLOWED,
    TaskAccess,
    TaskCodeMissingError,
    TaskNotAllowedError,
)
from keel.runtime.execution.task_logs import Captured
from keel.runtime.secrets import redact, redact_text, reveal_to, stop_revealing
from keel.spec.callables import ImportPathError, is_injected, unwrap
from keel.spec.data import json_problem
from keel.spec.policies import RetryPolicy
from keel.store.protocol import Store


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt produced: an output (JSON data) or an error; and, from a child
    process, what its task logged (in this process the worker's handler keeps it)."""

    output: Any = None
    error: ErrorInfo | None = None
    logs: Captured | None = None
    #: the task asked for a person's approval (``ApprovalNeeded.details``)
    asks: dict[str, Any] | None = None


_NO_DEFAULT: Any = inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    positional_only: bool
    adapter: TypeAdapter[Any] | None
    injected: bool
    default: Any = _NO_DEFAULT


@dataclass(frozen=True, slots=True)
class PreparedTask:
    """A task function with what calling it needs, computed once per function."""

    function: Callable[..., Any]
    params: tuple[_Param, ...]
    is_async: bool
    #: checks results against the return annotation (None: not annotated, or ``Any``)
    returns: ReturnType | None = None

    def bind(self, args: dict[str, Any], ctx: StepContext) -> tuple[list[Any], dict[str, Any]]:
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for param in self.params:
            if param.injected:
                value: Any = ctx
            elif param.name in args:
                value = args[param.name]
                if param.adapter is not None:
                    value = param.adapter.validate_python(value)
            elif param.positional_only and param.default is not _NO_DEFAULT:
                value = param.default  # keeps the next positional argument in its place
            else:
                continue  # the function's default applies
            if param.positional_only:
                positional.append(value)
            else:
                keywords[param.name] = value
        return positional, keywords

    def result_problem(self, data: Any) -> str | None:
        """Why ``data`` (a result as JSON) is not what the return annotation declares:
        a task declared ``-> Decision`` must not hand ``{"payout": "n/a"}`` downstream."""
        if self.returns is None:
            return None
        try:
            self.returns.adapter.validate_python(data)
        except ValidationError as exc:
            return _described(exc)
        return None


class _JsonPreview(reprlib.Repr):
    """``reprlib``'s bounded preview, written as JSON (results are JSON): ``{"a": null}``,
    not ``{'a': None}``."""

    def repr1(self, x: Any, level: int) -> str:
        if x is None or isinstance(x, bool):
            return json.dumps(x)
        return super().repr1(x, level)

    def repr_str(self, x: str, level: int) -> str:
        return json.dumps(x if len(x) <= self.maxstring else x[: self.maxstring] + "...")


_JSON_PREVIEW = _JsonPreview()


def _described(exc: ValidationError, limit: int = 3) -> str:
    """A validation error in one line: each wrong field, what is wrong, what was given."""
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:limit]:
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        given = _JSON_PREVIEW.repr(error["input"])  # bounded, however large the result
        given = given if len(given) <= 40 else given[:37] + "..."
        parts.append(f"{where + ': ' if where else ''}{error['msg']} (got {given})")
    more = len(errors) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class ReturnType:
    """A task's return annotation, ready to check results with."""

    adapter: TypeAdapter[Any]
    #: as people write it (``Decision``, ``list[int]``), for messages
    name: str


def _return_type(hints: dict[str, Any]) -> ReturnType | None:
    """The task's return annotation, when there is one to check.

    Results are checked as the JSON they become (a model dumps to an object), leniently
    as the next parameter will read them: ``-> Decision`` accepts an object with the
    fields of ``Decision``, ``-> int`` refuses ``"n/a"``.
    """
    if "return" not in hints:
        return None
    hint = hints["return"]
    if hint is Any or isinstance(hint, str) or is_injected(hint):
        return None
    name = hint.__qualname__ if isinstance(hint, type) else str(hint).replace("typing.", "")
    try:
        return ReturnType(TypeAdapter(hint), "None" if hint is type(None) else name)
    except Exception:  # a type pydantic cannot check: results are taken as they come
        return None


def prepare(function: Callable[..., Any]) -> PreparedTask:
    function = unwrap(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable forward references: take arguments as they come
        hints = {}
    params: list[_Param] = []
    for name, param in inspect.signature(function).parameters.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        # an annotation left as text (its type imported only for type checkers) still
        # says whether keel must inject the context
        hint = hints.get(name, param.annotation if isinstance(param.annotation, str) else Any)
        injected = is_injected(hint)
        typed = not (injected or hint is Any or isinstance(hint, str))
        params.append(
            _Param(
                name,
                param.kind is inspect.Parameter.POSITIONAL_ONLY,
                TypeAdapter(hint) if typed else None,
                injected,
                param.default,
            )
        )
    return PreparedTask(
        function,
        tuple(params),
        inspect.iscoroutinefunction(function),
        _return_type(hints),
    )


class TaskCatalog:
    """Import paths resolved to prepared tasks, once each, safe to share between threads.

    Only what ``access`` lets run is resolved (see ``keel.runtime.execution.task_access``): by
    default, ``@keel.task`` functions of modules this process has imported."""

    def __init__(self, access: TaskAccess | None = None) -> None:
        self.access = access or TaskAccess()
        self._tasks: dict[str, PreparedTask] = {}
        self._lock = threading.Lock()

    def get(self, import_path: str) -> PreparedTask:
        found = self._tasks.get(import_path)
        if found is None:
            with self._lock:
                found = self._tasks.get(import_path)
                if found is None:
                    found = prepare(self.access.resolve(import_path))
                    self._tasks[import_path] = found
        return found

    def refusal(self, import_path: str, retry: RetryPolicy | None = None) -> Outcome | None:
        """Why an attempt of ``import_path`` cannot run here, as its outcome (None: it
        can). Checked before the attempt is handed to a thread or a process."""
        try:
            self.get(import_path)
        except TaskNotAllowedError as exc:
            return _failure(NOT_ALLOWED, str(exc))
        except TaskCodeMissingError as exc:
            return _failure(CODE_MISSING, str(exc))
        except ImportPathError as exc:
            return _failure("ImportError", f"cannot load task '{import_path}': {exc}")
        except Exception as exc:  # importing an allowed module raised
            return Outcome(error=error_of(exc, retry))
        return None


def type_names(kind: type[BaseException]) -> set[str]:
    """Every name a policy may use for ``kind``: its classes' bare and dotted names."""
    names: set[str] = set()
    for cls in kind.__mro__:
        names.add(cls.__qualname__)
        if cls.__module__ != "builtins":
            names.add(f"{cls.__module__}.{cls.__qualname__}")
    return names


def may_retry(policy: RetryPolicy | None, names: set[str]) -> bool:
    """Whether an error known by ``names`` may be retried under the policy: not in
    ``never_retry_on``, and in ``retry_on`` when that is given (subclasses included)."""
    if policy is None:
        return True
    if names.intersection(policy.never_retry_on):
        return False
    return not policy.retry_on or bool(names.intersection(policy.retry_on))


def error_of(exc: BaseException, policy: RetryPolicy | None = None) -> ErrorInfo:
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return ErrorInfo(
        type=name,
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
        retryable=not isinstance(exc, NonRetryable) and may_retry(policy, type_names(kind)),
        retry_after=exc.after if isinstance(exc, RetryLater) else None,
    )


def _failure(kind: str, message: str, *, retryable: bool = False) -> Outcome:
    return Outcome(error=ErrorInfo(type=kind, message=message, retryable=retryable))


def timed_out(timeout: float | None, retry: RetryPolicy | None, *, thread: bool = False) -> Outcome:
    """The outcome of an attempt stopped at its timeout (retried unless the policy says
    ``TimeoutError`` is not to be)."""
    message = f"the attempt took longer than {timeout} s"
    if thread:
        message += (
            "; its thread cannot be stopped, so whatever it returns later is discarded "
            '(use isolation="process" to have it killed)'
        )
    return _failure("TimeoutError", message, retryable=may_retry(retry, {"TimeoutError"}))


def to_json_data(value: Any) -> Any:
    """JSON data for a task's result; raises ``TypeError`` naming what is not JSON."""
    try:
        data = to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise TypeError(
            f"the task returned {type(value).__name__}, which is not JSON-serialisable "
            f"({exc}); return JSON data (dict, list, str, number, bool, None) or a "
            "pydantic model"
        ) from None
    try:
        json.dumps(data, allow_nan=False)
    except ValueError as exc:
        raise TypeError(f"the task's result is not valid JSON: {exc}") from None
    return data


class Invocation:
    """One attempt, ready to run in a thread (``run``) or on an event loop (``run_async``)."""

    def __init__(
        self,
        catalog: TaskCatalog,
        task: str,
        args: dict[str, Any],
        ctx: StepContext,
        retry: RetryPolicy | None = None,
        isolation: str = "thread",
    ) -> None:
        self.catalog, self.task, self.args, self.ctx = catalog, task, args, ctx
        #: decides which errors the outcome marks retryable (``retry_on``/``never_retry_on``)
        self.retry = retry
        #: ``thread`` or ``process`` (see ``keel.runtime.execution.isolation``)
        self.isolation = isolation

    def _prepare(self) -> tuple[PreparedTask, list[Any], dict[str, Any]] | Outcome:
        refused = self.catalog.refusal(self.task, self.retry)
        if refused is not None:
            return refused
        prepared = self.catalog.get(self.task)
        try:
            positional, keywords = prepared.bind(self.args, self.ctx)
        except ValidationError as exc:
            return _failure("ArgumentError", f"arguments do not fit '{self.task}': {exc}")
        return prepared, positional, keywords

    def _finish(self, prepared: PreparedTask, result: Any) -> Outcome:
        try:
            data = to_json_data(result)
        except TypeError as exc:
            return _failure("ResultNotJSON", str(exc))
        problem = json_problem(data)
        if problem is not None:
            return _failure("ResultNotJSON", f"the task's result holds {problem}")
        problem = prepared.result_problem(data)
        if problem is not None:
            assert prepared.returns is not None
            declared = prepared.returns.name
            return _failure(
                "ResultTypeError",
                f"task '{self.task}' returned what its return type {declared} refuses: {problem}",
            )
        return Outcome(output=data)

    def is_async(self) -> bool:
        try:
            return self.catalog.get(self.task).is_async
        except Exception:
            return False

    def run(
        self, started: Callable[[], None] | None = None, *, interruptible: bool = False
    ) -> Outcome:
        """The attempt, here; ``started()`` is called once the task's module is imported
        and its arguments fit, as its body begins (where a child process's timeout starts).

        ``interruptible``: a ``KeyboardInterrupt`` is raised, not recorded as the task's
        failure (run on the main thread, it is Ctrl-C, meant for the worker)."""
        revealed: dict[str, str] = {}
        token = reveal_to(revealed)
        try:
            outcome = self._run(started, interruptible)
        finally:
            stop_revealing(token)
        return redacted(outcome, revealed) if revealed else outcome

    def _run(self, started: Callable[[], None] | None, interruptible: bool) -> Outcome:
        prepared = self._prepare()
        if isinstance(prepared, Outcome):
            return prepared
        function, positional, keywords = prepared
        if started is not None:
            started()
        entered = _entered(self.ctx)
        try:
            result = function.function(*positional, **keywords)
        except BaseException as exc:  # a task's failure is data
            if interruptible and isinstance(exc, KeyboardInterrupt):
                raise
            return outcome_of(exc, self.retry)
        finally:
            _left(entered)
        return self._finish(function, result)

    def run_in_process(self, timeout: float | None) -> Outcome:
        """The attempt in a child process, killed at its timeout."""
        from keel.runtime.execution.isolation import run_in_process

        return run_in_process(self.task, self.args, self.ctx, timeout=timeout, retry=self.retry)

    async def run_async(self, timeout: float | None) -> Outcome:
        revealed: dict[str, str] = {}
        token = reveal_to(revealed)
        try:
            outcome = await self._run_async(timeout)
        finally:
            stop_revealing(token)
        return redacted(outcome, revealed) if revealed else outcome

    async def _run_async(self, timeout: float | None) -> Outcome:
        prepared = self._prepare()
        if isinstance(prepared, Outcome):
            return prepared
        function, positional, keywords = prepared
        entered = _entered(self.ctx)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                result = await function.function(*positional, **keywords)
        except TimeoutError as exc:
            if not deadline.expired():  # the task's own TimeoutError, not our deadline
                return Outcome(error=error_of(exc, self.retry))
            return timed_out(timeout, self.retry)
        except BaseException as exc:  # a task's failure is data
            return outcome_of(exc, self.retry)
        finally:
            _left(entered)
        return self._finish(function, result)


def redacted(outcome: Outcome, revealed: dict[str, str]) -> Outcome:
    """``outcome`` with every secret the attempt looked up taken out of its output and
    error (``keel.runtime.secrets``); its log lines were redacted as they were logged."""
    if not revealed:
        return outcome
    error = outcome.error
    if error is not None:
        error = dataclasses.replace(
            error,
            message=redact_text(error.message, revealed),
            traceback=redact_text(error.traceback, revealed),
        )
    return dataclasses.replace(outcome, output=redact(outcome.output, revealed), error=error,
                               asks=redact(outcome.asks, revealed))  # fmt: skip


def outcome_of(exc: BaseException, policy: RetryPolicy | None) -> Outcome:
    """What a task that raised ``exc`` produced: a failure, or a question for a person
    (``ApprovalNeeded``: the attempt ends and the node waits for the answer)."""
    if isinstance(exc, ApprovalNeeded):
        error = ErrorInfo(type="ApprovalNeeded", message=str(exc), retryable=False)
        return Outcome(error=error, asks=exc.details())
    return Outcome(error=error_of(exc, policy))


def make_context(
    run_id: str,
    workflow: str,
    node: str,
    attempt: int,
    item: int | None,
    span: trace.Span | None = None,
    store: Store | None = None,
) -> StepContext:
    return StepContext(run_id, workflow, node, attempt, item, span, store)


_Entered = tuple[Token[StepContext], Token[otel_context.Context] | None]


def _entered(ctx: StepContext) -> _Entered:
    """Make ``ctx`` the current step context, and its span the current span."""
    span = ctx.span
    attached = None if span is None else otel_context.attach(trace.set_span_in_context(span))
    return _current.set(ctx), attached


def _left(entered: _Entered) -> None:
    token, attached = entered
    if attached is not None:
        otel_context.detach(attached)
    _current.reset(token)
