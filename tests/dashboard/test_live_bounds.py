"""What a live tab costs is bounded, whatever the store holds and however many tabs
follow it: counted in reads, never timed.

The runs list announces new runs from what the feed tells (no read a run) and names a
few; brought up to date whole it lists its place again. The overview and needs
attention are computed once for every tab; a workflow's health is one read of its ended
runs. The approvals inbox reads the approvals again only for a change that can matter
to it, and lists a page of them. The runs replayed are the process's, shared by every
tab and bounded by runs and by events."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.operations.interventions import approve
from keel.runtime.views import overview as overview_view
from keel.server.dashboard import live
from keel.server.dashboard.inbox import PAGE
from keel.server.dashboard.live import newest
from keel.server.dashboard.pages import attention, overview, runs_live
from keel.server.dashboard.pages.approvals import _follower
from keel.server.dashboard.pages.run import Follower
from keel.server.dashboard.run_filters import RunFilters
from keel.server.dashboard.run_view import Replays
from keel.server.dashboard.sessions import Viewer
from keel.server.dashboard.shared import Shared
from keel.server.identities import Identity
from keel.server.service import Service
from keel.spec.model import WorkflowSpec
from keel.store.records import RunChange
from tests.dashboard.conftest import Ui
from tests.dashboard.ops_html import Node, parse


class Counting:
    """A store that counts the calls of each of its methods, and keeps their arguments."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()
        self.args: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.args.append((name, args, kwargs))
            return found(*args, **kwargs)

        return counted


def counted(ui: Ui) -> tuple[Service, Counting]:
    """The app's service over a store that counts what it is asked."""
    served: Service = ui.clients["viewer"].app.state.service  # type: ignore[attr-defined]
    store = Counting(served.store)
    return dataclasses.replace(served, store=store), store  # type: ignore[arg-type]


def review(ui: Ui) -> WorkflowSpec:
    return ui.store.load_spec(ui.store.get_run(ui.seeded.waiting).spec_version)


# --- the runs list ---------------------------------------------------------------------------


def test_new_runs_are_announced_without_reading_them_a_few_by_id(
    ui: Ui, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs_live, "MOST_IDS", 2)
    served, store = counted(ui)
    before = newest(ui.store)
    new = [start_run(ui.store, review(ui), {"amount": n}).id for n in range(5)]
    follow = runs_live.follower(served, RunFilters(workflow="review"), [ui.seeded.failed],
                                None, None)  # fmt: skip

    events = follow(ui.store.runs_changed(before, 100))

    ((name, data),) = [(e.name, e.data) for e in events]
    assert name == "runs"
    assert len(data["ids"]) == 2
    assert set(data["ids"]) <= set(new)
    assert data["more"] == 3
    assert store.calls["get_run"] == 0  # what the feed tells was enough


def test_a_change_is_placed_in_the_list_by_its_creation_time(ui: Ui) -> None:
    """A page further down the list (older runs, a ``top``) announces no new run."""
    served, store = counted(ui)
    oldest = ui.store.get_run(ui.seeded.waiting)
    top = (oldest.created_at, oldest.id)
    before = newest(ui.store)
    start_run(ui.store, review(ui), {"amount": 1})
    follow = runs_live.follower(served, RunFilters(), [], top, None)

    assert follow(ui.store.runs_changed(before, 100)) == []
    assert store.calls["get_run"] == 0


def test_a_filter_the_feed_does_not_tell_is_checked_on_the_run(ui: Ui) -> None:
    served, store = counted(ui)
    before = newest(ui.store)
    alice = start_run(ui.store, review(ui), {"amount": 1}, started_by="alice").id
    start_run(ui.store, review(ui), {"amount": 2}, started_by="bob")
    follow = runs_live.follower(served, RunFilters(started_by="alice"), [], None, None)

    ((name, data),) = [(e.name, e.data) for e in follow(ui.store.runs_changed(before, 100))]
    assert (name, data["ids"]) == ("runs", [alice])
    assert store.calls["get_run"] == 2


def test_brought_up_to_date_whole_the_list_announces_the_runs_it_would_list(ui: Ui) -> None:
    served, store = counted(ui)
    rows = [run.id for run in ui.store.list_runs(limit=50)]
    new = {start_run(ui.store, review(ui), {"amount": n}).id for n in range(2)}
    follow = runs_live.follower(served, RunFilters(), rows, None, None)

    events = {e.name: e.data for e in follow(None)}

    assert {item["id"] for item in events["patch"]["items"]} == {f"run-{r}" for r in rows}
    assert set(events["runs"]["ids"]) == new
    assert store.calls["list_runs"] == 1


# --- the overview and needs attention ---------------------------------------------------------


def test_every_tab_of_the_overview_is_given_one_computation(
    ui: Ui, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = ui.clients["viewer"].app.state.service  # type: ignore[attr-defined]
    made: list[float] = []
    real = overview.overview

    def computing(*args: Any, **kwargs: Any) -> Any:
        made.append(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(overview, "overview", computing)
    shared = Shared()
    tabs = [overview._Follow(served, shared) for _ in range(5)]

    sent = [tab(None) for tab in tabs]

    assert len(made) == 1
    assert all(events[0].data == sent[0][0].data for events in sent)  # the same blocks
    assert all(tab([]) == [] for tab in tabs)  # nothing newer: nothing sent, nothing read
    assert len(made) == 1


def test_every_tab_of_a_window_of_needs_attention_is_given_one_computation(
    ui: Ui, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = ui.clients["viewer"].app.state.service  # type: ignore[attr-defined]
    made: list[float | None] = []
    real = attention.attention

    def computing(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs.get("created_after"))
        return real(*args, **kwargs)

    monkeypatch.setattr(attention, "attention", computing)
    shared = Shared()
    for window in ("24h", "24h", "24h", "all", "all"):
        attention._Follow(served, window, shared)(None)

    assert len(made) == 2  # one a window
    assert made[0] is not None
    assert made[0] % 60 == 0  # a window starts on a minute
    assert made[1] is None


def test_a_workflows_health_is_one_read_of_its_ended_runs(ui: Ui) -> None:
    _, store = counted(ui)
    workflows = {d.workflow for d in ui.store.deployments()}

    found = overview_view.overview(store, ui.store.database_time() or 2e9)  # type: ignore[arg-type]

    assert store.calls["ended_runs"] == 1 + len(workflows)  # all of them, then each
    for health in found.workflows:  # both quantiles, as asked one by one
        one = ui.store.ended_runs(found.since, workflow=health.workflow, quantile=0.5)
        other = ui.store.ended_runs(found.since, workflow=health.workflow, quantile=0.95)
        assert (health.ended, health.p50, health.p95) == (one.count, one.duration,
                                                          other.duration)  # fmt: skip


def test_a_tab_given_an_older_computation_follows_once_more_after_every(ui: Ui) -> None:
    """A page of aggregates is followed once more ``every`` after its last changes,
    with none: the tab is then given a computation made after them."""
    app = FastAPI()
    app.state.closing = threading.Event()
    sizes: list[int] = []
    guard = threading.Timer(60.0, app.state.closing.set)  # a bound, should this fail

    def follow(changes: Sequence[RunChange] | None) -> list[live.Event]:
        sizes.append(-1 if changes is None else len(changes))
        if changes == []:
            app.state.closing.set()
        return []

    @app.get("/stream")
    def route(request: Request) -> StreamingResponse:
        return live.stream(request, ui.store, follow, every=0.01)

    start = live.position_text(newest(ui.store))
    cancel_run(ui.store, ui.seeded.waiting, by="tester")
    guard.start()
    try:
        with TestClient(app) as client:
            client.get(f"/stream?from={start}")
    finally:
        guard.cancel()
    assert sizes[0] >= 1
    assert sizes[-1] == 0


# --- the approvals inbox ----------------------------------------------------------------------


SIGNAL = """
name: waits
nodes:
  - {id: ping, kind: signal, signal: ping}
"""


def full_reads(store: Counting) -> int:
    """The reads of every waiting approval (not one run's)."""
    return sum(1 for name, _, kwargs in store.args
               if name == "waits" and kwargs.get("run_id") is None)  # fmt: skip


def change(ui: Ui, run_id: str) -> RunChange:
    run = ui.store.get_run(run_id)
    return RunChange(run.id, run.workflow, run.status, run.last_seq, run.updated_at, run.late,
                     run.created_at)  # fmt: skip


def test_the_inbox_reads_the_approvals_again_only_for_a_change_that_can_matter(ui: Ui) -> None:
    served, store = counted(ui)
    viewer = Viewer(Identity("approver-1", "approver", ("finance",)), "csrf-token")
    follow = _follower(served, viewer, "all")
    follow(None)
    assert full_reads(store) == 1

    assert follow([change(ui, ui.seeded.failed)]) == []  # ended, waiting for nothing
    (signal,) = load_yaml_text(SIGNAL, "waits.yaml")
    going = start_run(ui.store, signal, {}).id  # not ended, waiting for a signal
    assert follow([change(ui, going)]) == []
    assert full_reads(store) == 1
    asking = start_run(ui.store, review(ui), {"amount": 1}).id  # waits for an approval
    ((_, data),) = [(e.name, e.data) for e in follow([change(ui, asking)])]
    assert f"approval-{asking}-check" in {i["id"] for i in data["items"]}
    assert full_reads(store) == 2

    approve(ui.store, ui.seeded.waiting, "check", by="elsewhere")  # a listed approval
    ((name, data),) = [(e.name, e.data) for e in follow([change(ui, ui.seeded.waiting)])]
    assert name == "approvals"
    assert f"approval-{ui.seeded.waiting}-check" not in {i["id"] for i in data["items"]}
    assert full_reads(store) == 3


def approvals(page: Node) -> list[Node]:
    return [node for node in page.find_all("article") if "approval" in node.classes()]


def test_a_tab_lists_a_page_of_approvals_and_says_how_many_more(ui: Ui) -> None:
    page = parse(ui.clients["approver"].get("/ui/approvals?tab=all&limit=1").text)

    assert len(approvals(page)) == 1
    more = page.by_id("approvals-more")
    assert "1 more approval not listed here" in more.text
    (link,) = more.find_all("a")
    assert link.attrs["href"] == f"/ui/approvals?tab=all&limit={1 + PAGE}"
    whole = parse(ui.clients["approver"].get("/ui/approvals?tab=all").text)
    assert len(approvals(whole)) == 2
    assert "hidden" in whole.by_id("approvals-more").attrs


def test_a_tabs_live_list_is_a_page_too(ui: Ui) -> None:
    served = ui.clients["approver"].app.state.service  # type: ignore[attr-defined]
    viewer = Viewer(Identity("approver-1", "approver", ("finance",)), "csrf-token")

    ((_, data),) = [(e.name, e.data) for e in _follower(served, viewer, "all", 1)(None)]

    assert len(data["items"]) == 1
    assert "1 more approval not listed here" in data["more"]


# --- the runs replayed ------------------------------------------------------------------------


def test_the_runs_replayed_are_shared_by_every_tab_beyond_a_few(ui: Ui) -> None:
    served, store = counted(ui)
    known: Replays = ui.clients["viewer"].app.state.replays  # type: ignore[attr-defined]
    viewer = Viewer(Identity("viewer-1", "viewer"), "csrf-token")
    runs = [ui.seeded.waiting, ui.seeded.failed, ui.seeded.paused]
    runs += [start_run(ui.store, review(ui), {"amount": n}).id for n in range(3)]
    tabs = [Follower(served, known, run_id, viewer) for run_id in runs]

    for tab in tabs:
        tab(None)
    read = store.calls["history"]
    for tab in tabs:  # every tab again, no run changed: no history read again
        tab(None)

    assert read == len(runs)
    assert store.calls["history"] == read


def test_the_runs_replayed_are_bounded_by_their_events(ui: Ui) -> None:
    served: Service = ui.clients["viewer"].app.state.service  # type: ignore[attr-defined]
    store = ui.store
    runs = [ui.seeded.waiting, ui.seeded.failed, ui.seeded.paused]
    sizes = {run_id: len(store.history(run_id)) for run_id in runs}
    known = Replays(size=32, most_events=sizes[runs[1]] + sizes[runs[2]])

    replayed: Callable[[str], Any] = lambda run_id: known.of(  # noqa: E731
        store, store.get_run(run_id), served.plans.plan(store.get_run(run_id).spec_version)
    )
    for run_id in runs:
        replayed(run_id)

    assert len(known) == 2  # the first one went: the three hold more events than allowed
    assert known.events == sizes[runs[1]] + sizes[runs[2]]
    big = Replays(size=32, most_events=1)
    big.of(store, store.get_run(runs[0]),
           served.plans.plan(store.get_run(runs[0]).spec_version))  # fmt: skip
    assert len(big) == 1  # the run just replayed stays, whatever its size
