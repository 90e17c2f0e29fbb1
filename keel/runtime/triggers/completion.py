"""Completion triggers: a run of workflow ``after`` ended, so start the runs that
follow it.

The end was recorded in the outbox in the same transaction as the run's status
(``keel.runtime.runs.ended``, when ``keel.runtime.triggers.live`` says some
deployed workflow listens), so a crash loses none; the outbox pump hands the item here.
Each listening trigger's run is started through ``fire`` with the ended run's id as the
firing's key: an item delivered again after a crash finds the runs it started and
starts nothing twice. With no input mapping the ended run's output is the input (``{}``
for a run that ended without one: failed, cancelled).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from keel.errors import InputError
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Firing, active, fire, mapped_input, matches
from keel.spec.triggers import CompletionTrigger
from keel.store.protocol import Store
from keel.store.records import OutboxItem

if TYPE_CHECKING:  # prometheus_client is imported only by a process that counts
    from keel.runtime.metrics import Metrics

log = logging.getLogger("keel.triggers")


def is_completion(item: OutboxItem) -> bool:
    return item.notifier.get("kind") == "completion"


def fire_completion(
    store: Store,
    item: OutboxItem,
    plans: RunCache | None = None,
    metrics: Metrics | None = None,
) -> str | None:
    """Start every run the end of ``item``'s run calls for; the error, or None when each
    is started (or refused for good: a filter or input that fails, an input the
    workflow refuses, which no retry would change). ``metrics``: where to count the
    runs started."""
    try:
        _fire(store, item, plans or RunCache(store, capacity=0), metrics)
    except Exception as exc:  # the store failed: the pump tries again later
        return f"{type(exc).__name__}: {exc}"
    return None


def _fire(store: Store, item: OutboxItem, plans: RunCache, metrics: Metrics | None) -> None:
    workflow, status = item.payload["workflow"], item.payload["status"]
    record = store.get_run(item.run_id)
    run: dict[str, Any] = {"id": record.id, "workflow": workflow, "status": status,
                           "input": record.input, "output": record.output}  # fmt: skip
    firing = Firing("completion", workflow, record.id)
    for armed in active(store, plans, "completion"):
        trigger = armed.trigger
        if not isinstance(trigger, CompletionTrigger) or trigger.after != workflow:
            continue
        if status not in trigger.status:
            continue
        try:
            if not matches(trigger, "run", run):
                continue
            default = {} if record.output is None else record.output  # failed, cancelled
            run_input = mapped_input(trigger, "run", run, default)
            started, new = fire(store, armed.spec, run_input, firing, plans=plans)
        except InputError as exc:
            log.warning("the completion trigger of %s after run %s started nothing: %s",
                        armed.spec.name, record.id, exc)  # fmt: skip
            continue
        if new and metrics is not None:
            metrics.runs_started.labels(armed.spec.name).inc()
        if new:
            log.info("run %s of %s started: run %s of %s ended %s", started.id,
                     armed.spec.name, record.id, workflow, status)  # fmt: skip
