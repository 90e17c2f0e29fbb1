"""Workflows for the distributed limit tests, run by several worker processes at once.

- ``tenant_sync``: one node limited to 2 attempts at once per tenant. Its body sleeps
  ``KEEL_TEST_SLEEP`` seconds and appends ``tenant start end`` (``time.time()`` when
  the body began and ended) to the file named by ``KEEL_TEST_SPANS``.
- ``api_call``: one node limited to 5 starts per second, shared by every run.
- ``hold``: one node that runs until the file named by ``KEEL_TEST_RELEASE`` exists
  (at most ``HOLD_AT_MOST`` seconds), so a test decides how long its lease must live.
- ``ping``: one short node on the queue ``skewed`` that returns its process id.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import keel

#: the longest ``held`` waits for its release file (a guard, well under a lease's 30 s)
HOLD_AT_MOST = 20.0


@keel.task(concurrency=keel.ConcurrencyPolicy(key="'crm:' + input.tenant", limit=2))
def sync(tenant: str, index: int) -> int:
    start = time.time()
    time.sleep(float(os.environ.get("KEEL_TEST_SLEEP", "0.2")))
    end = time.time()
    with open(os.environ["KEEL_TEST_SPANS"], "a", encoding="utf-8") as spans:
        spans.write(f"{tenant} {start!r} {end!r}\n")
    return index


@keel.workflow
def tenant_sync(tenant: str, index: int) -> int:
    return sync(tenant, index)


@keel.task(rate_limit=keel.RateLimitPolicy(key="'api'", limit=5, per=1.0))
def call(index: int) -> int:
    return index


@keel.workflow
def api_call(index: int) -> int:
    return call(index)


@keel.task
def held() -> int:
    release = Path(os.environ["KEEL_TEST_RELEASE"])
    give_up = time.monotonic() + HOLD_AT_MOST
    while not release.exists() and time.monotonic() < give_up:
        time.sleep(0.05)
    return os.getpid()


@keel.workflow
def hold() -> int:
    return held()


@keel.task(queue="skewed")
def pong() -> int:
    return os.getpid()


@keel.workflow
def ping() -> int:
    return pong()
