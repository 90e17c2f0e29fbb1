"""The run page over the seeded ``review`` runs (waiting at its approval, failed by a
rejection, paused): what it shows, its actions recorded with the signed-in name and
the reason, the previews of what runs again, the roles, and the live stream."""

from __future__ import annotations

import html
import json
import re
import threading
from typing import Any

import pytest

from keel.engine.events import (
    NodeSetByHand,
    RunCancelled,
    RunPaused,
    RunRetried,
    RunUnpaused,
)
from keel.runtime.operations.interventions import approve
from keel.server.dashboard.pages import run as run_page
from tests.dashboard.conftest import Ui, csrf_of

_GRAPH = re.compile(r'<script type="application/json" id="run-graph-data">(.*?)</script>', re.S)
_LIVE = re.compile(r'data-live="([^"]+)"')


def graph_of(page: str) -> dict[str, Any]:
    found = _GRAPH.search(page)
    assert found, "the page embeds no graph"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def nodes_of(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["data"]["id"]: e for e in graph["elements"] if "source" not in e["data"]}


def previewed(text: str, kind: str = "again") -> list[str]:
    found = re.search(rf'<ul class="preview-nodes" data-kind="{kind}">(.*?)</ul>', text, re.S)
    return [] if found is None else re.findall(r'<li class="mono">([^<]+)</li>', found.group(1))


def post(ui: Ui, role: str, path: str, form: dict[str, str]) -> Any:
    """``form`` posted with the CSRF token of ``role``'s session (from a run page)."""
    token = csrf_of(ui.clients[role].get(f"/ui/runs/{ui.seeded.waiting}").text)
    return ui.clients[role].post(path, data={**form, "csrf": token})


def test_the_page_of_a_waiting_run_shows_status_why_graph_steps_and_history(ui: Ui) -> None:
    run_id = ui.seeded.waiting
    page = ui.clients["viewer"].get(f"/ui/runs/{run_id}")

    assert page.status_code == 200, page.text
    text = page.text
    assert '<span class="state running" id="run-status">running</span>' in text
    why = text[text.index('id="run-why"') : text.index('id="run-actions"')]
    assert "approval &#39;Check the amount&#39; by finance" in why  # keel why's words
    assert "signal &#39;ping&#39;" in why
    assert "&#34;kind&#34;: &#34;approval&#34;" in why  # the reason's data
    nodes = nodes_of(graph_of(text))
    assert set(nodes) == {"check", "ping", "book"}
    assert all(set(n["position"]) == {"x", "y"} for n in nodes.values())
    assert nodes["check"]["data"]["state"] == "waiting"
    assert nodes["book"]["data"]["state"] == "pending"
    assert nodes["check"]["position"]["y"] < nodes["book"]["position"]["y"]  # layered
    for node in ("check", "ping", "book"):
        assert f'id="step-{node}"' in text
    assert "run_started" in text
    assert "node_awaiting" in text
    assert "✓ chain verified" in text
    assert f"/ui/live/runs/{run_id}" in _LIVE.search(text).group(1)  # type: ignore[union-attr]


def test_the_page_of_a_failed_run_says_what_failed_and_offers_retries(ui: Ui) -> None:
    page = ui.clients["operator"].get(f"/ui/runs/{ui.seeded.failed}")

    assert page.status_code == 200, page.text
    text = page.text
    assert '<span class="state failed" id="run-status">failed</span>' in text
    step = text[text.index('id="step-check"') : text.index("</tr>", text.index('id="step-check"'))]
    assert "Rejected" in step
    assert "rejected by setup" in step
    assert 'data-dialog="dialog-retry"' in text
    assert 'data-dialog="dialog-retry-node"' in text
    assert 'data-dialog="dialog-cancel"' not in text  # a failed run cannot be cancelled
    start = text.index('id="dialog-retry"')
    retry = text[start : text.index("</dialog>", start)]
    assert previewed(retry) == ["check", "ping", "book"]


def test_a_node_panel_lists_its_attempts_with_their_error(ui: Ui) -> None:
    panel = ui.clients["viewer"].get(f"/ui/runs/{ui.seeded.failed}/nodes/check")

    assert panel.status_code == 200, panel.text
    assert "attempt 1" in panel.text
    assert "Rejected: rejected by setup" in panel.text
    assert ui.clients["viewer"].get(f"/ui/runs/{ui.seeded.failed}/nodes/nope").status_code == 404


def test_previews_list_what_would_run_again(ui: Ui) -> None:
    client = ui.clients["operator"]
    base = f"/ui/runs/{ui.seeded.failed}/preview"

    assert previewed(client.get(f"{base}?action=retry").text) == ["check", "ping", "book"]
    assert previewed(client.get(f"{base}?action=retry-node&node=check").text) == ["check", "book"]
    assert previewed(client.get(f"{base}?action=retry-node&node=book").text) == ["book"]
    assert previewed(client.get(f"{base}?action=skip&node=check").text) == ["ping", "book"]
    unknown = client.get(f"{base}?action=retry-node&node=nope").text
    assert "has no node &#39;nope&#39;" in unknown
    cancel = client.get(f"/ui/runs/{ui.seeded.waiting}/preview?action=cancel").text
    assert previewed(cancel, "stops") == ["check", "ping"]


def _last_event(ui: Ui, run_id: str, kind: type) -> Any:
    found = [s.event for s in ui.store.history(run_id) if isinstance(s.event, kind)]
    assert found, f"no {kind.__name__} recorded"
    return found[-1]


def test_each_action_is_recorded_with_the_signed_in_name_and_the_reason(ui: Ui) -> None:
    waiting, failed, paused = ui.seeded.waiting, ui.seeded.failed, ui.seeded.paused

    answer = post(ui, "operator", f"/ui/runs/{waiting}/pause", {"reason": "hold on"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/runs/{waiting}"
    assert _last_event(ui, waiting, RunPaused) == RunPaused(by="operator-1", reason="hold on")
    shown = ui.clients["operator"].get(answer.headers["location"]).text
    assert f"Run {waiting[:8]} paused." in shown  # the flash, once
    again = ui.clients["operator"].get(f"/ui/runs/{waiting}").text
    assert f"Run {waiting[:8]} paused." not in again

    post(ui, "operator", f"/ui/runs/{paused}/unpause", {"reason": "go on"})
    assert _last_event(ui, paused, RunUnpaused) == RunUnpaused(by="operator-1", reason="go on")

    post(ui, "admin", f"/ui/runs/{failed}/retry", {"reason": "from book", "node": "book"})
    retried = _last_event(ui, failed, RunRetried)
    assert (retried.by, retried.reason, retried.nodes) == ("admin-1", "from book", ["book"])

    post(ui, "operator", f"/ui/runs/{paused}/cancel", {"reason": "not needed"})
    cancelled = _last_event(ui, paused, RunCancelled)
    assert (cancelled.by, cancelled.reason) == ("operator-1", "not needed")


def test_retry_failed_resets_what_the_preview_listed(ui: Ui) -> None:
    failed = ui.seeded.failed
    shown = previewed(ui.clients["operator"].get(f"/ui/runs/{failed}/preview?action=retry").text)

    post(ui, "operator", f"/ui/runs/{failed}/retry", {"reason": "again"})

    retried = _last_event(ui, failed, RunRetried)
    assert (retried.by, retried.reason, retried.nodes) == ("operator-1", "again", shown)


def test_skip_sets_the_node_with_the_json_output(ui: Ui) -> None:
    waiting = ui.seeded.waiting
    form = {"node": "book", "output": '"by hand"', "reason": "done elsewhere"}

    answer = post(ui, "operator", f"/ui/runs/{waiting}/skip", form)

    assert answer.status_code == 303
    assert _last_event(ui, waiting, NodeSetByHand) == NodeSetByHand(
        node="book", output="by hand", by="operator-1", reason="done elsewhere"
    )


def test_a_refused_action_says_why_and_records_nothing(ui: Ui) -> None:
    waiting = ui.seeded.waiting
    before = ui.store.get_run(waiting).last_seq
    client = ui.clients["operator"]

    bad_json = post(ui, "operator", f"/ui/runs/{waiting}/skip",
                    {"node": "book", "output": "{x", "reason": "done elsewhere"})  # fmt: skip
    assert bad_json.status_code == 303
    said = client.get(bad_json.headers["location"]).text
    assert "Not done: the output is not JSON: Expecting property name" in said

    not_failed = post(ui, "operator", f"/ui/runs/{waiting}/retry", {"reason": "why not"})
    assert not_failed.status_code == 303
    said = client.get(not_failed.headers["location"]).text
    assert "only a failed run can be retried" in said

    approval = post(ui, "operator", f"/ui/runs/{waiting}/skip",
                    {"node": "check", "output": "{}", "reason": "decided by phone"})  # fmt: skip
    assert approval.status_code == 403  # setting an approval decides it: operators may not
    assert "may not decide approvals" in approval.text
    assert ui.store.get_run(waiting).last_seq == before


def test_an_action_without_a_reason_is_refused_and_its_form_comes_back_as_typed(
    ui: Ui,
) -> None:
    waiting, failed = ui.seeded.waiting, ui.seeded.failed
    before = {run: ui.store.get_run(run).last_seq for run in (waiting, failed)}
    page = ui.clients["operator"].get(f"/ui/runs/{waiting}").text
    assert re.search(r'<input name="reason" required maxlength="2000"', page)

    for blank in ("", "   "):
        answer = post(ui, "operator", f"/ui/runs/{waiting}/skip",
                      {"node": "book", "output": '{"done": 1}', "reason": blank})  # fmt: skip
        assert answer.status_code == 400, answer.text
        shown = html.unescape(answer.text)
        assert "reason: say why" in shown
        assert 'action="/ui/runs/' + waiting + '/skip"' in shown
        assert 'name="node" list="run-node-list" required' in shown
        assert 'value="book"' in shown  # what was typed is kept
        assert '{"done": 1}</textarea>' in shown
        assert previewed(answer.text) == []  # skipping book: nothing else runs again
        assert "book is set with the output given" in shown

    missing = post(ui, "operator", f"/ui/runs/{failed}/retry", {"node": "check"})
    assert missing.status_code == 400
    assert "reason: say why" in missing.text
    assert previewed(missing.text) == ["check", "book"]  # retry from check: what runs again
    cancel = post(ui, "operator", f"/ui/runs/{waiting}/cancel", {})
    assert cancel.status_code == 400
    assert 'action="/ui/runs/' + waiting + '/cancel"' in cancel.text
    too_long = post(ui, "operator", f"/ui/runs/{waiting}/pause", {"reason": "x" * 2001})
    assert too_long.status_code == 400
    assert "reason: at most 2000 characters" in too_long.text
    assert {run: ui.store.get_run(run).last_seq for run in before} == before  # nothing done
    assert ui.store.get_run(waiting).status == "running"


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(ui: Ui) -> None:
    waiting = ui.seeded.waiting
    before = ui.store.get_run(waiting).last_seq

    page = ui.clients["viewer"].get(f"/ui/runs/{waiting}").text
    approver = ui.clients["approver"].get(f"/ui/runs/{waiting}").text

    for shown in (page, approver):
        assert "data-dialog=" not in shown
        assert "<dialog" not in shown
    assert 'data-dialog="dialog-cancel"' in ui.clients["operator"].get(f"/ui/runs/{waiting}").text
    as_viewer = post(ui, "viewer", f"/ui/runs/{waiting}/cancel", {"reason": "x"})
    assert as_viewer.status_code == 403
    no_token = ui.clients["operator"].post(f"/ui/runs/{waiting}/cancel", data={"reason": "x"})
    assert no_token.status_code == 403
    assert ui.store.get_run(waiting).last_seq == before


def test_history_pages_back_and_logs_download_as_text(ui: Ui) -> None:
    waiting = ui.seeded.waiting
    last = ui.store.get_run(waiting).last_seq
    client = ui.clients["viewer"]

    older = client.get(f"/ui/runs/{waiting}/history?before={last}")
    logs = client.get(f"/ui/runs/{waiting}/logs.txt?node=book")
    missing = client.get(f"/ui/runs/{waiting}/logs.txt?node=nope")

    seqs = [int(s) for s in re.findall(r'<td class="mono">(\d+)</td>', older.text)]
    assert seqs == list(range(last - 1, 0, -1))  # newest first, before ``last``
    assert logs.status_code == 200
    assert logs.headers["content-type"].startswith("text/plain")
    assert "attachment" in logs.headers["content-disposition"]
    assert missing.status_code == 404


def test_a_page_of_history_reads_only_its_events(ui: Ui, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page before event ``before`` reads that page from the store, not every event
    after its first (a long run's history read to its end for each page)."""
    waiting = ui.seeded.waiting
    last = ui.store.get_run(waiting).last_seq
    assert last >= 3
    read: list[int] = []
    history = ui.store.history

    def recorded(run_id: str, after_seq: int = 0, before_seq: int | None = None) -> Any:
        found = history(run_id, after_seq, before_seq=before_seq)
        read.extend(event.seq for event in found)
        return found

    monkeypatch.setattr(ui.store, "history", recorded)
    monkeypatch.setattr(run_page, "HISTORY_PAGE", 1)

    older = ui.clients["viewer"].get(f"/ui/runs/{waiting}/history?before={last}")

    seqs = [int(s) for s in re.findall(r'<td class="mono">(\d+)</td>', older.text)]
    assert seqs == [last - 1]
    assert read == [last - 1]


def _events(lines: Any, wanted: str, most: int = 400) -> dict[str, Any]:
    """The data of the first ``wanted`` event among the next ``most`` lines."""
    name = None
    for count, line in enumerate(lines):
        assert count < most, f"no {wanted} event in {most} lines"
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name == wanted:
            found: dict[str, Any] = json.loads(line[len("data: ") :])
            return found
    raise AssertionError(f"the stream ended before a {wanted} event")


def test_the_live_stream_sends_the_nodes_that_changed(ui: Ui) -> None:
    waiting = ui.seeded.waiting
    page = ui.clients["viewer"].get(f"/ui/runs/{waiting}").text
    url = html.unescape(_LIVE.search(page).group(1))  # type: ignore[union-attr]

    with ui.clients["viewer"].stream("GET", url) as stream:
        lines = stream.iter_lines()
        _events(lines, "caught-up")
        approve(ui.store, waiting, "check", by="finance-person")
        changed = _events(lines, "nodes")
        patched = _events(lines, "patch")

    assert changed["nodes"]["check"] == {"state": "succeeded"}
    assert changed["nodes"]["book"] == {"state": "queued"}
    assert "ping" not in changed["nodes"]  # only what changed since the page
    ids = {item["id"] for item in patched["items"]}
    assert {"step-check", "step-book", "run-why"} <= ids
    assert "step-ping" not in ids


def test_a_reconnected_stream_sends_every_node(ui: Ui) -> None:
    waiting = ui.seeded.waiting
    page = ui.clients["viewer"].get(f"/ui/runs/{waiting}").text
    url = html.unescape(_LIVE.search(page).group(1))  # type: ignore[union-attr]
    resume = url.split("from=")[1]

    with ui.clients["viewer"].stream("GET", url, headers={"Last-Event-ID": resume}) as stream:
        everything = _events(stream.iter_lines(), "nodes")

    assert set(everything["nodes"]) == {"check", "ping", "book"}


def test_the_stream_ends_when_the_server_closes(ui: Ui) -> None:
    closing: threading.Event = ui.clients["viewer"].app.state.closing  # type: ignore[attr-defined]
    closing.set()

    answer = ui.clients["viewer"].get(f"/ui/live/runs/{ui.seeded.waiting}")

    assert answer.status_code == 200
    assert "event: caught-up" in answer.text
