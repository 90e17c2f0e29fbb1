"""The alerts as people and the API see them (``keel alerts``, ``GET /alerts``): each
rule the store has a state for, what it checks, its state, since when, its last value."""

from __future__ import annotations

from typing import Any

from keel.store.alerts import AlertState
from keel.store.protocol import Store


def alert_document(state: AlertState) -> dict[str, Any]:
    """One rule's state: ``since`` is when it entered it (for ``firing``, when it fired),
    ``value`` the last read (None: too few runs), ``rule`` what it checks."""
    return {"name": state.name, "kind": state.rule.get("kind"), "state": state.state,
            "since": state.since, "incident": state.incident, "value": state.value,
            "evaluated_at": state.evaluated_at, "condition": state.rule.get("condition"),
            "unit": state.rule.get("unit"), "rule": state.rule}  # fmt: skip


def alert_documents(store: Store) -> list[dict[str, Any]]:
    """Every rule evaluated so far, by name."""
    return [alert_document(state) for state in store.alert_states()]
