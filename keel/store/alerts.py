"""What a store keeps for alerts: each rule's state, the lease of the one process that
evaluates them, and the notifications their changes call for.

The rules themselves live in the configuration (``keel.toml``, read by
``keel.runtime.alerts``); the store only keeps what evaluating them found, so that a
restart, or another process taking over, goes on from there and never fires an incident
twice:

- a rule is ``ok``, ``pending`` (its condition holds, not yet for its ``for``) or
  ``firing`` (with the incident it fires for), ``since`` when;
- one process at a time evaluates (a lease with an expiry, ``Store.hold_alert_lease``);
  a change of state and the notifications it calls for are written in one transaction,
  and only while the writer holds the lease (``Store.record_alerts``);
- the notifications wait in their own outbox (``alert_notices``) until the lease holder
  delivers them: an alert has no run, and is delivered by the process that evaluates,
  worker or server.

Also the reads the rules compare (``EndedRuns``): each one aggregate from an index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

AlertStatus = Literal["ok", "pending", "firing"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """One rule as its last evaluation left it."""

    name: str
    #: what the rule checks (its kind, threshold, window...), as JSON, for showing it
    rule: dict[str, Any]
    state: AlertStatus
    #: when it entered ``state`` (for ``firing``: when it fired)
    since: float
    #: the incident a firing rule fires for (kept in its resolve): the notifications'
    #: idempotency key; None when ok or pending
    incident: str | None
    #: the value last read (None: no data, such as fewer runs than the rule's minimum)
    value: float | None
    evaluated_at: float


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """A notification an alert's change calls for: the notifier's data and the JSON sent."""

    alert: str
    notifier: dict[str, Any]
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EndedRuns:
    """The runs that ended (succeeded or failed; a cancelled run tells nothing of a
    workflow's health) since a time, and how many of them failed."""

    count: int
    failed: int
    #: the duration (end minus creation) at the quantile asked for (None: not asked,
    #: or no run)
    duration: float | None = None
    #: the durations at the ``quantiles`` asked for, in their order (None: no run)
    durations: tuple[float | None, ...] = ()


def alert_of(row: Sequence[Any]) -> AlertState:
    """A rule's state as both backends select it (``select_alerts``' columns)."""
    name, rule, state, since, incident, value, evaluated_at = row
    return AlertState(name, json.loads(rule), state, float(since), incident,
                      None if value is None else float(value), float(evaluated_at))  # fmt: skip


def alert_row(state: AlertState) -> tuple[Any, ...]:
    """The ``upsert_alert`` parameters of a rule's state."""
    return (state.name, json.dumps(state.rule, sort_keys=True), state.state, state.since,
            state.incident, state.value, state.evaluated_at)  # fmt: skip


def quantile_offset(count: int, quantile: float) -> int:
    """The place (0: the smallest) of the ``quantile`` of ``count`` sorted values, by
    the nearest rank: the smallest value with at least that share of the values at or
    below it (the 95th percentile of 20 durations is the 19th)."""
    rank = math.ceil(quantile * count - 1e-9)  # 0.95 * 20 is 19.000000000000004
    return max(1, min(count, rank)) - 1
