"""The run page of a pruned run: its tombstone, not a history (nor a crash)."""

from __future__ import annotations

from tests.dashboard.conftest import Ui
from tests.server.test_pruned_api import prune_one


def test_the_page_of_a_pruned_run_shows_its_tombstone(ui: Ui) -> None:
    run_id = ui.seeded.failed
    prune_one(ui.store, run_id)

    page = ui.clients["viewer"].get(f"/ui/runs/{run_id}")

    assert page.status_code == 200, page.text
    assert "Pruned on " in page.text
    assert "by ops" in page.text
    assert "(unsigned)" in page.text
    assert "✓ tombstone verified" in page.text
    listed = ui.clients["viewer"].get("/ui/runs")
    assert listed.status_code == 200
    workflow = ui.store.get_run(run_id).workflow
    assert ui.clients["viewer"].get(f"/ui/workflows/{workflow}").status_code == 200
