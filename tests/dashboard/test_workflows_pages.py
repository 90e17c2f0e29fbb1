"""The workflows list and a workflow's page: its versions with who deployed them, the
graph of a version at the server's positions, the diff between two versions, the
schedule's next fire time, and the recent runs as a grid of nodes by runs."""

from __future__ import annotations

import time
from itertools import islice

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.triggers.schedules import slot_key, slots_after
from keel.spec.layout import layout_of
from keel.spec.triggers import ScheduleTrigger
from tests.dashboard.conftest import Ui
from tests.dashboard.ops_html import Node, parse, script_json
from tests.server.serverflows import REVIEW_YAML


def get(ui: Ui, path: str, status: int = 200) -> tuple[str, Node]:
    answer = ui.clients["viewer"].get(path)
    assert answer.status_code == status, answer.text
    return answer.text, parse(answer.text)


def deploy_second_version(ui: Ui) -> str:
    """``review`` again with its approval's title changed; the new version."""
    changed = REVIEW_YAML.replace("title: Check the amount", "title: Check the total")
    (spec,) = load_yaml_text(changed, "review.yaml")
    ui.store.deploy([(spec, "review.yaml")], 2.0, by="alice")
    return spec.version


def test_the_list_shows_each_workflow_with_its_current_version(ui: Ui) -> None:
    newer = deploy_second_version(ui)
    _, page = get(ui, "/ui/workflows")
    (row,) = page.find_all("tr", data_workflow="review")
    assert row.find_all("a", href="/ui/workflows/review")
    cells = row.find_all("td")
    assert cells[1].text == newer[:12]
    assert "alice" in cells[3].text
    assert cells[4].text == "2"


def test_the_versions_say_who_deployed_them_and_which_is_current(ui: Ui) -> None:
    first = ui.store.deployments("review")[0].version
    newer = deploy_second_version(ui)
    _, page = get(ui, "/ui/workflows/review")
    rows = page.by_id("wf-versions").find_all("tr")[1:]
    assert [r.attrs["data-version"] for r in rows] == [newer, first]  # newest first
    assert "current" in rows[0].text
    assert "alice" in rows[0].text
    assert "current" not in rows[1].text
    assert "setup" in rows[1].text


def test_the_graph_is_drawn_at_the_positions_of_its_version(ui: Ui) -> None:
    text, page = get(ui, "/ui/workflows/review")
    spec = ui.store.load_spec(ui.store.deployments("review")[-1].version)
    assert script_json(text, "wf-elements") == layout_of(spec).to_cytoscape()
    assert page.by_id("wf-graph")
    assert "/ui/static/graph.js?v=" in text
    assert "/ui/static/vendor/cytoscape.min.js?v=" in text


def test_the_diff_between_two_versions_shows_the_changed_line(ui: Ui) -> None:
    first = ui.store.deployments("review")[0].version
    newer = deploy_second_version(ui)

    _, page = get(ui, "/ui/workflows/review")  # the current version against the one before

    diff = page.by_id("wf-diff")
    removed = [s.text for s in diff.find_all("span", class_="diff-del")]
    added = [s.text for s in diff.find_all("span", class_="diff-add")]
    # (the text with its spaces squeezed, as a browser's text is compared here)
    assert removed == ["- title: Check the amount"]
    assert added == ["+ title: Check the total"]
    assert f"review {first[:12]}" in diff.text
    assert f"review {newer[:12]}" in diff.text
    # asked the other way round, the change goes back
    _, back = get(ui, f"/ui/workflows/review?from={newer}&to={first}")
    assert [s.text for s in back.by_id("wf-diff").find_all("span", class_="diff-add")] == [
        "+ title: Check the amount"
    ]
    _, old = get(ui, f"/ui/workflows/review?version={first[:12]}")  # the old graph
    assert old.by_id("wf-versions").find_all("tr", class_="shown", data_version=first)


def test_one_version_has_nothing_to_compare(ui: Ui) -> None:
    _, page = get(ui, "/ui/workflows/review")
    assert "One version only" in page.by_id("wf-diff").text


def test_the_schedule_shows_its_next_fire_time(ui: Ui) -> None:
    spec = ui.store.load_spec(ui.store.deployments("review")[-1].version)
    (trigger,) = [t for t in spec.triggers if isinstance(t, ScheduleTrigger)]
    before = slot_key(next(iter(slots_after(trigger, time.time()))))
    _, page = get(ui, "/ui/workflows/review")
    after = slot_key(next(iter(slots_after(trigger, time.time()))))

    (row,) = page.by_id("wf-triggers").find_all("tr", data_schedule="review-daily")
    shown = [t.attrs["datetime"] for t in row.find_all("time")]
    assert shown[0] in (before, after)  # the same unless 06:00 UTC passed meanwhile
    assert len(shown) == 3
    assert shown[0].endswith("T06:00:00Z")
    upcoming = [slot_key(s) for s in islice(slots_after(trigger, time.time()), 3)]
    assert shown == upcoming or shown[1:] == upcoming[:2]


def test_the_grid_has_a_row_per_node_and_a_column_per_run(ui: Ui) -> None:
    _, page = get(ui, "/ui/workflows/review")
    grid = page.by_id("wf-grid")
    rows = grid.find_all("tr")[1:]
    assert [r.attrs["data-node"] for r in rows] == ["check", "ping", "book"]
    runs = [r.id for r in ui.store.list_runs(workflow="review", limit=20)]
    heads = [a.attrs["href"] for a in grid.find_all("th", class_="grid-run")
             for a in a.find_all("a")]  # fmt: skip
    assert heads == [f"/ui/runs/{run_id}" for run_id in runs]

    def cell(node: str, run_id: str) -> Node:
        (found,) = [a for a in grid.find_all("a", data_run=run_id)
                    if a.attrs["href"] == f"/ui/runs/{run_id}#node-{node}"]  # fmt: skip
        return found

    assert "failed" in cell("check", ui.seeded.failed).classes()
    assert "waiting" in cell("check", ui.seeded.waiting).classes()
    assert "waiting" in cell("ping", ui.seeded.waiting).classes()
    assert "pending" in cell("book", ui.seeded.waiting).classes()
    assert "pending" in cell("book", ui.seeded.failed).classes()  # never reached
    assert "cancelled" in cell("ping", ui.seeded.failed).classes()  # its wait ended with it
    assert cell("check", ui.seeded.failed).attrs["title"].startswith("check · failed")


def test_an_unknown_workflow_or_version_is_a_404_page(ui: Ui) -> None:
    text, _ = get(ui, "/ui/workflows/nope", 404)
    assert "no workflow named &#39;nope&#39; is deployed" in text
    text, _ = get(ui, "/ui/workflows/review?version=abcdef123456", 404)
    assert "has no deployed version abcdef123456" in text
