"""Completion triggers: a run of workflow ``after`` ended, so start the runs that
follow it.

The end was recorded in the outbox in the same transaction as the run's status
(``keel.runtime.runs.ended``, when ``keel.runtime.triggers.live`` says some
deployed workflow listens), so a crash loses none; the outbox pump hands the item here.
Each listening workflow's run (one per workflow) is started with the ended run's id as
the firing's key: an item delivered again after a crash finds the runs it started and
starts nothing twice. With no input mapping the ended run's output is the input (``{}``
for a run that ended without one: failed, cancelled). No caller waits for the answer:
a workflow that refuses it (its input schema, a filter or mapping that fails) is
logged and starts nothing, and the others start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Firing, Offer, active, prepare, start
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
    default = {} if record.output is None else record.output  # failed, cancelled
    offers = [Offer(armed, run, default) for armed in active(store, plans, "completion")
              if isinstance(armed.trigger, CompletionTrigger) and armed.trigger.after == workflow
              and status in armed.trigger.status]  # fmt: skip
    # nobody waits for the answer: a workflow that refuses is logged, the others start
    batch = prepare(offers, "run")
    emitted, refused = start(store, batch, Firing("completion", workflow, record.id), plans=plans)
    for refusal in (*batch.refused, *refused):
        log.warning("the completion trigger of %s after run %s started nothing: %s",
                    refusal.workflow, record.id, refusal.reason)  # fmt: skip
    for one in emitted:
        if one.started and metrics is not None:
            metrics.runs_started.labels(one.workflow).inc()
        if one.started:
            log.info("run %s of %s started: run %s of %s ended %s", one.run.id,
                     one.workflow, record.id, workflow, status)  # fmt: skip
