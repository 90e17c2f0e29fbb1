"""The tasks the editor's templates call (``keel_starter:fetch``...): small stand-ins
for your own, so each template is valid as it is (``keel validate`` imports the tasks
it names; a YAML file's folder is on the import path) and runs on a worker that loads
this file (``keel worker path/to/keel_starter.py``). Replace ``keel_starter:`` in a
template with your module's path.
"""

from __future__ import annotations

import keel


@keel.task
def fetch(source: str) -> list[str]:
    """Read the items to work on (a file, a queue, an API in real life)."""
    return [f"{source}-{index}" for index in range(3)]


@keel.task
def transform(items: list[str]) -> list[str]:
    """Change each item (here: upper case)."""
    return [item.upper() for item in items]


@keel.task
def publish(items: list[str]) -> int:
    """Write the items somewhere; returns how many were written."""
    return len(items)


@keel.task
def process(item: str) -> str:
    """Work on one item (a map node calls it once per item)."""
    return item[::-1]


@keel.task
def summarise(results: list[str]) -> str:
    """Bring a map's results together."""
    return ", ".join(results)


@keel.task
def propose(amount: float) -> dict[str, float]:
    """Prepare a change for a person to approve."""
    return {"amount": amount}


@keel.task
def apply(proposal: dict[str, float]) -> str:
    """Carry out the approved change."""
    return f"applied {proposal['amount']}"


@keel.task
def report() -> str:
    """A job a schedule starts (a nightly report, a clean-up)."""
    return "report sent"
