"""The run's span, emitted by the process that records the run's end.

No span is held open while a run lasts (days, across processes): when its end is
committed, the span is made after the fact, from the run's start (its record's
``created_at``, which the run's state knows where it was built from the history or
started) to the end's time, with the span id ``RunStarted.trace`` recorded, so the
attempts' spans (its children since the run began) hang from it.

The span is made by the process's ``recorder``. The OpenTelemetry API cannot choose a
span's ids; the SDK's tracer can be made to (``exact_ids``), and a provider keel
installed itself makes the span with them directly (``direct``). Where the provider is
neither, the span is emitted as a child of the recorded run span instead (a synthetic
parent: the trace id is the run's all the same, the span id a new one). With no
provider configured nothing is done at all, not even reading the run's record; nor for
a run whose trace is not sampled.

A run retried by hand that ends again emits its span again: the same id, a later end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentelemetry import trace

from keel.engine.events import RunEnded
from keel.engine.state import RunState
from keel.runtime.tracing import recorder
from keel.runtime.tracing.context import of_run
from keel.store.protocol import Store
from keel.store.records import StoredEvent
from keel.store.writes import Committed

log = logging.getLogger("keel.tracing")


def tracing() -> bool:
    """Whether a tracer provider was configured in this process (else spans are no-ops)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def emit(store: Store, state: RunState, ended: StoredEvent) -> None:
    """Emit the span of ``state``'s run, whose end ``ended`` is. Never raises: a span
    lost is logged, the run's end is recorded all the same."""
    if not tracing():
        return
    try:
        _emit(store, state, ended)
    except Exception:  # tracing must not stop what records the run's end
        log.warning("could not emit the span of run %s", ended.run_id, exc_info=True)


def emit_ended(store: Store, state: RunState, committed: Committed) -> None:
    """``emit`` when the committed transition ended the run (a process that commits
    outside a worker: an action through the API or the CLI)."""
    if committed.error is not None or not tracing():
        return
    for stored in committed.events:
        if isinstance(stored.event, RunEnded):
            emit(store, state, stored)


def _emit(store: Store, state: RunState, ended: StoredEvent) -> None:
    recorded = of_run(state.trace, ended.run_id)
    if not recorded.sampled:  # decided when the run started, for every process
        return
    started_at = state.started_at
    if started_at is None:  # a state built where the run's start was not seen
        started_at = store.get_run(ended.run_id).created_at
    workflow = state.plan.spec.name
    status = state.status.value
    attributes = {"keel.run_id": ended.run_id, "keel.workflow": workflow,
                  "keel.status": status}  # fmt: skip
    error = (state.reason or "failed") if status == "failed" else None
    recorder.of(trace.get_tracer_provider()).run(f"run {workflow}", recorded, attributes,
                                                 _ns(started_at), _ns(ended.at), error)  # fmt: skip


def _ns(at: float) -> int:
    return int(at * 1e9)


def emitter(store: Store, state_of: Callable[[str], RunState]) -> Callable[[StoredEvent], None]:
    """What a worker calls with each run end it records (``RunWatch``): the run's span,
    the run's state read by ``state_of`` (the worker's cache) only when tracing."""

    def ended(stored: StoredEvent) -> None:
        if not tracing():
            return
        try:
            _emit(store, state_of(stored.run_id), stored)
        except Exception:  # as in ``emit``: never in the way of the worker
            log.warning("could not emit the span of run %s", stored.run_id, exc_info=True)

    return ended
