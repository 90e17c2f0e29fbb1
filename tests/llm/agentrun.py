"""The fixture of the agent and budget tests: the shared ``llm_world`` (a SQLite store,
keel's stub server as provider ``local``, ``keel.toml`` prices; ``tests.llm.running``)
with dearer prices, and one worker kept for the whole test that runs a run until it
ends or waits for a person (``settle``), so a test can decide and let it go on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.engine.state import NodeState, NodeStatus, RunStatus, is_finished
from keel.llm.stub_server import StubServer
from keel.runtime.operations.control import start_run
from keel.runtime.runs import RunCache
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import WorkflowSpec
from keel.store.model_calls import ModelCall
from keel.store.protocol import Store
from tests.llm import agentflows
from tests.llm.running import LlmWorld, config_text

#: dollars per million tokens (input, output): dear, so that the stub's few tokens
#: cost cents and a budget of a dollar or less is reached in a few turns
PRICES = {"stub-small": (1000.0, 2000.0), "stub-large": (10000.0, 20000.0)}
#: seconds after which a run that neither ends nor waits is a hang, not slowness
HANG = 60.0


@dataclass
class Runner:
    world: LlmWorld
    worker: Worker

    @property
    def stub(self) -> StubServer:
        return self.world.stub

    @property
    def store(self) -> Store:
        return self.world.store

    @property
    def db(self) -> Path:
        return self.world.folder / "keel.db"

    def start(self, spec: WorkflowSpec, question: str = "Will it rain in Bergen?") -> str:
        return start_run(self.store, spec, {"question": question}).id

    def run(self, spec: WorkflowSpec, question: str = "Will it rain in Bergen?") -> str:
        run_id = self.start(spec, question)
        self.settle(run_id)
        return run_id

    def settle(self, run_id: str) -> str:
        """Work the run until nothing runs and it has ended or waits for a person; its
        status then."""
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

    def node(self, run_id: str, node: str = "agent") -> NodeState:
        """The node's state: status, attempt, output, error, details."""
        return RunCache(self.store).state(run_id).nodes[node]

    def calls(self, run_id: str, kind: str | None = None) -> list[ModelCall]:
        return [c for c in self.store.model_calls(run_id) if kind is None or c.kind == kind]

    def awaiting(self, run_id: str, node: str = "agent") -> bool:
        return self.node(run_id, node).status is NodeStatus.AWAITING


@pytest.fixture(name="runner")
def runner_fixture(llm_world: LlmWorld) -> Iterator[Runner]:
    llm_world.write_config(config_text(PRICES))
    with agentflows._LOCK:
        agentflows.RAN.clear()
    # short waits when idle: the test decides (approves) between the worker's turns
    worker = Worker(llm_world.store, WorkerOptions(poll=0.01, fallback_poll=0.02))
    try:
        yield Runner(llm_world, worker)
    finally:
        worker.close()


def keel_cli(db: Path, *args: str) -> Result:
    """``keel ARGS --db sqlite:///DB``, in this process."""
    env = {"COLUMNS": "200", "KEEL_DATABASE_URL": None, "KEEL_SERVER_URL": None}
    return CliRunner().invoke(app, [*args, "--db", f"sqlite:///{db}"], env=env)


__all__ = ["Runner", "keel_cli", "runner_fixture"]
