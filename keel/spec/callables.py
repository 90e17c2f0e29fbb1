"""Resolve a task's import path to its function and describe its parameters.

``package.module:function`` is how a spec names code, so that any worker can import it.
Validation uses this to check arguments against the real signature; authoring uses it
to turn type hints into JSON Schemas. Importing user code runs it, so validation only
resolves imports when asked to (``keel validate`` does).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keel.spec.schemas import Schema, schema_of


class ImportPathError(LookupError):
    """An import path names a module or attribute that does not exist."""


@dataclass(frozen=True)
class Parameter:
    name: str
    required: bool
    schema: Schema | None
    positional_only: bool = False


@dataclass(frozen=True)
class Signature:
    """What validation needs to know about a task function."""

    parameters: dict[str, Parameter]
    accepts_any_keyword: bool
    return_schema: Schema | None
    is_async: bool
    #: the type hints could all be read (else the types are unknown, ``Any``): a
    #: signature read before a forward reference resolves may be read again later
    hints_resolved: bool = field(default=True, compare=False)


#: parameters with these annotations are supplied by keel, never by the spec
INJECTED_ANNOTATIONS: set[str] = {"StepContext", "keel.StepContext"}

#: the attribute ``@keel.task`` sets (to ``True``) on what it returns: workers run only
#: functions that carry it, or that their settings allow by name
TASK_MARKER = "__keel_task__"


def is_keel_task(target: object) -> bool:
    """Whether ``target`` was declared a step with ``@keel.task``. ``is True``, not truth:
    objects that answer every attribute (mocks, proxies) do not pass."""
    if isinstance(target, type):  # the class of tasks (``mod:task.__class__``) is not one
        return False
    return getattr(target, TASK_MARKER, None) is True


def not_a_task_message(import_path: str, target: object) -> str:
    """Why a worker will not run ``target``, and how to let it."""
    if in_standard_library(import_path):
        return (
            f"'{import_path}' is in the standard library, not a keel task: workers run "
            "only @keel.task functions of the code they load (and what `allow` names)"
        )
    return (
        f"'{import_path}' is a {type(target).__name__}, not a keel task: decorate it "
        f'with @keel.task, or allow it by name (allow = ["{import_path}"] in keel.toml)'
    )


def in_standard_library(import_path: str) -> bool:
    """Whether the path's module is Python's own: no keel task lives there."""
    top = import_path.partition(":")[0].split(".")[0]
    return top in sys.stdlib_module_names or top in sys.builtin_module_names


def resolve(import_path: str) -> Callable[..., Any]:
    module_name, _, qualname = import_path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImportPathError(f"cannot import module '{module_name}': {exc}") from None
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportPathError(f"module '{module_name}' has no attribute '{qualname}'") from None
    if not callable(target):
        raise ImportPathError(f"'{import_path}' is a {type(target).__name__}, not a function")
    return typing.cast(Callable[..., Any], target)


def unwrap(function: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function behind a keel task (tasks keep it as ``__wrapped__``)."""
    return typing.cast(Callable[..., Any], getattr(function, "__wrapped__", function))


def signature_of(function: Callable[..., Any]) -> Signature:
    function = unwrap(function)
    resolved = True
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to no type information
        hints, resolved = {}, False
    parameters: dict[str, Parameter] = {}
    any_keyword = False
    for name, param in inspect.signature(function).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            any_keyword = True
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        hint = hints.get(name, param.annotation if isinstance(param.annotation, str) else Any)
        if is_injected(hint):
            continue
        if isinstance(hint, str):  # unresolved: no type information
            hint = Any
        parameters[name] = Parameter(
            name=name,
            required=param.default is inspect.Parameter.empty,
            schema=schema_of(hint),
            positional_only=param.kind is inspect.Parameter.POSITIONAL_ONLY,
        )
    returns = hints.get("return", Any)
    return Signature(
        parameters=parameters,
        accepts_any_keyword=any_keyword,
        return_schema=schema_of(returns) if returns is not type(None) else {"type": "null"},
        is_async=inspect.iscoroutinefunction(function),
        hints_resolved=resolved,
    )


def is_injected(hint: Any) -> bool:
    name = getattr(hint, "__name__", None) or str(hint)
    return name in INJECTED_ANNOTATIONS
