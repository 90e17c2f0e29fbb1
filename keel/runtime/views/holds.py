"""What holds an attempt on the ready queue back from the next claim: its circuit, its
concurrency key, its rate key, checked as a claim checks them (``keel.store.limits``,
the ``free`` queries) but read, never taken.

The checks are pure functions of the facts they need, each returning the reason
``keel why`` gives (``keel.runtime.views.why_reasons``) or None. ``StoreHolds`` reads
those facts for a run's queued attempts, each fact once and only when an attempt
needs it, so a list of runs (``keel.runtime.views.activity``) pays for none unless a
queued attempt has a circuit, a concurrency key or a rate key.
"""

from __future__ import annotations

from keel.runtime.views.why_reasons import CircuitOpen, ConcurrencyFull, Holder, RateLimited
from keel.store.limits import rate_free_at
from keel.store.protocol import Store
from keel.store.records import CircuitState, Lease, QueuedAttempt

Hold = CircuitOpen | ConcurrencyFull | RateLimited


def circuit_hold(circuit: CircuitState | None, now: float) -> CircuitOpen | None:
    """The attempt's circuit (None: it has none, or it never failed) is open, or half
    open with a probe out."""
    if circuit is None:
        return None
    is_open = circuit.open_until is not None and circuit.open_until > now
    probing = circuit.probe_until is not None and circuit.probe_until > now
    if not (is_open or probing):
        return None
    return CircuitOpen(circuit=circuit.name, failures=circuit.failures,
                       until=circuit.open_until if is_open else None,
                       probe_until=circuit.probe_until if probing else None)  # fmt: skip


def concurrency_hold(row: QueuedAttempt, holders: list[Lease]) -> ConcurrencyFull | None:
    """The attempt's concurrency key is held by ``holders`` as often as its limit allows."""
    ready = row.ready
    if ready.limit_key is None or len(holders) < ready.limit_max:
        return None
    return ConcurrencyFull(key=ready.limit_key, limit=ready.limit_max, holders=[
        Holder(run_id=h.run_id, node=h.node, item=h.item, owner=h.owner)
        for h in holders])  # fmt: skip


def rate_hold(row: QueuedAttempt, starts: list[float], now: float) -> RateLimited | None:
    """The attempt's rate key started as many attempts in its window as it allows
    (``starts``: the key's start times, at least those of the window)."""
    ready = row.ready
    if ready.rate_key is None:
        return None
    since = now - ready.rate_per
    free_at = rate_free_at([at for at in starts if at > since], ready.rate_max, ready.rate_per)
    if free_at is None:
        return None
    return RateLimited(key=ready.rate_key, limit=ready.rate_max, per=ready.rate_per,
                       until=free_at)  # fmt: skip


class StoreHolds:
    """The holds of queued attempts at ``now``, from ``store``: the circuits read once,
    the holders of each concurrency key and the starts of each rate key's window once."""

    def __init__(self, store: Store, now: float) -> None:
        self.store, self.now = store, now
        self._circuits: dict[str, CircuitState] | None = None
        self._holders: dict[str, list[Lease]] = {}
        self._starts: dict[tuple[str, float], list[float]] = {}

    def first(self, row: QueuedAttempt) -> Hold | None:
        """What holds ``row`` back, in the order a claim finds it (None: nothing)."""
        ready = row.ready
        if ready.circuit is not None:
            if self._circuits is None:
                self._circuits = {c.name: c for c in self.store.circuits()}
            found: Hold | None = circuit_hold(self._circuits.get(ready.circuit), self.now)
            if found is not None:
                return found
        if ready.limit_key is not None:
            key = ready.limit_key
            if key not in self._holders:
                self._holders[key] = self.store.limit_holders(key)
            found = concurrency_hold(row, self._holders[key])
            if found is not None:
                return found
        if ready.rate_key is not None:
            window = (ready.rate_key, ready.rate_per)
            if window not in self._starts:
                self._starts[window] = self.store.rate_starts(
                    ready.rate_key, self.now - ready.rate_per
                )
            return rate_hold(row, self._starts[window], self.now)
        return None
