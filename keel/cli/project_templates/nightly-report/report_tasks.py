"""The tasks of ``report.yaml``: plain Python functions marked ``@keel.task``. The YAML
names each as ``report_tasks:function``; keel imports this file from the YAML's folder."""

from __future__ import annotations

import datetime
from typing import Any

import keel


@keel.task
def fetch_sales(day: str) -> dict[str, Any]:
    """The day's sales (your database or warehouse in real life)."""
    if day == "yesterday":
        day = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    try:
        datetime.date.fromisoformat(day)
    except ValueError:
        raise keel.NonRetryable(f"day: {day!r} is not YYYY-MM-DD or 'yesterday'") from None
    amounts = [120.0, 80.5, 42.0, 990.0]
    return {"day": day, "sales": [{"id": f"S-{n}", "amount": a} for n, a in enumerate(amounts)]}


@keel.task
def total(sales: dict[str, Any]) -> float:
    amounts: list[float] = [sale["amount"] for sale in sales["sales"]]
    return round(sum(amounts), 2)


@keel.task
def find_outliers(sales: dict[str, Any], threshold: float) -> list[str]:
    """Sales above ``threshold``, for a person to look at."""
    return [sale["id"] for sale in sales["sales"] if sale["amount"] > threshold]


@keel.task
def publish(day: str, total: float, outliers: list[str]) -> str:
    """Publish the report (e-mail, a chat channel, a dashboard in real life)."""
    line = f"{day}: total {total:.2f}"
    if outliers:
        line += f", check {', '.join(outliers)}"
    keel.context().logger.info("report: %s", line)
    return line
