"""The run page's read model without a browser: a map's items counted per state, the
states' names, the replay shared until the run changes, and the timeline's bars."""

from __future__ import annotations

from keel.engine.state import NodeState
from keel.runtime.operations.interventions import approve
from keel.runtime.runs import RunCache
from keel.runtime.views.attempts import Attempt
from keel.server.dashboard.run_view import Replays, display_state, item_counts
from keel.server.dashboard.timeline import timeline
from tests.dashboard.conftest import Ui


def test_a_maps_items_are_counted_per_state() -> None:
    node = NodeState(item_count=6, next_item=5, items_done=2, items_open={2: True, 3: False},
                     items_failed={4})  # fmt: skip

    assert item_counts(node) == {"succeeded": 2, "running": 1, "queued": 1, "failed": 1,
                                 "pending": 1}  # fmt: skip
    assert item_counts(NodeState()) is None  # not a map


def test_statuses_are_named_as_the_state_classes_name_them() -> None:
    assert [display_state(s) for s in ("waiting", "scheduled", "awaiting", "upstream_failed",
                                       "withdrawn", "not_started", "failed")] == [
        "pending", "queued", "waiting", "skipped", "cancelled", "pending", "failed"]  # fmt: skip
    assert display_state("scheduled", retry_at=5.0) == "retrying"


def test_a_replay_is_shared_until_the_run_changes(ui: Ui) -> None:
    replays = Replays(size=2)
    store, run_id = ui.store, ui.seeded.waiting
    plan = RunCache(store, capacity=0).plan(store.get_run(run_id).spec_version)

    first = replays.of(store, store.get_run(run_id), plan)
    again = replays.of(store, store.get_run(run_id), plan)
    approve(store, run_id, "check", by="someone")
    changed = replays.of(store, store.get_run(run_id), plan)

    assert again is first
    assert changed is not first
    assert changed.states["check"] == {"state": "succeeded"}
    assert first.states["check"] == {"state": "waiting"}  # what was shared is not changed


def test_the_timeline_splits_each_attempt_into_queued_and_running() -> None:
    first = Attempt("a", None, 1, queued_at=0.0, started_at=2.0, ended_at=4.0, outcome="failed")
    retry = Attempt("a", None, 2, queued_at=4.0, not_before=6.0, started_at=6.0, ended_at=10.0,
                    outcome="succeeded")  # fmt: skip
    running = Attempt("b", None, 1, queued_at=8.0, started_at=9.0, outcome="running")

    drawn = timeline([first, retry, running], start=0.0, now=12.0)

    bars = [(b.queued_left, b.queued_width, b.run_left, b.run_width, b.state) for b in drawn.bars]
    assert bars == [
        (0.0, 16.667, 16.667, 16.667, "failed"),
        (50.0, 0.0, 50.0, 33.333, "succeeded"),  # its backoff is not queueing
        (66.667, 8.333, 75.0, 25.0, "running"),  # still running: up to now
    ]
    assert (drawn.start, drawn.end, drawn.hidden) == (0.0, 12.0, 0)
