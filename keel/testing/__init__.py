"""Helpers for your own tests of your workflows (docs/testing.md).

``run(workflow, input)`` runs a workflow in memory, with keel's real worker and engine
on a SQLite store in memory and a fake clock, and returns a ``TestRun`` once the run has
ended or waits for the test::

    from keel.testing import run

    def test_a_claim_is_settled():
        with run(claim, {"claim": {...}}, stubs={"extract": lambda document: {...}}) as r:
            assert r.status == "waiting"                  # for the approval "review"
            r.approve("review", data={"ok": True}, comment="fine")
            assert r.status == "succeeded", r.error
            assert r.node("extract").attempts == 1
            r.assert_node("settle", status="succeeded", output="paid")
            r.assert_events("run_started", "approval_decided", "run_succeeded")

Time skips: when nothing can run now, the clock jumps to the next thing that is due by
itself (a retry's backoff, a ``keel.timer``), so a two-day timer passes at once and the
history records when it would have fired. Approvals and signals wait for the test
(``approve``, ``reject``, ``signal``); ``advance("1d")`` moves the clock on by hand (an
approval's timeout fires only so). The clock starts at ``keel.testing.START``
(``start=`` another).

``stubs``: a node id (or a task's import path, ``module:function``) -> a plain function
run instead of that task, called with the node's arguments by name; its return value
is the node's output, what it raises a recorded failure (retried as the node says).

``llm`` nodes never reach a model here (``llm_offline=True``, the default): each is
answered offline after its prompt is filled in, by ``llm_replies`` (node id -> the
answer: data for a node with an ``output`` schema, text without; or a function of the
prompt's text giving it), else by the rule-based answer of keel's stub server (JSON
that fits the schema, or a short text). An answer that does not fit the node's schema
fails the node, as a model's would. ``agent`` nodes: stub them with ``stubs``. To test
against a model server (keel's ``keel.llm.stub_server`` on the loopback, or a real one),
pass ``llm_offline=False``: the nodes then use the provider the configuration names.

``allow``: plain functions (not ``@keel.task``) a YAML workflow names, as the worker
setting of that name. Close a ``TestRun`` (``with``, or ``.close()``) when it still
waits: that stops its threads (a run that ended has stopped them already).

``replay(history, workflow)`` checks that a workflow, as your code defines it now, makes
the decisions a recorded run made: the same nodes scheduled with the same arguments,
skipped for the same conditions, in the same order. ``TestRun.replay(workflow)`` does it
with the test run's history. Record a run's history once (``keel history RUN --json >
tests/histories/order.jsonl``) and keep it beside your tests::

    from keel.testing import replay
    from myflows import order

    def test_order_still_replays():
        result = replay(Path("tests/histories/order.jsonl"), order)
        assert result.ok, result.divergence.summary()

The history may be the lines ``keel history RUN --json`` prints (as text, a file, or the
parsed lines), the API's ``GET /runs/{id}/history`` page, or the store's events. With the
definition the run was recorded with (``recorded``; found when ``workflow`` is that
version) the history is split into transitions exactly; without it, by the kind of each
event. ``replay`` touches no database and no clock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keel.engine.events import from_data
from keel.engine.replay import Divergence, Recorded, RecordedEvent, ReplayResult
from keel.engine.replay import replay as _replay
from keel.errors import InputError
from keel.spec.model import WorkflowSpec
from keel.testing._history import NodeView
from keel.testing._run import START, TestRun, run

__all__ = ["START", "Divergence", "NodeView", "ReplayResult", "TestRun", "replay", "run"]

#: keys of a history line that are not the event's own fields
_PLACE = frozenset({"seq", "at", "prev_hash", "hash", "run_id"})


def _event_data(line: dict[str, Any]) -> dict[str, Any]:
    """The event's own data in one line of a history, in any of the shapes keel writes."""
    if isinstance(line.get("payload"), str):  # the store's text (a recorded fixture)
        data: dict[str, Any] = json.loads(line["payload"])
        return data
    if isinstance(line.get("event"), dict):
        return dict(line["event"])
    if "hash" in line and isinstance(line.get("data"), dict):  # the API's event document
        return {"kind": line.get("kind"), **line["data"]}
    data = {key: value for key, value in line.items() if key not in _PLACE}
    if "node" in data and data["node"] is None:
        del data["node"]  # ``keel history`` never writes it; an export may, as null
    return data


def _recorded(lines: Sequence[Any]) -> tuple[list[Recorded], str | None]:
    events: list[Recorded] = []
    run_id = None
    for number, line in enumerate(lines, 1):
        if not isinstance(line, dict):
            raise InputError(f"history line {number}: expected a JSON object, got "
                             f"{type(line).__name__}")  # fmt: skip
        try:
            event = from_data(_event_data(line))
            events.append(RecordedEvent(int(line["seq"]), float(line["at"]), event))
        except KeyError as exc:
            raise InputError(f"history line {number}: it has no {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"history line {number}: not an event keel recorded ({exc})") from None
        run_id = run_id or line.get("run_id")
    return events, run_id


def _parsed(text: str) -> list[Any]:
    """A history as text: JSON lines, or one JSON document (a list of events, or an
    API history page with its ``events``)."""
    stripped = text.strip()
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        run_id = document.get("run_id")
        return [{"run_id": run_id, **e} if run_id else e for e in document["events"]]
    lines = []
    for number, line in enumerate(stripped.splitlines(), 1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"history line {number} is not JSON: {exc.msg}") from None
    return lines


def history_of(history: Any) -> tuple[list[Recorded], str | None]:
    """The recorded events of ``history`` (see ``replay``) and the run's id if it says."""
    if isinstance(history, os.PathLike):
        return history_of(_parsed(Path(history).read_text(encoding="utf-8")))
    if isinstance(history, str):
        return history_of(_parsed(history))
    if isinstance(history, dict) and isinstance(history.get("events"), list):
        return history_of(json.dumps(history))
    if not isinstance(history, Sequence):
        raise InputError(f"a history is a list of events or JSON lines, not "
                         f"{type(history).__name__}")  # fmt: skip
    if all(hasattr(item, "event") and hasattr(item, "seq") for item in history):
        run_id = getattr(history[0], "run_id", None) if history else None
        return list(history), run_id
    return _recorded(history)


def replay(
    history: Any,
    workflow: Any,
    *,
    recorded: WorkflowSpec | None = None,
    run_id: str | None = None,
) -> ReplayResult:
    """Whether ``workflow`` (a ``@keel.workflow`` or a ``WorkflowSpec``) makes the
    decisions ``history`` recorded. ``.ok``; else ``.divergence`` (``seq``, the
    ``recorded`` event, what the workflow ``decided`` instead, the ``explanation``;
    ``.summary()`` says it in one line); ``.state``: the run's state under it.

    ``history``: the lines of ``keel history RUN --json`` (text, a file path, or parsed),
    an API history page, or the store's ``StoredEvent``s. ``recorded``: the definition
    the run was recorded with, if you have it (it splits the history exactly).
    ``run_id``: the run's id when the history does not say it (retry jitter and child
    run ids derive from it)."""
    spec = getattr(workflow, "spec", workflow)
    if not isinstance(spec, WorkflowSpec):
        raise InputError(f"workflow: expected a @keel.workflow or a WorkflowSpec, got "
                         f"{type(workflow).__name__}")  # fmt: skip
    events, said = history_of(history)
    return _replay(events, spec, recorded=recorded, run_id=run_id or said or "")
