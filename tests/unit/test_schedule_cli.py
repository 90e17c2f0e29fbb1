"""``keel schedules`` and ``keel schedule ...`` on a database: pause and unpause,
trigger-now, a backfill deduplicated against slots fired already, 80-column output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from keel.cli.app import app
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore

SPEC = {"name": "nightly", "nodes": [{"id": "a", "task": "m:f"}], "triggers": [
    {"kind": "schedule", "cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    {"kind": "schedule", "cron": "*/15 * * * *", "timezone": "America/New_York"}]}  # fmt: skip


def test_schedule_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(parse_spec(SPEC), None)], 1.0)
    runner = CliRunner()

    def keel(*args: str) -> str:
        done = runner.invoke(app, [*args, "--db", url], env={"COLUMNS": "80"})
        assert done.exit_code == 0, done.output
        return done.output

    listed = keel("schedules")
    assert all(len(line) <= 80 for line in listed.splitlines())
    assert "nightly#2" in listed
    assert "CET = " in listed
    keel("schedule", "pause", "nightly")
    (first, second) = json.loads(keel("schedules", "--json"))
    assert (first["name"], first["paused"], second["paused"]) == ("nightly", True, False)
    keel("schedule", "unpause", "nightly")
    assert not json.loads(keel("schedules", "--json"))[0]["paused"]

    # spring-forward in Berlin: 02:30 does not exist on 2026-03-29, cronsim's 03:00 fires
    once = json.loads(
        keel(
            "schedule",
            "backfill",
            "nightly",
            "--from",
            "2026-03-28",
            "--to",
            "2026-03-29",
            "--json",
        )
    )  # fmt: skip  (a date: all of it)
    assert [s["slot"] for s in once] == ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"]
    again = keel("schedule", "backfill", "nightly", "--from", "2026-03-27", "--to", "2026-03-29")
    assert "3 slots: 1 run started, 2 fired already" in again
    backwards = runner.invoke(app, ["schedule", "backfill", "nightly", "--from", "2026-03-29",
                                    "--to", "2026-03-27", "--db", url])  # fmt: skip
    assert backwards.exit_code == 1
    assert "before --from" in backwards.stderr
    run_id = keel("schedule", "trigger-now", "nightly").strip()
    assert store.get_run(run_id).started_by == "schedule:nightly"
    assert len(store.list_runs(started_by="schedule:nightly")) == 4
    missing = runner.invoke(app, ["schedule", "pause", "nope", "--db", url])
    assert missing.exit_code == 1
    store.close()


def test_a_backfill_past_now_is_refused_and_a_backfilled_run_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(parse_spec(SPEC), None)], 1.0)
    runner = CliRunner()
    today = datetime.now(UTC).date()
    future = runner.invoke(app, ["schedule", "backfill", "nightly",
                                 "--from", str(today - timedelta(days=3)),
                                 "--to", str(today + timedelta(days=1)), "--db", url])  # fmt: skip
    assert future.exit_code == 1
    (line,) = future.stderr.splitlines()
    assert "after now" in line
    assert "end it at now or before" in line
    assert store.list_runs() == []
    done = runner.invoke(app, ["schedule", "backfill", "nightly", "--from",
                               str(today - timedelta(days=3)), "--to",
                               str(today - timedelta(days=3)), "--json", "--db", url])  # fmt: skip
    (slot,) = json.loads(done.output)
    shown = runner.invoke(app, ["show", slot["run"], "--db", url]).output
    assert f"schedule nightly, slot {slot['slot']} (backfill)" in " ".join(shown.split())
    store.close()
