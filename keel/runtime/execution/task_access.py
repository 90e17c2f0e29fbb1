"""Which functions this process may run as tasks, decided before anything is imported.

A spec names its tasks by import path, and a spec can come from anyone who can start a
run: a YAML file, a client on another host. Running whatever a path names would let
them run any function (``task: os:system``) on every worker, and importing the module a
path names already runs that module's code. So a task is run only when it is

- a ``@keel.task`` (it carries ``TASK_MARKER``) in a module this process has imported
  already: the files and modules the worker was told to load, and what they import
  (``keel run`` and ``keel resume`` load the workflow's own code the same way); or
- named, ``module:function``, in ``allow`` (the worker setting): a plain function the
  operator vouches for; its module is imported when first needed.

- one of keel's own tasks that run the nodes asking a model or a built-in step
  (``KEEL_STEPS``): part of keel, imported when first needed.

Nothing else is imported because a spec names it. A path whose module this process has
not imported (or that lacks the function) may be code another worker has:
``TaskCodeMissingError``, and the worker gives the attempt back for one that has it. A path
into the standard library, or to something that is not a keel task, can never be run
by any worker: ``TaskNotAllowedError``, and the attempt fails at once, without retries.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from keel.spec.callables import (
    ImportPathError,
    in_standard_library,
    is_keel_task,
    not_a_task_message,
    resolve,
)
from keel.spec.model import MODEL_TASKS, STEP_TASKS

#: keel's own tasks (``llm`` and ``agent`` nodes, the built-in steps): every worker may
#: run them
KEEL_STEPS = frozenset((*MODEL_TASKS.values(), *STEP_TASKS.values()))
#: the error type of an attempt this process has no code for (the worker releases it)
CODE_MISSING = "TaskCodeMissing"
#: the error type of an attempt no worker may run
NOT_ALLOWED = "TaskNotAllowed"


class TaskNotAllowedError(LookupError):
    """The path names something no worker runs (not a keel task, not in ``allow``)."""


class TaskCodeMissingError(LookupError):
    """This process has not loaded the module the path names: another worker may have."""


@dataclass(frozen=True, slots=True)
class TaskAccess:
    """The rule above. ``allow``: import paths of plain functions that may run too.
    ``trusted``: run what the path names, importing it (only for a process that runs
    what its parent already checked: ``isolation="process"``)."""

    allow: frozenset[str] = frozenset()
    trusted: bool = False

    @classmethod
    def allowing(cls, paths: Collection[str]) -> TaskAccess:
        return cls(allow=frozenset(paths))

    def resolve(self, import_path: str) -> Callable[..., Any]:
        """The function to run for ``import_path``, or ``TaskNotAllowedError`` /
        ``TaskCodeMissingError`` saying why not (and what to do)."""
        if self.trusted or import_path in KEEL_STEPS:
            return resolve(import_path)
        if import_path in self.allow:
            try:
                return resolve(import_path)
            except ImportPathError as exc:
                raise TaskCodeMissingError(f"cannot load task '{import_path}': {exc}") from None
        module_name, _, qualname = import_path.partition(":")
        if in_standard_library(import_path):
            raise TaskNotAllowedError(not_a_task_message(import_path, None))
        module = _loaded(module_name)
        if module is None:
            raise TaskCodeMissingError(
                f"no code for task '{import_path}' here: module '{module_name}' was not "
                "loaded (give it to the worker: keel worker MODULE_OR_FILE)"
            )
        target: Any = module
        for part in qualname.split("."):
            target = getattr(target, part, None)
            if target is None:
                raise TaskCodeMissingError(
                    f"no code for task '{import_path}' here: the loaded module "
                    f"'{module_name}' has no '{qualname}' (is this worker's code older?)"
                )
        if not is_keel_task(target):
            raise TaskNotAllowedError(not_a_task_message(import_path, target))
        return typing.cast(Callable[..., Any], target)


def _loaded(module_name: str) -> ModuleType | None:
    """The module if this process imported it; a script run as ``__main__`` answers to
    its file's stem, the name its tasks' paths use (``keel.authoring.tasks``)."""
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main is not None and main_file and Path(main_file).stem == module_name:
        return main
    return None


def notifier_function(import_path: str) -> Callable[..., Any]:
    """The function a callable notifier names, by the same rule as far as it applies
    (a notifier is a plain function): defined in a module this process has imported,
    never the standard library nor keel itself, and never importing anything because a
    spec names it."""
    module_name, _, qualname = import_path.partition(":")
    if in_standard_library(import_path):
        raise TaskNotAllowedError(
            f"'{import_path}' is in the standard library: a notifier must be a function "
            "of the code the worker loads"
        )
    if module_name == "keel" or module_name.startswith("keel."):
        raise TaskNotAllowedError(f"'{import_path}' is keel's own code, not a notifier")
    module = _loaded(module_name)
    if module is None:
        raise TaskCodeMissingError(f"module '{module_name}' was not loaded by this worker")
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise TaskCodeMissingError(f"the loaded module '{module_name}' has no '{qualname}'")
    if not inspect.isfunction(target):
        raise TaskNotAllowedError(f"'{import_path}' is a {type(target).__name__}, not a function")
    # defined there, not reached through it: ``mod:subprocess.Popen``, or a function the
    # module imported from elsewhere, names code nobody declared as a notifier
    if target.__module__ != module.__name__:
        raise TaskNotAllowedError(
            f"'{import_path}' is a function of '{target.__module__}', not of '{module_name}': "
            "a notifier must be a function defined in the code the worker loads"
        )
    return typing.cast(Callable[..., Any], target)
