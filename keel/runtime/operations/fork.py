"""``keel fork``: start a new run from a run that has ended, reusing the outputs it
recorded for every node not after the node forked from (``fork_plan`` has the rule).

The new run's history says where everything came from: ``RunStarted.fork`` names the
run and node, and each reused node is a ``NodeReused`` event (the output, the run and
the sequence number of the event that recorded it) in place of its attempts; an output
given for the fork is a ``NodeSetByHand`` by whoever forked. The run forked from gets a
``RunForked`` event (the new run, the node, who). Both are committed in one
transaction: the ``RunForked`` transition creates the new run (``CreateRun``) with its
first decisions, so neither exists without the other. Something else (``keel fork``'s
own worker, or any worker) then executes it.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keel.engine.events import Event, NodeReused, NodeSetByHand, RunForked, RunStarted
from keel.engine.plan import Plan
from keel.engine.state import RunState, apply, is_finished
from keel.errors import (
    ConflictError,
    InputError,
    KeelError,
    StoreError,
    WorkflowNotFoundError,
)
from keel.runtime.clock import Clock, clock_for
from keel.runtime.execution.invoke import TaskCatalog
from keel.runtime.operations.control import new_run_id, save_children
from keel.runtime.operations.deployed import SHORTEST_VERSION, deployed
from keel.runtime.operations.fork_plan import ForkPlan, changed_input, parse_sets, plan_fork
from keel.runtime.operations.inputs import check_start, with_defaults
from keel.runtime.operations.manual import check_output_type
from keel.runtime.runs import RunCache, advance
from keel.runtime.tracing import run_spans
from keel.runtime.tracing.context import started_trace
from keel.spec.data import check_json
from keel.spec.registry import SpecRegistry
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent
from keel.store.tombstones import refuse_pruned
from keel.store.writes import CreateRun

__all__ = ["Forked", "fork_run"]


@dataclass(frozen=True, slots=True)
class Forked:
    """What ``fork_run`` decided, and the new run (None for a dry run)."""

    plan: ForkPlan
    run: RunRecord | None = None

    def document(self) -> dict[str, Any]:
        return {**self.plan.document(), "run_id": None if self.run is None else self.run.id}


def _source(store: Store, run_id: str, cache: RunCache) -> tuple[RunRecord, RunState,
                                                                  list[StoredEvent]]:  # fmt: skip
    """The run, its state and its history, read once; ``RunPrunedError`` for a pruned
    run (its empty history would read as a run not started)."""
    record = store.get_run(run_id)
    refuse_pruned(record)
    history = store.history(record.id)
    state = RunState.new(cache.plan(record.spec_version), record.id)
    for stored in history:
        apply(state, stored.event, stored.seq)
        state.head = stored.hash
    if history:
        state.started_at = history[0].at
    return record, state, history


def _version(store: Store, record: RunRecord, version: str | None, cache: RunCache) -> Plan:
    """The plan the fork follows: the run's, or ``version`` of its workflow (deployed,
    by a prefix of 6+ characters, or any version the store holds, in full)."""
    if version is None or record.spec_version.startswith(version):
        return cache.plan(record.spec_version)
    if len(version) < SHORTEST_VERSION:
        raise InputError(f"--version: give at least {SHORTEST_VERSION} characters of a version")
    try:
        return cache.plan(deployed(store, record.workflow, version).version)
    except WorkflowNotFoundError:
        pass
    try:
        plan = cache.plan(version)
    except StoreError:
        raise InputError(
            f"workflow '{record.workflow}' has no version '{version}': give a deployed "
            "version (or a prefix of it), or a whole version the database holds"
        ) from None
    if plan.spec.name != record.workflow:
        raise InputError(
            f"version {version[:12]} is of workflow '{plan.spec.name}', not "
            f"'{record.workflow}': a fork runs the same workflow"
        )
    return plan


def _first_events(plan: ForkPlan, new_id: str, who: str, started_by: str | None) -> list[Event]:
    """The new run's ``RunStarted`` and what it takes from the run it was forked from."""
    spec = plan.spec
    fork = {"run": plan.source, "node": plan.node, "version": plan.source_version}
    trace = started_trace(new_id, spec.name).to_data()
    started = RunStarted(workflow=spec.name, spec_version=spec.version, input=plan.input,
                         by=started_by, trace=trace, fork=fork)  # fmt: skip
    events: list[Event] = [started]
    reason = f"given when run {plan.source[:8]} was forked"
    for step in plan.steps:
        if step.action == "reuse":
            events.append(NodeReused(node=step.node, output=step.output, from_run=plan.source,
                                     from_seq=step.from_seq, args=step.args,
                                     compensated=step.compensated))  # fmt: skip
        elif step.action == "set":
            events.append(NodeSetByHand(node=step.node, output=step.output, by=who,
                                        reason=reason))  # fmt: skip
    return events


def fork_run(
    store: Store,
    run_id: str,
    node: str,
    sets: Mapping[str, Any] | None = None,
    *,
    version: str | None = None,
    by: str | None = None,
    started_by: str | None = None,
    dry_run: bool = False,
    clock: Clock | None = None,
    catalog: TaskCatalog | None = None,
) -> Forked:
    """Fork the run ``run_id`` (which must have ended) from ``node``: a new run of its
    workflow (or of ``version``) that reuses what the run recorded for every node not
    after ``node``. ``sets``: ``{"input.FIELD": value}`` changes the input (checked
    against the input schema), ``{"nodes.N.output": value}`` gives a node the fork does
    not run again an output (checked against its task's return type, with ``catalog``).
    ``by``: who forked (default: the OS user), in both histories; ``started_by``: the
    identity that started the new run through the API. ``dry_run``: decide only."""
    who = by or getpass.getuser()
    changes, outputs = parse_sets(sets or {})
    for name, value in outputs.items():
        check_json(value, f"the output given for node '{name}'")
    clock = clock or clock_for(store)
    for _ in range(5):
        cache = RunCache(store)
        record, state, history = _source(store, run_id, cache)
        if not is_finished(state.status):
            raise KeelError(
                f"run {record.id[:8]} is {state.status.value}: only a run that has ended can "
                f"be forked (cancel it first: keel cancel {record.id[:8]})"
            )
        plan = _version(store, record, version, cache)
        run_input, before = changed_input(state.input, changes)
        if changes:
            check_start(plan.spec, run_input)
            run_input = with_defaults(plan.spec, run_input)
        found = plan_fork(state, history, plan, node, run_input=run_input, outputs=outputs,
                          input_changes={path: (was, _at(run_input, path))
                                         for path, was in before.items()})  # fmt: skip
        new_id = new_run_id()
        fresh = RunState.new(plan, new_id)
        for name, value in outputs.items():
            check_output_type(fresh, name, value, catalog or TaskCatalog())
        if dry_run:
            return Forked(found)
        now = clock.now()
        save_children(store, plan, now, SpecRegistry())
        first = advance(new_id, fresh, _first_events(found, new_id, who, started_by), now,
                        cache=cache)  # fmt: skip
        forked = RunForked(run_id=new_id, node=node, by=who, version=plan.spec.version)
        mark = advance(record.id, state, [forked], now, cache=cache)
        create = CreateRun(plan.spec, run_input, first, origin=record.origin,
                           started_by=started_by)  # fmt: skip
        (result,) = store.commit([mark.adding(create)])
        if result.error is None:
            if is_finished(fresh.status):  # it ended as it started (its node was skipped)
                fresh.started_at = now
                run_spans.emit(store, fresh, store.history(new_id)[-1])
            return Forked(found, store.get_run(new_id))
        if not isinstance(result.error, ConflictError):
            raise result.error
    raise KeelError(f"run {run_id} keeps changing; try again")


def _at(run_input: Any, path: str) -> Any:
    """What ``run_input`` holds at ``input.PATH`` (``input``: all of it)."""
    if path == "input":
        return run_input
    value = run_input
    for name in path.removeprefix("input.").split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value
