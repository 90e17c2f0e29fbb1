"""How long a failed attempt waits before the next one: exponential, capped, jittered.

Jitter spreads retries of many runs that failed together (an API went down for all of
them) so they do not come back in one burst. It is derived from a hash of the run, node,
item and attempt instead of a random draw, so ``decide`` stays deterministic: replaying
a history computes the same wait, and the wait is recorded in the event anyway.
"""

from __future__ import annotations

import hashlib
import math

from keel.spec.policies import RetryPolicy


def _unit(run_id: str, node: str, item: int | None, attempt: int) -> float:
    """A number in [0, 1) fixed by its arguments."""
    digest = hashlib.sha256(f"{run_id}\n{node}\n{item}\n{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def backoff(
    policy: RetryPolicy, run_id: str, node: str, item: int | None, failed_attempt: int
) -> float:
    """Seconds to wait after attempt ``failed_attempt`` failed, before the next one.

    ``initial_backoff * multiplier ** (failed_attempt - 1)``, capped at ``max_backoff``,
    then shortened by up to ``jitter`` of itself: the cap is never exceeded.
    """
    if policy.initial_backoff == 0:
        return 0.0
    try:
        growth = policy.multiplier ** (failed_attempt - 1)
    except OverflowError:  # past 1e308 (a valid policy gets there): far past any cap
        growth = math.inf
    capped = min(policy.max_backoff, policy.initial_backoff * growth)
    return capped * (1.0 - policy.jitter * _unit(run_id, node, item, failed_attempt))
