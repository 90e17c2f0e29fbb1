"""``python tests/chaos/skewed_keel.py ARGS...`` is ``keel ARGS...`` on a host whose wall
clock is wrong: ``time.time`` reads the real time plus ``KEEL_TEST_CLOCK_SKEW`` seconds.

For tests only. It fakes a badly set host clock so a test can show that leases and
timers are judged by the database's clock; ``time.monotonic`` is left alone, as a real
change of the wall clock would leave it. Before running keel it prints what its clock
reads, so a test can check the skew was in effect, and after each look for lost leases
it prints ``skewed_keel: looked for lost leases``, so a test can wait for looks that
happened instead of sleeping and hoping one did.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

SKEW = float(os.environ.get("KEEL_TEST_CLOCK_SKEW", "0"))
_real_time = time.time


def _skewed_time() -> float:
    return _real_time() + SKEW


def _say_each_reclaim() -> None:
    from keel.store.postgres.store import PostgresStore

    reclaim = PostgresStore.reclaim

    def said(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        found = reclaim(self, *args, **kwargs)
        print("skewed_keel: looked for lost leases", file=sys.stderr, flush=True)
        return found

    PostgresStore.reclaim = said  # type: ignore[method-assign]


if __name__ == "__main__":
    time.time = _skewed_time
    _say_each_reclaim()
    print(f"skewed_keel: time.time() reads {time.time()!r} ({SKEW:+g} s)", file=sys.stderr)
    sys.argv = ["keel", *sys.argv[1:]]
    sys.path[0] = os.getcwd()  # as ``python -m keel`` has it, not this file's folder
    from keel.cli import main

    main()
