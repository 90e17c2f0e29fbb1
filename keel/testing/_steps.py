"""Built-in steps (``http``, ``shell``, ``sql``, ``email``) in a test's run: stubs called
with the step's filled fields, and the secrets a test gives its run.

A stub of a built-in step node is not called with the node's arguments (the step's
definition and the run's values, which keel's own task reads) but with what the step
would send: its fields (``STUB_FIELDS``) by name, templates filled from the run's input,
upstream outputs and secrets exactly as the real step fills them
(``keel.steps.filling``). A stub takes ``**fields`` or declares only the fields it
needs; one that requires a name that is not a field of its kind is refused before the
run starts. What the stub returns is the step's output.

Secrets (``supplied_task``): every attempt of a test's run, on the worker's threads,
runs inside ``keel.runtime.secrets.supplying``, so ``${{ secrets.NAME }}`` and
``keel.secret`` find the values the test gave before the environment; the value is set
for the attempt only, and the attempt redacts it from what it records as ever.

Invariant: none of this changes the workflow's definition or what its history records
beyond what the stub returns; a node not stubbed runs keel's real step.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from keel.errors import InputError
from keel.spec.step_nodes import (
    STEP_TASKS,
    TEMPLATE_FIELDS,
    EmailNode,
    HttpNode,
    ShellNode,
    SqlNode,
    StepNode,
)

if TYPE_CHECKING:
    from keel.runtime.execution.invoke import PreparedTask

#: the fields a stub of each kind is given: what the step sends (the server settings of
#: an ``email`` step, and the operational limits of each kind, are not)
STUB_FIELDS: dict[str, tuple[str, ...]] = {
    "http": ("url", "method", "headers", "query", "body", "form"),
    "shell": ("command", "env", "cwd", "stdin"),
    "sql": ("connection", "query", "params"),
    "email": ("to", "cc", "bcc", "subject", "body", "html", "sender", "reply_to"),
}
#: keel's task path -> the kind of step it runs
STEP_KINDS = {path: kind for kind, path in STEP_TASKS.items()}


def accepted_fields(kind: str, function: Callable[..., Any], key: str) -> frozenset[str] | None:
    """The fields ``function`` takes (None: all, it has ``**fields``), or ``InputError``
    when it requires something a stub of ``kind`` is not given."""
    fields = STUB_FIELDS[kind]
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it everything
        return None
    names: set[str] = set()
    every = False
    for param in parameters:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            every = True
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        elif param.name in fields and param.kind is not inspect.Parameter.POSITIONAL_ONLY:
            names.add(param.name)
        elif param.default is inspect.Parameter.empty:
            raise InputError(
                f"stubs[{key!r}]: a stub of a built-in {kind} step is called with the "
                f"step's fields by name ({', '.join(fields)}); it requires "
                f"{param.name!r}, which is not one of them (take **fields, or only the "
                "fields it needs)"
            )
    return None if every else frozenset(names)


def step_stand_in(kind: str, function: Callable[..., Any], key: str) -> Callable[..., Any]:
    """A task function that runs ``function`` as the stub of a ``kind`` step: called
    with the step's definition and values as keel's own task would be, it calls the
    stub with the filled fields (see the module)."""
    names = accepted_fields(kind, function, key)

    def given(step: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        fields = stub_fields(_node(kind, step), values)
        return fields if names is None else {k: v for k, v in fields.items() if k in names}

    if inspect.iscoroutinefunction(function):

        async def stub_async(step: dict[str, Any], values: dict[str, Any]) -> Any:
            return await function(**given(step, values))

        return stub_async

    def stub(step: dict[str, Any], values: dict[str, Any]) -> Any:
        return function(**given(step, values))

    return stub


def _node(kind: str, step: dict[str, Any]) -> StepNode:
    """The node the step's definition gives, checked as keel's own task checks it."""
    from keel.steps.filling import step_node

    if kind == "http":
        return step_node(HttpNode, step)
    if kind == "shell":
        return step_node(ShellNode, step)
    if kind == "sql":
        return step_node(SqlNode, step)
    return step_node(EmailNode, step)


def stub_fields(node: StepNode, values: dict[str, Any]) -> dict[str, Any]:
    """The fields a stub of ``node`` is given, filled with the run's ``values`` (the
    secrets they name looked up, and so revealed to the attempt). As the step would
    use them: a ``shell`` command as the program's arguments (text, a list spread),
    its ``env`` as text; ``email`` addresses as one list per field."""
    from keel.steps.filling import filled

    kind = node.kind
    unused = {name: None for name in TEMPLATE_FIELDS[kind] if name not in STUB_FIELDS[kind]}
    found = filled(node.model_copy(update=unused), values)  # no password looked up
    fields = {name: found[name] if name in found else getattr(node, name)
              for name in STUB_FIELDS[kind]}  # fmt: skip
    if isinstance(node, ShellNode):
        from keel.steps.shell import argument_text, arguments

        fields["command"] = arguments(node.command, fields["command"])
        fields["env"] = {name: argument_text(value) for name, value in fields["env"].items()}
        for name in ("cwd", "stdin"):
            fields[name] = None if fields[name] is None else argument_text(fields[name])
    if isinstance(node, EmailNode):
        from keel.steps.email_message import flat

        for name in ("to", "cc", "bcc"):
            fields[name] = list(flat(fields[name]))
    data: dict[str, Any] = to_jsonable_python(fields)
    return data


def supplied_task(prepared: PreparedTask, secrets: Mapping[str, str]) -> PreparedTask:
    """``prepared``, its function run inside ``supplying(secrets)`` (see the module)."""
    from keel.runtime.secrets import supplying

    function = prepared.function
    if prepared.is_async:

        @functools.wraps(function)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with supplying(secrets):
                return await function(*args, **kwargs)

        return dataclasses.replace(prepared, function=run_async)

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with supplying(secrets):
            return function(*args, **kwargs)

    return dataclasses.replace(prepared, function=run)


def forget_step_settings() -> None:
    """Have the built-in steps read the worker's ``keel.toml`` again (a test's run reads
    the one its current folder has now, not one an earlier test cached)."""
    from keel.steps.email_config import forget_email_config
    from keel.steps.http_config import forget_http_config
    from keel.steps.shell import forget_shell_config
    from keel.steps.sql_config import forget_sql_config

    forget_http_config()
    forget_shell_config()
    forget_sql_config()
    forget_email_config()
