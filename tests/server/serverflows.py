"""A workflow the server tests deploy: an approval assigned to a group, a signal, and a
task after the approval (its code is here, so the server can check a skipped output)."""

from __future__ import annotations

import keel

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
"""


@keel.task
def book() -> str:
    return "booked"
