"""The run page of a fork links the run it was forked from and says which steps it
reused; the page of that run links the fork."""

from __future__ import annotations

from keel.runtime.operations.control import cancel_run
from keel.runtime.operations.fork import fork_run
from keel.runtime.operations.interventions import approve
from tests.dashboard.conftest import Ui


def test_both_ends_of_a_fork_link_each_other_and_reused_steps_say_so(ui: Ui) -> None:
    source = ui.seeded.waiting
    approve(ui.store, source, "check", by="finance-lead")
    cancel_run(ui.store, source, by="setup")
    forked = fork_run(ui.store, source, "book", by="ada").run
    assert forked is not None

    page = ui.clients["viewer"].get(f"/ui/runs/{forked.id}").text
    assert f'<dt>forked from</dt><dd><a href="/ui/runs/{source}">{source[:8]}</a>' in page
    assert f"reused from run {source[:8]}" in page
    page = ui.clients["viewer"].get(f"/ui/runs/{source}").text
    assert f'<dt>forked into</dt><dd><a href="/ui/runs/{forked.id}">{forked.id[:8]}</a>' in page
    assert "at book by ada" in page
