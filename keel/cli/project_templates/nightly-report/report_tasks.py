"""The tasks of ``report.yaml``: plain Python functions marked ``@keel.task``. The YAML
names each as ``report_tasks:function``; keel imports this file from the YAML's folder.
The database query and the e-mail are built-in steps of the YAML (``sql``, ``email``)."""

from __future__ import annotations

import datetime
from typing import Any

import keel


@keel.task
def report_day(day: str) -> str:
    """The day to report on, as YYYY-MM-DD (``yesterday`` is the day before today)."""
    if day == "yesterday":
        return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    try:
        return datetime.date.fromisoformat(day).isoformat()
    except ValueError:
        raise keel.NonRetryable(f"day: {day!r} is not YYYY-MM-DD or 'yesterday'") from None


@keel.task
def total(sales: list[dict[str, Any]]) -> float:
    """The sum of the day's sales (the rows of the ``sql`` step: ``id``, ``amount``)."""
    amounts: list[float] = [sale["amount"] for sale in sales]
    return round(sum(amounts), 2)


@keel.task
def find_outliers(sales: list[dict[str, Any]], threshold: float) -> list[str]:
    """Sales above ``threshold``, for a person to look at."""
    return [sale["id"] for sale in sales if sale["amount"] > threshold]


@keel.task
def publish(day: str, total: float, outliers: list[str]) -> str:
    """The report's text (the ``email`` step sends it; a dashboard could show it)."""
    line = f"{day}: total {total:.2f}"
    if outliers:
        line += f", check {', '.join(outliers)}"
    keel.context().logger.info("report: %s", line)
    return line
