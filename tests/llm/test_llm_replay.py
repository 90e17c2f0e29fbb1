"""A later attempt of an ``llm`` node is served what the ledger recorded, and only a
changed request goes to the model again: a failed run retried from the node (as
``keel retry --node`` does) must not buy the same answer twice."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import keel
import keel.llm
from keel.llm.stub_server import Json, Malformed, Truncated
from keel.runtime import start_run
from keel.runtime.operations.manual import retry_run
from keel.store.model_calls import CallSent
from tests.llm.running import LlmWorld

SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
    "required": ["sentiment"],
}


@keel.task
def read_note() -> str:
    """The ticket, from ``note.txt`` in the current folder (the test's)."""
    return Path("note.txt").read_text(encoding="utf-8")


@keel.task
def deliver(verdict: dict[str, Any]) -> str:
    """Fails while ``hold`` exists in the current folder."""
    if Path("hold").exists():
        raise RuntimeError("the mail server is down")
    return f"delivered {verdict['sentiment']}"


@keel.workflow
def replayed() -> Any:
    note = read_note()
    verdict = keel.llm.step(
        "Classify: ${{ note }}", values={"note": note}, id="classify", model="stub-small",
        provider="local", max_tokens=50, output=SCHEMA,
    )  # fmt: skip
    return deliver(verdict)


def failed_at_delivery(world: LlmWorld, note: str) -> str:
    """A run whose model step answered and whose last step failed: its id."""
    (world.folder / "note.txt").write_text(note, encoding="utf-8")
    (world.folder / "hold").touch()
    run = world.run(replayed.spec)
    assert run.status == "failed"
    assert world.output(run.id, "classify") == {"sentiment": "negative"}
    (world.folder / "hold").unlink()
    return run.id


def test_a_node_run_again_is_served_its_recorded_answer(llm_world: LlmWorld) -> None:
    run_id = failed_at_delivery(llm_world, "it is broken")
    assert len(llm_world.stub.requests) == 1

    retry_run(llm_world.store, run_id, node="classify", by="test")
    run = llm_world.finish(run_id)

    assert run.status == "succeeded"
    assert run.output == {"result": "delivered negative"}
    assert len(llm_world.stub.requests) == 1, "the answer was served from the ledger"
    (call,) = llm_world.calls(run_id)
    assert call.attempt == 1
    attempts = [e.event.attempt for e in llm_world.events(run_id)
                if e.event.kind == "node_succeeded" and e.event.node == "classify"]  # fmt: skip
    assert attempts == [1, 2]
    assert any("served" in line for line in llm_world.logs(run_id, "classify"))


def test_a_changed_request_is_asked_again_and_says_why(llm_world: LlmWorld) -> None:
    run_id = failed_at_delivery(llm_world, "it is broken")
    (llm_world.folder / "note.txt").write_text("thanks, it is great", encoding="utf-8")

    retry_run(llm_world.store, run_id, node="read_note", by="test")
    run = llm_world.finish(run_id)

    assert run.status == "succeeded"
    assert run.output == {"result": "delivered positive"}
    assert len(llm_world.stub.requests) == 2
    assert [(c.attempt, c.state) for c in llm_world.calls(run_id)] == [
        (1, "answered"), (2, "answered"),
    ]  # fmt: skip
    logged = llm_world.logs(run_id, "classify")
    assert any("asking the model again" in line and "differs" in line for line in logged)


def test_re_asks_are_served_in_order(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Malformed("not json"), Json({"sentiment": "negative"}))
    run_id = failed_at_delivery(llm_world, "it is broken")
    assert len(llm_world.stub.requests) == 2

    retry_run(llm_world.store, run_id, node="classify", by="test")

    assert llm_world.finish(run_id).status == "succeeded"
    assert len(llm_world.stub.requests) == 2, "both answers were served"
    assert len(llm_world.calls(run_id)) == 2


def test_a_retried_failure_is_served_again_and_says_so(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Truncated('{"sentiment": "neg'))
    (llm_world.folder / "note.txt").write_text("it is broken", encoding="utf-8")
    run = llm_world.run(replayed.spec)
    assert run.status == "failed"

    retry_run(llm_world.store, run.id, node="classify", by="test")
    run = llm_world.finish(run.id)

    assert run.status == "failed"
    first, second = llm_world.errors(run.id, "classify")
    assert "served again" not in first.message
    assert second.type.endswith("Truncated")
    assert "attempt 1 recorded, served again" in second.message
    assert len(llm_world.stub.requests) == 1
    assert len(llm_world.calls(run.id)) == 1


def test_a_call_left_sent_by_a_dead_process_is_counted_possibly_billed(
    llm_world: LlmWorld,
) -> None:
    # what a worker killed while the provider answered leaves: the call written as sent,
    # its answer never recorded (tests/chaos kill real processes; this is the same row)
    (llm_world.folder / "note.txt").write_text("it is broken", encoding="utf-8")
    run = start_run(llm_world.store, replayed.spec, {})
    left = CallSent(id=uuid.uuid4().hex, run_id=run.id, workflow="replayed", node="classify",
                    item=None, attempt=1, kind="model", fingerprint="0" * 64, provider="local",
                    model="stub-small", request={}, reserved=12_345, at=time.time())  # fmt: skip
    assert llm_world.store.send_call(left) is None

    run = llm_world.finish(run.id)

    assert run.status == "succeeded"
    dead, answered = llm_world.calls(run.id, "classify")
    assert (dead.state, dead.cost, dead.seq) == ("possibly_billed", 12_345, 0)
    assert (answered.state, answered.seq) == ("answered", 1)
    assert len(llm_world.stub.requests) == 1, "a call never answered is never served"
    assert any("possibly billed" in line for line in llm_world.logs(run.id, "classify"))
    spent = llm_world.store.run_spend(run.id)["classify"]
    assert spent.cost == 12_345 + answered.cost
