"""The worker's own log lines about attempts: one per attempt that failed and one per
attempt reclaimed, from the events a commit recorded, each with the attempt's fields
(``extra``: run id, node, item, attempt; see ``keel.runtime.log_lines``), so a log
pipeline finds every line about an attempt by its fields.

At ``INFO``: a failure is data (the run's history has it, and its policy decides what
follows), not the worker's trouble. Nothing is done when ``keel.worker`` does not log
``INFO`` (``keel run`` in a terminal, a benchmark).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from keel.engine.events import NodeFailed, NodeReclaimed
from keel.runtime.execution.task_logs import about
from keel.store.records import StoredEvent

log = logging.getLogger("keel.worker")

#: characters of an error's message a line quotes
MESSAGE_CHARS = 200


def tell(events: Iterable[StoredEvent]) -> None:
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
                     extra=about_event(stored.run_id, event))  # fmt: skip
        elif isinstance(event, NodeReclaimed):
            log.info("run %s: %s attempt %d reclaimed from %s (%s): it runs again",
                     stored.run_id, _node(event), event.attempt, event.owner, event.reason,
                     extra=about_event(stored.run_id, event))  # fmt: skip


def about_event(run_id: str, event: NodeFailed | NodeReclaimed) -> dict[str, object]:
    return {**about(event), "run_id": run_id}


def _node(event: NodeFailed | NodeReclaimed) -> str:
    return event.node if event.item is None else f"{event.node}[{event.item}]"
