"""Evaluating the alert rules, in one process at a time, and delivering what they say.

Every ``every`` seconds (run clock) the pump takes or renews the store's lease of alert
evaluation (``Store.hold_alert_lease``); a process that does not hold it does nothing
more, so any number of workers and servers may run one and exactly one evaluates. The
holder reads each rule's value (``readings``), moves its state (``states.evaluate``) and
writes every state with the notifications the changes call for in one transaction,
refused if the lease was lost meanwhile (``Store.record_alerts``). Then it delivers the
due notifications, those of this evaluation and any a crashed holder left: a crash
between deciding and sending loses nothing, and a restart reads the states back, so an
incident firing still is never fired again. Delivery is at least once (the incident id
is the idempotency key); a failed one is tried again later with a growing wait
(``redelivery_at``), then given up.

Rules the holder does not have (removed from its ``keel.toml``) are forgotten; a firing
one without a resolve, as nobody is left to tell it to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from keel.runtime.alerts.readings import Readings
from keel.runtime.alerts.rules import AlertRule
from keel.runtime.alerts.states import evaluate, notices
from keel.runtime.clock import Clock, Paced
from keel.runtime.notifications.outbox import deliver_item, redelivery_at
from keel.store.alerts import AlertNotice, AlertState
from keel.store.protocol import Store

log = logging.getLogger("keel.alerts")

#: seconds between two evaluations
EVERY = 10.0
#: seconds the evaluating process holds the lease without renewing it: past that, after a
#: crash, another takes over
LEASE_FOR = 45.0
#: notifications delivered at most per turn (the rest at the next)
MOST_DELIVERED = 20


class AlertPump(Paced):
    def __init__(
        self,
        store: Store,
        rules: Sequence[AlertRule],
        *,
        owner: str,
        clock: Clock,
        every: float = EVERY,
        lease_for: float = LEASE_FOR,
    ) -> None:
        """``owner``: who holds the lease (a worker's owner string); ``clock``: when
        deliveries ended."""
        self.store = store
        self.rules = tuple(rules)
        self.owner = owner
        self.clock = clock
        self.every = every
        self.lease_for = lease_for
        #: whether this process held the lease at its last look
        self.holding = False
        self._next = float("-inf")

    def run(self, now: float) -> bool:
        """Evaluate and deliver when it is time to and this process holds the lease;
        whether it evaluated."""
        if not self.due(now):
            return False
        self._next = now + self.every
        holding = self.store.hold_alert_lease(self.owner, now, self.lease_for)
        if holding != self.holding:
            log.info("alerts: %s", "evaluated here" if holding else "evaluated by another process")
            self.holding = holding
        if not holding or not self.evaluate(now):
            return False
        self.deliver()
        return True

    def evaluate(self, now: float) -> bool:
        """Read every rule, move its state and record it with its notifications;
        False when the lease was lost meanwhile (nothing recorded)."""
        before = {state.name: state for state in self.store.alert_states()}
        readings = Readings(self.store, now)
        states: list[AlertState] = []
        told: list[AlertNotice] = []
        for rule in self.rules:
            evaluated = evaluate(rule, before.get(rule.name), readings.value(rule), now)
            states.append(evaluated.state)
            told += notices(rule, evaluated, now)
            if evaluated.change is not None:
                log.warning("alert %s: %s (%s, value %s)", rule.name, evaluated.change,
                            rule.condition(), evaluated.state.value)  # fmt: skip
        names = {rule.name for rule in self.rules}
        forget = sorted(name for name in before if name not in names)
        for name in forget:
            if before[name].state == "firing":
                log.warning("alert %s is no longer configured: forgotten while firing "
                            "(incident %s), without a resolve", name,
                            before[name].incident)  # fmt: skip
        if self.store.record_alerts(self.owner, now, states, told, forget=forget):
            return True
        self.holding = False
        log.info("alerts: the lease went to another process before this evaluation was recorded")
        return False

    def deliver(self) -> int:
        """Deliver the due notifications (on this thread, one after the other); how
        many went through."""
        delivered = 0
        for item in self.store.take_alert_notices(self.clock.now(), MOST_DELIVERED):
            error = deliver_item(item)
            if error is None:
                self.store.finish_alert_notice(item.id, self.clock.now())
                delivered += 1
                continue
            log.warning("notifying about alert %s failed: %s", item.payload.get("alert"), error)
            now = self.clock.now()
            self.store.finish_alert_notice(item.id, now, error=error,
                                           retry_at=redelivery_at(item, now))  # fmt: skip
        return delivered

    def release(self) -> None:
        """Give the lease back (the process stops): another takes over at its next look."""
        if self.holding:
            self.store.release_alert_lease(self.owner)
            self.holding = False
