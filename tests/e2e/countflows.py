"""Workflows for the tests of what ``keel run`` and ``keel show`` count and how wide they
print (``tests/e2e/test_counts_cli.py``).

``stock`` maps over items; an item named ``flaky...`` fails its first attempt (it leaves a
marker file in ``folder`` so the retry succeeds), one named ``broken...`` fails for good,
the others succeed first time.
"""

from __future__ import annotations

from pathlib import Path

import keel


@keel.task(retries=2, retry=keel.RetryPolicy(initial_backoff=0))
def check_stock(item: str, folder: str) -> str:
    marker = Path(folder) / f"{item}.tried"
    if item.startswith("broken"):
        raise keel.NonRetryable(f"{item} is not sold here")
    if item.startswith("flaky") and not marker.exists():
        marker.write_text("tried")
        raise ConnectionError(f"the stock service did not answer for {item}")
    return f"{item} in stock"


@keel.workflow
def stock(items: list[str], folder: str) -> list[str]:
    return keel.map(check_stock, items, args={"folder": folder})
