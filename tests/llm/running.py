"""Running workflows with ``llm`` and ``agent`` nodes for real, in the test's process: a
SQLite store in ``tmp_path``, keel's stub server on the loopback as provider ``local``,
a ``keel.toml`` pricing the stub's models, and a worker that runs a run to its end.

    from tests.llm.running import LlmWorld   # the fixture is in tests/llm/conftest.py

    def test_something(llm_world: LlmWorld) -> None:
        llm_world.stub.script(Json({"sentiment": "negative"}))
        run = llm_world.run(spec, {"text": "..."})          # a WorkflowSpec, or YAML text
        assert run.status == "succeeded"
        assert llm_world.output(run.id, "classify") == {"sentiment": "negative"}
        (call,) = llm_world.calls(run.id)

Each test gets its own folder, store and stub (xdist-safe). The fixture works in
``tmp_path`` (``monkeypatch.chdir``: the steps read ``keel.toml`` from the current
folder), sets ``KEEL_LLM_LOCAL_BASE_URL`` to the stub, and clears the steps' cached
config before and after, so no test sees another's settings.

Prices (``PRICES``): ``stub-small`` $1 / $2 per million input / output tokens,
``stub-large`` $10 / $20. A test that wants other settings writes ``keel.toml`` again
with ``write_config(...)`` (it clears the cache too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keel.authoring.yaml_source import load_yaml_text
from keel.engine.events import ErrorInfo, NodeFailed, NodeSucceeded
from keel.llm import steps
from keel.llm.stub_server import StubServer
from keel.runtime import Worker, open_store, start_run
from keel.spec.model import WorkflowSpec
from keel.store.model_calls import ModelCall
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent

#: dollars per million tokens: (input, output)
PRICES = {"stub-small": (1.0, 2.0), "stub-large": (10.0, 20.0)}


def config_text(prices: dict[str, tuple[float, float]] = PRICES, extra: str = "") -> str:
    """A ``keel.toml`` with an ``[llm.prices]`` table per model, and ``extra`` after it."""
    tables = [
        f'[llm.prices."{model}"]\ninput = {price[0]}\noutput = {price[1]}\n'
        for model, price in prices.items()
    ]
    return "\n".join(tables) + extra


@dataclass
class LlmWorld:
    folder: Path
    stub: StubServer
    store: Store

    def write_config(self, text: str) -> None:
        """Replace ``keel.toml`` (the steps read it again)."""
        (self.folder / "keel.toml").write_text(text, encoding="utf-8")
        steps._config.cache_clear()

    def spec(self, yaml_text: str) -> WorkflowSpec:
        (spec,) = load_yaml_text(yaml_text, "flow.yaml")
        return spec

    def run(self, spec: WorkflowSpec | str, data: dict[str, Any] | None = None) -> RunRecord:
        """Start a run of ``spec`` (YAML text is loaded first) and work it to its end."""
        spec = self.spec(spec) if isinstance(spec, str) else spec
        record = start_run(self.store, spec, data or {})
        return self.finish(record.id)

    def finish(self, run_id: str) -> RunRecord:
        """Work ``run_id`` until it ends (again, after a retry)."""
        record = self.store.get_run(run_id)
        if record.status in ("succeeded", "failed", "cancelled"):
            return record  # it ended as it started (a worker would wait a poll to see that)
        worker = Worker(self.store)
        try:
            (record,) = worker.run_until_finished([run_id])
        finally:
            worker.close()
        return record

    def events(self, run_id: str) -> list[StoredEvent]:
        return self.store.history(run_id)

    def output(self, run_id: str, node: str) -> Any:
        """The node's output (its last success), as the next steps read it."""
        found = [e.event.output for e in self.events(run_id)
                 if isinstance(e.event, NodeSucceeded) and e.event.node == node
                 and e.event.item is None]  # fmt: skip
        assert found, f"node {node} did not succeed"
        return found[-1]

    def errors(self, run_id: str, node: str) -> list[ErrorInfo]:
        """How each failed attempt of ``node`` (its items too) failed, in order."""
        return [e.event.error for e in self.events(run_id)
                if isinstance(e.event, NodeFailed) and e.event.node == node]  # fmt: skip

    def calls(self, run_id: str, node: str | None = None) -> list[ModelCall]:
        return self.store.model_calls(run_id, node=node)

    def logs(self, run_id: str, node: str | None = None) -> list[str]:
        """The messages of the task log lines of ``node`` (every node's by default)."""
        return [line.message for line in self.store.task_logs(run_id, node=node)]


@pytest.fixture
def llm_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmWorld]:
    monkeypatch.chdir(tmp_path)
    with StubServer() as stub:
        monkeypatch.setenv("KEEL_LLM_LOCAL_BASE_URL", stub.url)
        store = open_store(f"sqlite:///{tmp_path / 'keel.db'}")
        world = LlmWorld(tmp_path, stub, store)
        world.write_config(config_text())
        try:
            yield world
        finally:
            steps._config.cache_clear()
            store.close()
