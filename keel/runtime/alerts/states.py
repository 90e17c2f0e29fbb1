"""How a rule's state moves at each evaluation, and what a change tells its notifiers.

A pure function of the rule, its state as the last evaluation left it, the value read
and the time (no store, no clock), so every path is tested without waiting:

- ok, and the condition holds: pending since now, or firing at once when ``for`` is 0;
- pending, and it held for ``for``: firing, with a new incident: **alert_firing**;
- pending, and it no longer holds: ok;
- firing, and it holds: nothing changes but the value (no repeat);
- firing, and it no longer holds (or there is no value): ok: **alert_resolved**, with
  the same incident.

The incident id is derived from the rule's name and the time it fired: it is the
notifications' idempotency key, the same for every delivery of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from keel.runtime.alerts.rules import AlertRule, shown_value
from keel.store.alerts import AlertNotice, AlertState

Change = Literal["alert_firing", "alert_resolved"]


@dataclass(frozen=True, slots=True)
class Evaluated:
    """A rule's new state; with ``change``, what its notifiers are told."""

    state: AlertState
    before: AlertState | None
    change: Change | None = None


def incident_id(name: str, fired_at: float) -> str:
    return hashlib.sha256(f"{name}\n{fired_at!r}".encode()).hexdigest()[:20]


def evaluate(
    rule: AlertRule, before: AlertState | None, value: float | None, now: float
) -> Evaluated:
    """The rule's state after reading ``value`` at ``now``."""
    summary = rule.summary()

    def state(status: Literal["ok", "pending", "firing"], since: float,
              incident: str | None = None) -> AlertState:  # fmt: skip
        return AlertState(rule.name, summary, status, since, incident, value, now)

    holds = rule.holds(value)
    was = "ok" if before is None else before.state
    if was == "firing":
        assert before is not None
        if holds:
            return Evaluated(state("firing", before.since, before.incident), before)
        return Evaluated(state("ok", now), before, "alert_resolved")
    if not holds:
        since = before.since if before is not None and was == "ok" else now
        return Evaluated(state("ok", since), before)
    started = before.since if before is not None and was == "pending" else now
    if now - started >= rule.for_:
        return Evaluated(state("firing", now, incident_id(rule.name, now)), before,
                         "alert_firing")  # fmt: skip
    return Evaluated(state("pending", started), before)


def notices(rule: AlertRule, evaluated: Evaluated, now: float) -> list[AlertNotice]:
    """One notification per notifier of the rule for a change (none without one)."""
    if evaluated.change is None:
        return []
    fired = evaluated.state if evaluated.change == "alert_firing" else evaluated.before
    assert fired is not None
    value = evaluated.state.value
    payload: dict[str, Any] = {
        "event": evaluated.change,
        "alert": rule.name,
        "incident": fired.incident,
        "kind": rule.kind,
        "condition": rule.condition(),
        "value": value,
        "shown_value": shown_value(rule.unit, value),
        "above": rule.threshold_above,
        "below": rule.threshold_below,
        "severity": rule.severity,
        "description": rule.description,
        "fired_at": _iso(fired.since),
        "at": _iso(now),
    }
    return [AlertNotice(rule.name, notifier.model_dump(mode="json"), payload)
            for notifier in rule.notify]  # fmt: skip


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()
