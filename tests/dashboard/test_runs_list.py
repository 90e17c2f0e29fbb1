"""The runs list: the store filters (each filter narrows the list, and the counts are of
the same selection), the cursor pages give every run once, bulk actions by filter
(preview, per-run report, recorded as the signed-in viewer, refused to who may not
act), a bad filter is a message naming its field, and the live stream patches the rows
of runs that change and announces the new ones that match."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from keel.authoring.yaml_source import load_yaml_text
from keel.engine.events import RunCancelled, RunRetried
from keel.runtime.clock import FakeClock, clock_for
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.worker.loop import Worker
from keel.runtime.worker.options import WorkerOptions
from keel.server.dashboard import bulk
from keel.server.dashboard.run_filters import RunFilters, parse
from keel.spec.model import WorkflowSpec
from keel.store.protocol import Store
from tests.dashboard.conftest import Ui, csrf_of
from tests.server.serverflows import REVIEW_YAML
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code)

#: when the "other" runs were started: long before the seeded ones
T0 = 1_600_000_000.0

OTHER_YAML = """
name: other
nodes:
  - {id: go, kind: signal, signal: go}
expected_duration: 10m
"""
BOOM_YAML = """
name: boom
nodes:
  - id: explode
    task: tests.unit.runtime_tasks:fail_for_good
    args: {message: "no"}
"""


def spec_of(text: str, name: str) -> WorkflowSpec:
    (spec,) = load_yaml_text(text, f"{name}.yaml")
    return spec


@dataclass
class Mix:
    """Runs of every kind the filters tell apart, by name."""

    ids: dict[str, str]
    v2: str
    error_type: str

    def __getitem__(self, name: str) -> str:
        return self.ids[name]

    def names(self, ids: Iterator[str] | list[str]) -> set[str]:
        by_id = {run_id: name for name, run_id in self.ids.items()}
        return {by_id[run_id] for run_id in ids}


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def mix(ui: Ui) -> Mix:
    """Besides the seeded review runs (waiting, failed at ``check``, paused): one started
    by alice, one of a second version of review, two old runs of ``other`` (one late),
    one failed by its task's error."""
    store = ui.store
    review = spec_of(REVIEW_YAML, "review")
    review2 = spec_of(REVIEW_YAML.replace("Check the amount", "Check it twice"), "review")
    other, boom = spec_of(OTHER_YAML, "other"), spec_of(BOOM_YAML, "boom")
    store.deploy([(review2, "review.yaml"), (other, None), (boom, None)], 2.0, by="setup")
    ids = {"waiting": ui.seeded.waiting, "failed": ui.seeded.failed, "paused": ui.seeded.paused}
    ids["alice"] = start_run(store, review, {"amount": 1}, started_by="alice").id
    ids["v2"] = start_run(store, review2, {"amount": 2}).id
    ids["old_late"] = start_run(store, other, {}, clock=FakeClock(T0)).id
    ids["old"] = start_run(store, other, {}, clock=FakeClock(T0 + 650)).id
    ids["boom"] = start_run(store, boom, {}).id
    worker = Worker(store, WorkerOptions(concurrency=1))
    try:
        assert worker.fire_timers(now=T0 + 700, run_ids=[ids["old_late"], ids["old"]]) == 1
        (failed,) = worker.run_until_finished([ids["boom"]])
    finally:
        worker.close()
    assert failed.status == "failed"
    assert store.get_run(ids["old_late"]).late
    assert not store.get_run(ids["old"]).late
    boomed = store.get_run(ids["boom"])
    assert boomed.failed_node == "explode"
    assert boomed.error_type
    return Mix(ids, store.get_run(ids["v2"]).spec_version, boomed.error_type)


_ROW = re.compile(r'<tr id="run-([^"]+)"')
_COUNT = re.compile(r'data-status="(\w+)" data-count="(\d+)"')


def listed(ui: Ui, query: str, role: str = "viewer") -> list[str]:
    answer = ui.clients[role].get(f"/ui/runs?{query}")
    assert answer.status_code == 200, answer.text
    return _ROW.findall(answer.text)


def counted(ui: Ui, query: str) -> dict[str, int]:
    answer = ui.clients["viewer"].get(f"/ui/runs/counts?{query}")
    assert answer.status_code == 200, answer.text
    return {status: int(n) for status, n in _COUNT.findall(answer.text)}


ALL = {"waiting", "failed", "paused", "alice", "v2", "old_late", "old", "boom"}
#: a query (from the mix) and the runs it lists
FILTERS: list[Any] = [
    pytest.param(lambda m: "", ALL, id="none"),
    pytest.param(lambda m: "status=failed", {"failed", "boom"}, id="status"),
    pytest.param(lambda m: "status=paused", {"paused"}, id="status-paused"),
    pytest.param(lambda m: "workflow=other", {"old_late", "old"}, id="workflow"),
    pytest.param(lambda m: "workflow=review&status=failed", {"failed"}, id="workflow+status"),
    pytest.param(lambda m: f"version={m.v2[:8]}", {"v2"}, id="version"),
    pytest.param(lambda m: f"created_before={utc(T0 + 1000)}", {"old_late", "old"},
                 id="created-before"),
    pytest.param(lambda m: f"created_after={utc(T0 + 600)}&created_before={utc(T0 + 1000)}",
                 {"old"}, id="created-between"),
    pytest.param(lambda m: f"created_after={utc(T0 + 1000)}Z", ALL - {"old_late", "old"},
                 id="created-after-rfc3339"),
    pytest.param(lambda m: f"error_type={m.error_type}", {"boom"}, id="error-type"),
    pytest.param(lambda m: "node=check", {"failed"}, id="node"),
    pytest.param(lambda m: "node=explode&error_type=nothing-like-it", set(), id="node+error"),
    pytest.param(lambda m: "started_by=alice", {"alice"}, id="started-by"),
    pytest.param(lambda m: "late=true", {"old_late"}, id="late"),
    pytest.param(lambda m: "late=false&workflow=other", {"old"}, id="not-late"),
    pytest.param(lambda m: f"ended_after={utc(T0)}", {"failed", "boom"}, id="ended-after"),
    pytest.param(lambda m: f"ended_after={utc(T0)}&workflow=review", {"failed"},
                 id="ended-after+workflow"),
    pytest.param(lambda m: f"ended_after={utc(T0)}&status=failed", {"failed", "boom"},
                 id="ended-after+status"),
    pytest.param(lambda m: f"ended_before={utc(T0 + 1000)}", set(), id="ended-before"),
    pytest.param(lambda m: "ended_after=2100-01-01T00:00:00Z", set(), id="ended-later"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_each_filter_narrows_the_list_and_the_counts_agree(
    ui: Ui, mix: Mix, query: Callable[[Mix], str], expected: set[str]
) -> None:
    text = query(mix)
    ids = listed(ui, text)
    assert mix.names(ids) == expected
    assert len(ids) == len(set(ids))
    statuses = Counter(ui.store.get_run(run_id).status for run_id in ids)
    counts = counted(ui, text)
    status = dict(p.split("=") for p in text.split("&") if p).get("status")
    if status is None:
        assert counts.pop("all") == len(ids)
        assert {s: n for s, n in counts.items() if n} == dict(statuses)
    else:  # each count is what its link lists: this status's is the list
        assert counts[status] == len(ids)
    # what the live stream and a bulk action's re-check say of a run is the store's
    filters = parse(dict(p.split("=") for p in text.split("&") if p))
    everyone = [ui.store.get_run(run_id) for run_id in mix.ids.values()]
    assert {r.id for r in everyone if filters.matches(r)} == set(ids)


def test_the_form_filters_by_when_runs_ended_and_keeps_it(ui: Ui, mix: Mix) -> None:
    text = ui.clients["viewer"].get(f"/ui/runs?ended_after={utc(T0)}Z").text
    assert 'name="ended_after" value="2020-09-13T12:26:40"' in text  # shown in UTC
    assert 'name="ended_before" value=""' in text
    assert "ended after (UTC)" in text
    counts_url = re.search(r'hx-get="([^"]+)"', text)
    assert counts_url
    assert "ended_after=2020-09-13T12%3A26%3A40" in counts_url.group(1)


def test_a_run_not_ended_never_matches_an_ended_filter() -> None:
    """What the live stream rules out from the change feed alone, and says of a row."""
    window = RunFilters(ended_after=T0)
    assert not window.may_match("review", "running", False)
    assert not window.may_match("review", "paused", False)
    assert window.may_match("review", "cancelled", False)
    assert RunFilters(ended_before=T0).may_match("review", "succeeded", True)
    assert RunFilters().may_match("review", "running", False)


def test_each_count_links_to_the_list_it_counts(ui: Ui, mix: Mix) -> None:
    answer = ui.clients["viewer"].get("/ui/runs/counts?workflow=review")
    links = dict(re.findall(r'href="([^"]+)" class="pill[^"]*" data-status="(\w+)"', answer.text))
    by_status = {status: html.unescape(href) for href, status in links.items()}
    assert by_status["failed"] == "/ui/runs?status=failed&workflow=review"
    assert mix.names(listed(ui, by_status["failed"].split("?")[1])) == {"failed"}


def _older(text: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', text)
    return None if found is None else html.unescape(found.group(1))


def test_the_pages_give_every_run_once(ui: Ui) -> None:
    review = spec_of(REVIEW_YAML, "review")
    tied = FakeClock(T0)  # 60 runs at the same instant: the cursor's tie is the id
    made = [start_run(ui.store, review, {}, clock=tied).id for _ in range(60)]
    made += [start_run(ui.store, review, {}).id for _ in range(70)]
    start_run(ui.store, spec_of(OTHER_YAML, "other"), {})  # filtered out on every page
    wanted = set(made) | {ui.seeded.waiting, ui.seeded.failed, ui.seeded.paused}
    seen: list[str] = []
    url: str | None = "/ui/runs?workflow=review"
    pages = 0
    while url is not None:
        answer = ui.clients["viewer"].get(url)
        assert answer.status_code == 200
        rows = _ROW.findall(answer.text)
        assert len(rows) <= 50
        seen += rows
        url = _older(answer.text)
        assert url is None or "workflow=review" in url  # the filters stay on every page
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == len(wanted)
    assert set(seen) == wanted
    created = [ui.store.get_run(run_id).created_at for run_id in seen]
    assert created == sorted(created, reverse=True)


# --- bulk actions --------------------------------------------------------------------


def _bulk_count(text: str) -> int:
    found = re.search(r'id="bulk-count" data-count="(\d+)"', text)
    assert found, text
    return int(found.group(1))


def test_the_preview_counts_the_runs_the_action_applies_to(ui: Ui, mix: Mix) -> None:
    operator = ui.clients["operator"]
    answer = operator.get("/ui/runs/bulk?action=cancel&workflow=review")
    assert answer.status_code == 200
    not_ended = {"waiting", "paused", "alice", "v2"}
    assert _bulk_count(answer.text) == len(not_ended)
    assert mix.names(_ROW.findall(answer.text)) == not_ended  # the first few: all four here
    assert 'name="reason"' in answer.text
    retry = operator.get("/ui/runs/bulk?action=retry")
    assert _bulk_count(retry.text) == 2  # failed and boom
    nothing = operator.get("/ui/runs/bulk?action=retry&status=running")
    assert _bulk_count(nothing.text) == 0
    assert 'name="reason"' not in nothing.text  # nothing to confirm


def csrf(ui: Ui, role: str) -> str:
    """The CSRF token of ``role``'s session, from the runs list's sign-out form."""
    return csrf_of(ui.clients[role].get("/ui/runs").text)


def post_bulk(ui: Ui, role: str, **form: str) -> Any:
    return ui.clients[role].post("/ui/runs/bulk", data={"csrf": csrf(ui, role), **form})


def _outcomes(text: str) -> dict[str, str]:
    return dict(re.findall(r'<tr id="outcome-([^"]+)" data-result="(\w+)"', text))


def test_a_bulk_cancel_reports_each_run_and_records_who(ui: Ui, mix: Mix) -> None:
    answer = post_bulk(
        ui, "operator", action="cancel", workflow="review", reason="clearing the review backlog"
    )
    assert answer.status_code == 200, answer.text
    targets = {"waiting", "paused", "alice", "v2"}
    outcomes = _outcomes(answer.text)
    assert {mix.names([run_id]).pop(): result for run_id, result in outcomes.items()} == (
        dict.fromkeys(targets, "done"))  # fmt: skip
    for name in targets:
        assert ui.store.get_run(mix[name]).status == "cancelled"
        (cancelled,) = [s.event for s in ui.store.history(mix[name])
                        if isinstance(s.event, RunCancelled)]  # fmt: skip
        assert cancelled.by == "operator-1"
        assert cancelled.reason == "clearing the review backlog"
    assert ui.store.get_run(mix["old"]).status == "running"  # another workflow: untouched
    assert ui.store.get_run(mix["failed"]).status == "failed"


def test_a_bulk_retry_retries_the_failed_runs_as_the_viewer(ui: Ui, mix: Mix) -> None:
    answer = post_bulk(ui, "admin", action="retry", node="check", reason="approve again")
    assert answer.status_code == 200, answer.text
    assert _outcomes(answer.text) == {mix["failed"]: "done"}
    assert ui.store.get_run(mix["failed"]).status != "failed"
    assert ui.store.get_run(mix["boom"]).status == "failed"  # failed elsewhere: not selected
    retried = [s.event for s in ui.store.history(mix["failed"]) if isinstance(s.event, RunRetried)]
    assert [(e.by, e.reason) for e in retried] == [("admin-1", "approve again")]


def test_each_run_is_checked_again_when_acted_on(ui: Ui, mix: Mix) -> None:
    """A run that changed between the selection and the action: the operation refuses
    what no longer applies, and a run that left the filters is skipped."""
    store: Store = ui.store
    cancel = bulk.ACTIONS["cancel"]
    everything = RunFilters(workflow="review")
    chosen = bulk.select(store, everything, cancel)
    running = RunFilters(workflow="review", status="running")
    chosen_running = bulk.select(store, running, cancel)
    cancel_run(store, mix["alice"], by="someone else")
    clock = clock_for(store)
    outcomes = bulk.perform(store, everything, cancel, chosen, by="ops", reason="r", clock=clock)
    by_name = {mix.names([o.run.id]).pop(): o for o in outcomes}
    assert by_name["alice"].result == "refused"
    assert "has already ended (cancelled)" in by_name["alice"].message
    assert {n for n, o in by_name.items() if o.result == "done"} == {"waiting", "paused", "v2"}
    store2_outcomes = bulk.perform(store, running, cancel, chosen_running, by="ops", reason="r",
                                   clock=clock)  # fmt: skip
    assert {o.result for o in store2_outcomes} == {"skipped"}
    assert all("no longer matches the filters" in o.message for o in store2_outcomes)


def test_one_bulk_action_is_capped_and_says_so(
    ui: Ui, mix: Mix, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CAP", 2)
    operator = ui.clients["operator"]
    preview = operator.get("/ui/runs/bulk?action=cancel&workflow=review")
    assert _bulk_count(preview.text) == 4
    assert 'id="bulk-cap"' in preview.text
    answer = post_bulk(ui, "operator", action="cancel", workflow="review", reason="r")
    outcomes = _outcomes(answer.text)
    assert list(outcomes.values()) == ["done", "done"]
    assert re.search(r'id="bulk-cap">[^<]*2 more matched', answer.text)
    newest = ui.store.list_runs(workflow="review", status="running", limit=10)
    assert {r.id for r in newest} == {mix["waiting"], mix["alice"], mix["v2"]} - set(outcomes)


def test_one_request_acts_on_a_thousand_runs_at_most(
    ui: Ui, mix: Mix, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "count", lambda *_: 2500)  # as if 2,500 matched
    preview = ui.clients["operator"].get("/ui/runs/bulk?action=cancel&workflow=review")
    assert "The first 1,000 of 2,500 (newest first); run it again for the rest" in preview.text
    assert re.search(r"Cancel 1,000 runs\s*</button>", preview.text)


def test_a_capped_bulk_action_says_how_many_and_run_again_takes_the_rest(
    ui: Ui, mix: Mix, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CAP", 3)
    not_ended = {mix[name] for name in ("waiting", "paused", "alice", "v2")}
    preview = ui.clients["operator"].get("/ui/runs/bulk?action=cancel&workflow=review")
    assert re.search(r'id="bulk-cap">The first 3 of 4 \(newest first\); run it again for the '
                     "rest", preview.text)  # fmt: skip
    first = post_bulk(ui, "operator", action="cancel", workflow="review", reason="backlog")
    assert "These were the first 3 of 4: 1 more matched" in first.text
    done = set(_outcomes(first.text))
    assert len(done) == 3
    again = re.search(r'<form method="post" action="/ui/runs/bulk" class="bulk-form" '
                      r'id="bulk-again">(.*?)</form>', first.text, re.S)  # fmt: skip
    assert again, first.text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', again.group(1)))
    assert {k: v for k, v in fields.items() if k != "csrf"} == {
        "action": "cancel", "workflow": "review", "reason": "backlog"}  # fmt: skip
    rest = ui.clients["operator"].post("/ui/runs/bulk", data=fields)
    assert rest.status_code == 200, rest.text
    # the runs cancelled by the first post no longer match: the second takes the one left
    assert _outcomes(rest.text) == {(not_ended - done).pop(): "done"}
    assert 'id="bulk-again"' not in rest.text
    assert {ui.store.get_run(run).status for run in not_ended} == {"cancelled"}


def test_a_bulk_action_needs_a_reason(ui: Ui, mix: Mix) -> None:
    answer = post_bulk(ui, "operator", action="cancel", workflow="review", reason=" ")
    assert answer.status_code == 400
    assert 'id="bulk-problem"' in answer.text
    assert "reason: say why" in answer.text
    assert ui.store.get_run(mix["waiting"]).status == "running"


def test_who_may_not_act_sees_no_bulk_action_and_cannot_forge_one(ui: Ui, mix: Mix) -> None:
    assert "/ui/runs/bulk" in ui.clients["operator"].get("/ui/runs").text
    for role in ("viewer", "approver"):
        page = ui.clients[role].get("/ui/runs")
        assert page.status_code == 200
        assert "/ui/runs/bulk" not in page.text
        assert "Cancel the matching runs" not in page.text
        forged = post_bulk(ui, role, action="cancel", reason="x")
        assert forged.status_code == 403
        assert ui.clients[role].get("/ui/runs/bulk?action=cancel").status_code == 403
    assert ui.store.get_run(mix["waiting"]).status == "running"
    assert not [s for s in ui.store.history(mix["waiting"]) if isinstance(s.event, RunCancelled)]


# --- bad filters ----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "said"), [
    ("status=bogus", "status: no status 'bogus'"),
    ("created_after=yesterday", "created after: 'yesterday' is not a date-time"),
    ("created_after=2025-01-02T00:00&created_before=2025-01-01T00:00",
     "created before: must be later than created after"),
    ("late=maybe", "late: 'maybe'"),
    ("cursor=not-a-cursor", "page: not one this page gave"),
    ("workflow=" + "x" * 201, "workflow: longer than 200 characters"),
    ("ended_before=soon", "ended before: 'soon' is not a date-time"),
    ("ended_after=2025-01-02T00:00&ended_before=2025-01-02T00:00",
     "ended before: must be later than ended after"),
], ids=["status", "date-time", "time-order", "late", "cursor", "too-long", "ended-date-time",
        "ended-order"])  # fmt: skip
def test_a_bad_filter_is_a_message_naming_its_field(ui: Ui, query: str, said: str) -> None:
    answer = ui.clients["viewer"].get(f"/ui/runs?{query}")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    problem = re.search(r'id="filter-problem">([^<]*)<', answer.text)
    assert problem, answer.text
    assert html.unescape(problem.group(1)).startswith(said)
    assert 'id="run-filters"' in answer.text  # the form is there to fix it
    if not query.startswith("cursor"):
        assert ui.clients["viewer"].get(f"/ui/runs/counts?{query}").status_code == 400
        bulk_page = ui.clients["operator"].get(f"/ui/runs/bulk?action=cancel&{query}")
        assert bulk_page.status_code == 400
        assert said.split(":")[0] in html.unescape(bulk_page.text)


# --- live -----------------------------------------------------------------------------


def _live_url(text: str) -> str:
    found = re.search(r'data-live="([^"]+)"', text)
    assert found, "the page opens no stream"
    return html.unescape(found.group(1))


def _events(lines: Iterator[str], want: Callable[[str, Any], bool]) -> list[tuple[str, Any]]:
    """The stream's events up to the first ``want`` accepts (within 300 lines)."""
    seen: list[tuple[str, Any]] = []
    name = "message"
    for _, line in zip(range(300), lines, strict=False):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            seen.append((name, json.loads(line.removeprefix("data: "))))
            if want(*seen[-1]):
                return seen
    raise AssertionError(f"not in the first 300 lines of the stream: {seen}")


def test_a_run_that_changes_has_its_row_patched(ui: Ui, mix: Mix) -> None:
    client = ui.clients["viewer"]
    url = _live_url(client.get("/ui/runs?workflow=review").text)
    row = f"run-{mix['waiting']}"

    def patched(name: str, data: Any) -> bool:
        return name == "patch" and any(item["id"] == row for item in data["items"])

    with client.stream("GET", url) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        _events(lines, lambda name, data: name == "caught-up")
        cancel_run(ui.store, mix["waiting"], by="tester")
        events = _events(lines, patched)
    (item,) = [i for i in events[-1][1]["items"] if i["id"] == row]
    assert item["html"].startswith(f'<tr id="{row}"')
    assert 'class="state cancelled"' in item["html"]


def test_a_row_that_leaves_the_filters_says_so(ui: Ui, mix: Mix) -> None:
    client = ui.clients["viewer"]
    url = _live_url(client.get("/ui/runs?status=running&workflow=review").text)
    row = f"run-{mix['alice']}"
    with client.stream("GET", url) as stream:
        lines = stream.iter_lines()
        cancel_run(ui.store, mix["alice"], by="tester")
        events = _events(lines, lambda name, data: name == "patch" and
                         any(i["id"] == row for i in data["items"]))  # fmt: skip
    (item,) = [i for i in events[-1][1]["items"] if i["id"] == row]
    assert 'class="unmatched"' in item["html"]
    assert "no longer matches the filters" in item["html"]


def test_a_new_matching_run_is_announced_not_inserted(ui: Ui, mix: Mix) -> None:
    client = ui.clients["viewer"]
    url = _live_url(client.get("/ui/runs?workflow=review").text)
    with client.stream("GET", url) as stream:
        lines = stream.iter_lines()
        other = start_run(ui.store, spec_of(OTHER_YAML, "other"), {}).id
        new = start_run(ui.store, spec_of(REVIEW_YAML, "review"), {}).id
        events = _events(lines, lambda name, data: name == "runs" and new in data["ids"])
    announced = {run_id for name, data in events if name == "runs" for run_id in data["ids"]}
    assert announced == {new}  # not the other workflow's run
    patched = {i["id"] for name, data in events if name == "patch" for i in data["items"]}
    assert f"run-{new}" not in patched
    assert f"run-{other}" not in patched
