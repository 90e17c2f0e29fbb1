"""``python tests/chaos/skewed_keel.py ARGS...`` is ``keel ARGS...`` on a host whose wall
clock is wrong: ``time.time`` reads the real time plus ``KEEL_TEST_CLOCK_SKEW`` seconds.

For tests only. It fakes a badly set host clock so a test can show that leases and
timers are judged by the database's clock; ``time.monotonic`` is left alone, as a real
change of the wall clock would leave it. Before running keel it prints what its clock
reads, so a test can check the skew was in effect.
"""

from __future__ import annotations

import os
import sys
import time

SKEW = float(os.environ.get("KEEL_TEST_CLOCK_SKEW", "0"))
_real_time = time.time


def _skewed_time() -> float:
    return _real_time() + SKEW


if __name__ == "__main__":
    time.time = _skewed_time
    print(f"skewed_keel: time.time() reads {time.time()!r} ({SKEW:+g} s)", file=sys.stderr)
    sys.argv = ["keel", *sys.argv[1:]]
    sys.path[0] = os.getcwd()  # as ``python -m keel`` has it, not this file's folder
    from keel.cli import main

    main()
