"""Per-token rate limits: a token bucket per identity, in this server's memory.

Each server process counts on its own (several servers behind a balancer each allow the
rate): what it protects is the store and the server from one runaway client, which a
per-process bucket does without a write per request.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    """At most ``rate`` requests a second per identity, with bursts up to ``burst``;
    ``rate`` 0: no limit."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def wait_for(self, who: str, now: float) -> float:
        """0 when ``who`` may go now (the request is counted); else the seconds until it
        may (nothing counted)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(who)
            if bucket is None:
                bucket = self._buckets[who] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
