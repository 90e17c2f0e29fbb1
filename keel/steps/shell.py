"""The ``shell`` built-in step (being written)."""

from __future__ import annotations

from typing import Any

from keel.authoring.tasks import task
from keel.runtime.execution.context import StepContext


@task
def shell_step(step: dict[str, Any], values: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    raise NotImplementedError("the shell step is not written yet")
