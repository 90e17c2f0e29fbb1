"""A workflow the server tests deploy: an approval assigned to a group, a signal, and a
task after the approval (its code is here, so the server can check a skipped output)."""

from __future__ import annotations

from dataclasses import dataclass

import keel
from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import pause_run, reject
from keel.server.identities import create_token
from keel.store.protocol import Store

ROLES = ("viewer", "approver", "operator", "auditor", "admin")

REVIEW_YAML = """
name: review
input_schema:
  type: object
  properties:
    amount: {type: number}
  additionalProperties: false
nodes:
  - id: check
    kind: approval
    title: Check the amount
    assignees: [finance]
  - id: ping
    kind: signal
    signal: ping
  - id: book
    task: tests.server.serverflows:book
    after: [check]
triggers:
  - {kind: schedule, name: review-daily, cron: "0 6 * * *", input: {amount: 1}}
"""


@keel.task
def book() -> str:
    return "booked"


@dataclass
class Seeded:
    """What ``seed`` left in a store."""

    #: a token per role, each named ``ROLE-1`` (the approver's is in ``finance``)
    tokens: dict[str, str]
    #: a run waiting at its approval, one failed (its approval rejected), one paused
    waiting: str
    failed: str
    paused: str


def seed(store: Store) -> Seeded:
    """``review`` deployed, a token per role and a run in each state the tests need."""
    (spec,) = load_yaml_text(REVIEW_YAML, "review.yaml")
    store.deploy([(spec, "review.yaml")], 1.0, by="setup")
    tokens = {
        role: create_token(store, f"{role}-1", role,
                           groups=("finance",) if role == "approver" else ())[0]
        for role in ROLES
    }  # fmt: skip
    waiting = start_run(store, spec, {"amount": 10}).id
    failed = start_run(store, spec, {"amount": 20}).id
    reject(store, failed, "check", by="setup")
    assert store.get_run(failed).status == "failed"
    paused = pause_run(store, start_run(store, spec, {}).id, by="setup").id
    return Seeded(tokens, waiting, failed, paused)
