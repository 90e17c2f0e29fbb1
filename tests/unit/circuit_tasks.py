"""Tasks behind the ``crm`` circuit breaker for the worker tests, resolved by import path
(``tests.unit.circuit_tasks:<name>``) as a worker resolves a spec's tasks.

``crm`` stands for the remote resource: a test calls ``reset()`` first, then flips
``crm.up`` to bring it back; every call is noted in ``crm.calls``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import keel
from keel.spec.policies import CircuitPolicy, RetryPolicy

#: two failures in a row open the circuit for a minute
CRM = CircuitPolicy(name="crm", failures=2, cooldown=60)
#: retried a second after a failure (no jitter, so tests know when)
RETRY = RetryPolicy(max_attempts=5, initial_backoff=1, max_backoff=1, jitter=0)


@dataclass
class Resource:
    up: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[str] = field(default_factory=list)


crm = Resource()


def reset() -> Resource:
    global crm
    crm = Resource()
    return crm


@keel.task(circuit=CRM, retry=RETRY)
def sync_customer(customer: str) -> str:
    """Fails with a retryable error while the resource is down."""
    current = crm
    with current.lock:
        current.calls.append(customer)
        up = current.up
    if not up:
        raise ConnectionError("crm is down")
    return f"synced {customer}"


@keel.task(circuit=CircuitPolicy(name="crm", failures=1, cooldown=60))
def reject_customer(customer: str) -> str:
    """The request is wrong, whatever the state of the resource."""
    with crm.lock:
        crm.calls.append(customer)
    raise keel.NonRetryable(f"customer {customer} does not exist")
