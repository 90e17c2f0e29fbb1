"""Stand-ins for a test's run: plain functions in place of a node's task, and offline
answers for ``llm`` nodes.

A stub never changes the workflow's definition (its version, the events its run
records, what a replay compares): only the worker of the test's run sees it. That
worker's plans (``StubbedCache``) name a stub key in place of a stubbed node's task
path, and its task catalog (``StubCatalog``) resolves those keys to the stub functions.
A stubbed node runs on a thread (a stub cannot be imported by a child process).

Keys: a node id (in the run and in its child runs), or a task's import path
(``module:function``: every node that runs it, compensations and the failure handler
included). A key that names neither is refused before the run starts, with the choices.
A stub of a built-in step (``http``, ``shell``, ``sql``, ``email``: its node id, or
keel's task path of the kind) is called with the step's filled fields instead of the
node's arguments (``keel.testing._steps``).

``secrets``: the catalog runs every attempt of the test's run (stubs and real tasks
alike) with those secrets supplied (``keel.testing._steps.supplied_task``).

Offline (``llm_offline``), every ``llm`` node not stubbed is answered by
``keel.testing._llm``, and every ``agent`` node not stubbed fails saying to stub it:
no node reaches a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from keel.errors import InputError
from keel.spec.model import WorkflowSpec
from keel.testing._steps import STEP_KINDS, STUB_FIELDS, step_stand_in, supplied_task

if TYPE_CHECKING:
    from keel.engine.plan import NodePlan, Plan
    from keel.runtime.execution.invoke import PreparedTask, TaskCatalog
    from keel.runtime.execution.task_access import TaskAccess
    from keel.runtime.runs import RunCache
    from keel.store.protocol import Store

#: the start of every stub key (not an import path any worker could resolve)
STUB = "keel.testing.stub:"


def _node_ids(specs: Iterable[WorkflowSpec]) -> dict[str, str]:
    """Node id -> its kind, over every definition the run may use."""
    return {node.id: node.kind for spec in specs for node in spec.nodes}


def _task_paths(specs: Iterable[WorkflowSpec]) -> set[str]:
    from keel.authoring.loading import task_paths

    return {path for spec in specs for path in task_paths(spec)}


class Stubs:
    """What a test's run uses in place of real tasks and models.

    ``functions``: stub key -> the function. ``nodes``/``tasks``: which key a node id,
    or a task path, runs instead."""

    def __init__(
        self,
        specs: list[WorkflowSpec],
        stubs: Mapping[str, Callable[..., Any]] | None,
        llm_replies: Mapping[str, Any] | None,
        *,
        llm_offline: bool,
    ) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}
        self.nodes: dict[str, str] = {}
        self.tasks: dict[str, str] = {}
        self.llm_offline = llm_offline
        kinds = _node_ids(specs)
        paths = _task_paths(specs)
        workflow = specs[0].name
        for key, function in (stubs or {}).items():
            if not callable(function):
                raise InputError(f"stubs[{key!r}]: expected a function, got "
                                 f"{type(function).__name__}")  # fmt: skip
            if key in kinds:
                if kinds[key] in STUB_FIELDS:
                    function = step_stand_in(kinds[key], function, key)
                self.nodes[key] = self._add(f"node/{key}", function)
            elif key in paths:
                if key in STEP_KINDS:
                    function = step_stand_in(STEP_KINDS[key], function, key)
                self.tasks[key] = self._add(f"task/{key}", function)
            else:
                raise InputError(
                    f"stubs: {key!r} is neither a node of workflow '{workflow}' (nodes: "
                    f"{', '.join(kinds) or 'none'}) nor the import path of a task it runs "
                    f"(tasks: {', '.join(sorted(paths)) or 'none'})"
                )
        self.replies = dict(llm_replies or {})
        llm_nodes = sorted(node for node, kind in kinds.items() if kind == "llm")
        for key in self.replies:
            if key not in llm_nodes:
                known = ", ".join(llm_nodes) or "none"
                raise InputError(f"llm_replies: {key!r} is not an llm node of workflow "
                                 f"'{workflow}' (llm nodes: {known})")  # fmt: skip
            if not llm_offline:
                raise InputError("llm_replies needs llm_offline=True: with real models "
                                 "there is nothing to answer for them")  # fmt: skip

    def _add(self, name: str, function: Callable[..., Any]) -> str:
        key = STUB + name
        self.functions[key] = function
        return key

    def _stand_in(self, node: NodePlan) -> str | None:
        """The stub key a node runs instead of its task, if any. Never given a node
        stubbed already: the cache stubs each version's plan once (``stubbed_cache``)."""
        if node.id in self.nodes:
            return self.nodes[node.id]
        if node.task in self.tasks:
            return self.tasks[node.task]
        if node.kind in ("llm", "agent") and self.llm_offline:
            key = STUB + f"{node.kind}/{node.id}"
            if key not in self.functions:
                from keel.testing._llm import no_agent, offline_answer

                self.functions[key] = (
                    offline_answer(node.id, self.replies.get(node.id), node.id in self.replies)
                    if node.kind == "llm"
                    else no_agent(node.id)
                )
            return key
        return None

    def plan(self, plan: Plan) -> Plan:
        """``plan`` with each stubbed node naming its stub key (a new plan: compiled
        plans are shared and never changed)."""
        changed: dict[str, NodePlan] = {}
        for node_id, node in plan.nodes.items():
            key = self._stand_in(node)
            if key is not None:
                changed[node_id] = dataclasses.replace(node, task=key, isolation="thread")
        if not changed:
            return plan
        return dataclasses.replace(plan, nodes={**plan.nodes, **changed})


def stubbed_cache(store: Store, stubs: Stubs) -> RunCache:
    """A run cache whose plans run the stubs (see the module's docstring)."""
    from keel.runtime.runs import RunCache

    class StubbedCache(RunCache):
        def __init__(self) -> None:
            super().__init__(store)
            self._stubbed: dict[str, Plan] = {}

        def _with_stubs(self, plan: Plan) -> Plan:
            """``plan`` stubbed, once per version (``super().plan`` may come back through
            ``plan_of``, which stubbed it already)."""
            found = self._stubbed.get(plan.spec.version)
            if found is None:
                found = self._stubbed[plan.spec.version] = stubs.plan(plan)
            return found

        def plan(self, version: str) -> Plan:
            return self._with_stubs(super().plan(version))

        def plan_of(self, spec: WorkflowSpec) -> Plan:
            return self._with_stubs(super().plan_of(spec))

    return StubbedCache()


def stub_catalog(
    access: TaskAccess, stubs: Stubs, secrets: Mapping[str, str] | None = None
) -> TaskCatalog:
    """A task catalog that resolves stub keys to the stubs, and anything else as ever;
    with ``secrets``, each task it gives runs with them supplied."""
    from keel.runtime.execution.invoke import TaskCatalog, prepare

    class StubCatalog(TaskCatalog):
        def __init__(self) -> None:
            super().__init__(access)
            self._prepared: dict[str, PreparedTask] = {}

        def get(self, import_path: str) -> PreparedTask:
            found = self._prepared.get(import_path)
            if found is None:
                function = stubs.functions.get(import_path)
                found = super().get(import_path) if function is None else prepare(function)
                if secrets is not None:
                    found = supplied_task(found, secrets)
                self._prepared[import_path] = found
            return found

    return StubCatalog()
