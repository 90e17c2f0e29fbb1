"""The smallest workflow, for the cold-start measurement (W5)."""

from __future__ import annotations

import keel


@keel.task
def hello(name: str) -> str:
    return f"hello {name}"


@keel.workflow
def one(name: str = "keel") -> str:
    return hello(name)
