"""Waiting steps written in Python: what ``keel.approval``, ``keel.timer``, ``keel.signal``
and a workflow called inside another become in the spec, and the notifications an
approval calls for."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import keel
from keel.engine.decide import decide
from keel.engine.events import NodeAwaiting, RunStarted
from keel.engine.plan import compile_plan
from keel.engine.state import RunState, apply
from keel.errors import KeelError, TracingError
from keel.runtime.notifications.outbox import notifications_of


@keel.task
def amount(x: int) -> int:
    return x


class Verdict(BaseModel):
    reason: str
    score: int = 0


@keel.workflow
def child(n: int) -> int:
    return amount(n)


@keel.workflow(notify=[keel.CallableNotifier(function="tests.unit.test_waits_authoring:told",
                                             on=["approval_requested"])])  # fmt: skip
def parent(x: int) -> dict[str, Any]:
    total = amount(x)
    review = keel.approval(
        "Check the amount", description="amount ${{ nodes.amount.output }}",
        assignees=["finance"], form=Verdict, timeout="1h", on_timeout="notify",
        when=total > 10,
    )  # fmt: skip
    paid = keel.signal("paid", timeout="2d", after=[review])
    later = keel.timer("30m", after=[paid])
    sub = child.options(id="sub", after=[later])(n=total)
    return {"review": review, "sub": sub}


def told(notification: dict[str, Any]) -> None:
    """A notifier target (the spec names it; these tests only build notifications)."""


def nodes() -> dict[str, dict[str, Any]]:
    return {
        node.id: {**node.model_dump(exclude_defaults=True), "kind": node.kind}
        for node in parent.spec.nodes
    }


def test_each_waiting_step_becomes_its_node_kind_with_its_settings() -> None:
    spec = nodes()
    review = spec["check_the_amount"]
    assert review["kind"] == "approval"
    assert review["assignees"] == ("finance",)
    assert review["timeout"] == 3600.0
    assert review["on_timeout"] == "notify"
    assert review["form"]["required"] == ["reason"], "the pydantic model is the form"
    assert review["when"] == "nodes.amount.output > 10"
    assert spec["paid"] == {"id": "paid", "kind": "signal", "signal": "paid",
                            "timeout": 172800.0, "after": ("check_the_amount",)}  # fmt: skip
    assert spec["wait"]["duration"] == 1800.0
    sub = spec["sub"]
    assert sub["workflow"] == "child"
    assert sub["version"] == child.version
    assert sub["after"] == ("wait",)
    assert sub["input"]["n"] == {"expr": "nodes.amount.output"}


def test_an_approval_request_is_a_notification_with_what_to_decide() -> None:
    state = RunState.new(compile_plan(parent.spec), "run-1")
    apply(state, RunStarted(workflow="parent", spec_version=parent.version, input={"x": 12}))
    decide(state, 0.0)
    from keel.engine.events import NodeSucceeded

    apply(state, NodeSucceeded(node="amount", attempt=1, output=12))
    events = decide(state, 100.0)
    assert any(isinstance(e, NodeAwaiting) for e in events)
    (note,) = notifications_of(state, events, 100.0)
    payload = note.payload
    assert payload["event"] == "approval_requested"
    assert payload["title"] == "Check the amount"
    assert payload["description"] == "amount 12"
    assert payload["assignees"] == ["finance"]
    assert payload["decide_with"] == "keel approve run-1 check_the_amount"


def test_a_workflow_is_not_called_outside_a_workflow() -> None:
    with pytest.raises(KeelError, match="run it as a child run"):
        child(n=1)


def test_a_timer_takes_a_duration_or_a_time_not_both() -> None:
    with pytest.raises(TracingError, match="not both"):

        @keel.workflow
        def both() -> None:
            keel.timer("1m", until="2026-01-01T00:00:00Z")
