"""Checkpoints a worker signs by itself, every ``[audit] checkpoint_every``.

Every process configured with a signing key and ``checkpoint_every`` runs the pump on a
thread of its own (reading every run's head may take a moment: never on the worker
loop's turn). Whichever process first finds the newest checkpoint of every run older
than the period signs the heads and stores them with ``Store.add_periodic_checkpoint``,
which stores one per period whatever the number of processes racing for it: the others'
are refused and dropped. A process looks again when the next one is due, so the cost is
one small read per period per process, and one read of the heads per period.
"""

from __future__ import annotations

import logging
import threading

from keel.audit.checkpoints import signed_heads
from keel.audit.signing import SigningKey
from keel.errors import StoreError
from keel.runtime.clock import Clock, Paced, clock_for
from keel.runtime.owner import Owner
from keel.store.protocol import Store

log = logging.getLogger("keel.audit")

#: seconds before looking again after the store failed
RETRY_AFTER = 30.0


class CheckpointPump(Paced):
    def __init__(
        self, store: Store, key: SigningKey, *, every: float, owner: str, clock: Clock
    ) -> None:
        self.store = store
        self.key = key
        self.every = every
        self.owner = owner
        self.clock = clock
        self._next = float("-inf")

    def run(self, now: float) -> int | None:
        """Sign and store a checkpoint of every run when the newest is a period old;
        its id, or None (not due, or another process made this period's)."""
        if not self.due(now):
            return None
        newest = self._newest()
        if newest is not None and newest > now - self.every:
            self._next = newest + self.every
            return None
        signed = signed_heads(self.store, self.key, at=now, by=self.owner)
        made = self.store.add_periodic_checkpoint(signed, self.key.public_key.to_text(),
                                                  now - self.every)  # fmt: skip
        self._next = now + self.every
        if made is not None:
            log.info("audit: signed checkpoint %s of %d runs with key %s", made,
                     len(signed.heads), self.key.key_id)  # fmt: skip
        return made

    def _newest(self) -> float | None:
        """When the newest checkpoint of every run was made (None: never)."""
        return next((c.at for c in self.store.checkpoints(limit=20) if c.workflow is None), None)


def start_checkpoints(
    store: Store,
    key: SigningKey | None,
    every: float | None,
    stop: threading.Event,
    *,
    clock: Clock | None = None,
    owner: str | None = None,
) -> threading.Thread | None:
    """Sign checkpoints until ``stop`` is set, on a daemon thread (returned, to join);
    None without a key or a period."""
    if key is None or every is None:
        return None
    clock = clock or clock_for(store)
    pump = CheckpointPump(store, key, every=every, clock=clock,
                          owner=owner or str(Owner.for_this_process()))  # fmt: skip

    def work() -> None:
        while not stop.is_set():
            try:
                pump.run(clock.now())
            except StoreError as exc:  # the database away for a while: try again later
                log.warning("audit: no checkpoint now: %s", exc)
                stop.wait(RETRY_AFTER)
                continue
            except Exception:  # a bug must not end the checkpoints for good
                log.exception("audit: signing a checkpoint failed")
                stop.wait(RETRY_AFTER)
                continue
            stop.wait(max(1.0, pump.next_at() - clock.now()))

    thread = threading.Thread(target=work, name="keel-checkpoints", daemon=True)
    thread.start()
    return thread
