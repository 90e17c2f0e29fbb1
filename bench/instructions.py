"""What observing a worker costs, in instructions: ``bench.overhead``'s workloads and
configurations, each repetition a fresh process run under valgrind's callgrind, counting
only the measured span (from ``start_run`` to the end of the last run, tracing's export
included: every thread's instructions).

    python -m bench.instructions [REPS] [--workloads w1_chain:200,w3_many_runs:200]

Times on a machine shared with other work wander by several per cent; instruction
counts by a few tenths of one, once the worker does by the clock what it does natively
(``KEEL_BENCH_SLOWED``: without it, a trivial task that seems slow under callgrind runs
on a task thread or not as the machine's load has it, a few per cent either way). What
they leave out is the kernel's share: system calls (SQLite's writes, a lock that waits).
Needs ``valgrind`` (Debian: ``apt-get install valgrind``); a run takes some 50 times as
long as without it. The span is marked by two calls ``bench.workloads`` makes at its
ends (``MARKS``), where callgrind zeroes its counts and dumps them.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.overhead import CONFIGS, STUDIED
from bench.process import ROOT
from bench.workloads import MARKS

#: how many times slower a process runs under callgrind, roughly (``bench.workloads``
#: slows what its worker does by the clock as much)
SLOWED = 100


def instructions(name: str, size: int, flags: tuple[str, ...]) -> int:
    """The instructions of one measured span, in a fresh process under callgrind."""
    start, end = MARKS
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             f"--zero-before={start}", f"--dump-before={end}",
             sys.executable, "-m", "bench.workloads", name, str(size), *flags],
            cwd=ROOT, capture_output=True, text=True, check=False,
            env={**os.environ, "KEEL_BENCH_SLOWED": str(SLOWED)},
        )  # fmt: skip
        dumps = list(Path(folder).glob("callgrind.out.*"))  # the one dumped at the end mark
        if done.returncode != 0 or len(dumps) != 1:
            raise SystemExit(f"{name} {size} {' '.join(flags)} under callgrind:\n{done.stderr}")
        for line in dumps[0].read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise SystemExit(f"{name} {size}: callgrind wrote no summary")


def main() -> None:
    args = sys.argv[1:]
    if any(arg in ("-h", "--help") for arg in args):
        print(__doc__)
        return
    studied = list(STUDIED)
    if "--workloads" in args:
        at = args.index("--workloads")
        given = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
        try:
            studied = [(n, int(s)) for n, s in (w.split(":") for w in given.split(","))]
        except ValueError:
            sys.exit(f"--workloads {given!r}: NAME:SIZE,... (w1_chain:200,w3_many_runs:200)")
    if len(args) > 1 or (args and not args[0].isdigit()):
        sys.exit("usage: python -m bench.instructions [REPS] [--workloads NAME:SIZE,...]")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    reps = int(args[0]) if args else 3
    print("| workload | configuration | instructions lowest / median | ratio lowest / median |")
    print("|---|---|---|---|")
    for name, size in studied:
        found = {config: sorted(instructions(name, size, flags) for _ in range(reps))
                 for config, flags in CONFIGS.items()}  # fmt: skip
        plain = found["plain"]
        for config, counts in found.items():
            low, median = counts[0], statistics.median(counts)
            print(f"| {name} {size} | {config} | {low:,} / {median:,.0f} | "
                  f"{low / plain[0]:.3f} / {median / statistics.median(plain):.3f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
