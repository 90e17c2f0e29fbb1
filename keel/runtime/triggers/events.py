"""Named events start the runs of every deployed workflow whose ``EventTrigger`` takes
them: ``keel emit``, ``POST /events/{name}`` and broker sources all come through ``emit``.

An event carries a message id (its sender's, or a random one): the firing's key, so the
same message delivered twice, or by two consumers at once, starts each workflow's run
once. One message starts at most one run per workflow, however many of its triggers
take it.

A message is taken whole or not at all: when a workflow refuses it (its input schema
refuses the mapped input, or a filter or mapping cannot be evaluated), no workflow's
run starts and the ``InputError`` names each that refused. The caller (``keel emit``,
``POST /events``, a broker's dead-letter stream) is told, fixes the data or the
workflow and sends the message again, with the same id: had the others started, they
would now refuse it (their runs started with the old data under that id), and what the
message started would depend on the order the workflows were deployed in.
"""

from __future__ import annotations

from typing import Any

from keel.errors import InputError
from keel.runtime.clock import Clock
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Emitted as Emitted
from keel.runtime.triggers.firing import Firing, Offer, active, start_all_or_none
from keel.store.protocol import Store


def emit(
    store: Store,
    name: str,
    data: Any,
    message_id: str,
    plans: RunCache | None = None,
    clock: Clock | None = None,
) -> list[Emitted]:
    """Fire every live event trigger named ``name`` whose filter takes ``data``; the runs,
    in the order of the deployed workflows. No trigger taking it: an empty list. A
    workflow refusing it: ``InputError``, and nothing started."""
    if not message_id:
        raise InputError("an event's message id is empty: give one, or none for a random id")
    plans = plans if plans is not None else RunCache(store, capacity=0)
    offers = [Offer(armed, data, data) for armed in active(store, plans, "event")
              if getattr(armed.trigger, "event", None) == name]  # fmt: skip
    return start_all_or_none(store, offers, "event", Firing("event", name, message_id),
                             f"event '{name}' (message {message_id})", plans=plans,
                             clock=clock)  # fmt: skip
