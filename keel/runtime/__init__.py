"""Executing runs: the worker loop, executors, leases, the step context, run control.

Imports ``spec``, ``engine`` and ``store``; the CLI and (later) the server build on it.
"""

from keel.runtime.clock import Clock, FakeClock, SystemClock
from keel.runtime.execution.context import StepContext, context
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.operations.inputs import check_input
from keel.runtime.runs import RunCache, advance
from keel.runtime.stores import open_store, store_url
from keel.runtime.worker.loop import Worker, WorkerOptions

__all__ = [
    "Clock",
    "FakeClock",
    "RunCache",
    "StepContext",
    "SystemClock",
    "Worker",
    "WorkerOptions",
    "advance",
    "cancel_run",
    "check_input",
    "context",
    "open_store",
    "start_run",
    "store_url",
]
