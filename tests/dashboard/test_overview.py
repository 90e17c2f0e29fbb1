"""The overview (``/ui/``): every number is what the store counts, and links to the runs
list filtered the way it was counted; the throughput chart's data is embedded; the live
stream patches only the blocks whose numbers changed."""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from keel.engine import ErrorInfo, NodeFailed
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.views.overview import STATUSES, STEPS, window_start
from keel.server.dashboard import live
from keel.server.dashboard.links import runs_url
from keel.server.dashboard.live import newest, position_text
from keel.server.dashboard.pages.overview import BLOCKS, EVERY, _Follow
from keel.server.dashboard.shared import Shared
from keel.server.dashboard.times import iso
from keel.store.presence import LIVE_WITHIN
from keel.store.records import RunChange
from tests.contract.conftest import Driver, roots_spec
from tests.dashboard.conftest import Ui
from tests.dashboard.ops_html import Node, parse, script_json


def overview_page(ui: Ui, role: str = "viewer") -> tuple[str, Node]:
    answer = ui.clients[role].get("/ui/")
    assert answer.status_code == 200, answer.text
    return answer.text, parse(answer.text)


def now(ui: Ui) -> float:
    return float(ui.clients["viewer"].app.state.service.clock.now())  # type: ignore[attr-defined]


def drawn(ui: Ui) -> tuple[str, Node, float]:
    """The overview, and the start of its window (read from its chart): the hour a
    test straddles may end meanwhile, so it is checked to be one of the two."""
    before = window_start(now(ui))
    text, page = overview_page(ui)
    after = window_start(now(ui))
    chart: Any = script_json(text, "ov-throughput")
    since = float(chart["x"][0])
    assert since in (before, after)
    return text, page, since


def test_the_home_page_is_the_overview(ui: Ui) -> None:
    text, page = overview_page(ui)
    assert "<title>Overview · keel</title>" in text
    assert page.find_all("a", href="/ui/", aria_current="page")
    assert page.by_id("ov-runs").find_all("a", data_status="failed")


def test_each_status_count_is_count_runs_and_links_to_its_list(ui: Ui) -> None:
    _, page = overview_page(ui)
    counts = ui.store.count_runs()
    assert counts["failed"] == 1  # what the seed left
    assert counts["paused"] == 1
    for status in STATUSES:
        (tile,) = page.by_id("ov-runs").find_all("a", data_status=status)
        assert tile.attrs["href"] == f"/ui/runs?status={status}"
        assert int(tile.attrs["data-count"]) == counts.get(status, 0)
        assert tile.text.startswith(str(counts.get(status, 0)))
        assert ui.store.count_runs(status=status).get(status, 0) == counts.get(status, 0)


def test_runs_created_in_the_window_link_with_the_window_start(ui: Ui) -> None:
    _, page, since = drawn(ui)
    in_window = ui.store.count_runs(created_after=since)
    (everything,) = page.by_id("ov-runs").find_all("a", data_window="all")
    assert everything.attrs["href"] == runs_url(created_after=since)
    assert f"created_after={iso(since).replace(':', '%3A')}" in everything.attrs["href"]
    assert everything.text.startswith(str(sum(in_window.values())))
    (failed,) = page.by_id("ov-runs").find_all("a", data_window="failed")
    assert failed.attrs["href"] == runs_url(status="failed", created_after=since)
    assert failed.text.startswith(str(in_window["failed"]))


def test_the_throughput_chart_is_drawn_from_the_runs_per_hour(ui: Ui) -> None:
    text, page, since = drawn(ui)
    chart: Any = script_json(text, "ov-throughput")
    assert len(chart["x"]) == len(chart["started"]) == STEPS
    assert chart["x"][1] - chart["x"][0] == 3600
    assert sum(chart["started"]) == sum(ui.store.count_runs(created_after=since).values()) == 3
    assert sum(chart["failed"]) == 1  # the rejected run
    assert sum(chart["ended"]) == 1
    assert 'src="/ui/static/vendor/uPlot.iife.min.js?v=' in text
    assert page.by_id("ov-chart")


def test_a_workflow_shows_its_failure_rate_and_durations_from_its_ended_runs(ui: Ui) -> None:
    _, page, since = drawn(ui)
    ended = ui.store.ended_runs(since, workflow="review", quantile=0.5)
    (row,) = page.by_id("ov-workflows").find_all("tr", data_workflow="review")
    cells = row.find_all("td")
    assert cells[0].find_all("a", href="/ui/workflows/review")
    assert cells[1].text == str(ended.count) == "1"
    (failed,) = cells[2].find_all("a")
    assert failed.text == str(ended.failed) == "1"
    assert failed.attrs["href"] == runs_url(workflow="review", status="failed", ended_after=since)
    assert cells[3].text == "100.0%"


_CURRENT = re.compile(r'class="pill current" data-status="(\w+)" data-count="(\d+)"')
_ROW = re.compile(r'<tr id="run-([^"]+)"')


def test_every_number_is_the_count_of_the_list_it_links_to(ui: Ui) -> None:
    """Render the overview, follow each number's link and find the same count there
    (and as many rows). Runs that ended in the window link with ``ended_after``: a run
    created before the window that ended in it counts, one that ended before it not."""
    at = now(ui)
    since = window_start(at)
    spec = ui.store.load_spec(ui.store.get_run(ui.seeded.waiting).spec_version)
    before = start_run(ui.store, spec, {"amount": 1}, clock=FakeClock(since - 7200)).id
    cancel_run(ui.store, before, by="tester", clock=FakeClock(since - 3600))  # ended before
    old = start_run(ui.store, spec, {"amount": 2}, clock=FakeClock(since - 7200)).id
    cancel_run(ui.store, old, by="tester", clock=FakeClock(at))  # created before, ended in
    driver = Driver(ui.store, roots_spec("a"), "old-failed")
    driver.now = since - 7200
    driver.start()
    driver.now = at
    (claimed,) = driver.claim("w1")
    error = ErrorInfo(type="Boom", message="no", retryable=False)
    driver.commit(driver.step([NodeFailed(node="a", attempt=1, error=error)], (claimed.lease,)))

    _, page, drawn_since = drawn(ui)
    links = [a for a in page.find_all("a") if "data-count" in a.attrs
             and a.attrs["href"].startswith("/ui/runs?")]  # fmt: skip
    followed = set()
    for link in links:
        href = html.unescape(link.attrs["href"])
        query = href.split("?", 1)[1]
        counts = ui.clients["viewer"].get(f"/ui/runs/counts?{query}")
        assert counts.status_code == 200, counts.text
        ((_, count),) = _CURRENT.findall(counts.text)
        assert count == link.attrs["data-count"], (href, count)
        rows = _ROW.findall(ui.clients["viewer"].get(href).text)
        assert len(rows) == int(count), href
        followed.add(href)

    rates = page.by_id("ov-rates")
    (failures,) = rates.find_all("a", data_ended="failed")
    assert failures.attrs["href"] == runs_url(status="failed", ended_after=drawn_since)
    assert failures.attrs["data-count"] == "2"  # the seed's rejected run, and old-failed
    (row,) = page.by_id("ov-workflows").find_all("tr", data_workflow="review")
    (ended,) = row.find_all("a", data_ended="all")
    assert ended.attrs["href"] == runs_url(workflow="review", ended_after=drawn_since)
    assert ended.text == ended.attrs["data-count"] == "2"  # rejected, and old: cancelled
    (failed,) = row.find_all("a", data_ended="failed")
    assert failed.text == failed.attrs["data-count"] == "1"
    assert {html.unescape(a.attrs["href"]) for a in (failures, ended, failed)} <= followed
    assert len(followed) >= 8  # statuses, the window's, the ended ones


def test_waiting_runs_and_workers_are_the_store_gauges(ui: Ui) -> None:
    _, page = overview_page(ui)
    at = now(ui)
    gauges = ui.store.gauges(at, at - LIVE_WITHIN)
    assert gauges.waiting_runs == {"approval": 2, "signal": 2}  # the waiting and paused runs
    queues = page.by_id("ov-queues")
    (approval,) = queues.find_all("a", data_wait="approval")
    assert approval.attrs["href"] == "/ui/approvals"
    assert approval.text.startswith("2 waiting for approval")
    (signal,) = queues.find_all("a", data_wait="signal")
    assert signal.text.startswith("2 waiting for signal")
    assert "No worker was seen" in page.by_id("ov-workers").text


def test_the_stream_patches_only_the_blocks_that_changed(ui: Ui) -> None:
    served = ui.clients["viewer"].app.state.service  # type: ignore[attr-defined]
    clock = FakeClock(0.0)  # when the shared computation is made again
    follow = _Follow(served, Shared(clock.monotonic))

    whole = follow(None)  # a reconnect: every block, and the chart
    assert [e.name for e in whole] == ["patch", "throughput"]
    assert [item["id"] for item in whole[0].data["items"]] == list(BLOCKS)
    clock.advance(EVERY)
    assert follow([]) == []  # nothing changed: nothing sent (the chart waits a minute)

    cancel_run(ui.store, ui.seeded.waiting, by="tester")
    assert follow([]) == []  # computed a moment ago, for every tab: not again yet
    clock.advance(EVERY)
    (patch,) = follow([])
    patched = {item["id"]: parse(item["html"]) for item in patch.data["items"]}
    assert {"ov-runs", "ov-workflows"} <= set(patched)  # a run ended: both counts moved
    assert "ov-workers" not in patched
    assert "ov-alerts" not in patched
    (tile,) = patched["ov-runs"].find_all("a", data_status="cancelled")
    assert tile.attrs["data-count"] == "1" == str(ui.store.count_runs()["cancelled"])
    (ended,) = patched["ov-workflows"].find_all("a", data_ended="all")
    assert ended.attrs["data-count"] == "2"  # the rejected run, and this one


def test_a_reconnected_stream_sends_every_block_then_ends_with_the_server(ui: Ui) -> None:
    client: TestClient = ui.clients["viewer"]
    client.app.state.closing.set()  # type: ignore[attr-defined]
    resumed = client.get("/ui/live/overview",
                         headers={"Last-Event-ID": position_text(newest(ui.store))})  # fmt: skip
    assert resumed.status_code == 200
    assert resumed.headers["content-type"].startswith("text/event-stream")
    patch = next(json.loads(frame.split("data: ", 1)[1]) for frame in resumed.text.split("\n\n")
                 if frame.startswith("event: patch"))  # fmt: skip
    assert [item["id"] for item in patch["items"]] == list(BLOCKS)
    assert "event: throughput" in resumed.text
    assert "event: caught-up" in resumed.text
    fresh = client.get("/ui/live/overview")  # a first connection: the page is fresh
    assert "event: caught-up" in fresh.text
    assert "event: patch" not in fresh.text


def test_a_stream_that_follows_every_so_often_gives_a_burst_once(
    ui: Ui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of aggregates (``every``) recomputes once for a burst of changes, however
    many batches it takes to read (the changes read again behind the position fill one
    here), as a page of rows does."""
    monkeypatch.setattr(live, "BATCH", 3)
    spec = ui.store.load_spec(ui.store.get_run(ui.seeded.waiting).spec_version)
    at = (newest(ui.store) or (0.0, ""))[0]
    for n in range(3):  # just before the stream's position: read again, a whole read
        start_run(ui.store, spec, {"amount": n}, clock=FakeClock(at + 0.1))
    start = position_text(newest(ui.store))
    for n in range(3):
        start_run(ui.store, spec, {"amount": n}, clock=FakeClock(at + 0.2))

    def followed(every: float) -> list[int]:
        app = FastAPI()
        app.state.closing = threading.Event()
        sizes: list[int] = []

        def follow(changes: Sequence[RunChange] | None) -> list[live.Event]:
            sizes.append(-1 if changes is None else len(changes))
            if sum(sizes) >= 3:
                app.state.closing.set()  # all seen: the stream ends
            return [live.Event("seen", len(changes or ()))]

        @app.get("/stream")
        def route(request: Request) -> StreamingResponse:
            return live.stream(request, ui.store, follow, every=every)

        with TestClient(app) as client:
            assert client.get(f"/stream?from={start}").text.count("event: seen") == len(sizes)
        return sizes

    # (the stream reads a little behind its position: the seed's runs come along too)
    (burst,) = followed(every=1.0)
    assert burst >= 3 + 3
    assert followed(every=0.0) == [burst]
