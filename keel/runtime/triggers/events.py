"""Named events start the runs of every deployed workflow whose ``EventTrigger`` takes
them: ``keel emit``, ``POST /events/{name}`` and broker sources all come through ``emit``.

An event carries a message id (its sender's, or a random one): the firing's key, so the
same message delivered twice, or by two consumers at once, starts each workflow's run
once. One message starts at most one run per workflow, however many of its triggers
take it. A workflow that refuses the mapped input (its input schema) starts nothing;
the others still start, and the refusal is raised after them (``InputError``), so a
caller that retries the message refires only what is missing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from keel.errors import InputError
from keel.runtime.clock import Clock
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Firing, active, fire, mapped_input, matches
from keel.store.protocol import Store
from keel.store.records import RunRecord


class Emitted(NamedTuple):
    """A run an event started (``started``), or had started before (a repeat)."""

    workflow: str
    run: RunRecord
    started: bool


def emit(
    store: Store,
    name: str,
    data: Any,
    message_id: str,
    plans: RunCache | None = None,
    clock: Clock | None = None,
) -> list[Emitted]:
    """Fire every live event trigger named ``name`` whose filter takes ``data``; the runs,
    in the order of the deployed workflows. No trigger taking it: an empty list."""
    if not message_id:
        raise InputError("an event's message id is empty: give one, or none for a random id")
    plans = plans if plans is not None else RunCache(store, capacity=0)
    firing = Firing("event", name, message_id)
    emitted: list[Emitted] = []
    fired: set[str] = set()
    refused: list[str] = []
    for armed in active(store, plans, "event"):
        trigger = armed.trigger
        if getattr(trigger, "event", None) != name or armed.spec.name in fired:
            continue
        try:
            if not matches(trigger, "event", data):
                continue
            run_input = mapped_input(trigger, "event", data, data)
            record, started = fire(store, armed.spec, run_input, firing, plans=plans,
                                   clock=clock)  # fmt: skip
        except InputError as exc:
            refused.append(f"workflow '{armed.spec.name}': {exc}")
            continue
        fired.add(armed.spec.name)
        emitted.append(Emitted(armed.spec.name, record, started))
    if refused:
        raise InputError(f"event '{name}' (message {message_id}) was refused by "
                         + "; ".join(refused))  # fmt: skip
    return emitted
