"""Why an attempt was reclaimed, where a reader must tell the causes apart.

``NodeReclaimed.reason`` is free text, but one cause is read back: a worker that has
no code for an attempt's task gives the attempt back for another worker
(``keel.runtime.worker.missing_code`` writes the reason; it counts the earlier such
releases, and ``keel why`` says them as "no code" rather than as a dead worker or a
retry). Both sides use this module, so the words are written and matched in one place.
"""

from __future__ import annotations

from keel.engine.events import NodeReclaimed

#: how a give-back's reason reads
NO_CODE = "worker {owner} has no code for task {task}"
_MARKER = " has no code for task "


def no_code_reason(owner: str, task: str) -> str:
    """The reason a worker ``owner`` records when it gives back an attempt of ``task``."""
    return NO_CODE.format(owner=owner, task=task)


def lacked_code(event: NodeReclaimed) -> bool:
    """Whether this reclaim is a worker giving the attempt back for want of its code
    (not a dead or stopping worker's attempt taken back)."""
    return _MARKER in event.reason
