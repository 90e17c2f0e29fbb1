"""Find workflows by what a person types: ``examples/claims.py:claim``, ``flow.yaml``,
``pkg.flows:claim``.

A Python file is imported under a stable module name (its stem, or its dotted name
inside a package) with its folder on ``sys.path``, because task import paths name that
module and every worker must import the same one. A YAML file's folder goes on
``sys.path`` too, so its ``task:`` paths resolve against the code beside it.

What a load brings is its own registry of definitions (``LoadedWorkflow.registry``):
the workflows found and the child workflows they call. Their subworkflow nodes are
validated against it, and a run started from it stores the children it names.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from keel.authoring.definition_errors import importing
from keel.authoring.workflows import Workflow
from keel.authoring.yaml_source import load_yaml
from keel.errors import SpecError, SpecIssue, WorkflowNotFoundError
from keel.spec.model import AgentNode, CallNode, TaskNode, WorkflowSpec
from keel.spec.notifiers import CallableNotifier
from keel.spec.registry import SpecRegistry

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedWorkflow:
    spec: WorkflowSpec
    #: where it was found, for messages
    origin: str
    #: the Python object, when written in Python
    workflow: Workflow[..., object] | None = None
    #: the definitions loaded with it: every workflow of its file or module and the
    #: child workflows they call, which a run of it may start
    registry: SpecRegistry = field(default_factory=SpecRegistry)

    def answers_to(self, name: str) -> bool:
        """Whether ``FILE:name`` means this workflow (its spec name or Python name)."""
        python_name = self.workflow.__name__ if self.workflow is not None else None
        return name in (self.spec.name, python_name)


def split_target(target: str) -> tuple[str, str | None]:
    """``path/or.module[:workflow]`` -> (location, workflow name or None)."""
    location, sep, name = target.rpartition(":")
    if not sep or "/" in name or name.endswith((".py", *YAML_SUFFIXES)):
        return target, None
    return location, name or None


def _module_name_for(path: Path) -> tuple[str, Path]:
    """Dotted module name of a file and the folder that must be on ``sys.path``."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts), folder


def import_file(path: Path) -> ModuleType:
    path = path.resolve()
    name, root = _module_name_for(path)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(getattr(loaded, "__file__", "") or "").resolve() == path:
            return loaded
        raise WorkflowNotFoundError(_clash(path, name, loaded))
    other = _installed_elsewhere(name, root)
    if other is not None:
        raise WorkflowNotFoundError(
            f"{path} would be imported as module '{name}', but '{name}' is already {other}; "
            "workers would import that one instead: rename the file"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if "." in name:
        return _imported(name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise WorkflowNotFoundError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with importing():
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _imported(name: str) -> ModuleType:
    """``import name``, its mistakes in definitions reported all together
    (``keel.authoring.definition_errors``); a module whose import failed is not kept,
    even one that ran to its end (a refused workflow does not stop it)."""
    try:
        with importing():
            return importlib.import_module(name)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def _clash(path: Path, name: str, loaded: ModuleType) -> str:
    where = getattr(loaded, "__file__", None) or "built in"
    return (
        f"{path} would be imported as module '{name}', but '{name}' is already loaded from "
        f"{where}; rename the file"
    )


def _installed_elsewhere(name: str, root: Path) -> str | None:
    """Where another module of this name would be found, if not in ``root``."""
    if name.split(".")[0] in sys.builtin_module_names or name in sys.stdlib_module_names:
        return "a standard-library module"
    try:
        found = importlib.util.find_spec(name.split(".")[0])
    except (ImportError, ValueError):
        return None
    origin = getattr(found, "origin", None)
    if found is None or origin is None:
        return None
    if Path(origin).resolve().is_relative_to(root.resolve()):
        return None
    return f"installed at {origin}"


def defined_at(workflow: Workflow[..., object]) -> str:
    """``file:line`` of a Python workflow's function, for messages."""
    code = getattr(workflow.__wrapped__, "__code__", None)
    if code is None:
        return workflow.__module__
    return f"{code.co_filename}:{code.co_firstlineno}"


def workflows_in(module: ModuleType) -> list[LoadedWorkflow]:
    """The workflows a module defines or imports; two with one name are refused (which
    one would ``FILE:NAME`` or a worker mean?)."""
    found: dict[str, LoadedWorkflow] = {}
    for value in vars(module).values():
        if not isinstance(value, Workflow):
            continue
        known = found.get(value.name)
        if known is None:
            found[value.name] = LoadedWorkflow(value.spec, module.__name__, value)
        elif known.workflow is not value:  # not the same one under a second name
            assert known.workflow is not None
            issue = SpecIssue(
                f"two workflows are named '{value.name}': {defined_at(known.workflow)} and "
                f"{defined_at(value)}; give each its own name (@keel.workflow(name=...))",
                code="duplicate_workflow",
            )
            raise SpecError([issue], workflow=module.__name__)
    return list(found.values())


def load_all(
    location: str, *, resolve_tasks: bool = False, allow: Collection[str] = ()
) -> list[LoadedWorkflow]:
    """Every workflow defined at ``location`` (a .py or YAML file, or a module name).

    ``allow``: task paths of plain functions that validation (``resolve_tasks``) accepts
    as the worker setting of that name will."""
    path = Path(location)
    if path.suffix in YAML_SUFFIXES:
        if not path.exists():
            raise WorkflowNotFoundError(f"no such file: {location}")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        specs = load_yaml(path, resolve_tasks=resolve_tasks, allow=allow)
        registry = SpecRegistry(specs)
        return [LoadedWorkflow(spec, location, registry=registry) for spec in specs]
    if path.is_dir():
        raise WorkflowNotFoundError(f"{location} is a folder: name a .py or .yaml file in it")
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise WorkflowNotFoundError(f"no such file: {location}")
        module = import_file(path)
    else:
        module = _import_module(location)
    found = workflows_in(module)
    registry = SpecRegistry().including(
        *(item.workflow.registry for item in found if item.workflow is not None)
    )
    loaded = [replace(item, registry=registry) for item in found]
    if resolve_tasks:
        from keel.spec.validate import check

        issues = []
        for item in loaded:
            try:
                check(item.spec, resolve_tasks=True, allow=allow, registry=registry)
            except SpecError as exc:
                issues.extend(exc.issues)
        if issues:
            raise SpecError(issues, workflow=location)
    return loaded


def task_paths(spec: WorkflowSpec) -> list[str]:
    """Every function a spec names: its nodes' tasks, compensations, failure handler
    and callable notifiers."""
    paths: list[str] = []
    for node in spec.nodes:
        if isinstance(node, CallNode):
            paths.append(node.task)
        if isinstance(node, TaskNode) and node.compensate is not None:
            paths.append(node.compensate.task)
        if isinstance(node, AgentNode):
            paths += [tool.task for tool in node.tools]
    if spec.on_failure is not None:
        paths.append(spec.on_failure.task)
    paths += [n.function for n in spec.notify if isinstance(n, CallableNotifier)]
    return list(dict.fromkeys(paths))


def import_task_modules(loaded: Iterable[LoadedWorkflow]) -> None:
    """Import the modules that YAML workflows name for their tasks (the code beside the
    file), so that this process has them: a worker runs only tasks of modules it has
    imported (see ``keel.runtime.execution.task_access``). One that is not there is skipped: its
    attempts will say so. Python workflows imported theirs already."""
    for item in loaded:
        if item.workflow is not None:
            continue
        for path in task_paths(item.spec):
            module = path.partition(":")[0]
            if module in sys.modules:
                continue
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name is None or not module.startswith(exc.name):
                    raise  # the module exists but needs something that is not installed


def _import_module(name: str) -> ModuleType:
    """Import a module by name, as ``python -m`` would: the current folder comes first."""
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return _imported(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and not name.startswith(exc.name):
            raise  # the module exists but needs something that is not installed
        raise WorkflowNotFoundError(
            f"'{name}' is neither a file nor an importable module ({exc})"
        ) from None


def load_workflow(
    target: str, *, resolve_tasks: bool = False, allow: Collection[str] = ()
) -> LoadedWorkflow:
    """The one workflow ``target`` names; an error lists the choices when it is ambiguous."""
    location, name = split_target(target)
    candidates = load_all(location, resolve_tasks=resolve_tasks, allow=allow)
    if not candidates:
        raise WorkflowNotFoundError(f"{location} defines no workflow")
    if name is None:
        if len(candidates) == 1:
            return candidates[0]
        names = ", ".join(sorted(item.spec.name for item in candidates))
        raise WorkflowNotFoundError(
            f"{location} defines several workflows ({names}): pick one with {location}:NAME"
        )
    for item in candidates:
        if item.answers_to(name):
            return item
    names = ", ".join(sorted(item.spec.name for item in candidates))
    raise WorkflowNotFoundError(f"{location} has no workflow '{name}' (it has: {names})")
