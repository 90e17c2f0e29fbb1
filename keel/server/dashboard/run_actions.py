"""The run page's actions: which the run's state allows, what each would run again
(the preview a dialog shows before anything is sent), and carrying one out as the
signed-in person.

The preview of a retry is the list the retry itself records: ``to_retry`` of
``keel.runtime.operations.manual`` over the run's state, so the dialog cannot promise
other nodes than the ones the retry resets. Each action is the operation the API and
the CLI call, with ``by`` = the signed-in name and the reason given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keel.engine.state import RunState, RunStatus
from keel.errors import InputError, KeelError
from keel.runtime.clock import Clock
from keel.runtime.operations.control import cancel_run
from keel.runtime.operations.interventions import pause_run, unpause_run
from keel.runtime.operations.manual import retry_run, set_node_output, to_retry
from keel.server.dashboard.run_view import UNFINISHED, RunView
from keel.server.identities import Identity
from keel.server.policies import setting_allowed
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: every action, in the order the page offers them, with its button's words
ACTIONS = {"cancel": "Cancel", "pause": "Pause", "unpause": "Unpause",
           "retry": "Retry failed", "retry-node": "Retry from a node",
           "skip": "Skip a node with output"}  # fmt: skip
_DONE = {"cancel": "cancelled", "pause": "paused", "unpause": "unpaused", "retry": "retried",
         "retry-node": "retried", "skip": "changed by hand"}  # fmt: skip
#: the actions that act on one node
NODE_ACTIONS = frozenset({"retry-node", "skip"})
#: the longest reason kept (it goes into the run's history)
MOST_REASON = 2000


def reason_problem(reason: str, most: int = MOST_REASON) -> str | None:
    """Why ``reason`` cannot go with an action (None: it can). Every action says why:
    the history records it beside who did it."""
    reason = reason.strip()
    if not reason:
        return "reason: say why (it is recorded in the history, with your name)"
    if len(reason) > most:
        return f"reason: at most {most} characters"
    return None


@dataclass(frozen=True, slots=True)
class Preview:
    """What an action would do to the run now."""

    action: str
    #: why it cannot be done now (None: it can)
    problem: str | None = None
    #: the nodes that will run (again), in plan order
    again: list[str] = field(default_factory=list)
    #: the nodes that stop (a cancel)
    stops: list[str] = field(default_factory=list)
    #: what it does, in a sentence
    text: str = ""


def allowed(status: str) -> list[str]:
    """The actions a run with ``status`` allows (the page offers only these)."""
    if status == "failed":
        return ["retry", "retry-node", "skip"]
    if status in ("succeeded", "cancelled"):
        return []
    found = ["cancel", "unpause" if status == "paused" else "pause"]
    if status in ("running", "pending"):
        found.append("skip")
    return found


def preview(view: RunView, action: str, node: str | None = None) -> Preview:
    """What ``action`` (on ``node``) would do to the run as ``view`` read it."""
    state = view.report.state
    if action not in ACTIONS:
        return Preview(action, problem=f"no such action '{action}'")
    if action not in allowed(state.status.value):
        return Preview(action, problem=f"the run is {state.status.value}: it cannot be "
                       f"{_DONE[action]} now")  # fmt: skip
    if action in NODE_ACTIONS and not node:
        return Preview(action, problem="choose a node")
    try:
        return _preview(view, state, action, node)
    except KeelError as exc:
        return Preview(action, problem=str(exc))


def _preview(view: RunView, state: RunState, action: str, node: str | None) -> Preview:
    unfinished = [step.node for step in view.steps if step.state in UNFINISHED]
    if action == "cancel":
        children = sum(1 for c in view.child_runs() if c)
        also = f" and its child runs ({children})" if children else ""
        return Preview(action, stops=unfinished,
                       text=f"Nothing more is scheduled for the run{also}; attempts running "
                       "now are discarded when they end.")  # fmt: skip
    if action == "pause":
        return Preview(action, stops=unfinished, text="Nothing new starts until it is "
                       "unpaused; attempts running now finish and are recorded.")  # fmt: skip
    if action == "unpause":
        held = [step.node for step in view.steps if step.state in ("queued", "retrying")]
        return Preview(action, again=held, text="What came meanwhile is acted on now, "
                       "and its held attempts go back on the queue.")  # fmt: skip
    if action == "retry":
        return Preview(action, again=to_retry(state), text="The nodes that did not succeed "
                       "run again, with what depends on them; succeeded nodes keep their "
                       "outputs.")  # fmt: skip
    assert node is not None
    if action == "retry-node":
        again = to_retry(state, node)
        undone = list(again[: again.index(node)]) if node in again else []
        redone = (f" First {', '.join(undone)} run again: their compensations undid them."
                  if undone else "")  # fmt: skip
        return Preview(action, again=again, text=f"{node} runs again, with everything "
                       f"downstream of it.{redone}")  # fmt: skip
    # skip
    if node not in state.plan.graph_nodes:
        to_retry(state, node)  # raises with the nodes there are
    if state.status is RunStatus.FAILED:
        again = to_retry(state)
        if node not in again:
            return Preview(action, problem=f"node '{node}' succeeded already: retry from it "
                           "instead")  # fmt: skip
        return Preview(action, again=[n for n in again if n != node],
                       text=f"{node} is set with the output given (it does not run); the "
                       "other nodes that did not succeed run again, with what depends on "
                       "them.")  # fmt: skip
    after = [n for n in to_retry(state, node) if n != node]
    return Preview(action, again=after, text=f"{node} is set with the output given (it does "
                   "not run); the run goes on to what depends on it.")  # fmt: skip


def parse_output(text: str) -> Any:
    """The output typed in the skip dialog: JSON, refused with where it went wrong."""
    if not text.strip():
        raise InputError('the output is empty: type JSON, e.g. null, 42, "text" or {}')
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"the output is not JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None  # fmt: skip


def perform(
    store: Store, run_id: str, action: str, *, who: Identity, reason: str, clock: Clock,
    node: str | None = None, output: str = "",
) -> RunRecord:  # fmt: skip
    """Carry out ``action`` as ``who`` (recorded as ``by``) with ``reason``; keel's errors
    say what was refused."""
    by = who.name
    if action == "cancel":
        return cancel_run(store, run_id, reason=reason, by=by, clock=clock)
    if action == "pause":
        return pause_run(store, run_id, reason=reason, by=by, clock=clock)
    if action == "unpause":
        return unpause_run(store, run_id, reason=reason, by=by, clock=clock)
    if action == "retry":
        return retry_run(store, run_id, by=by, reason=reason, clock=clock)
    if not node:
        raise InputError("choose a node")
    if action == "retry-node":
        return retry_run(store, run_id, node=node, by=by, reason=reason, clock=clock)
    if action == "skip":
        return set_node_output(store, run_id, node, parse_output(output), by=by, reason=reason,
                               clock=clock, guard=setting_allowed(who))  # fmt: skip
    raise InputError(f"no such action '{action}'")


def done_words(action: str, record: RunRecord, node: str | None) -> str:
    """What the flash says after ``action`` succeeded."""
    short = record.id[:8]
    return {
        "cancel": f"Run {short} cancelled.",
        "pause": f"Run {short} paused.",
        "unpause": f"Run {short} unpaused.",
        "retry": f"Run {short} retried: it is {record.status}.",
        "retry-node": f"Run {short} retried from {node}: it is {record.status}.",
        "skip": f"Node {node} of run {short} set by hand: the run is {record.status}.",
    }[action]
