"""One workload in a fresh process (``python -m bench.workloads``), and what it printed.

A new process per measurement, so imports, caches and heap of one never help or hurt
the next.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def workload(
    name: str, size: int, sync: str = "normal", flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The JSON object the workload printed; exits with its error output if it failed.
    ``flags``: ``--metrics``, ``--tracing``... (see ``bench.workloads``)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.workloads", name, str(size), "--sync", sync, *flags],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"workload {name} {size} {' '.join(flags)} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
