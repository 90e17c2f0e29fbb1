"""Replay a recorded history against a definition: does it make the same decisions?

The runtime records every transition as the events that came in (its *causes*: a
worker's result, a decision by a person, a signal, a timer, a retry by hand) followed by
what ``decide`` made of them (its *decisions*: schedule, skip, expand, wait, complete,
fail), in one commit, at one time. A history is those transitions one after another
(plus attempts started or reclaimed by the store, which are causes that decide nothing).

To check a definition against a history, the history is first split back into
transitions (``Step``): with the definition it was recorded with, by deciding after
each cause and matching what ``decide`` returns against the events that follow
(``recorded_steps``); without it, by what each kind of event is (``steps_by_kind``).
Then the causes are replayed against the other definition, ``decide`` is called where
the runtime called it (``now``: the transition's time), and its events are compared,
in order, with the recorded decisions. The first that differs is the ``Divergence``.

Pure: no I/O, no clock. A history is anything with ``seq``, ``at`` and ``event`` (the
store's ``StoredEvent``, or ``RecordedEvent``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from keel.engine.decide import decide
from keel.engine.events import (
    JSON,
    ApprovalDecided,
    Event,
    MapExpanded,
    NodeAwaiting,
    NodeFailed,
    NodeScheduled,
    NodeSetByHand,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    NodeWithdrawn,
    RunRetried,
    RunStarted,
    TimerFired,
    node_of,
    to_data,
)
from keel.engine.plan import Plan, compile_plan
from keel.engine.replay_words import explain, label
from keel.engine.state import RunState, apply
from keel.engine.waits import CHILD_RUN_NOT_STARTED
from keel.errors import KeelError
from keel.spec.model import WorkflowSpec


class Recorded(Protocol):
    """An event as a history holds it: its place, the transition's time, the event."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> float: ...
    @property
    def event(self) -> Event: ...


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A recorded event read from somewhere other than a store (a JSON history)."""

    seq: int
    at: float
    event: Event


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded transition: its causes, then the decisions ``decide`` made of them
    at ``at``."""

    at: float
    causes: tuple[Recorded, ...]
    decisions: tuple[Recorded, ...]


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first decision the definition makes differently from the history.

    ``seq``: the recorded event where it differs (for a decision the history does not
    have: the event that came there instead). ``recorded`` / ``decided``: the event the
    history has there and what the definition decides instead (either may be None:
    nothing). ``explanation``: what changed, in words."""

    seq: int
    recorded: Event | None
    decided: Event | None
    explanation: str

    def summary(self) -> str:
        """One line: "event 7: recorded node_scheduled charge (attempt 1); the new code
        schedules check_fraud (attempt 1) instead — a node added before a recorded node"."""
        recorded = "nothing more" if self.recorded is None else label(self.recorded)
        decided = "decides nothing here" if self.decided is None else (
            f"decides {label(self.decided)} instead")  # fmt: skip
        return f"event {self.seq}: recorded {recorded}; the new code {decided} — {self.explanation}"

    def to_data(self) -> dict[str, JSON]:
        return {
            "seq": self.seq,
            "recorded": None if self.recorded is None else to_data(self.recorded),
            "decided": None if self.decided is None else to_data(self.decided),
            "explanation": self.explanation,
            "summary": self.summary(),
        }


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """``ok`` when every recorded decision is made again, in order; else the first
    ``divergence``. ``state``: the run's state under the definition replayed (up to the
    divergence). ``decisions``: how many recorded decisions were made again."""

    divergence: Divergence | None
    state: RunState
    decisions: int
    events: int

    @property
    def ok(self) -> bool:
        return self.divergence is None

    def to_data(self) -> dict[str, JSON]:
        return {
            "ok": self.ok,
            "events": self.events,
            "decisions_checked": self.decisions,
            "replayed_status": self.state.status.value,
            "divergence": None if self.divergence is None else self.divergence.to_data(),
        }


# --- splitting a history into transitions -------------------------------------------------


def _replayed(plan: Plan, run_id: str, history: Sequence[Recorded]) -> RunState:
    state = RunState.new(plan, run_id)
    for recorded in history:
        apply(state, recorded.event, recorded.seq)
    return state


def _matched(decided: list[Event] | Exception, history: Sequence[Recorded], index: int) -> bool:
    """Whether ``decided`` is what the history has next, from ``index`` on."""
    return (
        isinstance(decided, list)
        and index + len(decided) <= len(history)
        and all(event == history[index + n].event for n, event in enumerate(decided))
    )


def _deciding(state: RunState, now: float) -> list[Event] | Exception:
    try:
        return decide(state, now)
    except Exception as exc:  # a history this definition cannot decide on: a finding
        return exc


def _decide_as_recorded(
    state: RunState, at: float, history: Sequence[Recorded], index: int
) -> tuple[RunState, list[Event] | Exception]:
    """``decide`` as the runtime did: on the state it kept in memory, or on one it had
    just rebuilt from the history up to ``index`` (a run reloaded by another process,
    or by a command). The two decide alike but for what a rebuilt state still has queued (an
    overdue approval's timer is acted on again), so when the first does not give what
    the history has next, the second is tried. The state comes back with what was
    decided applied to it; when neither matches, it is the history's so far."""
    decided = _deciding(state, at)
    if _matched(decided, history, index):
        return state, decided
    reloaded = _replayed(state.plan, state.run_id, history[:index])
    again = _deciding(reloaded, at)
    if _matched(again, history, index):
        return reloaded, again
    return _replayed(state.plan, state.run_id, history[:index]), decided


def recorded_steps(
    plan: Plan, run_id: str, history: Sequence[Recorded]
) -> tuple[list[Step], RunState]:
    """The history's transitions, found with the plan it was recorded with: after each
    cause, ``decide``; when what it returns is what the history has next, those events
    are that cause's decisions. When it is not, another cause came in the same
    transition (a node set by hand on a failed run comes with its retry): the next
    event joins the causes. Also the run's state at the end of the history."""
    _first(history)
    state = RunState.new(plan, run_id)
    steps: list[Step] = []
    causes: list[Recorded] = []
    index = 0
    while index < len(history):
        cause = history[index]
        apply(state, cause.event, cause.seq)
        causes.append(cause)
        index += 1
        state, decided = _decide_as_recorded(state, cause.at, history, index)
        if not isinstance(decided, list) or not _matched(decided, history, index):
            continue  # another cause of the same transition follows
        made = history[index : index + len(decided)]
        if made:
            state.last_seq = made[-1].seq
        steps.append(Step(cause.at, tuple(causes), tuple(made)))
        causes = []
        index += len(made)
    if causes:
        steps.append(Step(causes[-1].at, tuple(causes), ()))
    return steps, state


def _first(history: Sequence[Recorded]) -> None:
    if not history:
        raise KeelError("the history is empty: nothing to replay")
    if not isinstance(history[0].event, RunStarted):
        raise KeelError(
            f"the history starts with {history[0].event.kind} (event {history[0].seq}), not "
            "run_started: replay a run's whole history"
        )


class _Kinds:
    """What ``steps_by_kind`` needs to know of the run so far to tell a decision from a
    cause where the kind alone does not: which nodes wait, which are maps, which have an
    attempt a worker started."""

    def __init__(self) -> None:
        self.awaiting: set[str] = set()
        self.maps: set[str] = set()
        self.started: set[str] = set()
        self.previous: Event | None = None

    def is_decision(self, event: Event) -> bool:
        match event:
            case NodeScheduled() | NodeSkipped() | MapExpanded() | NodeWithdrawn():
                return True
            case NodeSucceeded(node=node, item=None):  # a map collected, a wait ended
                return node in self.maps or node in self.awaiting
            case NodeFailed(attempt=0):  # an expression failed, a map ran out of attempts
                return True
            case NodeFailed(node=node, item=None, error=error):  # a wait ended
                return node in self.awaiting and error.type != CHILD_RUN_NOT_STARTED
            case NodeAwaiting(node=node):  # a wait node opened (a task that asks: a cause)
                return node not in self.started
            case ApprovalDecided(node=node, by=by):  # approved by its timeout
                previous = self.previous
                return by == "keel" and isinstance(previous, TimerFired) and previous.node == node
        return event.kind in _DECIDED

    def note(self, event: Event) -> None:
        self.previous = event
        match event:
            case NodeAwaiting(node=node):
                self.awaiting.add(node)
            case MapExpanded(node=node):
                self.maps.add(node)
            case NodeStarted(node=node, item=None):
                self.started.add(node)
            case NodeScheduled(node=node, item=None):
                self.started.discard(node)
            case RunRetried(nodes=nodes):
                self.maps.difference_update(nodes)
                self.awaiting.difference_update(nodes)
        match event:
            case NodeSucceeded(item=None) | NodeFailed(item=None) | NodeWithdrawn(item=None):
                self.awaiting.discard(event.node)
            case NodeSetByHand(node=node):
                self.awaiting.discard(node)


#: kinds that only ``decide`` records (the others above depend on the run so far)
_DECIDED = frozenset({"run_completed", "run_failing", "run_failed", "approval_overdue"})


def steps_by_kind(history: Sequence[Recorded]) -> list[Step]:
    """The history's transitions without the definition it was recorded with: each
    event is a cause or a decision by its kind (and for a few kinds, by what came
    before: a node's success ends a wait or a map, or is a worker's result). Causes
    in a row are one transition's (deciding after each would have decided nothing)."""
    _first(history)
    kinds = _Kinds()
    steps: list[Step] = []
    causes: list[Recorded] = []
    decisions: list[Recorded] = []
    for recorded in history:
        if kinds.is_decision(recorded.event) and causes:
            decisions.append(recorded)
        else:
            if decisions:
                steps.append(Step(causes[-1].at, tuple(causes), tuple(decisions)))
                causes, decisions = [], []
            causes.append(recorded)
        kinds.note(recorded.event)
    if causes:
        steps.append(Step(causes[-1].at, tuple(causes), tuple(decisions)))
    return steps


# --- comparing ----------------------------------------------------------------------------


def _split_task(task: str) -> tuple[str, str]:
    """A task's import path as its module and its name in it (``claims:extract``)."""
    module, sep, name = task.partition(":")
    if not sep:  # module.function
        module, _, name = task.rpartition(".")
    return module, name


def _as_recorded(task: str, renamed: Mapping[str, str]) -> str:
    """``task`` as the recording names it: its module renamed (see ``renamed_modules``)."""
    module = _split_task(task)[0]
    if module not in renamed:
        return task
    return renamed[module] + task[len(module) :]


def renamed_modules(old: Plan, new: Plan, module: str) -> dict[str, str]:
    """``{module: recorded}`` when the new code's tasks are those of the recording
    under another module name: the code was loaded from a copy under another file name
    (``keel replay RUN --code claims_cond.py`` of a run of ``claims.py``). Each node both
    plans have whose task differs runs a task of ``module`` with the same name in one
    other module, ``recorded``; else ``{}`` (a task really changed)."""
    recorded: set[str] = set()
    for node_id, after in new.nodes.items():
        before = old.nodes.get(node_id)
        if before is None or before.task == after.task or not after.task:
            continue
        (was, name), (now, new_name) = _split_task(before.task), _split_task(after.task)
        if now != module or name != new_name:
            return {}
        recorded.add(was)
    return {module: recorded.pop()} if len(recorded) == 1 else {}


def _task_changed(
    event: Event, old: Plan, new: Plan, renamed: Mapping[str, str] | None = None
) -> str | None:
    """Why a scheduled attempt runs other code under the new plan, if it does; a task
    of a module in ``renamed`` is the recording's task of the same name."""
    if not isinstance(event, NodeScheduled):
        return None
    before, after = old.nodes.get(event.node), new.nodes.get(event.node)
    if before is None or after is None or before.task == _as_recorded(after.task, renamed or {}):
        return None
    return f"node {event.node} runs {after.task} now; the recording ran {before.task}"


def compare(
    steps: Sequence[Step], plan: Plan, run_id: str, recorded: Plan | None = None,
    renamed: Mapping[str, str] | None = None,
) -> ReplayResult:  # fmt: skip
    """Replay the steps' causes under ``plan``, deciding after each step's causes, and
    compare with the recorded decisions. ``recorded``: the plan the history was
    recorded with, when known (it names what changed more precisely). ``renamed``:
    modules of ``plan``'s tasks that stand for the recording's (``renamed_modules``)."""
    state = RunState.new(plan, run_id)
    checked, events = 0, sum(len(s.causes) + len(s.decisions) for s in steps)
    known = set() if recorded is not None else _named(steps)
    seen: list[Recorded] = []
    for number, step in enumerate(steps):
        for cause in step.causes:
            node = node_of(cause.event)
            if node is not None and node not in plan.nodes:
                why = f"the recording has an event of node {node}, which the new code does not have"
                return ReplayResult(Divergence(cause.seq, cause.event, None, why),
                                    state, checked, events)  # fmt: skip
            try:
                apply(state, cause.event, cause.seq)
            except Exception as exc:  # an event the new plan cannot hold
                why = f"the new code cannot take this recorded event ({type(exc).__name__})"
                return ReplayResult(Divergence(cause.seq, cause.event, None, why),
                                    state, checked, events)  # fmt: skip
            seen.append(cause)
        state, decided = _decide_again(state, step, seen)
        if isinstance(decided, Exception):
            seq = (step.decisions or step.causes)[0].seq
            why = f"the new code fails to decide here: {type(decided).__name__}: {decided}"
            return ReplayResult(Divergence(seq, None, None, why), state, checked, events)
        after = _next_seq(steps, number)
        for index in range(max(len(decided), len(step.decisions))):
            old = step.decisions[index] if index < len(step.decisions) else None
            new = decided[index] if index < len(decided) else None
            seq = old.seq if old is not None else after
            if old is None or new is None or old.event != new:
                was = None if old is None else old.event
                why = explain(was, new, recorded, plan, known)
                return ReplayResult(Divergence(seq, was, new, why), state, checked, events)
            changed = None if recorded is None else _task_changed(new, recorded, plan, renamed)
            if changed is not None:
                return ReplayResult(Divergence(seq, old.event, new, changed),
                                    state, checked, events)  # fmt: skip
            checked += 1
        seen += step.decisions
        if step.decisions:
            state.last_seq = step.decisions[-1].seq
    return ReplayResult(None, state, checked, events)


def _decide_again(
    state: RunState, step: Step, seen: Sequence[Recorded]
) -> tuple[RunState, list[Event] | Exception]:
    """``decide`` after the step's causes, on the state kept so far or, when that does
    not give the recorded decisions, on one rebuilt from the history (as the runtime
    may have: see ``_decide_as_recorded``). What the first gave, when neither matches."""
    recorded = [made.event for made in step.decisions]
    decided = _deciding(state, step.at)
    if decided == recorded:
        return state, decided
    reloaded = _replayed(state.plan, state.run_id, seen)
    again = _deciding(reloaded, step.at)
    if again == recorded:
        return reloaded, again
    return state, decided


def _named(steps: Sequence[Step]) -> set[str]:
    """The nodes a history's events name."""
    return {
        node
        for step in steps
        for recorded in (*step.causes, *step.decisions)
        if (node := node_of(recorded.event)) is not None
    }


def _next_seq(steps: Sequence[Step], number: int) -> int:
    """The seq of the event after step ``number`` (one past the last, at the end)."""
    if number + 1 < len(steps):
        return steps[number + 1].causes[0].seq
    last = steps[number]
    return (last.decisions or last.causes)[-1].seq + 1


def replay(
    history: Sequence[Recorded],
    spec: WorkflowSpec,
    *,
    recorded: WorkflowSpec | None = None,
    run_id: str = "",
    renamed: Mapping[str, str] | None = None,
) -> ReplayResult:
    """Whether ``spec`` makes the decisions ``history`` recorded. ``recorded``: the
    definition the history was recorded with (found from the history when ``spec`` is
    it); without it the history is split by kind. ``run_id``: the run's id, which
    derived values depend on (retry jitter, child run ids). ``renamed``: modules of
    ``spec``'s tasks that are the recording's under another name (``renamed_modules``):
    their tasks are compared by their names in the module."""
    _first(history)
    started = history[0].event
    assert isinstance(started, RunStarted)
    plan = compile_plan(spec)
    if recorded is None and spec.version == started.spec_version:
        recorded = spec
    if recorded is None:
        return compare(steps_by_kind(history), plan, run_id)
    old = plan if recorded.version == spec.version else compile_plan(recorded)
    steps, _ = recorded_steps(old, run_id, history)
    return compare(steps, plan, run_id, old, renamed)
