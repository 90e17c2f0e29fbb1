"""Starting and cancelling runs: the operations a client performs on the store.

Starting a run checks its input against the workflow's input schema, records the
definition by version, and commits ``RunStarted`` with the first decisions in one
transaction, so a run either exists with its first attempts queued or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from keel.engine.events import Event, RunCancelled, RunStarted
from keel.engine.plan import Plan, compile_plan
from keel.engine.state import RunState, is_finished
from keel.errors import InputError, KeelError, StoreError
from keel.runtime.clock import Clock, clock_for
from keel.runtime.operations.inputs import check_input as check_input
from keel.runtime.operations.inputs import check_start, with_defaults
from keel.runtime.runs import RunCache, advance
from keel.runtime.tracing import run_spans
from keel.runtime.tracing.context import started_trace
from keel.spec.model import SubworkflowNode, WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.protocol import Store
from keel.store.records import RunRecord
from keel.store.writes import Committed, Transition


def new_run_id() -> str:
    return uuid.uuid4().hex


def start_run(
    store: Store,
    spec: WorkflowSpec,
    run_input: Any,
    *,
    clock: Clock | None = None,
    origin: str | None = None,
    run_id: str | None = None,
    cache: RunCache | None = None,
    registry: SpecRegistry | None = None,
    started_by: str | None = None,
    plans: RunCache | None = None,
    trigger: dict[str, str] | None = None,
) -> RunRecord:
    """Record a new run and its first ready attempts; something else executes them.

    Pass the ``cache`` of the worker that will execute the run to compile it only once,
    and the ``registry`` that has the definitions of the child workflows it may start
    (``Workflow.registry``, or the loader's) unless the store has them already.
    ``plans``: a cache whose compiled plans to reuse without leaving the run's state in
    it (a server starts many runs it never executes). ``started_by``: the identity that
    started it, kept on the run and in ``RunStarted``.
    """
    committed = record_run(
        store, spec, run_input, clock=clock, origin=origin, run_id=run_id, cache=cache,
        registry=registry, started_by=started_by, plans=plans, trigger=trigger,
    )  # fmt: skip
    return store.get_run(committed.transition.run_id)


def record_run(
    store: Store,
    spec: WorkflowSpec,
    run_input: Any,
    *,
    clock: Clock | None = None,
    origin: str | None = None,
    run_id: str | None = None,
    cache: RunCache | None = None,
    lease: Callable[[Transition], Transition] | None = None,
    registry: SpecRegistry | None = None,
    started_by: str | None = None,
    plans: RunCache | None = None,
    trigger: dict[str, str] | None = None,
) -> Committed:
    """``start_run`` for a worker: ``lease`` may let the first transition lease its
    attempts (``Worker.start_run``), and the run's state is left in ``cache``.

    The run joins the trace of the span current in this thread, if any (the caller's,
    or a ``traceparent`` the API received: ``keel.runtime.tracing.context.continued``);
    ``RunStarted.trace`` records its trace context (``started_trace``)."""
    check_start(spec, run_input)
    run_input = with_defaults(spec, run_input)
    now = (clock or clock_for(store)).now()
    run_id = run_id or new_run_id()
    plans = cache if cache is not None else plans if plans is not None else RunCache(store)
    state = RunState.new(plans.plan_of(spec), run_id)
    save_children(store, plans.plan_of(spec), now, registry or SpecRegistry())
    started = RunStarted(
        workflow=spec.name,
        spec_version=spec.version,
        input=run_input,
        by=started_by,
        trigger=trigger,
        trace=started_trace(run_id, spec.name).to_data(),
    )
    first = advance(run_id, state, [started], now, cache=plans)
    state.started_at = first.at  # the record's created_at
    committed = store.create_run(
        spec, run_input, lease(first) if lease else first, origin=origin, started_by=started_by
    )
    if cache is not None:
        cache.put(run_id, state)
        cache.settle(committed)
    if lease is None:  # a run that ended as it started (a worker sees to its own: ``lease``)
        run_spans.emit_ended(store, state, committed)
    return committed


def save_children(
    store: Store, plan: Plan, now: float, registry: SpecRegistry, seen: set[str] | None = None
) -> None:
    """Store the definitions of the child workflows a run may start (and theirs), so a
    worker that resumes it needs nothing but the store. A pinned version that neither
    ``registry`` nor the store has is refused now, before the run starts."""
    seen = seen if seen is not None else set()
    for node in plan.nodes.values():
        if not isinstance(node.wait, SubworkflowNode) or node.wait.version in seen:
            continue
        version = node.wait.version
        seen.add(version)
        child = registry.get(version)
        if child is None:
            try:
                child = store.load_spec(version)
            except StoreError:
                raise InputError(
                    f"node '{node.id}' starts workflow '{node.wait.workflow}' version "
                    f"{version[:12]}, which is not loaded and not in the store: load it with "
                    "the parent (call it in the parent's body, or define it in the same file)"
                ) from None
        else:
            store.save_spec(child, now)
        save_children(store, compile_plan(child), now, registry, seen)


def cancel_run(
    store: Store,
    run_id: str,
    *,
    reason: str = "",
    by: str | None = None,
    clock: Clock | None = None,
) -> RunRecord:
    """Cancel a run and its child runs: nothing more is scheduled, and attempts still
    running are discarded when they end (their leases go with the run's ready queue)."""
    from keel.runtime.operations.interventions import act

    def events_for(state: RunState, who: str) -> list[Event]:
        if is_finished(state.status):
            raise KeelError(f"run {state.run_id} has already ended ({state.status.value})")
        return [RunCancelled(reason=reason or "cancelled", by=who)]

    record = act(store, run_id, by, events_for, clock)
    for child in store.list_runs(parent=record.id, limit=1_000_000):
        if not is_finished(child.status):
            cancel_run(store, child.id, reason=f"the parent run {record.id[:8]} was cancelled",
                       by=by, clock=clock)  # fmt: skip
    return record
