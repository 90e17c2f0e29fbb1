"""What the sql and email steps' tests share: a folder that is the worker's (its
``keel.toml`` is found from the current folder) and a context for one attempt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keel.runtime.execution.context import StepContext
from keel.runtime.execution.invoke import make_context


def enter_worker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` made the current folder, as a worker's folder is, with no
    ``KEEL_SECRET_`` variable but those the test sets."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("KEEL_SECRET"):
            monkeypatch.delenv(name)
    return tmp_path


def attempt(node: str = "step", attempt: int = 1) -> StepContext:
    return make_context("run-1", "wf", node, attempt, None)
