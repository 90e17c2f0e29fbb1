"""The nightly report, run in memory: no database, no worker, no schedule. ``run`` reads
the workflow from ``report.yaml`` as ``keel run report.yaml`` does, with its tasks."""

from __future__ import annotations

import json
from pathlib import Path

from keel.authoring.loading import load_workflow
from keel.testing import run

HERE = Path(__file__).parents[1]
REPORT = HERE / "report.yaml"
SAMPLE = json.loads((HERE / "input.json").read_text(encoding="utf-8"))


def test_the_report_totals_the_day_and_names_the_outliers() -> None:
    result = run(REPORT, input=SAMPLE)

    assert result.status == "succeeded", result.error
    assert result.output == {
        "total": 1232.5,
        "outliers": ["S-3"],
        "report": "2026-01-15: total 1232.50, check S-3",
    }


def test_a_higher_threshold_finds_no_outliers() -> None:
    result = run(REPORT, input={"day": "2026-01-15", "threshold": 1000})

    assert result.status == "succeeded", result.error
    assert result.output["report"] == "2026-01-15: total 1232.50"


def test_a_bad_day_fails_without_retrying() -> None:
    result = run(REPORT, input={"day": "the 15th"})

    assert result.status == "failed"
    assert result.node("fetch_sales").attempts == 1
    assert result.node("publish").status != "succeeded"


def test_it_runs_every_night_at_two_in_berlin() -> None:
    (schedule,) = load_workflow(str(REPORT)).spec.triggers
    assert schedule.kind == "schedule"
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", "Europe/Berlin")
    assert schedule.input == {"day": "yesterday"}
