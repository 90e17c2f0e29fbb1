"""A worker loads at its start what a first run would load on its hot path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_new_worker_has_the_input_validator_and_the_evaluator_loaded(tmp_path: Path) -> None:
    # a fresh interpreter: this test process has imported everything long ago
    script = textwrap.dedent(f"""
        import sys
        from keel.runtime import Worker
        from keel.store.sqlite import SQLiteStore
        heavy = ("jsonschema", "cel.cel")
        assert not any(name in sys.modules for name in heavy), "loaded before the worker"
        worker = Worker(SQLiteStore({str(tmp_path / "keel.db")!r}))
        missing = [name for name in heavy if name not in sys.modules]
        assert not missing, missing
        worker.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
