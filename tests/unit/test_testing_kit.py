"""``keel.testing.run``: a developer's workflow run in memory by keel's real worker, with
a clock that skips waiting, stubs, offline LLM answers, actions on a waiting run,
assertions on its history and replay of it. The workflows are in ``testing_flows``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from keel.errors import InputError, KeelError
from keel.testing import START, TestRun, run
from tests.unit import testing_flows as flows

CLAIM = {"claim_id": "c-1", "document": "a dented bumper"}


def _at(r: TestRun, kind: str, node: str, attempt: int) -> float:
    """When the run recorded ``kind`` for one attempt of ``node``."""
    (line,) = [
        e
        for e in r.history
        if (e["kind"], e.get("node"), e.get("attempt")) == (kind, node, attempt)
    ]
    return float(line["at"])


def _new_keel_threads(before: list[threading.Thread]) -> list[str]:
    """keel's threads started since ``before`` and still alive (other tests' threads,
    in the same process, may end meanwhile: they are not counted)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("keel") and t not in before]


# --- a run with parallel tasks and an approval ----------------------------------------------


def test_a_run_waits_for_its_approval_and_goes_on_when_approved() -> None:
    with run(flows.claim, CLAIM) as r:
        assert r.status == "waiting"
        assert r.node("review").status == "awaiting"
        assert r.node("settle").status == "waiting"
        # the parallel branches both ran before the review opened
        assert r.node("fraud_score").output == 0.1
        assert r.node("coverage").output == {"claim": "c-1", "covered": True}

        assert r.approve("review", data={"note": "fine"}, by="ann", comment="ok") is r

        assert r.status == "succeeded", r.error
        assert r.output == {"result": "paid 15 (c-1, score 0.1)"}
        assert r.node("review").output == {"note": "fine"}
        (decided,) = [e for e in r.history if e["kind"] == "approval_decided"]
        assert (decided["by"], decided["comment"], decided["approved"]) == ("ann", "ok", True)
        r.assert_events("run_started", "node_succeeded:extract", "node_awaiting:review",
                        "approval_decided", "node_succeeded:settle", "run_succeeded")  # fmt: skip


def test_the_parallel_tasks_both_start_before_either_is_recorded_done() -> None:
    with run(flows.claim, CLAIM) as r:
        kinds = [(e["kind"], e.get("node")) for e in r.history]
    scheduled = kinds.index(("node_scheduled", "coverage"))
    assert scheduled < kinds.index(("node_succeeded", "extract"))
    assert kinds.index(("node_succeeded", "coverage")) > kinds.index(("node_started", "extract"))


def test_a_rejected_approval_fails_the_run_with_who_and_why() -> None:
    with run(flows.claim, CLAIM) as r:
        r.reject("review", by="bob", comment="looks forged")

        assert r.status == "failed"
        assert "looks forged" in (r.error or "")
        review = r.node("review")
        assert review.status == "failed"
        assert review.error is not None
        assert review.error.type == "Rejected"
        assert r.node("settle").attempts == 0  # never ran
        r.assert_events("approval_decided:review", "node_failed:review", "run_failed")


def test_approving_what_does_not_wait_says_what_is_wrong() -> None:
    with run(flows.claim, CLAIM) as r:
        with pytest.raises(KeelError, match="has no node 'reveiw' \\(approvals: review\\)"):
            r.approve("reveiw")
        r.approve("review")
        with pytest.raises(KeelError, match="has ended"):
            r.approve("review")


# --- time: retries, timers, advance -----------------------------------------------------------


def test_retries_wait_their_backoff_on_the_fake_clock_not_in_real_time() -> None:
    r = run(flows.fetch, {"url": "https://example.com"})

    assert r.status == "succeeded"
    assert r.output == {"result": "fetched https://example.com"}
    node = r.node("flaky_fetch")
    assert node.attempts == 3
    assert node.error is not None
    assert "attempt 2" in node.error.message
    # the recorded times jumped by the backoff: 60 s, then 120 s (no jitter)
    assert _at(r, "node_started", "flaky_fetch", 1) == START
    assert _at(r, "node_started", "flaky_fetch", 2) == START + 60
    assert _at(r, "node_started", "flaky_fetch", 3) == START + 180
    assert r.now == START + 180


def test_a_two_day_timer_fires_without_waiting_two_days() -> None:
    r = run(flows.remind, {"who": "bob"})

    assert r.status == "succeeded"
    assert r.output == {"result": "reminded bob"}
    (fired,) = [e for e in r.history if e["kind"] == "timer_fired"]
    assert fired["at"] == START + 2 * 86_400
    assert _at(r, "node_started", "send_reminder", 1) == START + 2 * 86_400
    r.assert_events("node_awaiting", "timer_fired", "node_succeeded:send_reminder")


def test_the_clock_does_not_jump_to_an_approvals_timeout_but_advance_passes_it() -> None:
    with run(flows.deadline_review, {"amount": 5}) as r:
        assert r.status == "waiting"
        assert r.now == START  # the one-day timeout is the test's to reach
        r.advance("12h")
        assert r.status == "waiting"
        assert r.now == START + 12 * 3600

        r.advance("12h")

        assert r.status == "failed"
        review = r.node("review")
        assert review.error is not None
        assert review.error.type == "ApprovalTimeout"


def test_the_clock_does_not_jump_to_the_deadline_of_a_run_waiting_for_a_person() -> None:
    with run(flows.urgent, {"amount": 5}) as r:
        assert r.status == "waiting"
        assert r.now == START
        r.approve("review")
        assert r.status == "succeeded"

    with run(flows.urgent, {"amount": 5}) as late:
        late.advance("61m")
        assert late.status == "failed"
        late.assert_events("node_awaiting:review", "run_deadline_exceeded", "run_failed")


def test_a_deadline_before_a_timer_fires_first_when_no_one_is_waited_for() -> None:
    r = run(flows.overnight, {"amount": 5})

    assert r.status == "failed"
    r.assert_events("node_awaiting:wait", "run_deadline_exceeded", "run_failed")
    assert r.now == START + 3600
    assert r.node("book").attempts == 0


def test_advance_refuses_what_is_not_a_duration() -> None:
    with run(flows.order, {"order_id": "o-1"}) as r:
        with pytest.raises(InputError, match="advance: "):
            r.advance("soon")
        with pytest.raises(InputError, match="does not go back"):
            r.advance(-5)


# --- signals --------------------------------------------------------------------------------


def test_a_run_waits_for_its_signal_and_takes_its_data() -> None:
    with run(flows.order, {"order_id": "o-1"}) as r:
        assert r.status == "waiting"
        assert r.node("paid").status == "awaiting"

        r.signal("paid", {"by": "card"})

        assert r.status == "succeeded"
        assert r.output == {"result": "shipped o-1 paid by card"}
        r.assert_events("node_awaiting:paid", "signal_received", "node_succeeded:ship")


def test_a_signal_the_workflow_does_not_wait_for_is_refused() -> None:
    with run(flows.order, {"order_id": "o-1"}) as r:
        with pytest.raises(KeelError, match="waits for no signal 'payed' \\(signals: paid\\)"):
            r.signal("payed")
        assert r.status == "waiting"


# --- stubs ----------------------------------------------------------------------------------


def test_a_stub_by_node_id_replaces_the_task_and_the_real_one_is_not_called() -> None:
    flows.CALLED.clear()
    seen: list[str] = []

    def fake_extract(document: str) -> dict[str, Any]:
        seen.append(document)
        return {"amount": 500, "source": "stub"}

    with run(flows.claim, CLAIM, stubs={"extract": fake_extract}) as r:
        r.approve("review")
        assert r.status == "succeeded"
        assert r.node("extract").output == {"amount": 500, "source": "stub"}
        assert r.node("fraud_score").output == 0.9  # the real task read the stub's output
    assert seen == ["a dented bumper"]
    assert flows.CALLED == []


def test_a_stub_by_task_path_and_a_stub_that_raises_is_a_recorded_failure() -> None:
    def down(claim_id: str) -> dict[str, Any]:
        raise RuntimeError(f"coverage service down for {claim_id}")

    r = run(flows.claim, CLAIM, stubs={"tests.unit.testing_flows:coverage": down})

    assert r.status == "failed"
    error = r.node("coverage").error
    assert error is not None
    assert (error.type, error.message) == ("RuntimeError", "coverage service down for c-1")
    r.assert_events("node_failed:coverage", "run_failed")


def test_a_stub_for_nothing_the_workflow_runs_is_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match="'extarct' is neither a node of workflow 'claim'"):
        run(flows.claim, CLAIM, stubs={"extarct": lambda document: {}})
    with pytest.raises(InputError, match="expected a function"):
        run(flows.claim, CLAIM, stubs={"extract": {"amount": 1}})


# --- LLM nodes, offline ---------------------------------------------------------------------


def test_an_llm_node_is_answered_by_the_reply_the_test_gives() -> None:
    reply = {"sentiment": "negative", "urgent": True}
    r = run(flows.triage, {"ticket": "my order never came"}, llm_replies={"classify": reply})

    assert r.status == "succeeded", r.error
    assert r.node("classify").output == reply
    assert r.output == {"result": "escalate: my order never came"}


def test_an_llm_reply_may_be_a_function_of_the_filled_in_prompt() -> None:
    prompts: list[str] = []

    def answer(prompt: str) -> dict[str, Any]:
        prompts.append(prompt)
        return {"sentiment": "neutral", "urgent": "refund" in prompt}

    r = run(flows.triage, {"ticket": "a refund please"}, llm_replies={"classify": answer})

    assert prompts == ["Classify this ticket: a refund please"]
    assert r.output == {"result": "escalate: a refund please"}


def test_an_llm_reply_that_does_not_fit_the_schema_fails_the_node() -> None:
    r = run(flows.triage, {"ticket": "hi"}, llm_replies={"classify": {"sentiment": "ok"}})

    assert r.status == "failed"
    error = r.node("classify").error
    assert error is not None
    assert error.type == "keel.llm.errors.OutputInvalid"
    assert "does not fit its output schema" in error.message
    assert "urgent" in error.message


def test_an_llm_node_without_a_reply_gets_the_stubs_answer_that_fits_its_schema() -> None:
    r = run(flows.triage, {"ticket": "hi"})

    assert r.status == "succeeded", r.error
    output = r.node("classify").output
    assert set(output) == {"sentiment", "urgent"}
    assert isinstance(output["urgent"], bool)


def test_llm_replies_for_a_node_that_is_not_an_llm_node_are_refused() -> None:
    with pytest.raises(InputError, match=r"'route' is not an llm node .*llm nodes: classify"):
        run(flows.triage, {"ticket": "hi"}, llm_replies={"route": "x"})


# --- assertions on the history --------------------------------------------------------------


def test_a_failed_event_assertion_says_what_happened_instead() -> None:
    with run(flows.claim, CLAIM) as r, pytest.raises(AssertionError) as caught:
        r.assert_events("run_started", "node_succeeded:settle", "run_succeeded")
    message = str(caught.value)
    assert message.startswith(
        "expected the events run_started, node_succeeded:settle, run_succeeded in this "
        "order; event 2 (node_succeeded:settle) is not after run_started (event seq 1) "
        "(it never happened). The run's events:"
    )
    assert "11 node_awaiting review #1" in message  # every event, one a line
    assert "run_completed" not in message


def test_an_event_that_came_too_early_is_told_apart_from_one_that_never_came() -> None:
    r = run(flows.fetch, {"url": "u"})
    with pytest.raises(AssertionError, match="it happened, but earlier"):
        r.assert_events("node_succeeded", "node_failed")
    with pytest.raises(AssertionError, match="node_failed flaky_fetch #1: ConnectionError"):
        r.assert_events("run_failed")


def test_assert_node_passes_on_what_the_node_shows_and_returns_it() -> None:
    r = run(flows.fetch, {"url": "u"})
    node = r.assert_node("flaky_fetch", status="succeeded", attempts=3, output="fetched u",
                         error="ConnectionError: u is down")  # fmt: skip
    assert node.output == "fetched u"


def test_a_failed_node_assertion_says_what_the_node_shows_and_its_events() -> None:
    r = run(flows.fetch, {"url": "u"})
    with pytest.raises(AssertionError) as caught:
        r.assert_node("flaky_fetch", status="succeeded", attempts=1, output="fetched u")
    message = str(caught.value)
    assert message.startswith("node flaky_fetch: expected attempts 1, got 3. Its events:\n")
    assert "  4 node_failed flaky_fetch #1: ConnectionError: u is down (attempt 1)" in message
    assert "run_started" not in message  # only the node's own events
    with pytest.raises(AssertionError, match="expected error 'Timeout', got 'ConnectionError: "):
        r.assert_node("flaky_fetch", error="Timeout")


def test_an_unknown_event_kind_is_refused_rather_than_never_found() -> None:
    r = run(flows.fetch, {"url": "u"})
    with pytest.raises(ValueError, match="'node_suceeded' names no kind of event"):
        r.assert_events("node_suceeded")


def test_an_unknown_node_lists_the_nodes() -> None:
    r = run(flows.fetch, {"url": "u"})
    with pytest.raises(KeyError, match="no node 'fetch' \\(nodes: flaky_fetch\\)"):
        r.node("fetch")


# --- replay ---------------------------------------------------------------------------------


def test_the_runs_history_replays_against_the_same_workflow_and_not_a_changed_one() -> None:
    with run(flows.claim, CLAIM) as r:
        r.approve("review")
        assert r.replay(flows.claim).ok

        changed = r.replay(flows.claim_unreviewed)

    assert not changed.ok
    assert changed.divergence is not None
    assert "settle" in changed.divergence.summary()


def test_the_history_lines_are_what_keel_history_json_prints() -> None:
    from keel.testing import replay

    r = run(flows.remind, {"who": "ann"})
    first = r.history[0]
    assert first["kind"] == "run_started"
    assert (first["run_id"], first["seq"], first["at"]) == (r.id, 1, START)
    assert "prev_hash" in first
    assert replay(r.history, flows.remind).ok  # usable as a recorded history as it is


# --- definitions from files; closing --------------------------------------------------------


def test_a_yaml_workflow_runs_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "reminder.yaml"
    path.write_text(
        "name: reminder\n"
        "nodes:\n"
        "  - id: wait\n    kind: timer\n    duration: 3h\n"
        "  - id: remind\n    task: tests.unit.testing_flows:send_reminder\n"
        "    args: {who: '${{ input.who }}'}\n    after: [wait]\n"
        "outputs:\n  said: nodes.remind.output\n",
        encoding="utf-8",
    )
    r = run(path, {"who": "cy"}, stubs={"remind": lambda who: f"stubbed {who}"})

    assert r.status == "succeeded", r.error
    assert r.output == {"said": "stubbed cy"}
    assert r.now == START + 3 * 3600


def test_pydantic_models_in_the_input_are_given_as_their_data() -> None:
    r = run(flows.pay_claim, {"claim": flows.Claim(id="c-9", amount=12.5)})
    assert r.output == {"result": "paid 12.5 for c-9"}


def test_input_that_does_not_fit_the_workflow_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(InputError, match="'document' is a required property"):
        run(flows.claim, {"claim_id": "c-1"})


def test_a_workflow_that_is_not_one_is_refused() -> None:
    with pytest.raises(InputError, match=r"expected a @keel\.workflow, a WorkflowSpec or a file"):
        run(42, {})


def test_no_thread_is_left_once_the_run_ended_or_was_closed() -> None:
    before = threading.enumerate()
    ended = run(flows.fetch, {"url": "u"})
    assert ended.status == "succeeded"
    assert _new_keel_threads(before) == []
    with run(flows.claim, CLAIM) as waiting:
        assert waiting.status == "waiting"
        assert _new_keel_threads(before) != []  # its worker's task thread waits for work
    assert _new_keel_threads(before) == []
    waiting.close()  # again: nothing happens


def test_importing_the_kit_imports_no_runtime_store_or_llm() -> None:
    import subprocess
    import sys

    code = (
        "import sys, keel.testing\n"
        "heavy = [m for m in sys.modules if m.split('.')[:2] in "
        "(['keel', 'runtime'], ['keel', 'store'], ['keel', 'llm'], ['keel', 'authoring'])]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "[]"
