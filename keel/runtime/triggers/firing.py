"""One firing of a trigger starts exactly one run, whoever fires it and however often.

A firing is named by what it is (the schedule and its slot, the hook and the delivery
id, the event source and the message id, the folder and the file's path and hash, the
run that ended): that name is the run's idempotency key, so the database's unique run id
settles every race, on any store, across any number of processes, and a firing repeated
after a crash finds the run it started. The run records what started it
(``RunStarted.trigger``, and ``started_by`` = ``KIND:SOURCE`` to list them by).

What one firing asks of its triggers is decided before any run starts (``prepare``):
each trigger's filter, its input mapping and its workflow's input schema, one run per
workflow. Each source then applies its own policy to the workflows that refuse (a
webhook delivery or an API event: all or nothing; a file or a run's end, which no
caller waits for: log them, start the others) and starts the rest (``start``).

Only a workflow's deployed current version has live triggers (``active``): deploying a
version is what turns its schedules and hooks on. (``Armed``, a live trigger, is defined
with the index of live triggers the run machinery reads, ``keel.runtime.triggers.live``,
and re-exported here.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from keel.errors import ExpressionError, InputError
from keel.runtime.clock import Clock
from keel.runtime.operations.deployed import start_once
from keel.runtime.operations.inputs import check_start
from keel.runtime.runs import RunCache
from keel.runtime.triggers.live import Armed as Armed
from keel.runtime.triggers.live import armed_of
from keel.spec.expressions import evaluate
from keel.spec.missing import missing_read
from keel.spec.model import WorkflowSpec
from keel.spec.triggers import (
    CompletionTrigger,
    EventTrigger,
    FileTrigger,
    Trigger,
    WebhookTrigger,
)
from keel.store.deployments import current_versions
from keel.store.protocol import Store
from keel.store.records import RunRecord


@dataclass(frozen=True, slots=True)
class Firing:
    """What fired: ``kind`` (schedule, webhook, event, file, completion), ``source``
    (the schedule's name, the hook's path, the event's name, the folder, the workflow
    that ended) and ``key`` (the slot, the delivery or message id, path and hash, the
    run that ended)."""

    kind: str
    source: str
    key: str

    @property
    def started_by(self) -> str:
        return f"{self.kind}:{self.source}"

    def idempotency_key(self, workflow: str) -> str:
        """ASCII and short whatever the parts hold (paths, ids): their digest."""
        parts = json.dumps([self.kind, workflow, self.source, self.key])
        return "trigger:" + hashlib.sha256(parts.encode()).hexdigest()

    def document(self) -> dict[str, str]:
        return {"kind": self.kind, "source": self.source, "key": self.key}


def active(store: Store, plans: RunCache, kind: str | None = None) -> list[Armed]:
    """The triggers of every workflow's deployed current version (of one ``kind``)."""
    return [
        armed
        for deployment in current_versions(store.deployments()).values()
        for armed in armed_of(plans.plan(deployment.version).spec)
        if kind is None or armed.trigger.kind == kind
    ]


def matches(trigger: Trigger, variable: str, value: Any) -> bool:
    """Whether ``value`` passes the trigger's ``filter`` (no filter: it does)."""
    source = getattr(trigger, "filter", None)
    if source is None:
        return True
    try:
        return evaluate(source, {variable: value}) is True
    except ExpressionError as exc:
        raise _failed(trigger, "filter", source, {variable: value}, exc) from None


def mapped_input(trigger: Trigger, variable: str, value: Any, default: Any) -> Any:
    """The run's input: the trigger's ``input`` mapping evaluated over ``value``, or
    ``default`` when it has none."""
    mapping: dict[str, str] = getattr(trigger, "input", {}) or {}
    if not mapping:
        return default
    result: dict[str, Any] = {}
    for name, source in mapping.items():
        try:
            result[name] = evaluate(source, {variable: value})
        except ExpressionError as exc:
            raise _failed(trigger, f"input '{name}' =", source, {variable: value}, exc) from None
    return result


def described(trigger: Trigger) -> str:
    """How messages name a trigger: its kind and what it listens to."""
    if isinstance(trigger, WebhookTrigger):
        return f"webhook /hooks{trigger.path}"
    if isinstance(trigger, EventTrigger):
        return f"event '{trigger.event}'"
    if isinstance(trigger, FileTrigger):
        return f"file trigger on {Path(trigger.folder) / trigger.pattern}"
    if isinstance(trigger, CompletionTrigger):
        return f"completion of '{trigger.after}'"
    return f"schedule '{trigger.name}'" if trigger.name else f"schedule '{trigger.cron}'"


def _failed(trigger: Trigger, what: str, source: str, variables: dict[str, Any],
            exc: ExpressionError) -> InputError:  # fmt: skip
    """The error of a filter or mapping (``what``: ``filter``, ``input 'NAME' =``) that
    could not be evaluated over what fired: which trigger, which expression, and what it
    read that is not there (else CEL's own words)."""
    why = missing_read(source, variables, exc.__cause__) or str(exc)
    return InputError(f"{described(trigger)}: {what} {source}: {why}")


def fire(
    store: Store,
    spec: WorkflowSpec,
    run_input: Any,
    firing: Firing,
    *,
    plans: RunCache | None = None,
    clock: Clock | None = None,
    same_input: bool = True,
) -> tuple[RunRecord, bool]:
    """Start the run of this firing, once: the run and whether this call started it.
    An input the workflow refuses is an ``InputError`` and starts nothing.
    ``same_input=False``: a repeat may map to other input and still is this firing."""
    return start_once(
        store, spec, run_input, key=firing.idempotency_key(spec.name),
        started_by=firing.started_by, plans=plans, clock=clock, trigger=firing.document(),
        same_input=same_input,
    )  # fmt: skip


class Emitted(NamedTuple):
    """A run a firing started (``started``), or had started before (a repeat)."""

    workflow: str
    run: RunRecord
    started: bool


@dataclass(frozen=True, slots=True)
class Offer:
    """What fired, offered to one live trigger: ``value`` is what its filter and input
    mapping read, ``default`` the run's input when it has no mapping."""

    armed: Armed
    value: Any
    default: Any


@dataclass(frozen=True, slots=True)
class Refusal:
    """A workflow that will not take what fired, and why (an ``InputError``'s words)."""

    workflow: str
    reason: str

    def __str__(self) -> str:
        return f"workflow '{self.workflow}': {self.reason}"


@dataclass(frozen=True, slots=True)
class Batch:
    """What a firing would start, decided before anything starts: each workflow's run
    with its checked input (``runs``), and the workflows that refuse (``refused``)."""

    runs: tuple[tuple[WorkflowSpec, Any], ...]
    refused: tuple[Refusal, ...]


def refusal(what: str, refused: Iterable[Refusal]) -> InputError:
    """The error telling a caller that ``what`` (the delivery, the message) was refused,
    naming each workflow that refused it and why."""
    return InputError(f"{what} was refused by " + "; ".join(map(str, refused)))


def prepare(offers: Iterable[Offer], variable: str) -> Batch:
    """Each offer's filter, input mapping and the workflow's input checks (those of
    ``start_run``), in order, starting nothing. One run per workflow: the first of its
    triggers whose filter takes what fired decides whether it starts, or refuses (an
    input its schema refuses; a filter or mapping that cannot be evaluated)."""
    runs: list[tuple[WorkflowSpec, Any]] = []
    refused: list[Refusal] = []
    decided: set[str] = set()
    for offer in offers:
        spec, trigger = offer.armed.spec, offer.armed.trigger
        if spec.name in decided:
            continue
        try:
            if not matches(trigger, variable, offer.value):
                continue
            decided.add(spec.name)
            run_input = mapped_input(trigger, variable, offer.value, offer.default)
            check_start(spec, run_input)
        except InputError as exc:
            decided.add(spec.name)
            refused.append(Refusal(spec.name, str(exc)))
            continue
        runs.append((spec, run_input))
    return Batch(tuple(runs), tuple(refused))


def start(
    store: Store,
    batch: Batch,
    firing: Firing,
    *,
    plans: RunCache | None = None,
    clock: Clock | None = None,
    same_input: bool = True,
) -> tuple[list[Emitted], list[Refusal]]:
    """Start (``fire``) each run of ``batch``: the runs, and the workflows ``fire`` still
    refused, the others started all the same (the firing's key used before with other
    input: a sender that reused an id; ``prepare`` caught every other refusal)."""
    emitted: list[Emitted] = []
    refused: list[Refusal] = []
    for spec, run_input in batch.runs:
        try:
            record, started = fire(store, spec, run_input, firing, plans=plans, clock=clock,
                                   same_input=same_input)  # fmt: skip
        except InputError as exc:
            refused.append(Refusal(spec.name, str(exc)))
            continue
        emitted.append(Emitted(spec.name, record, started))
    return emitted, refused


def start_all_or_none(
    store: Store,
    offers: Iterable[Offer],
    variable: str,
    firing: Firing,
    what: str,
    *,
    plans: RunCache | None = None,
    clock: Clock | None = None,
) -> list[Emitted]:
    """The policy of a source whose sender waits for the answer (a webhook, an event):
    every workflow's answer first, and one refusal (``InputError`` naming ``what``)
    starts nothing at all, so the sender fixes the data and sends it again under the
    same id."""
    batch = prepare(offers, variable)
    if batch.refused:
        raise refusal(what, batch.refused)
    emitted, refused = start(store, batch, firing, plans=plans, clock=clock)
    if refused:
        raise refusal(what, refused)
    return emitted
