"""Kill tests of model steps: a real process running an ``llm`` node is SIGKILLed before
its request, between the provider's answer and the answer's commit, and after that
commit (``llm_kill_driver.py``), then ``keel resume`` finishes the run.

The stub server runs in this process, so it outlives the kill and counts every request
the provider was sent (and billed for). What must hold: the ledger is exact when the
kill lands before the request or after the commit (one answered call, one request);
in between, the provider answered a request nobody recorded, so the resumed attempt
buys it again and the ledger shows the first as *possibly billed*, charged its
reservation; and nothing whose answer was recorded is ever bought twice.

The same holds for an item of a map of model steps, for a re-ask (the answer that did
not fit is served from its record, only the re-ask is bought again), and for an agent
(earlier turns and the tool's result are served from their records).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keel.engine.events import NodeStarted
from keel.llm.stub_server import Malformed, StubServer, ToolCalls
from keel.runtime import open_store
from keel.store.model_calls import ModelCall
from tests.postgres import fresh_url, open_postgres

HERE = Path(__file__).parent
DRIVER = HERE / "llm_kill_driver.py"
ROOT = HERE.parents[1]
#: nano-dollars per token of stub-small, from the keel.toml written below ($1 and $2 per
#: million tokens)
IN_PRICE, OUT_PRICE = 1_000, 2_000
KEEL_TOML = '[llm.prices."stub-small"]\ninput = 1.0\noutput = 2.0\n'

pytestmark = pytest.mark.slow


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@dataclass
class Crash:
    """A run killed at ``point`` (the ``nth`` time), then resumed."""

    tmp_path: Path
    stub: StubServer
    url: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KEEL_DATABASE_URL": self.url, "PYTHONPATH": str(ROOT),
                "KEEL_LLM_LOCAL_BASE_URL": self.stub.url,
                "KEEL_TEST_KEYS": str(self.tmp_path / "keys.txt")}  # fmt: skip

    @property
    def tool_runs(self) -> list[str]:
        """The idempotency key of each run of the agent's tool, in order."""
        keys = self.tmp_path / "keys.txt"
        return keys.read_text().split() if keys.exists() else []

    def run(self, workflow: str, point: str, nth: int = 1) -> str:
        """Start ``workflow``, which dies at ``point``; then resume it to the end. The
        run's id."""
        (self.tmp_path / "keel.toml").write_text(KEEL_TOML)
        killed = subprocess.run(
            [sys.executable, str(DRIVER), self.url, workflow, point, str(nth)],
            env=self.env, cwd=self.tmp_path, capture_output=True, check=False,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
        store = open_store(self.url)
        try:
            (run,) = store.list_runs()
        finally:
            store.close()
        resumed = subprocess.run(
            [sys.executable, "-m", "keel", "resume", run.id, "-q", "--yes"],
            env=self.env, cwd=self.tmp_path, capture_output=True, check=False,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr.decode()
        return run.id


@dataclass
class Ledger:
    output: Any
    calls: list[ModelCall]
    #: how often the model step started, per map item (None: not a map); a reclaimed
    #: attempt starts again under its own number
    starts: dict[int | None, int]

    def states(self, item: int | None = None) -> list[str]:
        return [c.state for c in self.calls if c.item == item]


def _ledger(crash: Crash, run_id: str, node: str = "llm") -> Ledger:
    """What the store says of the run, checked for what every crash must leave true."""
    store = open_store(crash.url)
    try:
        record = store.get_run(run_id)
        calls = store.model_calls(run_id)
        spend = store.run_spend(run_id)
        daily = store.workflow_spend(0.0, workflow=record.workflow)
        history = store.history(run_id)
    finally:
        store.close()
    assert record.status == "succeeded", record.reason
    starts = collections.Counter(
        s.event.item for s in history if isinstance(s.event, NodeStarted) and s.event.node == node
    )
    for call in calls:
        assert call.state in ("answered", "possibly_billed"), call
        if call.state == "possibly_billed":  # charged the most it could cost, and says why
            assert call.cost == call.reserved
            assert call.error["type"] == "PossiblyBilled"
        elif call.kind == "model":  # priced exactly from the usage the stub reported
            assert call.usage_reported
            assert call.cost == call.input_tokens * IN_PRICE + call.output_tokens * OUT_PRICE
            assert 0 < call.cost < call.reserved
    # a recorded answer is never bought again: no request answered twice in the ledger
    answered = collections.Counter(
        (c.item, c.kind, c.fingerprint) for c in calls if c.state == "answered"
    )
    assert max(answered.values()) == 1, answered
    (total,) = spend.values()
    assert total.calls == len(calls)
    assert total.cost == sum(c.cost for c in calls)
    assert total.possibly_billed == sum(c.state == "possibly_billed" for c in calls)
    assert total.input_tokens == sum(c.input_tokens for c in calls)
    assert total.output_tokens == sum(c.output_tokens for c in calls)
    # the workflow's spend (per model) adds up to the run's: this is its only run
    assert {model for _, model in daily} == {c.model for c in calls}
    assert sum(d.calls for d in daily.values()) == total.calls
    assert sum(d.cost for d in daily.values()) == total.cost
    return Ledger(record.output, calls, dict(starts))


@pytest.fixture
def sqlite(tmp_path: Path, stub: StubServer) -> Crash:
    return Crash(tmp_path, stub, f"sqlite:///{tmp_path / 'keel.db'}")


@pytest.fixture(params=["sqlite", "postgres"])
def crash(request: pytest.FixtureRequest, tmp_path: Path, stub: StubServer) -> Iterator[Crash]:
    if request.param == "sqlite":
        yield Crash(tmp_path, stub, f"sqlite:///{tmp_path / 'keel.db'}")
        return
    url = fresh_url()
    postgres = open_postgres(url)  # creates the schema
    try:
        yield Crash(tmp_path, stub, url)
    finally:
        postgres.drop_schema()
        postgres.close()


TRIAGED = {"verdict": {"sentiment": "negative"}, "queue": "queue-negative"}


def test_killed_before_the_sent_record_the_ledger_is_exact(sqlite: Crash) -> None:
    ledger = _ledger(sqlite, sqlite.run("triage", "before_sent"))
    assert ledger.output == TRIAGED
    assert len(sqlite.stub.requests) == 1
    assert ledger.states() == ["answered"]
    assert ledger.starts == {None: 2}, "the killed start left no trace in the ledger"


def test_killed_after_the_sent_record_before_the_request_shows_possibly_billed(
    sqlite: Crash,
) -> None:
    """keel cannot know the request never left: the ledger errs on the side of paying."""
    ledger = _ledger(sqlite, sqlite.run("triage", "before_request"))
    assert ledger.output == TRIAGED
    assert len(sqlite.stub.requests) == 1
    assert ledger.states() == ["possibly_billed", "answered"]
    assert ledger.starts == {None: 2}


def test_killed_between_the_answer_and_its_commit_shows_possibly_billed(crash: Crash) -> None:
    """The provider answered and billed a request whose answer died with the process:
    asking again is unavoidable, and the ledger counts both."""
    ledger = _ledger(crash, crash.run("triage", "after_answer"))
    assert ledger.output == TRIAGED
    first, second = crash.stub.requests
    assert first == second, "the same request, bought twice"
    assert ledger.states() == ["possibly_billed", "answered"]
    billed, answered = ledger.calls
    assert billed.fingerprint == answered.fingerprint
    assert ledger.starts == {None: 2}


def test_killed_after_the_answer_is_committed_it_is_not_bought_again(crash: Crash) -> None:
    ledger = _ledger(crash, crash.run("triage", "after_record"))
    assert ledger.output == TRIAGED
    assert len(crash.stub.requests) == 1, "the resumed attempt was served the record"
    assert ledger.states() == ["answered"]
    assert ledger.starts == {None: 2}, "the step ran again, and asked nobody"


def test_killed_after_the_node_succeeded_the_step_does_not_run_again(sqlite: Crash) -> None:
    ledger = _ledger(sqlite, sqlite.run("triage", "after_outcome"))
    assert ledger.output == TRIAGED
    assert len(sqlite.stub.requests) == 1
    assert ledger.states() == ["answered"]
    assert ledger.starts == {None: 1}


VERDICTS = {"verdicts": [{"sentiment": "positive"}, {"sentiment": "negative"},
                         {"sentiment": "neutral"}]}  # fmt: skip


def test_a_map_item_killed_between_answer_and_commit(sqlite: Crash) -> None:
    """Item 1 dies after its answer: item 0, done, is not asked again; item 1 is, and
    shows possibly billed; item 2 is asked once."""
    ledger = _ledger(sqlite, sqlite.run("triage_each", "after_answer", nth=2))
    assert ledger.output == VERDICTS
    assert len(sqlite.stub.requests) == 4
    assert [ledger.states(item) for item in range(3)] == [
        ["answered"],
        ["possibly_billed", "answered"],
        ["answered"],
    ]
    assert ledger.starts == {0: 1, 1: 2, 2: 1}


def test_a_map_item_killed_after_its_answer_is_committed(sqlite: Crash) -> None:
    ledger = _ledger(sqlite, sqlite.run("triage_each", "after_record", nth=2))
    assert ledger.output == VERDICTS
    assert len(sqlite.stub.requests) == 3
    assert [ledger.states(item) for item in range(3)] == [["answered"]] * 3
    assert ledger.starts == {0: 1, 1: 2, 2: 1}


#: the stub answers a re-ask by its last message, the feedback, which names no sentiment
REASKED = {"verdict": {"sentiment": "neutral"}, "queue": "queue-neutral"}


def test_a_reask_killed_between_answer_and_commit(sqlite: Crash) -> None:
    """The first answer does not fit and is re-asked; the re-ask's answer dies with the
    process. The resumed attempt is served the first answer from its record, re-asks
    the same question and buys only that again."""
    sqlite.stub.script(Malformed())
    ledger = _ledger(sqlite, sqlite.run("triage", "after_answer", nth=2))
    assert ledger.output == REASKED
    first, reask, again = sqlite.stub.requests
    assert reask == again != first
    assert ledger.states() == ["answered", "possibly_billed", "answered"]
    assert ledger.starts == {None: 2}


def test_a_reask_killed_after_its_answer_is_committed(sqlite: Crash) -> None:
    sqlite.stub.script(Malformed())
    ledger = _ledger(sqlite, sqlite.run("triage", "after_record", nth=2))
    assert ledger.output == REASKED
    assert len(sqlite.stub.requests) == 2, "both answers served from their records"
    assert ledger.states() == ["answered", "answered"]
    assert ledger.starts == {None: 2}


LOOKUP = ToolCalls((("lookup", {"order": "A-17"}),))
ANSWERED = {"result": "stub reply to: What happened to order A-17?"}


def test_an_agent_killed_before_its_last_turn_is_recorded(sqlite: Crash) -> None:
    """The agent's second turn dies between answer and commit: the resumed attempt is
    served the first turn and the tool's result from their records (the tool does not
    run again) and buys only the last turn again."""
    sqlite.stub.script(LOOKUP)
    ledger = _ledger(sqlite, sqlite.run("investigate", "after_answer", nth=2), "agent")
    assert ledger.output == ANSWERED
    first, last, again = sqlite.stub.requests
    assert last == again != first
    assert [(c.kind, c.state) for c in ledger.calls] == [
        ("model", "answered"), ("tool", "answered"),
        ("model", "possibly_billed"), ("model", "answered"),
    ]  # fmt: skip
    assert len(sqlite.tool_runs) == 1
    assert ledger.starts == {None: 2}


def test_an_agent_killed_after_its_tool_ran_before_the_result_is_recorded(
    sqlite: Crash,
) -> None:
    """The tool ran but its result died with the process: it runs again, under the same
    idempotency key (the same call, to the outside world), and the ledger shows the
    first run; the model is not asked again for the turn that called it."""
    sqlite.stub.script(LOOKUP)
    ledger = _ledger(sqlite, sqlite.run("investigate", "before_record", nth=2), "agent")
    assert ledger.output == ANSWERED
    assert len(sqlite.stub.requests) == 2
    assert [(c.kind, c.state) for c in ledger.calls] == [
        ("model", "answered"), ("tool", "possibly_billed"), ("tool", "answered"),
        ("model", "answered"),
    ]  # fmt: skip
    first, again = sqlite.tool_runs
    assert first == again
    assert ledger.starts == {None: 2}
