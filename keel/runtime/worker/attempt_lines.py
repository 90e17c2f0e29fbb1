"""The worker's own log lines about attempts: one per attempt that failed and one per
attempt reclaimed, from the events a commit recorded, each with the attempt's fields
(``extra``: run id, node, item, attempt; see ``keel.runtime.log_lines``) and the run's
trace id, so a log pipeline finds every line about an attempt by its fields, and goes
from a line to the run's trace.

The trace id is read from the run's state in the worker's cache (``RunStarted.trace``),
never loaded for a line: a run the worker does not hold (one whose attempt it reclaimed
from a dead worker, say) has its line without it.

At ``INFO``: a failure is data (the run's history has it, and its policy decides what
follows), not the worker's trouble. Nothing is done when ``keel.worker`` does not log
``INFO`` (``keel run`` in a terminal, a benchmark).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from keel.engine.events import NodeFailed, NodeReclaimed
from keel.runtime.execution.task_logs import about
from keel.runtime.runs import RunCache
from keel.runtime.tracing.context import trace_id_of
from keel.store.records import StoredEvent

log = logging.getLogger("keel.worker")

#: characters of an error's message a line quotes
MESSAGE_CHARS = 200


def tell(events: Iterable[StoredEvent], cache: RunCache) -> None:
    """Log the failed and reclaimed attempts among ``events``."""
    if not log.isEnabledFor(logging.INFO):
        return
    for stored in events:
        event = stored.event
        if isinstance(event, NodeFailed):
            message = event.error.message.strip().split("\n", 1)[0]
            if len(message) > MESSAGE_CHARS:
                message = message[: MESSAGE_CHARS - 1] + "…"
            log.info("run %s: %s attempt %d failed: %s: %s", stored.run_id, _node(event),
                     event.attempt, event.error.type, message,
                     extra=about_event(stored.run_id, event, cache))  # fmt: skip
        elif isinstance(event, NodeReclaimed):
            log.info("run %s: %s attempt %d reclaimed from %s (%s): it runs again",
                     stored.run_id, _node(event), event.attempt, event.owner, event.reason,
                     extra=about_event(stored.run_id, event, cache))  # fmt: skip


def about_event(
    run_id: str, event: NodeFailed | NodeReclaimed, cache: RunCache
) -> dict[str, object]:
    return traced({**about(event), "run_id": run_id}, cache)


def traced(fields: dict[str, object], cache: RunCache) -> dict[str, object]:
    """``fields`` (an attempt's, with its ``run_id``) and the run's ``trace_id``, when
    the run's state is in ``cache``."""
    run_id = fields.get("run_id")
    state = cache.cached(run_id) if isinstance(run_id, str) else None
    if state is not None:
        fields["trace_id"] = trace_id_of(state.trace, state.run_id)
    return fields


def _node(event: NodeFailed | NodeReclaimed) -> str:
    return event.node if event.item is None else f"{event.node}[{event.item}]"
