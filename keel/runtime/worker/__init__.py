"""The worker: the claim -> execute -> record loop (``loop``: claiming, outcomes,
recording) and the pumps beside it, each with one job and its own pacing (lease keeping,
timers, outbox delivery, late results, wake-ups); its settings, its lease owner and its
presence. Every Transition it builds is shaped in ``transitions``."""

from keel.runtime.worker.loop import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
