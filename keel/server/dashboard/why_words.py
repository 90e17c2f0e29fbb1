"""``keel why``'s reasons in words for the run page: the same reasons, with their times
as ``<time>`` elements (the page shows them in UTC, local time or relative, as the
viewer chose) and run ids as links. Every value from the run is escaped here
(``Markup.format``); the reason's whole data is shown beside it as JSON.
"""

from __future__ import annotations

from typing import assert_never

from markupsafe import Markup

from keel.runtime.views import why_reasons as r
from keel.runtime.views.why_reasons import NodeWhy, Reason
from keel.server.dashboard.rendering import when


def _at(prefix: str, at: float | None) -> Markup:
    return Markup("") if at is None else Markup("{}{}").format(prefix, when(at))


def _worker(owner: str) -> str:
    """``host:pid`` of a lease owner."""
    return ":".join(owner.split(":")[:2])


def _run(run_id: str) -> Markup:
    return Markup('<a href="/ui/runs/{}">{}</a>').format(run_id, run_id[:8])


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def reason_words(reason: Reason) -> Markup:
    """One reason in words, as ``keel why`` says it."""
    f = Markup
    match reason:
        case r.WaitsForParents():
            return f("waits for {}").format(", ".join(reason.parents))
        case r.WaitsForApproval():
            who = ", ".join(reason.assignees) or reason.role or "anyone"
            return f("approval {} by {}{}{}").format(repr(reason.title), who,
                                                    _at(" since ", reason.since),
                                                    _at(", due ", reason.due))  # fmt: skip
        case r.WaitsForTimer():
            return f("timer{}").format(_at(" until ", reason.until))
        case r.WaitsForSignal():
            return f("signal {}{}{}").format(repr(reason.name), _at(" since ", reason.since),
                                             _at(", times out ", reason.timeout_at))  # fmt: skip
        case r.WaitsForChildRun():
            now = "is not in the store" if reason.status is None else f"is {reason.status}"
            return f("child run {} ({}) {}").format(_run(reason.run_id), reason.workflow, now)
        case r.NoCode():
            givers = ", ".join(dict.fromkeys(_worker(w.owner) for w in reason.workers))
            again = f("now") if reason.next_try is None else when(reason.next_try)
            return f("no code for task {} on {}, which gave it back since {}; next try {}; "
                     "it fails if no worker with the code takes it within the worker's "
                     "code_wait").format(repr(reason.task), givers, when(reason.since),
                                         again)  # fmt: skip
        case r.AvailableLater():
            return f("queued on {}{}; available at {}").format(
                repr(reason.queue), _at(" since ", reason.since), when(reason.at)
            )
        case r.RetryBackoff():
            after = "" if reason.error is None else f" after {reason.error}"
            return f("retry backoff until {} (attempt {} of {}){}").format(
                when(reason.until), reason.attempt, reason.max_attempts, after
            )
        case r.ConcurrencyFull():
            holders = ", ".join(f"run {h.run_id[:8]} {h.node}" for h in reason.holders[:3])
            more = len(reason.holders) - min(3, len(reason.holders))
            return f("concurrency key {} full ({} of {}): held by {}{}").format(
                repr(reason.key), len(reason.holders), reason.limit, holders,
                f" and {more} more" if more else "")  # fmt: skip
        case r.RateLimited():
            return f("rate limit {} ({} per {:g} s): next start at {}").format(
                repr(reason.key), reason.limit, reason.per, when(reason.until)
            )
        case r.CircuitOpen():
            if reason.until is not None:
                return f("circuit {} open until {} after {} failures").format(
                    repr(reason.circuit), when(reason.until), reason.failures
                )
            return f("circuit {} half-open: its probe is out{}").format(
                repr(reason.circuit), _at(" until ", reason.probe_until)
            )
        case r.Paused():
            why = f": {reason.reason}" if reason.reason else ""
            return f("run paused by {}{}{}").format(reason.by or "someone",
                                                   _at(" since ", reason.since), why)  # fmt: skip
        case r.NoLiveWorker():
            if reason.last_seen is None:
                return f("queued on {} for {}: no live worker takes it").format(
                    repr(reason.queue), _seconds(reason.for_seconds)
                )
            return f("queued on {}{}: no live worker takes it (one was last seen {})").format(
                repr(reason.queue), _at(" since ", reason.since), when(reason.last_seen)
            )
        case r.Queued():
            return f("queued on {}{}").format(repr(reason.queue), _at(" since ", reason.since))
        case r.LeaseHolderGone():
            seen = (f("the store does not list it") if reason.last_seen is None
                    else f("last seen {}").format(when(reason.last_seen)))  # fmt: skip
            return f("leased to {}, which stopped ({}){}").format(
                _worker(reason.owner), seen, _at("; lease until ", reason.lease_expires)
            )
        case r.Running():
            return f("running on {}{}").format(_worker(reason.owner), _at(" since ", reason.since))
        case r.RunParallelFull():
            return f("the run's max_parallel is full ({} of {} out)").format(
                reason.out, reason.limit
            )
        case r.MapParallelFull():
            return f("{} items wait: the map's max_parallel is full ({} of {} out)").format(
                reason.left, reason.out, reason.limit
            )
        case r.RunFailing():
            return f("will not start: the run is failing ({})").format(reason.reason)
        case r.Stalled():
            return f("stalled: {}").format(reason.detail)
    assert_never(reason)


def node_words(entry: NodeWhy) -> Markup:
    """A node's first reason, then what would hold it next."""
    text = reason_words(entry.reason)
    if entry.also:
        text += Markup("; also ") + Markup("; ").join(reason_words(x) for x in entry.also)
    return text


def reason_data(entry: NodeWhy) -> str:
    """The reason's data as ``keel why --json`` gives it (for a collapsible panel)."""
    return entry.reason.model_dump_json(indent=2)
