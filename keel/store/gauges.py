"""What the store holds right now, counted for metrics: the ready queue per queue, the
runs waiting per kind of wait, the notifications not delivered yet, the live workers,
the runs past their expected duration and not ended, the alerts firing.

Read by the server at scrape time (``Store.gauges``), with one aggregate query that
each backend answers from its existing indexes (the ready queue's free attempts, the
waits by kind, the outbox's due items, the workers by last seen, the late runs), so a
scrape costs the same whatever the length of the histories. Not whatever the backlog,
though: the queues' depth and oldest ready time count every free ready row, so that part
costs in proportion to the ready queue (on SQLite, some 236 ms at 200,000 ready
attempts); the waits' part in proportion to the runs waiting. The server reads it at
most once per its collector's TTL (``keel.server.gauges``). Labels are queue names,
kinds of wait and workflow names: bounded by the deployed definitions, never a run id.

The same read takes the LLM ledger's sums (``llm_call_sums``: every call ever recorded,
per workflow, kind, model and state), from which the server derives its LLM counters.
The writes that record and end calls keep those sums in a table of their own, so this
part reads a row per group (workflows x models x four states), however many calls were
recorded; summing the calls themselves would read every one (some 0.5 s at a million).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.store.model_calls import CallSums


@dataclass(frozen=True, slots=True)
class QueueGauge:
    """One queue: its attempts due and not held by a worker, and since when the oldest
    of them is ready (its ``available_at``: a retry's backoff is not counted)."""

    depth: int
    oldest_ready_at: float


@dataclass(frozen=True, slots=True)
class StoreGauges:
    #: queue name -> its ready attempts (only queues with some)
    queues: dict[str, QueueGauge] = field(default_factory=dict)
    #: kind of wait (``approval``, ``timer``, ``signal``, ``subworkflow``) -> runs
    #: with a node waiting for it (only kinds with some)
    waiting_runs: dict[str, int] = field(default_factory=dict)
    #: notifications in the outbox not delivered yet (due now or to be tried again)
    notifications_pending: int = 0
    #: workers seen since the ``live_since`` asked for
    live_workers: int = 0
    #: workflow -> its runs not ended and past their expected duration (late)
    late_runs: dict[str, int] = field(default_factory=dict)
    #: alert rule -> 1 while it fires, else 0 (the rules evaluated so far: a handful,
    #: named in the configuration)
    alerts_firing: dict[str, int] = field(default_factory=dict)
    #: (workflow, kind, model, state) -> the calls of that group, summed: every call the
    #: ledger holds (``keel.store.model_calls``); a tool call's model is the tool's name
    llm_calls: dict[tuple[str, str, str, str], CallSums] = field(default_factory=dict)


def gauges_of(rows: Iterable[Sequence[Any]], llm_rows: Iterable[Sequence[Any]] = ()) -> StoreGauges:
    """``store_gauges``' rows (kind, name, count, oldest) and ``llm_call_sums``' rows
    (workflow, kind, model, state, then the sums), as both backends select them."""
    queues: dict[str, QueueGauge] = {}
    waiting: dict[str, int] = {}
    late: dict[str, int] = {}
    firing: dict[str, int] = {}
    pending = live = 0
    for kind, name, count, oldest in rows:
        if kind == "queue":
            queues[str(name)] = QueueGauge(int(count), float(oldest))
        elif kind == "wait":
            waiting[str(name)] = int(count)
        elif kind == "outbox":
            pending = int(count)
        elif kind == "workers":
            live = int(count)
        elif kind == "late":
            late[str(name)] = int(count)
        elif kind == "alert":
            firing[str(name)] = int(count)
    llm = {(str(row[0]), str(row[1]), str(row[2]), str(row[3])):
           CallSums(*(int(value or 0) for value in row[4:])) for row in llm_rows}  # fmt: skip
    return StoreGauges(queues, waiting, pending, live, late, firing, llm)
