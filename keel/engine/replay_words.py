"""Words for a replay's findings: an event in a few words, and why a definition decides
differently from a recorded history (a node added, removed, a condition or arguments
changed...), told from the two events and the two plans. Pure."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import fields
from typing import Any

from keel.engine.events import (
    AttemptEvent,
    Event,
    NodeAwaiting,
    NodeScheduled,
    NodeSkipped,
    RunCompleted,
    RunFailed,
    RunFailing,
    node_of,
)
from keel.engine.plan import Plan


def short(value: Any, width: int = 40) -> str:
    """A JSON value in at most ``width`` characters."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def label(event: Event) -> str:
    """An event in a few words: its kind, node, attempt and why: ``node_scheduled
    charge (attempt 1)``, ``node_skipped notify (when: input.vip was false)``."""
    node = node_of(event)
    text = event.kind if node is None else f"{event.kind} {node}"
    match event:
        case NodeSkipped(reason=reason):
            return f"{text} ({reason})"
        case NodeAwaiting(waits_for=waits_for, attempt=attempt):
            return f"{text} (attempt {attempt}, waits for {waits_for})"
        case AttemptEvent(attempt=attempt, item=None):
            return f"{text} (attempt {attempt})"
        case AttemptEvent(attempt=attempt, item=item):
            return f"{text} (attempt {attempt}, item {item})"
        case RunFailed(reason=reason) | RunFailing(reason=reason):
            return f"{text} ({short(reason, 60)})"
    return text


def _condition(node: str, recorded: Event, old: Plan | None, new: Plan) -> str | None:
    """How the node's condition changed, if it did."""
    now = new.nodes[node].when
    if old is not None and node in old.nodes:
        before = old.nodes[node].when
    elif isinstance(recorded, NodeSkipped) and recorded.reason.startswith("when: "):
        before = recorded.reason.removeprefix("when: ").rsplit(" was ", 1)[0]
    else:
        return None
    if before == now:
        return None
    return f"its condition changed (when: {before or 'none'} → {now or 'none'})"


def _parents(node: str, old: Plan | None, new: Plan) -> str | None:
    if old is None or node not in old.nodes:
        return None
    before, now = set(old.nodes[node].parents), set(new.nodes[node].parents)
    if before == now:
        return None
    added, removed = sorted(now - before), sorted(before - now)
    said = [f"now waits for {', '.join(added)}"] if added else []
    said += [f"no longer waits for {', '.join(removed)}"] if removed else []
    return f"its dependencies changed ({'; '.join(said)})"


def _differences(recorded: Event, decided: Event) -> str:
    """What differs between two events of the same kind and node."""
    match recorded, decided:
        case NodeScheduled(args=old_args), NodeScheduled(args=new_args) if old_args != new_args:
            names = sorted(set(old_args) | set(new_args))
            changed = [n for n in names if old_args.get(n, ...) != new_args.get(n, ...)]
            said = ", ".join(
                f"{n}: recorded {short(old_args.get(n, '(none)'), 24)}, "
                f"new {short(new_args.get(n, '(none)'), 24)}"
                for n in changed[:3]
            )
            return f"its arguments are computed differently ({said})"
        case NodeScheduled(), NodeScheduled() if recorded.not_before != decided.not_before:
            return "its retry waits another time: the retry policy (backoff) changed"
        case NodeAwaiting(details=old_details), NodeAwaiting(details=new_details):
            names = sorted(set(old_details) | set(new_details))
            changed = [n for n in names if old_details.get(n) != new_details.get(n)]
            if changed:
                return f"what it waits for changed ({', '.join(changed)})"
        case RunCompleted(), RunCompleted():
            return "the run's outputs are computed differently"
    changed = [
        item.name
        for item in fields(recorded)
        if getattr(recorded, item.name) != getattr(decided, item.name)
    ]
    return f"it differs in {', '.join(changed)}"


def explain(
    recorded: Event | None, decided: Event | None, old: Plan | None, new: Plan,
    known: Collection[str] = (),
) -> str:  # fmt: skip
    """Why ``new`` decides ``decided`` where the history recorded ``recorded`` (either
    may be None: nothing). ``old``: the plan the history was recorded with, if known;
    else ``known``: the nodes the history names."""
    was = None if recorded is None else node_of(recorded)
    now = None if decided is None else node_of(decided)
    before = set(old.nodes) if old is not None else set(known)
    if was is not None and was not in new.nodes:
        return f"node {was} is not in the new code: a recorded node was removed"
    if now is not None and now not in before:
        where = ("after the recorded ones" if recorded is None else "before a recorded node"
                 if was is not None else f"before the recorded {recorded.kind}")  # fmt: skip
        return f"{now} is not in the recorded definition: a node added {where}"
    if decided is None:
        assert recorded is not None
        if was is not None:
            return _parents(was, old, new) or "the new code does not decide this here"
        return "the new code does not decide this here"
    if recorded is None:
        because = None if now is None else (_condition(now, decided, old, new)
                                            or _parents(now, old, new))  # fmt: skip
        return because or "the recording decided nothing more here"
    if was != now:
        because = None if was is None else _parents(was, old, new)
        return because or (
            f"the new code decides {now or 'the run'} first: the order of the graph changed"
        )
    if type(recorded) is not type(decided):
        if now is not None and NodeSkipped in (type(recorded), type(decided)):
            return (_condition(now, recorded, old, new) or _parents(now, old, new)
                    or "its join rule, or what its condition reads, changed")  # fmt: skip
        return f"the new code records {decided.kind} where the recording has {recorded.kind}"
    if isinstance(recorded, NodeSkipped) and now is not None:
        return _condition(now, recorded, old, new) or _differences(recorded, decided)
    return _differences(recorded, decided)
