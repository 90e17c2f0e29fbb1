"""Starting and cancelling runs: the operations a client performs on the store.

Starting a run checks its input against the workflow's input schema, records the
definition by version, and commits ``RunStarted`` with the first decisions in one
transaction, so a run either exists with its first attempts queued or not at all.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable
from typing import Any

from keel.engine.events import Event, RunCancelled, RunStarted
from keel.engine.plan import compile_plan
from keel.engine.state import RunState
from keel.errors import InputError, KeelError
from keel.runtime.clock import Clock, SystemClock
from keel.runtime.runs import RunCache, advance
from keel.spec.model import WorkflowSpec
from keel.store.protocol import Store
from keel.store.records import Committed, RunRecord, Transition


def with_defaults(spec: WorkflowSpec, run_input: Any) -> Any:
    """The input with the schema's top-level defaults filled in, as the run will see it
    (and as its history records it): ``input.x`` must not fail for an optional ``x``."""
    properties = spec.input_schema.get("properties")
    if not isinstance(run_input, dict) or not isinstance(properties, dict):
        return run_input
    filled = dict(run_input)
    for name, schema in properties.items():
        if name not in filled and isinstance(schema, dict) and "default" in schema:
            filled[name] = schema["default"]
    return filled


#: compiled input validators by spec version (a version is immutable, so is its schema)
_VALIDATORS: dict[str, Any] = {}


def _validator(spec: WorkflowSpec) -> Any:
    validator = _VALIDATORS.get(spec.version)
    if validator is None:
        from jsonschema import Draft202012Validator  # heavy: imported only when starting runs

        if len(_VALIDATORS) >= 256:
            _VALIDATORS.clear()
        validator = _VALIDATORS[spec.version] = Draft202012Validator(spec.input_schema)
    return validator


def check_input(spec: WorkflowSpec, run_input: Any) -> None:
    """Raise ``InputError`` listing every way the input misses the input schema."""
    problems = sorted(_validator(spec).iter_errors(run_input), key=lambda e: list(e.path))
    if problems:
        lines = []
        for problem in problems:
            where = ".".join(str(part) for part in problem.absolute_path)
            lines.append(f"  input{'.' + where if where else ''}: {problem.message}")
        raise InputError(
            f"the input of workflow '{spec.name}' does not match its schema:\n" + "\n".join(lines)
        )


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
) -> RunRecord:
    """Record a new run and its first ready attempts; something else executes them.

    Pass the ``cache`` of the worker that will execute the run to compile it only once.
    """
    committed = record_run(
        store, spec, run_input, clock=clock, origin=origin, run_id=run_id, cache=cache
    )
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
) -> Committed:
    """``start_run`` for a worker: ``lease`` may let the first transition lease its
    attempts (``Worker.start_run``), and the run's state is left in ``cache``."""
    check_input(spec, run_input)
    run_input = with_defaults(spec, run_input)
    now = (clock or SystemClock()).now()
    run_id = run_id or new_run_id()
    state = RunState.new(cache.plan_of(spec) if cache is not None else compile_plan(spec), run_id)
    started = RunStarted(workflow=spec.name, spec_version=spec.version, input=run_input)
    first = advance(run_id, state, [started], now)
    committed = store.create_run(spec, run_input, lease(first) if lease else first, origin=origin)
    if cache is not None:
        cache.put(run_id, state)
    return committed


def cancel_run(
    store: Store,
    run_id: str,
    *,
    reason: str = "",
    by: str | None = None,
    clock: Clock | None = None,
) -> RunRecord:
    """Cancel a run: nothing more is scheduled, and attempts still running are discarded
    when they end (their leases go with the run's ready queue)."""
    from keel.runtime.manual import change_run

    who = by or getpass.getuser()

    def events_for(state: RunState) -> list[Event]:
        if state.finished:
            raise KeelError(f"run {state.run_id} has already ended ({state.status.value})")
        return [RunCancelled(reason=reason or "cancelled", by=who)]

    return change_run(store, run_id, events_for, clock=clock)
