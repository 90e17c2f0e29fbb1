"""The ``sql`` built-in step (being written)."""

from __future__ import annotations

from typing import Any

from keel.authoring.tasks import task
from keel.runtime.execution.context import StepContext


@task
def sql_step(step: dict[str, Any], values: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise NotImplementedError("the sql step is not written yet")
