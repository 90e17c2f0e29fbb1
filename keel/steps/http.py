"""The ``http`` built-in step (being written)."""

from __future__ import annotations

from typing import Any

from keel.authoring.tasks import task
from keel.runtime.execution.context import StepContext


@task
def http_step(step: dict[str, Any], values: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise NotImplementedError("the http step is not written yet")
