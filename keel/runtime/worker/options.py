"""The settings of one worker loop (how many attempts at once, lease length, pacing).

Times here are seconds: the lease and the looks for timers, dead holders and the outbox
are judged by the run clock, the waits between looks at the queue by pacing time (see
``keel.runtime.clock``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    #: attempts this worker runs at once
    concurrency: int = 8
    #: run a sync task that has proven fast (its last runs each under a millisecond) on
    #: the worker's own thread, not handed to a task thread and back; the worker does
    #: nothing else meanwhile (``keel.runtime.execution.executor``). Off: tasks never
    #: share the worker's thread
    inline: bool = True
    #: seconds a lease lasts without renewal
    lease_for: float = 30.0
    #: seconds to wait for an outcome when there is nothing else to do
    poll: float = 0.05
    #: seconds between looks for dead holders and expired leases
    reclaim_every: float = 2.0
    #: group commit: while some running attempts have not reported, wait up to this long
    #: for them before recording, so outcomes that finish together share one transaction
    #: (one disk flush with ``synchronous=full``) instead of trickling into several
    gather: float = 0.002
    #: seconds between looks for due timers (a run's deadline)
    timers_every: float = 0.5
    #: seconds between looks at the outbox of notifications
    notify_every: float = 0.5
    #: when the worker stops, seconds it waits for threads still running attempts that
    #: were failed at their timeout, to record their results as discarded
    late_grace: float = 10.0
    #: when the worker stops, seconds it lets the notifications due now be delivered
    notify_grace: float = 10.0
    #: the queues this worker takes attempts from (None: every queue)
    queues: tuple[str, ...] | None = None
    #: with a store that notifies: seconds between looks at the queue, the timers and
    #: the outbox when no notification came (a safety net for lost ones)
    fallback_poll: float = 2.0
    #: when asked to stop, seconds to let running attempts finish before giving the
    #: rest back to the queue for another worker (None: wait for all of them)
    stop_grace: float | None = None
    #: list this worker in the store's live workers while it runs (``keel worker``; and
    #: ``keel run``, ``keel resume``, as workers of ``runs``): see ``keel.runtime.worker.presence``
    announce: bool = False
    #: with ``announce``: the runs this worker executes, and only those (None: any run)
    runs: tuple[str, ...] | None = None
    #: seconds an attempt whose task's code this worker lacks is given back for other
    #: workers before it fails (0: it fails at once; see ``keel.runtime.worker.missing_code``)
    code_wait: float = 0.0
    #: fire the deployed workflows' schedules (``keel worker``, ``keel serve``; see
    #: ``keel.runtime.triggers.schedule_pump``): any number of workers may, each slot
    #: starts one run
    schedules: bool = False
