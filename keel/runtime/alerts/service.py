"""Run the alert pump on a thread of its own, in ``keel worker`` and ``keel serve``.

Its own thread, not the worker loop's turn: delivering a notification may wait on a slow
webhook or mail server (with its retries), which must hold up neither attempts nor the
API. Every process with rules runs one; the store's lease lets one evaluate at a time.
When stopped it gives the lease back, so another process takes over at its next look.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from keel.errors import StoreError
from keel.runtime.alerts.pump import AlertPump
from keel.runtime.alerts.rules import AlertRule
from keel.runtime.clock import Clock, clock_for
from keel.runtime.owner import Owner
from keel.store.protocol import Store

log = logging.getLogger("keel.alerts")

#: seconds before looking again after the store failed
RETRY_AFTER = 5.0


def start_alerts(
    store: Store,
    rules: Sequence[AlertRule],
    stop: threading.Event,
    *,
    clock: Clock | None = None,
    owner: str | None = None,
) -> threading.Thread | None:
    """Evaluate ``rules`` until ``stop`` is set, on a daemon thread (returned, to join);
    None when there is no rule (the process takes no part in the lease)."""
    if not rules:
        return None
    clock = clock or clock_for(store)
    pump = AlertPump(store, rules, owner=owner or str(Owner.for_this_process()), clock=clock)

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    pump.run(clock.now())
                except StoreError as exc:  # the database away for a while: try again later
                    log.warning("alerts: %s", exc)
                    pump.look_now()
                    stop.wait(RETRY_AFTER)
                    continue
                except Exception:  # a bug must not end the evaluation for good
                    log.exception("alerts: the evaluation failed")
                    stop.wait(RETRY_AFTER)
                    continue
                stop.wait(max(0.05, min(pump.next_at() - clock.now(), pump.every)))
        finally:
            try:
                pump.release()
            except StoreError as exc:
                log.warning("alerts: could not give the lease back (%s); it expires", exc)

    thread = threading.Thread(target=work, name="keel-alerts", daemon=True)
    thread.start()
    return thread
