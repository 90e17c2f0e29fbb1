"""A small fixture for the agent and budget tests: a SQLite store, keel's stub server as
provider ``local``, a ``keel.toml`` with prices for the stub's models, and a worker that
runs a run until it ends or waits for a person."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.engine.state import NodeStatus, RunStatus, is_finished
from keel.llm import steps
from keel.llm.stub_server import StubServer
from keel.runtime.operations.control import start_run
from keel.runtime.runs import RunCache
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import WorkflowSpec
from keel.store.model_calls import ModelCall
from keel.store.sqlite import SQLiteStore
from tests.llm import agentflows

#: dollars per million tokens: high, so that the stub's few tokens cost something
PRICES = """
[llm.prices."stub-small"]
input = 1000.0
output = 2000.0

[llm.prices."stub-large"]
input = 10000.0
output = 20000.0
"""

#: seconds after which a run that neither ends nor waits is a hang, not slowness
HANG = 60.0


@dataclass
class Runner:
    stub: StubServer
    store: SQLiteStore
    worker: Worker
    db: Path

    def start(self, spec: WorkflowSpec, question: str = "Will it rain in Bergen?") -> str:
        return start_run(self.store, spec, {"question": question}).id

    def settle(self, run_id: str) -> str:
        """Run what is ready until nothing runs and nothing more is ready; the run's
        status then (ended, or waiting for a person)."""
        worker = self.worker
        worker.watch.ended.discard(run_id)
        give_up = time.monotonic() + HANG
        while time.monotonic() < give_up:
            if worker.step(wait=True, run_ids=[run_id]) or worker._running:
                continue
            status = self.store.get_run(run_id).status
            nodes = RunCache(self.store).state(run_id).nodes.values()
            if is_finished(RunStatus(status)) or any(
                node.status is NodeStatus.AWAITING for node in nodes
            ):
                return status
        raise AssertionError(f"run {run_id} neither ended nor waited within {HANG} s")

    def run(self, spec: WorkflowSpec, question: str = "Will it rain in Bergen?") -> str:
        run_id = self.start(spec, question)
        self.settle(run_id)
        return run_id

    def node(self, run_id: str, node: str = "agent") -> Any:
        """The node's state: status, output, error, details."""
        return RunCache(self.store).state(run_id).nodes[node]

    def calls(self, run_id: str, kind: str | None = None) -> list[ModelCall]:
        return [c for c in self.store.model_calls(run_id) if kind is None or c.kind == kind]

    def awaiting(self, run_id: str, node: str = "agent") -> bool:
        return bool(self.node(run_id, node).status is NodeStatus.AWAITING)


@pytest.fixture(name="runner")
def runner_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runner]:
    (tmp_path / "keel.toml").write_text(PRICES)
    monkeypatch.chdir(tmp_path)
    with agentflows._LOCK:
        agentflows.RAN.clear()
    with StubServer() as stub:
        monkeypatch.setenv("KEEL_LLM_LOCAL_BASE_URL", stub.url)
        steps._config.cache_clear()
        db = tmp_path / "keel.db"
        store = SQLiteStore(db)
        # short waits when idle: a test decides (approves) between runs of the worker
        worker = Worker(store, WorkerOptions(poll=0.01, fallback_poll=0.02))
        try:
            yield Runner(stub, store, worker, db)
        finally:
            worker.close()
            store.close()
            steps._config.cache_clear()


def keel_cli(db: Path, *args: str) -> Result:
    """``keel ARGS --db sqlite:///DB``, in this process."""
    env = {"COLUMNS": "200", "KEEL_DATABASE_URL": None, "KEEL_SERVER_URL": None}
    return CliRunner().invoke(app, [*args, "--db", f"sqlite:///{db}"], env=env)
