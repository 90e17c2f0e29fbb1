"""Which events call for a notification, and delivering what the outbox holds.

A transition's notifications go into the store's outbox in the same transaction as the
events that call for them, so a crash between the commit and the delivery loses
nothing; workers deliver them afterwards, off the task threads, and try again with a
growing wait when a delivery fails. Delivery is at least once: webhooks carry an
``Idempotency-Key`` so receivers can drop a duplicate.

Events: ``run_failed``; ``node_failed`` when a node (or a failure-path step) failed for
good; ``retry_exhausted`` when it failed for good with a retryable error because it
used all its attempts; ``approval_requested`` when an approval opens (tell whoever
decides), ``approval_overdue`` when it passed its timeout and ``on_timeout`` is notify.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from keel.engine.events import (
    ApprovalOverdue,
    ErrorInfo,
    Event,
    NodeAwaiting,
    NodeFailed,
    RunFailed,
)
from keel.engine.state import NodeStatus, RunState
from keel.spec.notifiers import Notifier
from keel.store.records import Notification, OutboxItem

log = logging.getLogger("keel.notify")

_NOTIFIER: TypeAdapter[Any] = TypeAdapter(Notifier)
#: deliveries of one notification before it is given up (each may retry inside itself)
MAX_DELIVERIES = 5
#: seconds before the second delivery; doubled for each one after
FIRST_REDELIVERY = 30.0


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _error(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    data = asdict(error)
    data.pop("retryable", None)
    return data


def _happened(state: RunState, event: Event) -> list[dict[str, Any]]:
    """What an event means for notifiers: zero, one or two notifications' payloads."""
    base = {"run_id": state.run_id, "workflow": state.plan.spec.name}
    if isinstance(event, RunFailed):
        error = _error(_node_error(state, event.node))
        return [{**base, "event": "run_failed", "node": event.node, "attempt": None,
                 "reason": event.reason, "error": error}]  # fmt: skip
    if isinstance(event, NodeAwaiting | ApprovalOverdue):
        return _approval(state, event, base)
    if not isinstance(event, NodeFailed) or (event.item is not None and event.attempt != 0):
        return []
    node = state.nodes[event.node]
    if node.status is not NodeStatus.FAILED or (
        event.item is None and event.attempt < node.attempt
    ):
        return []  # it is tried again
    plan = state.plan.nodes[event.node]
    attempts = max(node.attempt, max(node.item_attempts.values(), default=0)) - node.attempt_base
    found = {**base, "node": event.node, "attempt": attempts, "reason": None,
             "error": _error(event.error)}  # fmt: skip
    payloads = [{**found, "event": "node_failed"}]
    if event.error.retryable and plan.max_attempts > 1 and attempts >= plan.max_attempts:
        payloads.append({**found, "event": "retry_exhausted"})
    return payloads


def _approval(
    state: RunState, event: NodeAwaiting | ApprovalOverdue, base: dict[str, Any]
) -> list[dict[str, Any]]:
    """An approval opened (tell whoever decides) or passed its timeout (``notify``)."""
    if isinstance(event, NodeAwaiting) and event.waits_for != "approval":
        return []
    details = state.nodes[event.node].details or {}
    kind = "approval_requested" if isinstance(event, NodeAwaiting) else "approval_overdue"
    return [{**base, "event": kind, "node": event.node, "attempt": None, "reason": None,
             "error": None, "title": details.get("title"),
             "description": details.get("description"),
             "assignees": details.get("assignees"), "role": details.get("role"),
             "decide_with": f"keel approve {state.run_id} {event.node}"}]  # fmt: skip


def _node_error(state: RunState, node: str | None) -> ErrorInfo | None:
    return state.nodes[node].error if node is not None and node in state.nodes else None


def notifications_of(state: RunState, events: Sequence[Event], now: float) -> list[Notification]:
    """The notifications the spec's notifiers want for these events (already applied)."""
    notifiers = state.plan.spec.notify
    found: list[Notification] = []
    for event in events:
        for payload in _happened(state, event):
            payload["at"] = _iso(now)
            for notifier in notifiers:
                if payload["event"] in notifier.on:
                    found.append(Notification(notifier.model_dump(mode="json"), payload))
    return found


def deliver_item(item: OutboxItem) -> str | None:
    """Deliver one notification; the error, or None when it went through."""
    from keel.runtime.notifications.channels import NotifyError, deliver

    try:
        deliver(_NOTIFIER.validate_python(item.notifier), item.payload)
    except NotifyError as exc:
        return str(exc)
    except Exception as exc:  # a bug must not take the worker down with it
        return f"{type(exc).__name__}: {exc}"
    return None


def redelivery_at(item: OutboxItem, now: float) -> float | None:
    """When to try a failed notification again, or None to give up."""
    if item.deliveries >= MAX_DELIVERIES:
        about = f"run {item.run_id}" if item.run_id else f"alert {item.payload.get('alert')}"
        log.error(
            "gave up notifying %s about %s after %d deliveries",
            item.notifier.get("kind"), about, item.deliveries,
        )  # fmt: skip
        return None
    return now + FIRST_REDELIVERY * 2.0 ** (item.deliveries - 1)
