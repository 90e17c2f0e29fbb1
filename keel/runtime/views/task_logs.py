"""A task's log line as a JSON document: the one shape ``keel logs --json`` prints and
``GET /runs/{id}/logs`` sends (``keel.runtime.transports.decode.log_line_of`` reads it
back)."""

from __future__ import annotations

from typing import Any

from keel.store.task_logs import TaskLogLine


def log_line_document(line: TaskLogLine) -> dict[str, Any]:
    """One line: its place in the run (``seq``), the attempt that logged it, when
    (seconds since the epoch), its level and message (a traceback after the message)."""
    return {"seq": line.seq, "node": line.node, "item": line.item, "attempt": line.attempt,
            "at": line.at, "level": line.level, "message": line.message}  # fmt: skip
