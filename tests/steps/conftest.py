"""Fixtures of the built-in steps' tests: a real HTTP peer on the loopback, a worker
folder with a ``keel.toml`` (the current folder while the test runs), and the ``http``
step's task called as a worker calls it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.runtime.execution.context import StepContext
from keel.steps.http import http_step
from tests.steps.peers import Peer

#: calls the http step: (step definition, values) -> output
Step = Callable[..., dict[str, Any]]


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer() as server:
        yield server


@pytest.fixture
def allow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write ``[http] allow = entries`` (and any other keys) in the worker's keel.toml."""

    def write(*entries: str, **keys: object) -> Path:
        lines = ["[http]", "allow = [" + ", ".join(f'"{entry}"' for entry in entries) + "]"]
        lines += [f"{key} = {value!r}" for key, value in keys.items()]
        (tmp_path / "keel.toml").write_text("\n".join(lines) + "\n")
        return tmp_path / "keel.toml"

    monkeypatch.chdir(tmp_path)
    return write


@pytest.fixture
def worker_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with an empty keel.toml: no [http] table, nothing allowed."""
    (tmp_path / "keel.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def step() -> Step:
    def call(definition: dict[str, Any], values: dict[str, Any] | None = None,
             attempt: int = 1) -> dict[str, Any]:  # fmt: skip
        ctx = StepContext("run1", "wf", definition.get("id", "call"), attempt)
        full = {"id": "call", "kind": "http", **definition}
        return http_step(full, values or {"input": {}, "nodes": {}}, ctx)

    return call
