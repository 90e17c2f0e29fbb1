"""A test run's history as people read it: the lines ``keel history RUN --json`` prints,
the state of one node, and the check that events happened in an order, whose failure
says what did happen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.engine.events import EVENT_TYPES, ErrorInfo

if TYPE_CHECKING:
    from keel.engine.state import NodeState


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node of a test's run, as its history leaves it.

    ``status``: ``succeeded``, ``failed``, ``skipped``, ``awaiting`` (a wait open),
    ``waiting`` (not started), ``scheduled``... (``keel.engine.state.NodeStatus``);
    ``attempts``: how many attempts were made (a map: those of all its items);
    ``error``: the error of its last failed attempt (``.type``, ``.message``; kept when a
    retry then succeeded), else None."""

    id: str
    status: str
    output: Any
    attempts: int
    error: ErrorInfo | None

    @classmethod
    def of(cls, node_id: str, state: NodeState) -> NodeView:
        attempts = state.attempt or sum(state.item_attempts.values())  # a map: its items'
        return cls(node_id, state.status.value, state.output, attempts, state.error)


def _label(line: dict[str, Any]) -> str:
    """A history line in a few words: ``node_failed extract #1: ValueError: no amount``."""
    words = [str(line["kind"])]
    if line.get("node"):
        item = "" if line.get("item") is None else f"[{line['item']}]"
        words.append(f"{line['node']}{item}")
    if line.get("attempt"):
        words.append(f"#{line['attempt']}")
    text = " ".join(words)
    error = line.get("error")
    if isinstance(error, dict):
        text += f": {error.get('type')}: {error.get('message')}"
    elif line.get("reason"):
        text += f": {line['reason']}"
    return text


#: names a test may use for an event kind: a run that succeeded records ``run_completed``
ALIASES = {"run_succeeded": "run_completed"}


def event_kinds() -> list[str]:
    """Every kind of event a history may hold."""
    return sorted(EVENT_TYPES)


def checked_kind(wanted: str) -> str:
    """``wanted`` (``kind`` or ``kind:node``) with its kind's alias resolved; an unknown
    kind is refused, with the kinds there are (a typo would otherwise never match)."""
    kind, colon, node = wanted.partition(":")
    kind = ALIASES.get(kind, kind)
    kinds = event_kinds()
    if kind not in kinds:
        raise ValueError(f"assert_events: {wanted!r} names no kind of event (kinds: "
                         f"{', '.join(kinds)}; 'kind:node' for one node's)")  # fmt: skip
    return kind + colon + node


def _matches(line: dict[str, Any], wanted: str) -> bool:
    kind, _, node = wanted.partition(":")
    return line["kind"] == kind and (not node or line.get("node") == node)


def missing_events(history: Sequence[dict[str, Any]], wanted: Sequence[str]) -> str | None:
    """Why ``wanted`` (event kinds, each maybe ``kind:node``) is not a subsequence of
    ``history`` (None when it is): what was found, what was not, and every event."""
    shown = ", ".join(wanted)
    at = 0
    found: list[str] = []
    for index, kind in enumerate([checked_kind(kind) for kind in wanted]):
        while at < len(history) and not _matches(history[at], kind):
            at += 1
        if at == len(history):
            where = f"after {found[-1]}" if found else "in the history"
            anywhere = any(_matches(line, kind) for line in history)
            why = "it happened, but earlier" if anywhere else "it never happened"
            listing = "\n".join(f"  {line['seq']:>3} {_label(line)}" for line in history)
            return (
                f"expected the events {shown} in this order; event {index + 1} ({wanted[index]}) "
                f"is not {where} ({why}). The run's events:\n{listing}"
            )
        found.append(f"{kind} (event seq {history[at]['seq']})")
        at += 1
    return None


def node_mismatch(
    view: NodeView, wanted: dict[str, Any], history: Sequence[dict[str, Any]]
) -> str | None:
    """What of ``wanted`` (``status``, ``output``, ``attempts``, ``error``: a part of
    ``type: message``) the node does not show (None when it shows all of it), with
    what it shows and its events."""
    error = None if view.error is None else f"{view.error.type}: {view.error.message}"
    actual = {"status": view.status, "output": view.output, "attempts": view.attempts,
              "error": error}  # fmt: skip
    wrong = []
    for key, value in wanted.items():
        found = actual[key]
        if not (str(value) in found if key == "error" and found is not None else found == value):
            wrong.append(f"{key} {value!r}, got {actual[key]!r}")
    if not wrong:
        return None
    lines = [line for line in history if line.get("node") == view.id]
    listing = "\n".join(f"  {line['seq']:>3} {_label(line)}" for line in lines) or "  (none)"
    return f"node {view.id}: expected " + "; ".join(wrong) + f". Its events:\n{listing}"
