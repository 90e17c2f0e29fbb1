"""``keel show`` and the run's document say what started a run: a trigger (schedule,
webhook, file, another run ending) or the token it was started with."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from keel.cli.app import app
from keel.cli.inspect_commands import started_by_text
from keel.runtime.operations.control import start_run
from keel.runtime.triggers.firing import Firing, fire
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore

SPEC = {"name": "nightly", "nodes": [{"id": "a", "task": "m:f"}]}


def show(db: Path, run_id: str, *flags: str) -> str:
    result = CliRunner().invoke(app, ["show", run_id, "--db", f"sqlite:///{db}", *flags])
    assert result.exit_code == 0, result.output
    return result.output


def test_show_says_which_trigger_started_a_run(tmp_path: Path) -> None:
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    spec = parse_spec(SPEC)
    ended = start_run(store, spec, {})
    scheduled, _ = fire(store, spec, {}, Firing("schedule", "nightly", "2026-12-06T02:00"))
    followed, _ = fire(store, spec, {}, Firing("completion", "nightly", ended.id))
    by_hand = start_run(store, spec, {})
    store.close()

    lines = show(db, scheduled.id).splitlines()
    assert lines[2].split() == ["version", spec.version[:12], "started", *lines[2].split()[3:]]
    assert lines[3].split() == ["by", "schedule", "nightly,", "slot", "2026-12-06T02:00"]
    text = " ".join(show(db, followed.id).split())
    assert f"by run {ended.id} (workflow nightly ended running)" in text
    assert " by " not in show(db, by_hand.id)
    document = json.loads(show(db, followed.id, "--json"))
    assert document["trigger"] == {"kind": "completion", "source": "nightly", "key": ended.id,
                                   "status": "running"}  # fmt: skip
    assert json.loads(show(db, by_hand.id, "--json"))["trigger"] is None


def test_each_kind_of_origin_reads_as_words() -> None:
    def text(kind: str, source: str, key: str) -> str | None:
        return started_by_text({"kind": kind, "source": source, "key": key}, f"{kind}:{source}")

    assert text("webhook", "/orders", "d-1") == "webhook /orders, delivery d-1"
    assert text("event", "order", "m-1") == "event order, message m-1"
    shown = "file /in/a.csv in /in (sha256 abababababab)"
    assert text("file", "/in", "/in/a.csv:" + "ab" * 32) == shown
    assert started_by_text({"kind": "completion", "source": "w", "key": "r1",
                            "status": "succeeded"}, "completion:w") == (
        "run r1 (workflow w ended succeeded)")  # fmt: skip
    assert started_by_text(None, "ci-bot") == "token ci-bot"
    assert started_by_text(None, None) is None
