"""What observing a worker costs (issue 20): W1 and W3 plain, with metrics, with tracing,
with both, each repetition a fresh process (``bench.workloads``, ``bench.observing``).

    python -m bench.overhead [REPS] [--sample RATIO]

The configurations take turns within each repetition (in an order that rotates), so a
change in the machine's load falls on all of them alike. Each is set against the plain
figure of the same invocation, by CPU time and by wall time, best and median. CPU time
(the process's, every thread) is the one to judge by: on a machine shared with other
work, wall time also measures how long the process waited for a core. ``--sample``
adds tracing (alone and with metrics) through a ratio sampler keeping that share of
runs. The suite (``python -m bench``) has the W1 and W3 rows with both.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.process import ROOT, workload

CONFIGS: dict[str, tuple[str, ...]] = {
    "plain": (),
    "metrics": ("--metrics",),
    "tracing": ("--tracing",),
    "metrics + tracing": ("--metrics", "--tracing"),
}
#: per workload, its CPU cost's key and its wall figure's key (``/s``: a rate)
KEYS = {"w1_chain": ("cpu_us_per_node", "us_per_node"),
        "w3_many_runs": ("cpu_us_per_run", "runs_per_second")}  # fmt: skip
STUDIED = (("w1_chain", 200), ("w1_chain", 2_000), ("w3_many_runs", 200))


def interleaved(
    name: str, size: int, configs: dict[str, tuple[str, ...]], reps: int
) -> dict[str, list[dict[str, Any]]]:
    """``reps`` results of the workload in each configuration, taken in turns."""
    results: dict[str, list[dict[str, Any]]] = {config: [] for config in configs}
    order = list(configs)
    for rep in range(reps):
        for config in order[rep % len(order) :] + order[: rep % len(order)]:
            results[config].append(workload(name, size, flags=configs[config]))
    return results


def costs(name: str, results: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """CPU and wall µs per unit (node, run) of each result: a cost, lower is better."""
    cpu, wall = KEYS[name]
    walls = [1e6 / r[wall] if wall.endswith("_second") else r[wall] for r in results]
    return [r[cpu] for r in results], walls


def rows(name: str, size: int, results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: each configuration's best and median, and their ratio to plain's."""
    plain_cpu, plain_wall = costs(name, results["plain"])
    lines = []
    for config, found in results.items():
        cpu, wall = costs(name, found)
        cells = []
        for values, plain in ((cpu, plain_cpu), (wall, plain_wall)):
            best, median = min(values), statistics.median(values)
            cells.append(f"{best:,.0f} / {median:,.0f} | {best / min(plain):.3f} / "
                         f"{median / statistics.median(plain):.3f}")  # fmt: skip
        spans = found[0].get("spans", "")
        lines.append(f"| {name} {size} | {config} | {' | '.join(cells)} | {spans} |")
    return lines


def main() -> None:
    args = sys.argv[1:]
    if any(arg in ("-h", "--help") for arg in args):
        print(__doc__)
        return
    configs = dict(CONFIGS)
    if "--sample" in args:
        at = args.index("--sample")
        ratio = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
        if not ratio.replace(".", "", 1).isdigit() or not 0 <= float(ratio) <= 1:
            sys.exit(f"--sample {ratio!r}: the share of runs to trace, from 0 to 1 (0.1: 1 in 10)")
        configs[f"tracing {ratio}"] = ("--tracing", "--sample", ratio)
        configs[f"metrics + tracing {ratio}"] = ("--metrics", "--tracing", "--sample", ratio)
    if len(args) > 1 or (args and not args[0].isdigit()):
        sys.exit("usage: python -m bench.overhead [REPS] [--sample RATIO] (see --help)")
    reps = int(args[0]) if args else 7
    lines = ["| workload | configuration | CPU µs best / median | ratio best / median "
             "| wall µs best / median | ratio best / median | spans |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    raw = {}
    for name, size in STUDIED:
        results = interleaved(name, size, configs, reps)
        raw[f"{name} {size}"] = results
        lines += rows(name, size, results)
        print("\n".join(lines[-len(configs) :]), flush=True)
    print("\n" + "\n".join(lines))
    folder = Path(os.environ.get("KEEL_BENCH_RESULTS", ROOT / "bench" / "results"))
    out = folder / f"overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    folder.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reps": reps, "raw": raw}, indent=1))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
