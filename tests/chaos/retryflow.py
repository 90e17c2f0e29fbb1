"""A workflow whose one task fails its first attempt and retries after a 1.5 s backoff,
for the crash test that kills the process while the retry waits. The task appends its
idempotency key to ``KEEL_TEST_KEYS`` on every attempt."""

from __future__ import annotations

import os

import keel


@keel.task(retry=keel.RetryPolicy(max_attempts=2, initial_backoff=1.5, jitter=0))
def charge(amount: int) -> dict[str, int]:
    ctx = keel.context()
    with open(os.environ["KEEL_TEST_KEYS"], "a", encoding="utf-8") as keys:
        keys.write(ctx.idempotency_key + "\n")
    if ctx.attempt == 1:
        raise ConnectionError("the payment service is down")
    return {"charged": amount, "attempt": ctx.attempt}


@keel.workflow
def payment(amount: int) -> dict[str, int]:
    return charge(amount)
