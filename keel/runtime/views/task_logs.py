"""What a run's tasks logged, as ``keel logs`` and ``GET /runs/{id}/logs`` read it: a
page of lines of the run (of one node, one attempt), refused when that node or attempt
is not the run's; and a line as a JSON document, the one shape ``keel logs --json``
prints and the API sends (``keel.runtime.transports.decode.log_line_of`` reads it back).

The check is made only when a page comes back empty (a node or an attempt the run does
not have never logged anything), so following a run's lines costs nothing more while
they come.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from keel.engine.events import NodeStarted
from keel.engine.plan import Plan
from keel.errors import NodeNotFoundError
from keel.store.protocol import Store
from keel.store.records import RunRecord
from keel.store.task_logs import TaskLogLine
from keel.store.tombstones import refuse_pruned


def log_line_document(line: TaskLogLine) -> dict[str, Any]:
    """One line: its place in the run (``seq``), the attempt that logged it, when
    (seconds since the epoch), its level and message (a traceback after the message)."""
    return {"seq": line.seq, "node": line.node, "item": line.item, "attempt": line.attempt,
            "at": line.at, "level": line.level, "message": line.message}  # fmt: skip


def run_logs(
    store: Store, record: RunRecord, plan: Plan, *, node: str | None, attempt: int | None,
    after: int, limit: int,
) -> list[TaskLogLine]:  # fmt: skip
    """Up to ``limit`` lines of the run ``record`` (whose plan is ``plan``) after
    ``after``, of ``node`` and ``attempt`` when given. ``NodeNotFoundError`` when the
    run has no such node, or its node (any node: no ``node`` given) never started
    such an attempt."""
    refuse_pruned(record)  # its lines were removed with its history
    lines = store.task_logs(record.id, node=node, attempt=attempt, after=after, limit=limit)
    if not lines and (node is not None or attempt is not None):
        check_scope(store, record, plan, node, attempt)
    return lines


def check_scope(
    store: Store, record: RunRecord, plan: Plan, node: str | None, attempt: int | None
) -> None:
    """Refuse a node the run does not have, or an attempt its node never started."""
    if node is not None and node not in plan.nodes:
        raise NodeNotFoundError(
            f"run {record.id[:8]} has no node '{node}' (nodes: {', '.join(plan.nodes)})"
        )
    if attempt is None:
        return
    history = store.history(record.id)
    started = max((stored.event.attempt for stored in history
                   if isinstance(stored.event, NodeStarted)
                   and node in (None, stored.event.node)), default=0)  # fmt: skip
    if attempt <= started:
        return
    run = f"run {record.id[:8]}"
    if node is None:
        most = "none started" if started == 0 else f"the most is {started}"
        raise NodeNotFoundError(f"{run}: no node has an attempt {attempt} ({most})")
    had = "it has not started" if started == 0 else f"it has {started}"
    raise NodeNotFoundError(f"{run}: node {node} has no attempt {attempt} ({had})")


#: lines read at a time while looking for a tail
_SCAN = 5000


def log_tail(
    store: Store, record: RunRecord, plan: Plan, *, node: str | None, attempt: int | None,
    before: int | None, limit: int,
) -> list[TaskLogLine]:  # fmt: skip
    """The last ``limit`` lines of the run (of ``node`` and ``attempt``) before line
    ``before`` (None: the last lines), in order: a log viewer shows the end first and
    pages back. The store reads lines forwards only, so this reads the lines before
    ``before`` in pages and keeps the last ones (one pass, ``limit`` lines held)."""
    kept: deque[TaskLogLine] = deque(maxlen=limit)
    after = 0
    while True:
        page = store.task_logs(record.id, node=node, attempt=attempt, after=after, limit=_SCAN)
        for line in page:
            if before is not None and line.seq >= before:
                return list(kept)
            kept.append(line)
        if len(page) < _SCAN:
            break
        after = page[-1].seq
    if not kept and (node is not None or attempt is not None):
        check_scope(store, record, plan, node, attempt)
    return list(kept)
