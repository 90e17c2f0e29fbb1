"""The run page's LLM panel: a run that called models shows its ledger per node and in
total, says which calls are possibly billed, in flight or estimated, and the panel is
patched live when the run changes; a run without calls has the panel hidden (so a live
patch can fill it in), and the page stays within its CSP (no inline script)."""

from __future__ import annotations

import re
from html import unescape

from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import cancel_run
from keel.server.dashboard.pages.run import Follower
from keel.server.dashboard.sessions import Viewer
from keel.server.identities import Identity
from keel.store.model_calls import CallEnded
from keel.store.records import RunChange
from tests.dashboard.conftest import Ui
from tests.llm.ledgerflows import MODEL, T0, seed

_PANEL = re.compile(r'<section id="run-llm".*?</section>', re.S)


def panel(page: str) -> str:
    found = _PANEL.search(page)
    assert found, "the page has no LLM panel"
    return found.group(0)


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_a_run_that_called_models_shows_its_ledger(ui: Ui) -> None:
    runs = seed(ui.store)
    page = ui.clients["viewer"].get(f"/ui/runs/{runs.run}")
    assert page.status_code == 200
    shown = panel(page.text)

    assert " hidden" not in shown.split(">", 1)[0]
    said = text(shown)
    assert "LLM 8 calls, 4,120 tokens in, 880 out, $0.0096" in said
    assert ("1 possibly billed: the worker died after sending; charged its reservation "
            "($0.0030)") in said  # fmt: skip
    assert "1 in flight: counted at its reservation ($0.0025) until it ends" in said
    assert "1 with estimated usage" in said
    rows = re.findall(r'<tr data-node="([^"]+)">(.*?)</tr>', shown, re.S)
    assert [node for node, _ in rows] == ["classify", "draft"]
    assert text(rows[0][1]) == f"classify {MODEL} 1 120 30 $0.000042"
    assert text(rows[1][1]) == (f"draft {MODEL} 7 4,000 850 $0.0096 3 items, 1 failed, "
                                "1 in flight, 1 estimated, 1 possibly billed")  # fmt: skip
    assert "total 8 4,120 880 $0.0096" in text(shown)
    assert f"keel calls {runs.run[:8]}" in said
    # within the page's CSP: no inline script, no handler attribute
    assert "<script" not in shown
    assert re.search(r"\son[a-z]+\s*=", shown) is None


def test_a_run_without_calls_has_the_panel_hidden(ui: Ui) -> None:
    page = ui.clients["viewer"].get(f"/ui/runs/{ui.seeded.waiting}").text
    shown = panel(page)
    assert shown.startswith('<section id="run-llm" class="card run-llm" aria-label="LLM calls" '
                            "hidden>")  # fmt: skip
    assert text(shown) == ""


def test_the_panel_is_patched_when_the_run_changes(ui: Ui) -> None:
    runs = seed(ui.store)
    served = ui.clients["viewer"].app.state.service  # type: ignore[attr-defined]
    known = ui.clients["viewer"].app.state.replays  # type: ignore[attr-defined]
    tab = Follower(served, known, runs.run, Viewer(Identity("viewer-1", "viewer"), "csrf"))
    tab(None)

    # the call in flight ends, then the run changes (its attempt's outcome, here a cancel)
    ui.store.end_call(CallEnded("d1c", "answered", input_tokens=10, output_tokens=5,
                                cost=900, at=T0 + 5))  # fmt: skip
    record = cancel_run(ui.store, runs.run, by="tester", clock=FakeClock(T0 + 6))
    change = RunChange(record.id, record.workflow, record.status, record.last_seq,
                       record.updated_at, record.late, record.created_at)  # fmt: skip
    events = tab([change])

    patched = {item["id"]: item["html"] for e in events if e.name == "patch"
               for item in e.data["items"]}  # fmt: skip
    said = text(patched["run-llm"])
    assert "8 calls, 4,130 tokens in, 885 out" in said
    assert "in flight" not in said


def test_a_call_in_flight_of_a_run_that_ended_is_said_never_ended(ui: Ui) -> None:
    runs = seed(ui.store)
    cancel_run(ui.store, runs.run, by="tester", clock=FakeClock(T0 + 6))
    said = text(panel(ui.clients["viewer"].get(f"/ui/runs/{runs.run}").text))
    assert "1 sent and never ended: the run ended first; counted at its reservation" in said
    assert "until it ends" not in said
