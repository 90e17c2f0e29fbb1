"""What the editor shows of a definition as it is typed: every problem located by line
and column, the graph, the version it would get, and how it differs from what is
deployed.

The problems are exactly a deploy's (``keel.server.routes.workflows.checked_definition``,
which ``POST /workflows`` and the editor's deploy run): a definition the check passes,
a deploy accepts. Like a deploy, the check imports no task code. On top of that come
warnings that never stop a deploy: a task whose module the server cannot find (the
workers must have it; finding a module runs none of its code), and, for modules the
server has already imported, what ``keel validate`` says of the task's signature.

Invariant: ``check_definition`` never raises; whatever goes wrong becomes a problem
(located where it can be), and the text is never logged.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.authoring.yaml_source import read_documents
from keel.errors import KeelError, SpecError, SpecIssue
from keel.server.dashboard.yaml_diff import DiffLine, yaml_diff
from keel.server.routes.workflows import checked_definition, deployed_registry
from keel.server.service import Service
from keel.spec.callables import Signature
from keel.spec.layout import layout
from keel.spec.model import MapNode, TaskNode, WorkflowSpec
from keel.spec.validate import validate
from keel.store.deployments import current_versions

log = logging.getLogger("keel.server")

Severity = Literal["error", "warning"]
#: what a task whose code the server has not loaded may take (its parameters unknown)
_UNKNOWN = Signature(parameters={}, accepts_any_keyword=True, return_schema=None,
                     is_async=False)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of the definition: where (when known) and what."""

    message: str
    line: int | None = None
    column: int | None = None
    #: an error stops a deploy; a warning does not
    severity: Severity = "error"

    @property
    def where(self) -> str:
        if self.line is None:
            return ""
        return f"line {self.line}" + (f", column {self.column}" if self.column else "")

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass(frozen=True, slots=True)
class Change:
    """One workflow of the definition against its name's current version."""

    name: str
    version: str
    nodes: int
    #: the deployed current version (None: a new workflow)
    current: str | None
    #: keel's YAML rendering of the current version against this one (none: new or
    #: unchanged)
    diff: tuple[DiffLine, ...] = ()

    @property
    def unchanged(self) -> bool:
        return self.current == self.version


@dataclass(frozen=True, slots=True)
class Checked:
    """The result of checking a definition."""

    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    changes: tuple[Change, ...] = ()
    #: cytoscape elements of the first workflow, positioned (None: not valid)
    elements: list[dict[str, Any]] | None = field(default=None, compare=False)

    @property
    def valid(self) -> bool:
        return not self.problems and bool(self.changes)


def check_definition(served: Service, text: str) -> Checked:
    """Check ``text`` as a deploy would (see the module's docstring); never raises."""
    try:
        specs = checked_definition(served, text)
    except SpecError as exc:
        return Checked(problems=tuple(_problem(issue) for issue in exc.issues))
    except KeelError as exc:  # a conflict with the deployed workflows' triggers
        return Checked(problems=(Problem(str(exc)),))
    except Exception as exc:  # a bug here must not cost the person their page
        log.warning("checking a definition failed: %s", type(exc).__name__, exc_info=True)
        return Checked(problems=(Problem(f"the check failed ({type(exc).__name__}); the "
                                         "server's log has the details"),))  # fmt: skip
    try:
        changes = tuple(_change(served, spec) for spec in specs)
        elements = layout(specs[0]).to_cytoscape()
        warnings = tuple(_warnings(served, text, specs))
    except Exception as exc:  # valid, but not drawable or comparable: say so, still valid
        log.warning("describing a definition failed: %s", type(exc).__name__, exc_info=True)
        problem = Problem(f"the definition is valid, but showing it failed ({exc})", None,
                          None, "warning")  # fmt: skip
        return Checked(warnings=(problem,), changes=tuple(_bare(spec) for spec in specs))
    return Checked(warnings=warnings, changes=changes, elements=elements)


def _problem(issue: SpecIssue, severity: Severity = "error") -> Problem:
    text = str(issue.located(None, None, None))  # the position goes apart, as numbers
    return Problem(text, issue.line, issue.column, severity)


def _bare(spec: WorkflowSpec) -> Change:
    return Change(spec.name, spec.version, len(spec.nodes), None)


def _change(served: Service, spec: WorkflowSpec) -> Change:
    current = current_versions(served.store.deployments(spec.name)).get(spec.name)
    if current is None or current.version == spec.version:
        version = None if current is None else current.version
        return Change(spec.name, spec.version, len(spec.nodes), version)
    diff = yaml_diff(served.plans.plan(current.version).spec, spec,
                     old_label=f"{spec.name} {current.version[:12]} (current)",
                     new_label=f"{spec.name} {spec.version[:12]} (edited)")  # fmt: skip
    return Change(spec.name, spec.version, len(spec.nodes), current.version, tuple(diff))


# --- warnings: what the server can tell of the tasks' code ----------------------------


def task_paths(spec: WorkflowSpec) -> list[tuple[str, tuple[str | int, ...], str | None]]:
    """Every task the workflow calls, where it is named and by which node (those that
    ``keel validate`` resolves: nodes, their compensations, the run's failure handler)."""
    found: list[tuple[str, tuple[str | int, ...], str | None]] = []
    for index, node in enumerate(spec.nodes):
        if isinstance(node, TaskNode | MapNode):
            found.append((node.task, ("nodes", index, "task"), node.id))
        if isinstance(node, TaskNode) and node.compensate is not None:
            found.append((node.compensate.task, ("nodes", index, "compensate", "task"), node.id))
    if spec.on_failure is not None:
        found.append((spec.on_failure.task, ("on_failure", "task"), None))
    return found


def findable(module: str) -> bool:
    """Whether ``module`` is on this server's import path, found without running any
    of its code (nor its packages' ``__init__``)."""
    if module in sys.modules:
        return True
    parts = module.split(".")
    top = sys.modules.get(parts[0])
    try:
        where = top.__spec__ if top is not None else importlib.util.find_spec(parts[0])
        for depth in range(1, len(parts)):
            if where is None or where.submodule_search_locations is None:
                return False
            name = ".".join(parts[: depth + 1])
            where = importlib.machinery.PathFinder.find_spec(
                name, list(where.submodule_search_locations)
            )
    except (ImportError, ValueError):
        return False
    return where is not None


def _warnings(served: Service, text: str, specs: list[WorkflowSpec]) -> list[Problem]:
    documents = read_documents(text, "definition")
    registry = deployed_registry(served).including(*specs)
    warnings: list[Problem] = []
    for spec, document in zip(specs, documents, strict=False):
        unloaded: dict[str, Signature] = {}
        missing: dict[str, list[tuple[str, tuple[str | int, ...], str | None]]] = {}
        for task, loc, node in task_paths(spec):
            module = task.partition(":")[0]
            if module not in sys.modules:
                unloaded[task] = _UNKNOWN
                if not findable(module):
                    missing.setdefault(module, []).append((task, loc, node))
        for module, named in missing.items():  # once a module, where it is first named
            task, loc, node = named[0]
            also = f" and {len(named) - 1} more" if len(named) > 1 else ""
            issue = SpecIssue(
                f"the server cannot import module '{module}' (task '{task}'{also}): the "
                "workers that run this workflow must be able to; the server need not",
                loc=loc, node=node, code="unresolved_task",
            )  # fmt: skip
            warnings.append(_problem(document.positions.locate(issue), "warning"))
        # the tasks whose code the server has imported already: as keel validate would
        issues = validate(spec, resolve_tasks=True, signatures=unloaded, registry=registry)
        warnings += [_problem(document.positions.locate(i), "warning") for i in issues]
    unique = list(dict.fromkeys(warnings))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))
