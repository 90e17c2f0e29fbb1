"""Which claimable attempts a claim may take under their concurrency and rate limits.

A claim selects candidates in SQL (saturated keys already filtered out), locks the
keys involved, counts what each key holds now, and then takes candidates in queue order
while their keys have room. Reading and counting go through a ``FreeQueue`` (the store
skeleton's is ``keel.store.sqlstore.free``, over each dialect's queries); the choice is
made here, so SQLite and PostgreSQL choose alike.

A rate limit is a sliding window: at most ``rate_max`` starts with the key in any
``rate_per`` seconds. Starts are recorded with the claim's time and kept for
``RATE_SLACK`` seconds past their window, so a claim whose clock is a little behind
another's still counts every start that matters to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: seconds a recorded start is kept after it left its window
RATE_SLACK = 60.0


@dataclass(frozen=True, slots=True)
class Candidate:
    run_id: str
    node: str
    #: as stored (``NO_ITEM`` for a whole node)
    item: int
    attempt: int
    queue: str
    circuit: str | None = None
    limit_key: str | None = None
    limit_max: int = 0
    rate_key: str | None = None
    rate_max: int = 0
    rate_per: float = 1.0
    #: when it became ready (for the queue lag of what a claim takes)
    available_at: float = 0.0

    @property
    def place(self) -> tuple[str, str, int, int]:
        return self.run_id, self.node, self.item, self.attempt


@dataclass(slots=True)
class Admission:
    taken: list[Candidate]
    #: when a candidate held back by its rate limit could be taken (None: none was)
    retry_at: float | None = None


def lock_names(candidates: Sequence[Candidate]) -> list[str]:
    """The lock name of every key the candidates use, sorted (so two claims never wait
    for each other in a circle)."""
    names = {f"concurrency:{c.limit_key}" for c in candidates if c.limit_key is not None}
    names |= {f"rate:{c.rate_key}" for c in candidates if c.rate_key is not None}
    return sorted(names)


class Admitter:
    """Takes candidates in order while their keys have room, across the looks of one
    claim. ``holders(key)``: attempts with that concurrency key held now;
    ``recent_starts(key, since)``: start times with that rate key after ``since``, oldest
    first (both read under the keys' locks, once per key)."""

    def __init__(
        self,
        now: float,
        holders: Callable[[str], int],
        recent_starts: Callable[[str, float], list[float]],
    ) -> None:
        self.now = now
        self._holders = holders
        self._recent_starts = recent_starts
        self.held: dict[str, int] = {}
        self._limit_max: dict[str, int] = {}
        self.started: dict[str, list[float]] = {}
        self._rate_max: dict[str, int] = {}
        self.admission = Admission([])

    def consider(self, candidate: Candidate) -> bool:
        limit_key, rate_key = candidate.limit_key, candidate.rate_key
        if limit_key is not None:
            if limit_key not in self.held:
                self.held[limit_key] = self._holders(limit_key)
            self._limit_max[limit_key] = candidate.limit_max
            if self.held[limit_key] >= candidate.limit_max:
                return False
        if rate_key is not None:
            window = self.started.get(rate_key)
            if window is None:
                since = self.now - candidate.rate_per
                window = self.started[rate_key] = self._recent_starts(rate_key, since)
            self._rate_max[rate_key] = candidate.rate_max
            free_at = rate_free_at(window, candidate.rate_max, candidate.rate_per)
            if free_at is not None:
                self.note_retry(free_at)
                return False
            window.append(self.now)
        if limit_key is not None:
            self.held[limit_key] += 1
        self.admission.taken.append(candidate)
        return True

    def note_retry(self, free_at: float) -> None:
        retry_at = self.admission.retry_at
        if retry_at is None or free_at < retry_at:
            self.admission.retry_at = free_at

    def full_keys(self) -> tuple[list[str], list[str]]:
        """Concurrency keys and rate keys with no room left, for a second look."""
        limits = [key for key, n in self.held.items() if n >= self._limit_max[key]]
        rates = [key for key, w in self.started.items() if len(w) >= self._rate_max[key]]
        return sorted(limits), sorted(rates)


def rate_free_at(starts: Sequence[float], rate_max: int, rate_per: float) -> float | None:
    """When a rate key whose window holds ``starts`` (oldest first) has room again."""
    if len(starts) < rate_max:
        return None
    return starts[len(starts) - rate_max] + rate_per


class FreeQueue(Protocol):
    """What ``choose`` needs from a backend, inside the claim's write transaction."""

    def look(self, full_limits: Sequence[str], full_rates: Sequence[str]) -> list[Candidate]:
        """Free attempts in queue order (at most the claim's limit), filtered in SQL:
        due, not on hold, circuit not open, keys not full (nor in ``full_*``)."""

    def tripped(self, circuits: Sequence[str]) -> tuple[set[str], set[str]]:
        """Of these circuits, those past their cool-down with no probe out, and those
        whose probe is out now (locked, so two claims never both start a probe)."""

    def start_probe(self, circuit: str) -> None: ...

    def lock(self, name: str) -> None:
        """Hold the lock ``name`` until the transaction ends."""

    def holders(self, key: str) -> int: ...

    def recent_starts(self, key: str, since: float) -> list[float]: ...

    def record_start(self, key: str) -> None: ...

    def waiting_rates(self) -> list[tuple[str, int, float]]:
        """(key, max, per) of the rate keys that free attempts in scope wait for."""


def choose(queue: FreeQueue, now: float, limit: int, *, want_retry: bool) -> Admission:
    """The attempts a claim (or a commit leasing queued work) takes, best first.

    Of a circuit past its cool-down only the first attempt goes, as the probe; the
    limits are counted under their keys' locks; when the LIMIT of the first look counted
    attempts held back (behind a probe, or by a key the claim itself filled), a second
    look tops the claim up, so a busy key never costs other attempts their turn.
    ``want_retry``: say when an attempt held back by a rate limit could go."""
    rows = queue.look((), ())
    tripped: set[str] = set()
    circuits = sorted({c.circuit for c in rows if c.circuit is not None})
    free = rows
    if circuits:
        tripped, probed = queue.tripped(circuits)
        free, probing = choose_probes([c for c in rows if c.circuit not in probed], tripped)
        for circuit in probing:
            queue.start_probe(circuit)
    locked = lock_names(free)
    for name in locked:
        queue.lock(name)
    admitter = Admitter(now, queue.holders, queue.recent_starts)
    for candidate in free:
        admitter.consider(candidate)
    taken = admitter.admission.taken
    if len(taken) < limit and len(rows) == limit and len(taken) < len(rows):
        seen = {c.place for c in rows}
        again = [c for c in queue.look(*admitter.full_keys()) if c.place not in seen]
        again = [c for c in again if c.circuit is None or c.circuit not in tripped]
        for name in lock_names(again):
            if name not in locked:
                queue.lock(name)
        for candidate in again:
            if len(taken) >= limit:
                break
            admitter.consider(candidate)
    for candidate in taken:
        if candidate.rate_key is not None:
            queue.record_start(candidate.rate_key)
    if want_retry and len(taken) < limit:
        for key, rate_max, per in queue.waiting_rates():
            free_at = rate_free_at(queue.recent_starts(key, now - per), rate_max, per)
            if free_at is not None:
                admitter.note_retry(free_at)
    return admitter.admission


def choose_probes(
    rows: Sequence[Candidate], tripped: set[str]
) -> tuple[list[Candidate], list[str]]:
    """Of each circuit past its cool-down (``tripped``), only the first attempt goes, as
    the probe. Returns what may go and the circuits whose probe it holds."""
    free: list[Candidate] = []
    probing: list[str] = []
    for candidate in rows:
        circuit = candidate.circuit
        if circuit is not None and circuit in tripped:
            if circuit in probing:
                continue  # one probe per circuit
            probing.append(circuit)
        free.append(candidate)
    return free, probing
