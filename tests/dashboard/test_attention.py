"""Needs attention (``/ui/attention``): failed runs grouped by error type and node, each
group's count the length of the list it links to; a run held for a while, with the
reason ``keel why`` gives; late runs; overdue approvals; open circuits; alerts firing."""

from __future__ import annotations

import re
import time

from keel.engine import ErrorInfo, NodeFailed
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.server.dashboard.links import runs_url
from keel.server.dashboard.pages.attention import EVERY, _Follow
from keel.server.dashboard.shared import Shared
from keel.spec import parse_spec
from keel.store.alerts import AlertState
from keel.store.records import CircuitOutcome
from keel.store.writes import CountCircuit, SetLate
from tests.contract.conftest import Driver, roots_spec
from tests.contract.test_alerts_store import write
from tests.dashboard.conftest import Ui
from tests.dashboard.ops_html import Node, parse

HOUR = 3600.0


def attention_page(ui: Ui, query: str = "") -> Node:
    answer = ui.clients["viewer"].get(f"/ui/attention{query}")
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


def failing(ui: Ui, run_id: str, node_error: str, at: float) -> None:
    """A run (of one node ``a``, created ``at``) whose ``a`` fails with ``node_error``."""
    driver = Driver(ui.store, roots_spec("a"), run_id)
    driver.now = at
    driver.start()
    (claimed,) = driver.claim("w1")
    error = ErrorInfo(type=node_error, message="no", retryable=False)
    failed = NodeFailed(node="a", attempt=1, error=error)
    driver.commit(driver.step([failed], (claimed.lease,)))
    assert ui.store.get_run(run_id).status == "failed"


def test_failed_runs_are_grouped_by_error_type_and_node_with_links(ui: Ui) -> None:
    for n in range(3):
        failing(ui, f"boom-{n}", "Boom", time.time() - HOUR)
    failing(ui, "oops-1", "KeyError", time.time() - HOUR)

    page = attention_page(ui)

    groups = page.by_id("at-failures").find_all("tr", class_="failure-group")
    seen = [(g.attrs["data-error-type"], g.attrs["data-node"], g.find_all("a")[0]) for g in groups]
    assert (seen[0][0], seen[0][1], seen[0][2].text) == ("Boom", "a", "3")  # the most first
    for kind, node, link in seen:
        assert link.attrs["href"] == runs_url(status="failed", error_type=kind, node=node)
        counted = ui.store.count_runs(status="failed", error_type=kind, node=node)
        assert link.text == str(counted["failed"])
        listed = ui.store.list_runs(status="failed", error_type=kind, node=node, limit=100)
        assert len(listed) == counted["failed"]
    assert {(kind, node) for kind, node, _ in seen} >= {("Boom", "a"), ("KeyError", "a")}
    assert "Failed runs: 5" in page.by_id("at-failures").text  # and the seed's rejection


def test_a_window_counts_only_the_failures_created_in_it(ui: Ui) -> None:
    failing(ui, "old-1", "Boom", time.time() - 10 * 24 * HOUR)
    failing(ui, "new-1", "Boom", time.time() - HOUR)

    everything = attention_page(ui).by_id("at-failures")
    week = attention_page(ui, "?window=7d").by_id("at-failures")

    (boom_all,) = [g for g in everything.find_all("tr", class_="failure-group")
                   if g.attrs["data-error-type"] == "Boom"]  # fmt: skip
    (boom_week,) = [g for g in week.find_all("tr", class_="failure-group")
                    if g.attrs["data-error-type"] == "Boom"]  # fmt: skip
    assert boom_all.find_all("a")[0].text == "2"
    link = boom_week.find_all("a")[0]
    assert link.text == "1"
    assert "created_after=" in link.attrs["href"]


def test_a_run_held_for_a_while_is_stuck_with_its_reason(ui: Ui) -> None:
    driver = Driver(ui.store, roots_spec("a"), "stuck-1")
    driver.now = time.time() - HOUR  # queued an hour ago, and no worker ever came
    driver.start()

    page = attention_page(ui)

    (row,) = page.by_id("at-stuck").find_all("tr", data_run="stuck-1")
    assert row.find_all("a", href="/ui/runs/stuck-1")
    assert re.search(r"queued on 'default' for 6\d min: no live worker takes it", row.text)
    # the seed's waiting run waits for a person by design, and is recent: not stuck
    assert not page.by_id("at-stuck").find_all("tr", data_run=ui.seeded.waiting)


def test_late_runs_overdue_approvals_circuits_and_alerts_are_listed(ui: Ui) -> None:
    now = time.time()
    write(ui.store, ui.seeded.waiting, now, SetLate(True))
    spec = parse_spec({"name": "sign", "nodes": [
        {"id": "ok", "kind": "approval", "title": "Sign it", "timeout": "1m",
         "on_timeout": "notify"}]})  # fmt: skip
    overdue = start_run(ui.store, spec, {}, clock=FakeClock(now - HOUR)).id
    calls = parse_spec({"name": "calls", "nodes": [{"id": "a", "task": "m:f", "circuit": "crm"}]})
    driver = Driver(ui.store, calls, "calls-1")
    driver.now = now
    driver.start()
    (claimed,) = driver.claim("w1")
    error = ErrorInfo(type="ConnectionError", message="down", retryable=False)
    failed = driver.step([NodeFailed(node="a", attempt=1, error=error)], (claimed.lease,))
    driver.commit(failed.adding(CountCircuit(CircuitOutcome("crm", False, 1, 600.0))))
    assert ui.store.hold_alert_lease("tester", now, 60)
    firing = AlertState("failures", {"kind": "failure_rate", "condition": "> 0.2"}, "firing",
                        now, "incident-1", 0.5, now)  # fmt: skip
    assert ui.store.record_alerts("tester", now, [firing], [])

    page = attention_page(ui)

    late = page.by_id("at-late")
    (pill,) = late.find_all("a", data_late="running")
    assert pill.attrs["href"] == runs_url(late=True, status="running")
    assert pill.text.startswith(str(ui.store.count_runs(late=True)["running"]))
    assert late.find_all("a", href=f"/ui/runs/{ui.seeded.waiting}")
    approvals = page.by_id("at-approvals")
    assert "Overdue approvals: 1" in approvals.text
    assert "Sign it" in approvals.text
    assert approvals.find_all("a", href=f"/ui/runs/{overdue}")
    assert "crm" in page.by_id("at-circuits").text
    assert "Open circuits: 1" in page.by_id("at-circuits").text
    alerts = page.by_id("at-alerts")
    assert "Alerts firing: 1" in alerts.text
    assert "failures" in alerts.text


def test_nothing_to_say_is_said(ui: Ui) -> None:
    page = attention_page(ui)
    assert "Open circuits: 0" in page.by_id("at-circuits").text
    assert "Overdue approvals: 0" in page.by_id("at-approvals").text
    assert "Stuck runs: 0" in page.by_id("at-stuck").text


def test_the_stream_patches_the_failures_when_a_run_fails(ui: Ui) -> None:
    served = ui.clients["viewer"].app.state.service  # type: ignore[attr-defined]
    clock = FakeClock(0.0)  # when the shared computation is made again
    follow = _Follow(served, "all", Shared(clock.monotonic))
    (whole,) = follow(None)
    assert len(whole.data["items"]) == 6
    assert follow([]) == []

    failing(ui, "boom-live", "Boom", time.time())
    assert follow([]) == []  # computed a moment ago, for every tab: not again yet
    clock.advance(EVERY)
    (patch,) = follow([])

    assert [item["id"] for item in patch.data["items"]] == ["at-failures"]
    assert 'data-error-type="Boom"' in patch.data["items"][0]["html"]
