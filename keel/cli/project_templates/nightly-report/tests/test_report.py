"""The nightly report, run in memory: no worker, no schedule, and no mail server. ``run``
reads the workflow from ``report.yaml`` as ``keel run report.yaml`` does, with its tasks.

The ``sql`` steps run for real, on an SQLite file of the test's own folder (the
``reports`` connection of a ``keel.toml`` written there): the project's ``reports.db``
is left alone. The ``email`` step is stubbed: the stub is called with the message's
fields (``to``, ``subject``, ``body``...) and answers as the step would."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from keel.authoring.loading import load_workflow
from keel.testing import run

HERE = Path(__file__).parents[1]
REPORT = HERE / "report.yaml"
SAMPLE = json.loads((HERE / "input.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def reports_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty database for the ``reports`` connection, in the test's folder."""
    (tmp_path / "keel.toml").write_text(
        '[sql.connections.reports]\nurl = "sqlite:///reports.db"\n', encoding="utf-8"
    )
    (tmp_path / "reports.db").touch()
    monkeypatch.chdir(tmp_path)
    return tmp_path / "reports.db"


class Outbox:
    """Stands in for the ``email`` step: keeps each message, answers as the step does."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, to: list[str], subject: str, body: str) -> dict[str, Any]:
        self.sent.append({"to": to, "subject": subject, "body": body})
        return {"message_id": f"<{len(self.sent)}@example.com>", "to": to}


def test_the_report_totals_the_day_and_names_the_outliers() -> None:
    result = run(REPORT, input=SAMPLE)

    assert result.status == "succeeded", result.error
    assert result.output == {
        "total": 1232.5,
        "outliers": ["S-3"],
        "report": "2026-01-15: total 1232.50, check S-3",
    }
    assert result.node("send_report").status == "skipped"  # send_email is false


def test_it_reports_the_rows_the_database_holds(reports_db: Path) -> None:
    with sqlite3.connect(reports_db) as db:
        db.execute("CREATE TABLE sales (day TEXT, id TEXT, amount REAL, PRIMARY KEY (day, id))")
        db.executemany(
            "INSERT INTO sales VALUES (?, ?, ?)",
            [("2026-01-16", "A-1", 700.0), ("2026-01-16", "A-2", 25.5), ("2026-01-15", "B", 9.0)],
        )
    db.close()

    result = run(REPORT, input={"day": "2026-01-16"})

    assert result.status == "succeeded", result.error
    assert result.node("sample_sales").status == "skipped"
    assert result.node("fetch_sales").output["rows"] == [
        {"id": "A-1", "amount": 700.0},
        {"id": "A-2", "amount": 25.5},
    ]
    assert result.output["report"] == "2026-01-16: total 725.50, check A-1"


def test_the_report_is_emailed_when_the_input_asks() -> None:
    outbox = Outbox()

    result = run(REPORT, input={**SAMPLE, "send_email": True}, stubs={"send_report": outbox})

    assert result.status == "succeeded", result.error
    assert outbox.sent == [{
        "to": ["sales-team@example.com"],
        "subject": "Sales report for 2026-01-15",
        "body": "2026-01-15: total 1232.50, check S-3",
    }]  # fmt: skip
    assert result.node("send_report").output == {
        "message_id": "<1@example.com>", "to": ["sales-team@example.com"]
    }  # fmt: skip


def test_a_mail_server_that_is_down_is_tried_three_times() -> None:
    def down(to: list[str]) -> dict[str, Any]:
        raise ConnectionError("SMTP server localhost:1025: connection refused")

    result = run(REPORT, input={**SAMPLE, "send_email": True}, stubs={"send_report": down})

    assert result.status == "failed"
    assert result.node("send_report").attempts == 3


def test_a_bad_day_fails_without_retrying() -> None:
    result = run(REPORT, input={"day": "the 15th"})

    assert result.status == "failed"
    assert result.node("report_day").attempts == 1
    assert result.node("fetch_sales").status != "succeeded"


def test_it_runs_every_night_at_two_in_berlin_and_sends_the_mail() -> None:
    (schedule,) = load_workflow(str(REPORT)).spec.triggers
    assert schedule.kind == "schedule"
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", "Europe/Berlin")
    assert schedule.input == {"day": "yesterday", "send_email": True}
