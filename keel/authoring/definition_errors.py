"""Mistakes in a Python file of workflows, reported as a YAML file's are: one line per
problem, at the line of the user's code, and for every invalid workflow of the file,
not only the first.

Two things end the import of workflow code early. A spec model given a bad value
(``ScheduleTrigger(cron="61 * * * *")``, ``RetryPolicy(max_attempts=0)``) raises
pydantic's ``ValidationError``, in pydantic's words; ``importing`` turns it into a
``SpecError`` with one issue per field, at the line that built the model. And
``@keel.workflow`` raises when its workflow is invalid, which stops the file there:
inside ``importing`` (how the loader imports user code) the decorator gives its error to
``refused`` instead and binds an ``InvalidWorkflow`` in its place, so that the file's
next workflows are defined, and checked, too; the errors are raised together at the end
of the import (``InvalidWorkflowsError`` when there are several).

Outside ``importing`` (a script, a test, an ``import``) the decorator raises at once,
as it always did: a module that imported fine holds only valid workflows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import pydantic
import pydantic_core
from pydantic import ValidationError

from keel.authoring.option_problems import is_keel_code
from keel.errors import InvalidWorkflowsError, KeelError, SpecError, SpecIssue
from keel.spec.validate import pydantic_issue

#: the errors of the definitions refused so far by the import in progress (None: no
#: loader import is in progress, so the decorator raises)
_REFUSED: ContextVar[list[SpecError] | None] = ContextVar("keel_refused", default=None)

#: code that is not the user's, besides keel's: pydantic's (a model's ``__init__``)
_LIBRARIES = tuple(
    Path(module.__file__).resolve().parent
    for module in (pydantic, pydantic_core)
    if module.__file__ is not None
)


@contextmanager
def importing() -> Iterator[None]:
    """Import user code in this block: raises the ``SpecError`` of every workflow
    refused and of a spec model built with bad values, even when the import went on to
    the end. Another error is raised as it is, or, after refusals, as one more problem
    (it may be their consequence: the code used a refused workflow)."""
    refused: list[SpecError] = []
    token = _REFUSED.set(refused)
    try:
        yield
    except ValidationError as exc:
        refused.append(model_error(exc))
    except Exception as exc:
        if not refused:
            raise
        refused.append(exc if isinstance(exc, SpecError) else _as_spec_error(exc, None))
    finally:
        _REFUSED.reset(token)
    if len(refused) == 1:
        raise refused[0]
    if refused:
        raise InvalidWorkflowsError(refused)


def refused(exc: KeelError, workflow: str) -> bool:
    """Keep ``exc``, why workflow ``workflow`` is invalid, to raise with the others at
    the end of the import in progress; False when no loader is importing (raise it)."""
    errors = _REFUSED.get()
    if errors is None:
        return False
    errors.append(exc if isinstance(exc, SpecError) else _as_spec_error(exc, workflow))
    return True


class InvalidWorkflow:
    """What ``@keel.workflow`` binds, inside ``importing``, in place of a workflow it
    refused: calling it as a step (or reading what a workflow has) says it is invalid,
    and so does not hide the problems of the workflows after it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise KeelError(f"calls workflow '{self.name}', which is invalid")

    def options(self, **options: Any) -> InvalidWorkflow:
        return self

    def __getattr__(self, attribute: str) -> NoReturn:
        raise AttributeError(f"workflow '{self.name}' is invalid: it has no {attribute!r}")

    def __repr__(self) -> str:
        return f"<invalid keel workflow {self.name}>"


def model_error(exc: ValidationError) -> SpecError:
    """pydantic's error for a model built by the user's code: one issue per field
    (``ScheduleTrigger.cron: invalid cron expression ...``) at the user's line."""
    source, line = raised_at(exc.__traceback__)
    issues = [
        replace(issue, loc=(exc.title, *issue.loc), source=source, line=line)
        for issue in map(pydantic_issue, exc.errors(include_url=False))
    ]
    return SpecError(issues)


def raised_at(trace: TracebackType | None) -> tuple[str | None, int | None]:
    """The file and line of the innermost frame of ``trace`` in the user's code (not
    keel's, pydantic's or the import system's): the line that made the mistake."""
    found: tuple[str | None, int | None] = (None, None)
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if _users(filename):
            found = (filename, trace.tb_lineno)
        trace = trace.tb_next
    return found


def import_failure(target: str, exc: BaseException) -> str:
    """One line for an exception the user's code raised while being imported."""
    source, line = raised_at(exc.__traceback__)
    where = f" at {source}:{line}" if source is not None else ""
    return f"importing {target} raised {type(exc).__name__}{where}: {exc}"


def _users(filename: str) -> bool:
    if filename.startswith("<") or is_keel_code(filename):
        return False
    path = Path(filename).resolve()
    return not any(path.is_relative_to(library) for library in _LIBRARIES)


def _as_spec_error(exc: BaseException, workflow: str | None) -> SpecError:
    """A refusal that is not a ``SpecError`` (a ``TracingError``...), as one, at the
    user's line that raised it."""
    source, line = raised_at(exc.__traceback__)
    message = str(exc) if isinstance(exc, KeelError) else f"{type(exc).__name__}: {exc}"
    issue = SpecIssue(message, code="invalid", source=source, line=line)
    return SpecError([issue], workflow=workflow)
