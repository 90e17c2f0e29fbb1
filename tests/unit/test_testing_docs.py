"""The example of docs/testing.md runs as it is written: its workflow file and its test
file, saved as ``flows.py`` and ``test_flows.py``, pass under pytest (in a process of
their own, as a developer's project would run them, warnings as errors)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "testing.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_example_of_the_testing_page_passes(tmp_path: Path) -> None:
    flows, tests = _blocks()[:2]
    assert flows.startswith("import keel")
    assert tests.startswith("from keel.testing import")
    (tmp_path / "flows.py").write_text(flows, encoding="utf-8")
    (tmp_path / "test_flows.py").write_text(tests, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n", encoding="utf-8")
    # not this session's pytest settings (xdist's worker variables among them)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "test_flows.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout
